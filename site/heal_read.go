package site

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// errChunkCorrupt is the "error" of an answer about an object a chunk of
// which is damaged here and could not be repaired.
const errChunkCorrupt = "chunk_corrupt"

// primeRead finds, before the first byte is sent, whether the read can
// start: a chunk of the object known unrepairable, or the first chunk of
// the range failing (after repair), is answered with 502 chunk_corrupt
// instead of a 200 that breaks off. The first chunk read is kept for the
// stream.
func (s *Site) primeRead(r *http.Request, m *manifest.Manifest, rt *readThrough) error {
	if m.Size == 0 || len(m.Chunks) == 0 || m.ChunkSize <= 0 {
		return nil
	}
	if s.heal != nil {
		for _, id := range m.Chunks {
			if s.heal.repair.Troubled(id) {
				// Wait for the repair under way, or try again (at most
				// once a minute) one that failed.
				if err := s.heal.repair.Repair(r.Context(), id, rt.name); err != nil {
					return fmt.Errorf("read %s: %w", rt.name, err)
				}
			}
		}
	}
	first := rangeStart(r.Header.Get("Range"), m.Size)
	i := first / int64(m.ChunkSize)
	if i < 0 || i >= int64(len(m.Chunks)) {
		return nil // an unsatisfiable range: ServeContent answers it
	}
	id := m.Chunks[i]
	raw, err := rt.Get(id, nil)
	switch {
	case err == nil:
	case errors.Is(err, chunk.ErrCorrupt):
		return fmt.Errorf("read %s chunk %d (%s): %w", rt.name, i, id.Short(), err)
	case errors.Is(err, chunk.ErrNotFound):
		return &apiError{status: http.StatusBadGateway, err: fmt.Errorf("read %s: chunk %d (%s) is not here and no reachable site holds it", rt.name, i, id.Short()),
			hint: "the version may still be arriving (skyfed stat shows incomplete_versions and each link's backlog); try again later"}
	default:
		return nil // a timeout or an error of this site: the stream reports it as before
	}
	rt.primedID, rt.primedRaw = id, raw
	return nil
}

// rangeStart is the first byte a Range header asks for (0 for none, a
// multi-range, or one that does not parse: ServeContent judges those).
// It reads the header as net/http's parseRange does, so the chunk it
// primes is the one ServeContent starts at: ranges that begin past the
// end are dropped, and what is left decides whether one range remains.
func rangeStart(h string, size int64) int64 {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0
	}
	var first int64
	satisfiable := 0
	for _, part := range strings.Split(spec, ",") {
		if part = textproto.TrimString(part); part == "" {
			continue
		}
		from, to, ok := strings.Cut(part, "-")
		if !ok {
			return 0
		}
		from, to = textproto.TrimString(from), textproto.TrimString(to)
		var start int64
		if from == "" {
			n, err := strconv.ParseInt(to, 10, 64)
			if err != nil || n < 0 || to == "" || to[0] == '-' {
				return 0
			}
			start = size - min(n, size)
		} else {
			n, err := strconv.ParseInt(from, 10, 64)
			if err != nil || n < 0 {
				return 0
			}
			if n >= size {
				continue // begins past the end: ServeContent drops it
			}
			if to != "" {
				if last, err := strconv.ParseInt(to, 10, 64); err != nil || n > last {
					return 0
				}
			}
			start = n
		}
		if satisfiable++; satisfiable > 1 {
			return 0 // a multi-range
		}
		first = start
	}
	return first
}
