package chunk

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/skyfed/skyfed/chunk/crashpoint"
)

var errBatchDone = errors.New("chunk batch already committed or aborted")

// Batch stages chunks into pack files; nothing is visible until Commit.
// A Batch is single-use and is used by one goroutine at a time; several
// Batches may run concurrently on one Store.
type Batch struct {
	s      *Store
	staged map[ID]entry
	order  []ID
	ends   map[*packFile]int64 // per pack written to: end of the last record this batch wrote
	reused []ID                // stored chunks this batch relies on, pinned until it ends
	done   bool
	open   bool // a writer's batch, counted in Store.openBatches until released
	// durable runs between the pack sync and the index commit (BeforeIndex).
	durable []func() error
}

// BeforeIndex has Commit run f while it makes the batch's packs
// durable (concurrently: a bucket site puts a version's manifest in its
// bucket while the pack holding its chunks is put) and before the index
// commit, outside the store's commit mutex; an error from f or from the
// packs fails the Commit with nothing of the batch visible.
func (b *Batch) BeforeIndex(f func() error) { b.durable = append(b.durable, f) }

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return s.newBatch(true) }

// newBatch starts a batch; a writer's batch (a put, an arrival) counts
// as the store being busy (WritersIdle), the store's own (Recode) not.
func (s *Store) newBatch(writer bool) *Batch {
	if writer {
		s.openBatches.Add(1)
	}
	return &Batch{s: s, staged: make(map[ID]entry), ends: make(map[*packFile]int64), open: writer}
}

// WritersIdle returns how long no batch has been open (0 while one is):
// no put or arrival being written. Background work (compression) yields
// to writers.
func (s *Store) WritersIdle() time.Duration {
	if s.openBatches.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, s.lastWrite.Load()))
}

// Add stages a chunk given its raw bytes. The caller passes id == Sum(raw):
// callers hash while splitting anyway, so Add does not hash again (Get always
// does). It returns false without writing if the chunk is already stored or
// already staged in this batch; otherwise it appends raw (CodecRaw) to the
// active pack file and returns true. raw may be reused once Add returns.
func (b *Batch) Add(id ID, raw []byte) (bool, error) {
	if len(raw) > MaxSize {
		return false, fmt.Errorf("store chunk %s of %d bytes: %w", id, len(raw), ErrTooLarge)
	}
	if known, err := b.known(id); known || err != nil {
		return false, err
	}
	return b.append(id, CodecRaw, raw, uint32(len(raw)))
}

// AddStored stages a chunk received as a stored payload (for example
// compressed by the site that first shipped it). Unless the chunk is already
// stored or staged (then it returns false), it decodes the payload and checks
// that it is rawLen bytes hashing to id (ErrCorrupt otherwise), then stores
// the payload as given.
func (b *Batch) AddStored(id ID, c Codec, payload []byte, rawLen uint32) (bool, error) {
	switch {
	case !c.Valid():
		return false, fmt.Errorf("store chunk %s: unknown codec %d: %w", id, byte(c), ErrCorrupt)
	case rawLen > MaxSize || len(payload) > MaxSize:
		return false, fmt.Errorf("store chunk %s: %d stored / %d raw bytes: %w", id, len(payload), rawLen, ErrTooLarge)
	case c == CodecRaw && len(payload) != int(rawLen):
		return false, fmt.Errorf("store chunk %s: raw payload of %d bytes, said %d: %w", id, len(payload), rawLen, ErrCorrupt)
	}
	if known, err := b.known(id); known || err != nil {
		return false, err
	}
	if err := verifyPayload(id, c, payload, rawLen); err != nil {
		return false, fmt.Errorf("store chunk %s: %w", id, err)
	}
	return b.append(id, c, payload, rawLen)
}

// verifyPayload checks that payload decodes to rawLen bytes hashing to id.
func verifyPayload(id ID, c Codec, payload []byte, rawLen uint32) error {
	if c == CodecRaw {
		return verify(id, payload)
	}
	buf := getScratch(0)
	defer putScratch(buf)
	raw, err := Decode(c, payload, *buf, int(rawLen))
	*buf = raw[:0]
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("%v: %w", err, ErrCorrupt)
	}
	if err != nil {
		return err
	}
	if len(raw) != int(rawLen) {
		return fmt.Errorf("payload decodes to %d bytes, said %d: %w", len(raw), rawLen, ErrCorrupt)
	}
	return verify(id, raw)
}

// known reports whether id is staged here or already stored.
func (b *Batch) known(id ID) (bool, error) {
	if b.done {
		return false, fmt.Errorf("store chunk %s: %w", id, errBatchDone)
	}
	if _, ok := b.staged[id]; ok {
		return true, nil
	}
	// Pinned before the look-up: a garbage collection sweeping the
	// chunk right now either finishes first (then it is not here and is
	// written again) or leaves it alone.
	b.s.pin(id)
	b.reused = append(b.reused, id)
	has, err := b.s.Has(id)
	if err != nil {
		return false, fmt.Errorf("store chunk %s: %w", id, err)
	}
	return has, nil
}

// RawSize returns the raw size of a chunk staged in this batch (0 when
// it is not): what a commit's extra needs to account the bytes it logs.
func (b *Batch) RawSize(id ID) uint64 { return uint64(b.staged[id].rawLen) }

// append writes one record to the active pack and stages it.
func (b *Batch) append(id ID, c Codec, payload []byte, rawLen uint32) (bool, error) {
	s := b.s
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return false, fmt.Errorf("store chunk %s: %w", id, errClosed)
	}
	e, p, err := s.appendRecord(id, c, payload, rawLen)
	if err != nil {
		return false, fmt.Errorf("store chunk %s: %w", id, err)
	}
	if err := crashpoint.Hit(crashpoint.AfterPackWrite); err != nil {
		return false, fmt.Errorf("store chunk %s: %w", id, err)
	}
	b.staged[id] = e
	b.order = append(b.order, id)
	end := e.offset + headerSize + int64(e.storedLen)
	if _, ok := b.ends[p]; ok {
		p.inflight.Add(-1) // appendRecord counts every record; a batch holds one claim per pack
	}
	b.ends[p] = max(b.ends[p], end)
	p.startWriteback(e.offset, end)
	return true, nil
}

// Commit makes every staged chunk durable and visible atomically with the
// caller's own writes: it fsyncs the pack files this batch wrote to, then
// builds one pebble.Batch with the index entries (skipping IDs another batch
// committed meanwhile), calls extra(pb, added) (may be nil; added lists the IDs this commit makes new) so the caller can add
// its own keys (never under the 'c' prefix), and commits it with pebble.Sync.
// Stats are updated after the commit. Index commits of concurrent batches are
// serialized: extra must not commit another Batch of this Store. The Batch is
// finished whatever Commit returns; on error nothing of it is visible unless
// the error comes from the after-index-commit crash point.
func (b *Batch) Commit(extra func(pb *pebble.Batch, added []ID) error) error {
	if b.done {
		return fmt.Errorf("commit chunk batch: %w", errBatchDone)
	}
	b.done = true
	defer b.release()
	if err := b.syncPacksWith(b.durable); err != nil {
		return fmt.Errorf("commit chunk batch: %w", err)
	}
	if err := crashpoint.Hit(crashpoint.AfterPackSync); err != nil {
		return fmt.Errorf("commit chunk batch: %w", err)
	}
	if err := b.commitIndex(extra, pebble.Sync); err != nil {
		return fmt.Errorf("commit chunk batch: %w", err)
	}
	if err := crashpoint.Hit(crashpoint.AfterIndexCommit); err != nil {
		return fmt.Errorf("commit chunk batch: %w", err)
	}
	return nil
}

// syncPacksWith syncs the batch's packs while the BeforeIndex work runs
// (each in its own goroutine, joined before it returns).
func (b *Batch) syncPacksWith(work []func() error) error {
	if len(work) == 0 {
		return b.syncPacks()
	}
	done := make(chan error, len(work))
	for _, f := range work {
		go func() { done <- f() }()
	}
	err := b.syncPacks()
	for range work {
		if e := <-done; err == nil {
			err = e
		}
	}
	return err
}

// syncPacks fsyncs the pack files this batch wrote to.
func (b *Batch) syncPacks() error {
	s := b.s
	s.closeMu.RLock() // not held across extra(pb), which may read the store
	defer s.closeMu.RUnlock()
	if s.closed {
		return errClosed
	}
	for p, end := range b.ends {
		if err := s.syncTo(p, end); err != nil {
			return err
		}
	}
	return nil
}

// commitIndex writes the index entries and the caller's keys in one
// Pebble batch, committed with the given write options, and counts what
// it added.
func (b *Batch) commitIndex(extra func(pb *pebble.Batch, added []ID) error, opts *pebble.WriteOptions) error {
	s := b.s
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	pb := s.db.NewBatch()
	defer pb.Close()
	var add Stats
	var val []byte
	var added []ID
	for _, id := range b.order {
		has, err := s.Has(id)
		if err != nil {
			return err
		}
		if has {
			continue
		}
		e := b.staged[id]
		val = e.appendTo(val[:0])
		if err := pb.Set(indexKey(id), val, nil); err != nil {
			return fmt.Errorf("index chunk %s: %w", id, err)
		}
		added = append(added, id)
		add.Chunks++
		add.StoredBytes += int64(e.storedLen)
		add.RawBytes += int64(e.rawLen)
	}
	if extra != nil {
		if err := extra(pb, added); err != nil {
			return fmt.Errorf("caller's writes: %w", err)
		}
	}
	if err := pb.Commit(opts); err != nil {
		return fmt.Errorf("pebble commit: %w", err)
	}
	s.chunks.Add(add.Chunks)
	s.storedBytes.Add(add.StoredBytes)
	s.rawBytes.Add(add.RawBytes)
	return nil
}

// Abort drops the staged chunks; the bytes already in pack files become
// unreferenced garbage. Abort after Commit does nothing.
func (b *Batch) Abort() {
	b.done = true
	b.release()
	b.staged = nil
	b.order = nil
}

// release gives up the batch's claims on the packs it wrote to and on
// the stored chunks it relied on.
func (b *Batch) release() {
	if b.open {
		b.open = false
		if b.s.openBatches.Add(-1) == 0 {
			b.s.lastWrite.Store(time.Now().UnixNano())
		}
	}
	for p := range b.ends {
		p.inflight.Add(-1)
	}
	b.ends = nil
	b.s.unpin(b.reused)
	b.reused = nil
}
