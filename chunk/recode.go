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

// Recoding is one chunk for RecodeAll: its raw bytes encoded with Codec.
type Recoding struct {
	ID      ID
	Codec   Codec
	Payload []byte
	RawLen  uint32
}

// Recode replaces the stored payload of a chunk stored raw by payload,
// its raw bytes encoded with c (a background compression pass). It
// reports whether it replaced the entry: false when the chunk is gone
// (swept) or no longer stored raw (recoded already). See RecodeAll.
func (s *Store) Recode(id ID, c Codec, payload []byte, rawLen uint32) (bool, error) {
	done, err := s.RecodeAll([]Recoding{{id, c, payload, rawLen}})
	return len(done) == 1 && done[0], err
}

// RecodeAll replaces the stored payloads of chunks stored raw by encoded
// ones, in one group. It checks first that each payload decodes to its
// chunk (rawLen bytes hashing to the ID): once the raw record is
// reclaimed, the encoded one is all there is; one that does not is an
// error and nothing is replaced. The new records are appended to the
// active pack and made durable (one fsync), then one synced index commit
// re-points each chunk still stored raw (every raw record of an ID
// holds the same bytes, so one moved by compaction meanwhile is as
// good). A reader finds the old record or the new one at every instant,
// and a crash leaves one of the two in the index; the raw records become
// garbage that Compact reclaims. done[i] says whether items[i] was
// replaced.
func (s *Store) RecodeAll(items []Recoding) (done []bool, err error) {
	for _, it := range items {
		switch {
		case it.Codec == CodecRaw || !it.Codec.Valid():
			return nil, fmt.Errorf("recode chunk %s: codec %s: %w", it.ID.Short(), it.Codec, ErrCorrupt)
		case it.RawLen > MaxSize || len(it.Payload) > MaxSize:
			return nil, fmt.Errorf("recode chunk %s: %d stored / %d raw bytes: %w", it.ID.Short(), len(it.Payload), it.RawLen, ErrTooLarge)
		}
		if err := verifyPayload(it.ID, it.Codec, it.Payload, it.RawLen); err != nil {
			return nil, fmt.Errorf("recode chunk %s: %w", it.ID.Short(), err)
		}
	}
	b := s.newBatch(false)
	b.done = true // committed below, not by Commit: it re-points existing entries
	defer b.release()
	for _, it := range items {
		if cur, err := s.lookup(it.ID); errors.Is(err, ErrNotFound) || (err == nil && cur.codec != CodecRaw) {
			continue
		}
		if _, ok := b.staged[it.ID]; ok {
			continue
		}
		if _, err := b.append(it.ID, it.Codec, it.Payload, it.RawLen); err != nil {
			return nil, fmt.Errorf("recode: %w", err)
		}
	}
	done = make([]bool, len(items))
	if len(b.order) == 0 {
		return done, nil
	}
	if err := b.syncPacks(); err != nil {
		return nil, fmt.Errorf("recode %d chunks: %w", len(b.order), err)
	}
	replaced, err := s.repoint(b.staged)
	if err != nil {
		return nil, fmt.Errorf("recode %d chunks: %w", len(b.order), err)
	}
	for i, it := range items {
		done[i] = replaced[it.ID]
	}
	return done, nil
}

// repoint sets the index entry of each chunk to its staged one if the
// chunk is still stored raw, in one synced commit.
func (s *Store) repoint(staged map[ID]entry) (map[ID]bool, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	pb := s.db.NewBatch()
	defer pb.Close()
	replaced := map[ID]bool{}
	var delta int64
	for id, e := range staged {
		cur, err := s.lookup(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if cur.codec != CodecRaw || cur.rawLen != e.rawLen {
			continue
		}
		if err := pb.Set(indexKey(id), e.appendTo(nil), nil); err != nil {
			return nil, err
		}
		replaced[id] = true
		delta += int64(e.storedLen) - int64(cur.storedLen)
	}
	if len(replaced) == 0 {
		return replaced, nil
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("pebble commit: %w", err)
	}
	s.storedBytes.Add(delta)
	return replaced, nil
}
