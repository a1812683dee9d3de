package chunk

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// pin marks a chunk as relied on; unpin releases it.
func (s *Store) pin(id ID) {
	s.pinMu.Lock()
	s.pins[id]++
	if s.guard != nil {
		s.guard[id] = struct{}{}
	}
	s.pinMu.Unlock()
}

// GuardReuse makes Sweep leave alone, until stop is called, every chunk
// pinned now or from now on, even after its pin is released. A garbage
// collection starts it before it scans which chunks the manifests
// reference: a put committed after that scan began may reuse a chunk
// the scan saw unreferenced, and it pinned that chunk on the way.
func (s *Store) GuardReuse() (stop func()) {
	s.pinMu.Lock()
	// Chunks pinned already count too: a batch that relied on one before
	// the guard began may commit after the scan and release its pin
	// before the sweep.
	s.guard = make(map[ID]struct{}, len(s.pins))
	for id := range s.pins {
		s.guard[id] = struct{}{}
	}
	s.pinMu.Unlock()
	return func() {
		s.pinMu.Lock()
		s.guard = nil
		s.pinMu.Unlock()
	}
}

func (s *Store) unpin(ids []ID) {
	if len(ids) == 0 {
		return
	}
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	for _, id := range ids {
		if s.pins[id] <= 1 {
			delete(s.pins, id)
		} else {
			s.pins[id]--
		}
	}
}

// Pin keeps Sweep away from the given chunks until the returned func is
// called: a reader streaming an object pins its chunks, so a garbage
// collection running meanwhile does not take them from under it.
func (s *Store) Pin(ids []ID) (unpin func()) {
	s.pinMu.Lock()
	for _, id := range ids {
		s.pins[id]++
		if s.guard != nil {
			s.guard[id] = struct{}{}
		}
	}
	s.pinMu.Unlock()
	own := append([]ID(nil), ids...)
	return func() { s.unpin(own) }
}

// Removed sums what Sweep or Quarantine took out of the index.
type Removed struct {
	Chunks      int64
	StoredBytes int64
	RawBytes    int64
	IDs         []ID  // the chunks removed
	Pinned      int64 // chunks left alone because a reader or a batch relies on them
}

// Quarantine takes a chunk whose stored bytes fail verification out of
// the index, so that Has says it is not here and a fetch from the other
// sites brings a good copy (read repair); its pack bytes become garbage
// for compaction. It checks the chunk the index points at now, and
// removes that entry only if it still fails and was not replaced
// meanwhile: a good copy stored since the failure seen by the caller
// (a repair, or compaction meeting a stale record) stays. It reports
// whether it removed the entry.
func (s *Store) Quarantine(id ID) (bool, error) {
	e, err := s.lookup(id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err == nil {
		_, _, err = s.Verify(id, nil)
		if err == nil {
			return false, nil // good (again)
		}
		if !errors.Is(err, ErrCorrupt) {
			return false, fmt.Errorf("quarantine chunk %s: %w", id.Short(), err)
		}
	} else if !errors.Is(err, ErrCorrupt) {
		return false, fmt.Errorf("quarantine chunk %s: %w", id.Short(), err)
	}
	var r Removed
	if err := s.removeGroup([]ID{id}, false, &r, &e); err != nil {
		return false, fmt.Errorf("quarantine chunk %s: %w", id.Short(), err)
	}
	return len(r.IDs) > 0, nil
}

// Sweep takes unreferenced chunks out of the index (garbage
// collection), leaving those pinned by a reader or an open batch. Their
// pack bytes become garbage that Compact reclaims.
func (s *Store) Sweep(ids []ID) (Removed, error) {
	r, err := s.remove(ids, true)
	if err != nil {
		return r, fmt.Errorf("sweep chunks: %w", err)
	}
	return r, nil
}

// sweepBatch bounds the keys one removal commit deletes.
const sweepBatch = 4096

// remove deletes index entries in synced batches and updates the sizes.
// Holding pinMu across the check and the commit makes a pin taken after
// the check wait until the chunk is gone (and so is written again).
func (s *Store) remove(ids []ID, skipPinned bool) (Removed, error) {
	var r Removed
	for len(ids) > 0 {
		n := min(len(ids), sweepBatch)
		part := ids[:n]
		ids = ids[n:]
		if err := s.removeGroup(part, skipPinned, &r, nil); err != nil {
			return r, err
		}
	}
	return r, nil
}

// removeGroup deletes the entries of ids; with only set (one ID), only
// if the entry is still *only.
func (s *Store) removeGroup(ids []ID, skipPinned bool, r *Removed, only *entry) error {
	if skipPinned {
		s.pinMu.Lock()
		defer s.pinMu.Unlock()
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var add Removed
	for _, id := range ids {
		if skipPinned && s.pins[id] > 0 {
			add.Pinned++
			continue
		}
		if _, reused := s.guard[id]; skipPinned && reused {
			add.Pinned++
			continue
		}
		e, err := s.lookup(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return err
		}
		if only != nil && e != *only {
			continue // replaced since it was checked
		}
		if err := b.Delete(indexKey(id), nil); err != nil {
			return err
		}
		if e == (entry{}) {
			continue // a malformed entry, never counted in the sizes
		}
		add.Chunks++
		add.StoredBytes += int64(e.storedLen)
		add.RawBytes += int64(e.rawLen)
		add.IDs = append(add.IDs, id)
	}
	if add.Chunks > 0 {
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("pebble commit: %w", err)
		}
		s.chunks.Add(-add.Chunks)
		s.storedBytes.Add(-add.StoredBytes)
		s.rawBytes.Add(-add.RawBytes)
	}
	r.Chunks += add.Chunks
	r.StoredBytes += add.StoredBytes
	r.RawBytes += add.RawBytes
	r.IDs = append(r.IDs, add.IDs...)
	r.Pinned += add.Pinned
	return nil
}

// Verify reads a chunk and checks it as Get does, without keeping its
// bytes; buf is scratch space it may grow and returns.
func (s *Store) Verify(id ID, buf []byte) ([]byte, int, error) {
	raw, err := s.Get(id, buf)
	return raw[:0], len(raw), err
}
