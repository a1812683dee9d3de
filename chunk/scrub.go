package chunk

import (
	"context"
	"errors"
)

// ScrubOptions tune Scrub.
type ScrubOptions struct {
	// Pace, if set, is called before each chunk is read with its stored
	// size (a rate limiter).
	Pace func(ctx context.Context, n int) error
	// Progress, if set, is called every so often and at the end.
	Progress func(ScrubReport)
	// Bad is called for each chunk that fails verification (its error
	// wraps ErrCorrupt) before Scrub goes on.
	Bad func(id ID, err error)
}

// ScrubReport counts what Scrub checked.
type ScrubReport struct {
	Chunks     int64 // chunks read and hashed
	Bytes      int64 // their raw bytes
	Corrupt    int64 // chunks that failed verification
	TotalBytes int64 // raw bytes indexed when the scrub began (for progress)
}

// Scrub reads every indexed chunk, checks its record against the index
// (a truncated or missing pack shows up here) and re-hashes it, in index
// order, paced by opts.Pace. It stops early only when ctx ends or Pace
// fails.
func (s *Store) Scrub(ctx context.Context, opts ScrubOptions) (ScrubReport, error) {
	rep := ScrubReport{TotalBytes: s.rawBytes.Load()}
	var buf []byte
	const every = 64
	err := s.forEachEntry(func(id ID, e entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if opts.Pace != nil {
			if err := opts.Pace(ctx, int(e.storedLen)); err != nil {
				return err
			}
		}
		var err error
		buf, _, err = s.Verify(id, buf)
		switch {
		case errors.Is(err, ErrCorrupt):
			rep.Corrupt++
			if opts.Bad != nil {
				opts.Bad(id, err)
			}
		case errors.Is(err, ErrNotFound):
			return nil // swept or quarantined since the scan's page was read
		case err != nil:
			return err
		}
		rep.Chunks++
		rep.Bytes += int64(e.rawLen)
		if opts.Progress != nil && rep.Chunks%every == 0 {
			opts.Progress(rep)
		}
		return nil
	})
	if opts.Progress != nil {
		opts.Progress(rep)
	}
	return rep, err
}
