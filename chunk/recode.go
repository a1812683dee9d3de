package chunk

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// StoredCodec returns the codec a chunk is stored in (an index look-up;
// nothing is read from the packs). A chunk not stored gives ErrNotFound.
func (s *Store) StoredCodec(id ID) (Codec, error) {
	e, err := s.lookup(id)
	if err != nil {
		return 0, fmt.Errorf("chunk %s: %w", id.Short(), err)
	}
	return e.codec, nil
}

// Recode replaces the stored payload of a chunk stored raw by payload,
// its raw bytes encoded with c (a background compression pass). It
// checks first that payload decodes to the chunk (rawLen bytes hashing
// to id): once the raw record is reclaimed, the encoded one is all there
// is. The new record is appended to the active pack and made durable,
// then one synced index commit re-points the chunk at it, if the chunk
// is still stored raw (every raw record of id holds the same bytes, so
// one moved by compaction meanwhile is as good). A reader finds the old
// record or the new one at every instant, and a crash leaves one of the
// two in the index; the raw record becomes garbage that Compact
// reclaims. Recode reports whether it replaced the entry: false when the
// chunk is gone (swept) or no longer stored raw (recoded already).
func (s *Store) Recode(id ID, c Codec, payload []byte, rawLen uint32) (bool, error) {
	switch {
	case c == CodecRaw || !c.Valid():
		return false, fmt.Errorf("recode chunk %s: codec %s: %w", id.Short(), c, ErrCorrupt)
	case rawLen > MaxSize || len(payload) > MaxSize:
		return false, fmt.Errorf("recode chunk %s: %d stored / %d raw bytes: %w", id.Short(), len(payload), rawLen, ErrTooLarge)
	}
	if cur, err := s.lookup(id); errors.Is(err, ErrNotFound) || (err == nil && cur.codec != CodecRaw) {
		return false, nil
	}
	if err := verifyPayload(id, c, payload, rawLen); err != nil {
		return false, fmt.Errorf("recode chunk %s: %w", id.Short(), err)
	}
	b := s.NewBatch()
	b.done = true // committed below, not by Commit: it re-points an existing entry
	defer b.release()
	if _, err := b.append(id, c, payload, rawLen); err != nil {
		return false, fmt.Errorf("recode: %w", err)
	}
	if err := b.syncPacks(); err != nil {
		return false, fmt.Errorf("recode chunk %s: %w", id.Short(), err)
	}
	replaced, err := s.repoint(id, b.staged[id])
	if err != nil {
		return false, fmt.Errorf("recode chunk %s: %w", id.Short(), err)
	}
	return replaced, nil
}

// repoint sets the index entry of id to e if id is still stored raw.
func (s *Store) repoint(id ID, e entry) (bool, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	cur, err := s.lookup(id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if cur.codec != CodecRaw || cur.rawLen != e.rawLen {
		return false, nil
	}
	if err := s.db.Set(indexKey(id), e.appendTo(nil), pebble.Sync); err != nil {
		return false, fmt.Errorf("pebble commit: %w", err)
	}
	s.storedBytes.Add(int64(e.storedLen) - int64(cur.storedLen))
	return true, nil
}
