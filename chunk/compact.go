package chunk

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// DefaultMinDead is the share of dead bytes past which Compact rewrites a
// pack: below it, copying the live chunks costs more than the space it
// gives back.
const DefaultMinDead = 0.5

// CompactOptions tune Compact.
type CompactOptions struct {
	// MinDead is the share of a pack's bytes no index entry refers to
	// past which its live chunks are copied out and the pack removed;
	// 0 → DefaultMinDead. Packs with nothing live are always removed.
	MinDead float64
	// Pace, if set, is called before each chunk copied with its stored
	// size (a rate limiter), so compaction yields to puts and reads.
	Pace func(ctx context.Context, n int) error
	// Progress, if set, is called after each pack handled.
	Progress func(CompactReport)
	// Quarantine, if set, takes a live chunk whose record fails its check
	// out of the index (and out of whatever else its caller keeps, such as
	// a reconciliation table); nil → Store.Quarantine. It reports whether
	// it removed the entry.
	Quarantine func(ID) (bool, error)
}

// CompactReport says what Compact did.
type CompactReport struct {
	Packs          int   // pack files looked at
	PacksRemoved   int   // removed outright: nothing live in them
	PacksRewritten int   // their live chunks moved, then removed
	ChunksMoved    int64 // live chunks copied into the active pack
	BytesBefore    int64 // pack file bytes when Compact began
	BytesAfter     int64 // pack file bytes when it ended
	// Corrupt lists live chunks whose records failed their checksum on
	// the way: they are taken out of the index (Quarantine) and left to
	// the caller to fetch again from other sites.
	Corrupt []ID
}

// Reclaimed is the pack bytes Compact gave back.
func (r CompactReport) Reclaimed() int64 { return r.BytesBefore - r.BytesAfter }

// packUse is how much of a pack file the index still refers to.
type packUse struct {
	size, live int64
	chunks     int
}

// Usage returns, per pack file, its size and the bytes (record headers
// included) and chunks the index refers to in it.
func (s *Store) usage() (map[uint32]*packUse, error) {
	sizes, err := s.where.List()
	if err != nil {
		return nil, err
	}
	use := make(map[uint32]*packUse, len(sizes))
	for num, size := range sizes {
		use[num] = &packUse{size: size}
	}
	err = s.forEachEntry(func(_ ID, e entry) error {
		if u := use[e.pack]; u != nil {
			u.live += headerSize + int64(e.storedLen)
			u.chunks++
		}
		return nil
	})
	return use, err
}

// PackStats sums the pack files: their bytes, and the bytes and chunks
// the index still refers to (the rest is garbage Compact reclaims).
type PackStats struct {
	Packs     int
	Bytes     int64
	LiveBytes int64
}

// Packs reports the pack files' sizes and live bytes (one index scan).
func (s *Store) Packs() (PackStats, error) {
	use, err := s.usage()
	if err != nil {
		return PackStats{}, fmt.Errorf("pack usage: %w", err)
	}
	var st PackStats
	for _, u := range use {
		st.Packs++
		st.Bytes += u.size
		st.LiveBytes += u.live
	}
	return st, nil
}

// forEachEntry calls fn with every well-formed index entry, paging so no
// iterator stays open across fn calls for long.
func (s *Store) forEachEntry(fn func(ID, entry) error) error {
	lower := []byte{keyPrefix}
	const page = 4096
	type kv struct {
		id ID
		e  entry
	}
	buf := make([]kv, 0, page)
	for {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{keyPrefix + 1}})
		if err != nil {
			return err
		}
		buf = buf[:0]
		for it.First(); it.Valid() && len(buf) < page; it.Next() {
			if len(it.Key()) != 1+len(ID{}) {
				continue
			}
			e, err := decodeEntry(it.Value())
			if err != nil {
				continue
			}
			buf = append(buf, kv{ID(it.Key()[1:]), e})
		}
		err = it.Close()
		if err != nil {
			return err
		}
		for _, x := range buf {
			if err := fn(x.id, x.e); err != nil {
				return err
			}
		}
		if len(buf) < page {
			return nil
		}
		last := buf[len(buf)-1].id
		lower = append(indexKey(last), 0)
	}
}

// Compact reclaims pack bytes no index entry refers to: chunks dropped by
// Sweep or Quarantine, and records of uploads that were aborted or cut
// by a crash. It first starts a new active pack (so the garbage of the
// current one can go too), then removes packs with nothing live and
// rewrites those mostly dead: their live chunks are appended to the
// active pack, made durable, and re-pointed in the index in one commit
// that moves only entries still pointing at the old copy; then the old
// file is removed. Puts, reads and replication go on meanwhile: a read
// that finds its pack gone looks the chunk up again.
func (s *Store) Compact(ctx context.Context, opts CompactOptions) (CompactReport, error) {
	if opts.MinDead <= 0 {
		opts.MinDead = DefaultMinDead
	}
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	var rep CompactReport
	s.appendMu.Lock()
	if s.active != nil && s.active.written.Load() > 0 {
		if err := s.rotateLocked(); err != nil {
			s.appendMu.Unlock()
			return rep, fmt.Errorf("compact: %w", err)
		}
	}
	active := s.active.num
	s.appendMu.Unlock()
	// Which packs open batches wrote to, taken before the index scan: a
	// batch not open now committed before the scan (it gives up its
	// claim after its index commit), and none can write to a pack that
	// is no longer active.
	busy := s.busyPacks()
	use, err := s.usage()
	if err != nil {
		return rep, fmt.Errorf("compact: %w", err)
	}
	nums := make([]uint32, 0, len(use))
	for num, u := range use {
		rep.BytesBefore += u.size
		nums = append(nums, num)
	}
	slices.Sort(nums)
	rep.Packs = len(nums)
	var rewrite []uint32
	for _, num := range nums {
		u := use[num]
		if num >= active || busy[num] {
			continue // the active pack, and any started since, still grow
		}
		switch {
		case u.live == 0:
			if err := s.retire(num); err != nil {
				return rep, fmt.Errorf("compact: %w", err)
			}
			rep.PacksRemoved++
			if opts.Progress != nil {
				opts.Progress(rep)
			}
		case float64(u.size-u.live) >= opts.MinDead*float64(u.size):
			rewrite = append(rewrite, num)
		}
	}
	for _, num := range rewrite {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := s.rewritePack(ctx, num, opts, &rep); err != nil {
			return rep, fmt.Errorf("compact pack %s: %w", packName(num), err)
		}
		rep.PacksRewritten++
		if opts.Progress != nil {
			opts.Progress(rep)
		}
	}
	after, err := s.where.List()
	if err != nil {
		return rep, fmt.Errorf("compact: %w", err)
	}
	for _, size := range after {
		rep.BytesAfter += size
	}
	return rep, nil
}

// busyPacks returns the packs an open batch wrote to.
func (s *Store) busyPacks() map[uint32]bool {
	s.packsMu.RLock()
	defer s.packsMu.RUnlock()
	busy := map[uint32]bool{}
	for num, p := range s.packs {
		if p.inflight.Load() > 0 {
			busy[num] = true
		}
	}
	return busy
}

// rewritePack copies the live chunks of pack num into the active pack
// and removes it.
func (s *Store) rewritePack(ctx context.Context, num uint32, opts CompactOptions, rep *CompactReport) error {
	var live []ID
	var entries []entry
	err := s.forEachEntry(func(id ID, e entry) error {
		if e.pack == num {
			live = append(live, id)
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	const group = 64 << 20 // bytes moved per index commit
	m := &mover{s: s, b: s.NewBatch(), old: map[ID]entry{}}
	defer func() { m.b.Abort() }()
	var buf []byte
	for i, id := range live {
		e := entries[i]
		if opts.Pace != nil {
			if err := opts.Pace(ctx, int(e.storedLen)); err != nil {
				return err
			}
		}
		buf, err = s.readRecordLocked(id, e, buf, true)
		if errors.Is(err, ErrCorrupt) {
			s.noteCorrupt(id, e, err)
			quarantine := opts.Quarantine
			if quarantine == nil {
				quarantine = s.Quarantine
			}
			removed, qerr := quarantine(id)
			if qerr != nil {
				return qerr
			}
			if removed {
				rep.Corrupt = append(rep.Corrupt, id)
				continue
			}
			if cur, lerr := s.lookup(id); lerr != nil || cur != e {
				continue // replaced meanwhile by a good copy elsewhere
			}
			// Its bytes hash right (only its record's checksum is off):
			// move them, under a fresh header.
			if buf, err = s.readRecordLocked(id, e, buf, false); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		if err := m.move(id, e, buf); err != nil {
			return err
		}
		if m.bytes >= group {
			if err := m.commit(rep); err != nil {
				return err
			}
		}
	}
	if err := m.commit(rep); err != nil {
		return err
	}
	return s.retire(num)
}

// readRecordLocked is readRecord under the store's close lock.
func (s *Store) readRecordLocked(id ID, e entry, dst []byte, checkCRC bool) ([]byte, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return dst[:0], errClosed
	}
	return s.readRecord(id, e, dst, checkCRC)
}

// mover appends copies of live chunks to the active pack and re-points
// their index entries in groups.
type mover struct {
	s     *Store
	b     *Batch
	old   map[ID]entry // where each staged chunk was
	bytes int64
}

func (m *mover) move(id ID, from entry, payload []byte) error {
	if _, err := m.b.append(id, from.codec, payload, from.rawLen); err != nil {
		return err
	}
	m.old[id] = from
	m.bytes += int64(len(payload))
	return nil
}

// commit makes the copies durable, then re-points each entry that still
// points at its old copy (a chunk swept or quarantined meanwhile stays
// gone; its copy is garbage for the next pass).
func (m *mover) commit(rep *CompactReport) error {
	b := m.b
	if len(b.order) == 0 {
		return nil
	}
	b.done = true
	defer b.release()
	if err := b.syncPacks(); err != nil {
		return err
	}
	s := m.s
	s.commitMu.Lock()
	pb := s.db.NewBatch()
	var val []byte
	var moved int64
	for _, id := range b.order {
		cur, err := s.lookup(id)
		if err != nil || cur != m.old[id] {
			continue
		}
		val = b.staged[id].appendTo(val[:0])
		if err := pb.Set(indexKey(id), val, nil); err != nil {
			s.commitMu.Unlock()
			pb.Close()
			return err
		}
		moved++
	}
	err := pb.Commit(pebble.Sync)
	pb.Close()
	s.commitMu.Unlock()
	if err != nil {
		return fmt.Errorf("re-point moved chunks: %w", err)
	}
	rep.ChunksMoved += moved
	m.b = s.NewBatch()
	m.old = map[ID]entry{}
	m.bytes = 0
	return nil
}

// retire removes pack num: later reads of it look their chunk up again,
// the file is closed once no read holds it, then deleted.
func (s *Store) retire(num uint32) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return errClosed
	}
	s.packsMu.Lock()
	s.retired[num] = true
	p := s.packs[num]
	delete(s.packs, num)
	s.packsMu.Unlock()
	if p != nil {
		p.useMu.Lock()
		p.retired = true
		err := p.close()
		p.useMu.Unlock()
		if err != nil {
			s.log.Warn("chunk store: closing a retired pack failed", "pack", packName(num), "err", err)
		}
	}
	if err := s.where.Remove(num); err != nil {
		return err
	}
	s.log.Debug("chunk store: pack removed by compaction", "pack", packName(num), "in", s.where.Where())
	return nil
}
