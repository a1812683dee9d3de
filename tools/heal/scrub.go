package heal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/naming"
)

// ScrubOptions tune a scrub.
type ScrubOptions struct {
	// Rate bounds the bytes read per second (0: as fast as the disk goes).
	Rate uint64
	// ManifestsOnly skips re-hashing chunks: it checks manifests and that
	// their chunks are indexed (after packs were found lost at start-up).
	ManifestsOnly bool
	// Progress, if set, is called as the scrub goes and at the end.
	Progress func(ScrubReport)
}

// ScrubReport is what a scrub found and did. Its JSON is the last line
// of POST /api/scrub and of skyfed tools scrub --json.
type ScrubReport struct {
	Phase      string `json:"phase"` // chunks, manifests, done
	Chunks     int64  `json:"chunks"`
	Bytes      int64  `json:"bytes"`
	TotalBytes int64  `json:"total_bytes"`
	// Corrupt chunks failed their hash or their record check; Missing
	// are chunks a complete version uses that are not here.
	Corrupt      int64 `json:"corrupt"`
	Missing      int64 `json:"missing"`
	Repaired     int64 `json:"repaired"`
	Unrepairable int64 `json:"unrepairable"`
	Manifests    int64 `json:"manifests"`
	// BadManifests fail their ID, signature or trust check.
	BadManifests int64 `json:"bad_manifests"`
	// Untrusted versions are sound, but their signer is no longer trusted
	// for their name here (site untrust, or a narrowed trust).
	Untrusted int64      `json:"untrusted_manifests"`
	Affected  []Affected `json:"affected"`
	Started   time.Time  `json:"started"`
	Seconds   float64    `json:"seconds"`
	Done      bool       `json:"done"`
	Error     string     `json:"error,omitempty"`
}

// Clean reports whether the scrub left nothing unrepairable.
func (r ScrubReport) Clean() bool { return r.Unrepairable == 0 && r.BadManifests == 0 && r.Error == "" }

// Scrub re-hashes every chunk at the given rate, repairs those that fail
// from the other sites, then checks every manifest (ID, signature,
// trust) and that the chunks of every complete version are here,
// fetching those that are not, and names the versions affected. Chunks
// known unrepairable from before are tried again.
func (s *Site) Scrub(ctx context.Context, opts ScrubOptions) (ScrubReport, error) {
	start := time.Now()
	rep := ScrubReport{Phase: "chunks", Started: start.UTC(), Affected: []Affected{}}
	progress := func() {
		rep.Seconds = seconds(time.Since(start))
		if opts.Progress != nil {
			opts.Progress(rep)
		}
	}
	bad := map[chunk.ID]bool{} // damaged chunks → repaired
	if !opts.ManifestsOnly {
		cr, err := s.Chunks.Scrub(ctx, chunk.ScrubOptions{
			Pace: pacer(opts.Rate),
			Progress: func(c chunk.ScrubReport) {
				rep.Chunks, rep.Bytes, rep.TotalBytes, rep.Corrupt = c.Chunks, c.Bytes, c.TotalBytes, c.Corrupt
				progress()
			},
			Bad: func(id chunk.ID, cerr error) {
				s.log().Warn("scrub: chunk failed verification; repairing it from another site", "chunk", id.String(), "err", cerr)
				bad[id] = s.Repairer.Repair(ctx, id) == nil
			},
		})
		rep.Chunks, rep.Bytes, rep.TotalBytes, rep.Corrupt = cr.Chunks, cr.Bytes, cr.TotalBytes, cr.Corrupt
		if err != nil {
			return s.scrubFailed(rep, progress, err)
		}
	}
	for _, ok := range bad {
		if ok {
			rep.Repaired++
		}
	}
	rep.Phase = "manifests"
	progress()
	if err := s.scrubManifests(ctx, bad, &rep, progress); err != nil {
		return s.scrubFailed(rep, progress, err)
	}
	s.Repairer.Retry(ctx)
	_, _, rep.Unrepairable = s.Repairer.Counts()
	rep.Phase, rep.Done = "done", true
	progress()
	level := s.log().Info
	if !rep.Clean() {
		level = s.log().Error
	}
	level("scrub done", "chunks", rep.Chunks, "bytes", rep.Bytes, "corrupt", rep.Corrupt, "missing", rep.Missing,
		"repaired", rep.Repaired, "unrepairable", rep.Unrepairable, "manifests", rep.Manifests, "bad_manifests", rep.BadManifests,
		"took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

func (s *Site) scrubFailed(rep ScrubReport, progress func(), err error) (ScrubReport, error) {
	rep.Done, rep.Error = true, err.Error()
	progress()
	return rep, fmt.Errorf("scrub: %w", err)
}

// scrubManifests checks every manifest and the presence of the chunks of
// every complete version.
func (s *Site) scrubManifests(ctx context.Context, bad map[chunk.ID]bool, rep *ScrubReport, progress func()) error {
	var ids []chunk.ID
	if err := s.Objects.ForEachManifest(func(id chunk.ID) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return err
	}
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := s.Objects.CheckManifest(id)
		if errors.Is(err, naming.ErrNotFound) {
			continue // collected since the list was read
		}
		if errors.Is(err, naming.ErrUntrusted) || errors.Is(err, naming.ErrForbidden) {
			// Its bytes are sound; the trust store changed since it came.
			rep.Untrusted++
			s.log().Warn("scrub: a stored version's signer is no longer trusted for its name", "manifest", id.String(), "err", err)
			continue
		}
		if err != nil {
			rep.BadManifests++
			s.log().Error("scrub: a stored manifest fails its check", "manifest", id.String(), "err", err)
			continue
		}
		rep.Manifests++
		who := m.Name + "@" + m.Version()
		checked, incomplete := false, false // asked only once a chunk is missing
		for _, c := range m.Chunks {
			if ok, damaged := bad[c]; damaged {
				s.affected(rep, who, m.Name, m.Version(), c, ok)
				continue
			}
			has, err := s.Chunks.Has(c)
			if err != nil {
				return err
			}
			if has {
				continue
			}
			if !checked {
				if incomplete, err = s.Objects.IsIncomplete(id); err != nil {
					return err
				}
				checked = true
			}
			if incomplete {
				break // still arriving by replication: not lost
			}
			rep.Missing++
			ok := s.Repairer.Repair(ctx, c, who) == nil
			bad[c] = ok
			if ok {
				rep.Repaired++
			}
			s.affected(rep, who, m.Name, m.Version(), c, ok)
		}
		if i%256 == 0 {
			progress()
		}
	}
	return nil
}

func (s *Site) affected(rep *ScrubReport, who, name, version string, c chunk.ID, repaired bool) {
	if !repaired {
		s.Repairer.NoteNames(c, who)
	}
	if len(rep.Affected) < maxAffected {
		rep.Affected = append(rep.Affected, Affected{Name: name, Version: version, Chunk: c.String(), Repaired: repaired})
	}
}

// NameUnrepairable finds the versions that use unrepairable chunks no
// reader has named yet (one a relay could not ship, say), by one pass
// over the manifests, and records their names with the repairer. Each
// chunk is looked for once. It returns how many chunks got names.
func (s *Site) NameUnrepairable(ctx context.Context) (int, error) {
	unnamed := map[chunk.ID]bool{}
	s.namingMu.Lock()
	if s.looked == nil {
		s.looked = map[chunk.ID]bool{}
	}
	for _, u := range s.Repairer.Unrepairable() {
		if len(u.Names) == 0 && !s.looked[u.ID] {
			unnamed[u.ID] = true
			s.looked[u.ID] = true // one pass each: a chunk no version uses stays unnamed
		}
	}
	s.namingMu.Unlock()
	if len(unnamed) == 0 {
		return 0, nil
	}
	named := map[chunk.ID]bool{}
	err := s.Objects.ForEachManifest(func(id chunk.ID) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := s.Objects.Manifest(id)
		if err != nil {
			return nil // collected meanwhile
		}
		for _, c := range m.Chunks {
			if unnamed[c] {
				s.Repairer.NoteNames(c, m.Name+"@"+m.Version())
				named[c] = true
			}
		}
		return nil
	})
	return len(named), err
}
