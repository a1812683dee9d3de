package naming

// The incomplete-version tracker. A manifest from a peer is indexed at
// once, before its chunks arrive, so a site may know versions it cannot
// read yet. The tracker keeps, exactly and persistently, which versions
// those are and how many of their bytes are missing:
//
//	'w' + chunk ID + manifest ID → bytes of that chunk's occurrences in that version
//	'i' + manifest ID            → distinct chunks missing, bytes missing
//
// A version's bytes missing is the sum, over the positions of its chunk
// list whose chunk is not stored here, of that position's size:
// min(ChunkSize, Size − i·ChunkSize), as chunk.Splitter cuts. Tombstones
// (and empty objects) have no chunks and are never incomplete.
//
// Both sides of an arrival update the keys inside the one Pebble batch
// that makes the arrival visible, under the chunk store's commit mutex
// (chunk.Batch.Commit's extra callback), so reads of committed state
// there see every earlier commit:
//   - a manifest committed: a 'w' key per distinct chunk neither stored
//     nor added by this commit, and its 'i' key if there is any;
//   - chunks committed (any commit, also the forwarding layer's, through
//     StageChunksArrived): their 'w' keys are deleted and the 'i' keys of
//     the versions waiting for them decremented, deleted at zero.
//
// In-memory totals are loaded at open by scanning 'i' only and moved by
// each commit's delta after the commit succeeds. A rebuild
// (RecountIncomplete) bumps an epoch so that deltas computed before it,
// whose effects it already counted, are dropped.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// trackerFormat is the layout of the 'w' and 'i' keys; the marker key
// holds it, and a site that finds another value (or none: a data dir
// older than the tracker) rebuilds the tracker at open.
const trackerFormat = 1

var trackerMarker = append([]byte{prefixMeta}, "incomplete"...)

func waitingPrefix(c chunk.ID) []byte {
	return append([]byte{prefixWaiting}, c[:]...)
}

func waitingKey(c, m chunk.ID) []byte {
	return append(waitingPrefix(c), m[:]...)
}

func incompleteKey(m chunk.ID) []byte {
	return append([]byte{prefixIncomplete}, m[:]...)
}

// missing is what a version still lacks here: the 'i' value.
type missing struct {
	chunks uint32 // distinct chunks
	bytes  int64  // bytes of their occurrences
}

const missingLen = 4 + 8

func (v missing) encode() []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, missingLen), v.chunks)
	return binary.BigEndian.AppendUint64(b, uint64(v.bytes))
}

func decodeMissing(b []byte) (missing, error) {
	if len(b) != missingLen {
		return missing{}, fmt.Errorf("%w: incomplete-version entry of %d bytes", chunk.ErrCorrupt, len(b))
	}
	return missing{binary.BigEndian.Uint32(b), int64(binary.BigEndian.Uint64(b[4:]))}, nil
}

// tracker holds the in-memory totals of the incomplete versions.
type tracker struct {
	mu       sync.Mutex
	epoch    uint64 // bumped by each reset; deltas of an older epoch are dropped
	versions int64
	bytes    int64
	// bound is at least the number of 'i' keys committed (raised inside
	// a commit callback before the key can be visible, lowered only after
	// a commit that deleted keys): while it is 0, a chunk commit skips
	// looking for versions waiting on its chunks.
	bound atomic.Int64
}

// delta is what one commit changes in the totals.
type delta struct {
	epoch     uint64
	versions  int64 // versions added minus versions completed
	completed int64 // versions completed ('i' keys deleted)
	bytes     int64
}

// begin starts the delta of a commit; called under the commit mutex.
func (t *tracker) begin() delta {
	t.mu.Lock()
	defer t.mu.Unlock()
	return delta{epoch: t.epoch}
}

// apply adds a committed delta, unless a reset since counted it already.
func (t *tracker) apply(d delta) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d.epoch != t.epoch {
		return
	}
	t.versions += d.versions
	t.bytes += d.bytes
	t.bound.Add(-d.completed)
}

// reset sets the totals to what a scan of committed 'i' keys found; the
// caller holds the commit mutex (or nothing else runs yet).
func (t *tracker) reset(versions, missingBytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.epoch++
	t.versions, t.bytes = versions, missingBytes
	t.bound.Store(versions)
}

func (t *tracker) totals() (int64, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.versions, t.bytes
}

// Incomplete returns how many versions indexed here lack some of their
// chunks, and how many bytes of those versions are not readable here
// yet. Both are exact as of the last commit.
func (s *Store) Incomplete() (versions, missingBytes int64) { return s.track.totals() }

// StageChunksArrived stages into pb, the batch that commits the chunks
// added, the tracker's updates for versions waiting on them. Call it
// from the extra callback of every chunk.Batch.Commit of this site's
// chunk store that does not go through this Store, and call apply once
// that commit succeeded (not at all if it failed). On a nil Store (a
// chunk store without an object layer) it stages nothing.
func (s *Store) StageChunksArrived(pb *pebble.Batch, added []chunk.ID) (apply func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	d := s.track.begin()
	if err := s.stageArrived(pb, added, &d); err != nil {
		return nil, err
	}
	return func() { s.track.apply(d) }, nil
}

// stageArrived deletes the 'w' keys of the chunks added and decrements
// (or deletes) the 'i' keys of the versions that waited for them.
func (s *Store) stageArrived(pb *pebble.Batch, added []chunk.ID, d *delta) error {
	if len(added) == 0 || s.track.bound.Load() == 0 {
		return nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixWaiting}, UpperBound: []byte{prefixWaiting + 1}})
	if err != nil {
		return err
	}
	found := map[chunk.ID]missing{}
	for _, c := range added {
		p := waitingPrefix(c)
		for it.SeekGE(p); it.Valid() && bytes.HasPrefix(it.Key(), p); it.Next() {
			k, v := it.Key(), it.Value()
			if len(k) != len(p)+len(chunk.ID{}) || len(v) != 8 {
				_ = it.Close()
				return fmt.Errorf("%w: waiting-chunk entry %x", chunk.ErrCorrupt, k)
			}
			if err := pb.Delete(k, nil); err != nil { // pb copies k
				_ = it.Close()
				return err
			}
			m := chunk.ID(k[len(p):])
			f := found[m]
			f.chunks++
			f.bytes += int64(binary.BigEndian.Uint64(v))
			found[m] = f
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for m, f := range found {
		if err := s.stageLess(pb, m, f, d); err != nil {
			return err
		}
	}
	return nil
}

// stageLess takes f off version m's missing entry.
func (s *Store) stageLess(pb *pebble.Batch, m chunk.ID, f missing, d *delta) error {
	v, ok, err := getValue(s.db, incompleteKey(m))
	if err != nil || !ok { // !ok: no entry to correct (only a bug or a lost key gets here)
		return err
	}
	cur, err := decodeMissing(v)
	if err != nil {
		return err
	}
	if f.chunks >= cur.chunks {
		d.versions--
		d.completed++
		d.bytes -= cur.bytes
		return pb.Delete(incompleteKey(m), nil)
	}
	d.bytes -= f.bytes
	return pb.Set(incompleteKey(m), missing{cur.chunks - f.chunks, cur.bytes - f.bytes}.encode(), nil)
}

// stageMissing stages the tracker keys of version m (ID id) if some of
// its chunks are neither stored nor in added (made new by this commit).
func (s *Store) stageMissing(pb *pebble.Batch, m *manifest.Manifest, id chunk.ID, added []chunk.ID, d *delta) error {
	if m.Tombstone || len(m.Chunks) == 0 {
		return nil
	}
	here := make(map[chunk.ID]bool, len(added))
	for _, c := range added {
		here[c] = true
	}
	lack := map[chunk.ID]int64{}
	cs := int64(m.ChunkSize)
	for i, c := range m.Chunks {
		size := min(cs, m.Size-int64(i)*cs)
		if _, ok := lack[c]; ok {
			lack[c] += size
			continue
		}
		if here[c] {
			continue
		}
		has, err := s.chunks.Has(c)
		if err != nil {
			return err
		}
		if has {
			here[c] = true
			continue
		}
		lack[c] = size
	}
	if len(lack) == 0 {
		return nil
	}
	total := missing{chunks: uint32(len(lack))}
	var v [8]byte
	for c, n := range lack {
		binary.BigEndian.PutUint64(v[:], uint64(n))
		if err := pb.Set(waitingKey(c, id), v[:], nil); err != nil {
			return err
		}
		total.bytes += n
	}
	if err := pb.Set(incompleteKey(id), total.encode(), nil); err != nil {
		return err
	}
	s.track.bound.Add(1)
	d.versions++
	d.bytes += total.bytes
	return nil
}

// openIncomplete loads the totals at open, rebuilding the tracker first
// when this data dir has none yet (or another format), or when the chunk
// store forgot chunks of lost pack files at open.
func (s *Store) openIncomplete() error {
	v, ok, err := getValue(s.db, trackerMarker)
	if err != nil {
		return err
	}
	if !ok || !bytes.Equal(v, []byte{trackerFormat}) || s.chunks.Stats().LostAtOpen > 0 {
		return s.RecountIncomplete()
	}
	n, b, err := s.scanIncomplete()
	if err != nil {
		return err
	}
	s.track.reset(n, b)
	return nil
}

// RecountIncomplete rebuilds the tracker from scratch: it reads every
// manifest and looks up each of its chunks. Chunk commits wait while it
// runs, so it is for rare events: a data dir older than the tracker, or
// chunks forgotten because their pack file was lost (both at open).
func (s *Store) RecountIncomplete() error {
	err := s.chunks.NewBatch().Commit(func(pb *pebble.Batch, _ []chunk.ID) error {
		return s.stageRecount(pb)
	})
	if err != nil {
		return fmt.Errorf("recount incomplete versions: %w", err)
	}
	// Reload under the commit mutex: deltas of commits before this point
	// are in the scan and dropped by the reset's new epoch.
	err = s.chunks.NewBatch().Commit(func(*pebble.Batch, []chunk.ID) error {
		n, b, err := s.scanIncomplete()
		if err == nil {
			s.track.reset(n, b)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recount incomplete versions: %w", err)
	}
	return nil
}

// stageRecount stages into pb the deletion of every tracker key, the keys
// of every version lacking chunks now, and the marker.
func (s *Store) stageRecount(pb *pebble.Batch) error {
	for _, p := range []byte{prefixWaiting, prefixIncomplete} {
		if err := s.forEachKey(p, func(k, _ []byte) error { return pb.Delete(k, nil) }); err != nil {
			return err
		}
	}
	var d delta // the totals come from the reload that follows
	err := s.ForEachManifest(func(id chunk.ID) error {
		m, err := s.Manifest(id)
		if err != nil {
			return err
		}
		return s.stageMissing(pb, m, id, nil, &d)
	})
	if err != nil {
		return err
	}
	return pb.Set(trackerMarker, []byte{trackerFormat}, nil)
}

// scanIncomplete sums the committed 'i' entries.
func (s *Store) scanIncomplete() (versions, missingBytes int64, err error) {
	err = s.forEachKey(prefixIncomplete, func(_, v []byte) error {
		m, err := decodeMissing(v)
		if err != nil {
			return err
		}
		versions++
		missingBytes += m.bytes
		return nil
	})
	return versions, missingBytes, err
}

// forEachKey calls fn with every committed key and value under the
// one-byte prefix p (valid only during the call).
func (s *Store) forEachKey(p byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}
