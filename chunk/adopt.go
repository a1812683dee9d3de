package chunk

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Adopt indexes records of pack num that the index does not know (a
// rebuild from a bucket, whose packs list their records): each record's
// header must be valid and inside the pack's size. Chunks already
// indexed keep their entry (a compaction that crashed before removing
// the pack it copied from leaves two copies). It returns how many
// chunks and raw bytes became known, in one synced commit.
func (s *Store) Adopt(num uint32, size int64, recs []Record) (chunks int, rawBytes int64, err error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	pb := s.db.NewBatch()
	defer pb.Close()
	var add Stats
	seen := map[ID]bool{}
	for _, r := range recs {
		e := entry{pack: num, offset: r.Offset, storedLen: r.StoredLen, rawLen: r.RawLen, codec: r.Codec}
		if err := e.validate(); err != nil || r.Offset < 0 || r.End() > size {
			return 0, 0, fmt.Errorf("adopt pack %s: record %s at %d: %w", packName(num), r.ID.Short(), r.Offset, ErrCorrupt)
		}
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		has, err := s.Has(r.ID)
		if err != nil {
			return 0, 0, err
		}
		if has {
			continue
		}
		if err := pb.Set(indexKey(r.ID), e.appendTo(nil), nil); err != nil {
			return 0, 0, err
		}
		add.Chunks++
		add.StoredBytes += int64(r.StoredLen)
		add.RawBytes += int64(r.RawLen)
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		return 0, 0, fmt.Errorf("adopt pack %s: %w", packName(num), err)
	}
	s.chunks.Add(add.Chunks)
	s.storedBytes.Add(add.StoredBytes)
	s.rawBytes.Add(add.RawBytes)
	return int(add.Chunks), add.RawBytes, nil
}
