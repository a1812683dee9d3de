// Package packstest is the contract every chunk.Packs must meet, run
// against each kind (a directory of files, a bucket of a real S3
// cluster), as restic runs one suite against all its backends: packs
// written, synced, listed, read back at any offset, concurrently,
// removed; missing packs reported as chunk.ErrPackMissing; sealing
// where the kind says so; and a chunk.Store on top of them putting,
// reading, reopening and compacting.
package packstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
)

// Run runs the contract against the packs newPacks returns; each call
// must give a fresh, empty place, and reopen(p) the same place anew (as
// a restarted site opens it).
func Run(t *testing.T, newPacks func(t *testing.T) chunk.Packs, reopen func(t *testing.T, p chunk.Packs) chunk.Packs) {
	t.Run("WriteSyncReadList", func(t *testing.T) { testWriteSyncRead(t, newPacks(t)) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, newPacks(t)) })
	t.Run("Remove", func(t *testing.T) { testRemove(t, newPacks(t)) })
	t.Run("ConcurrentReads", func(t *testing.T) { testConcurrentReads(t, newPacks(t)) })
	t.Run("Seal", func(t *testing.T) { testSeal(t, newPacks(t)) })
	t.Run("Store", func(t *testing.T) { testStore(t, newPacks(t), reopen) })
}

// Writes are given copies: a PackWriter may scribble on the buffer it
// is handed (Pebble's vfs.File.Write may, and MemFS does under -race).

// record is one record written to a pack in a test.
type record struct {
	off   int64
	bytes []byte
}

func randomRecord(t *testing.T, size int) []byte {
	t.Helper()
	payload := make([]byte, size)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	return chunk.EncodeRecord(chunk.Sum(payload), chunk.CodecRaw, payload, uint32(size))
}

// writePack writes records of the given payload sizes to pack num and
// syncs it.
func writePack(t *testing.T, p chunk.Packs, num uint32, sizes ...int) []record {
	t.Helper()
	w, err := p.Create(num)
	if err != nil {
		t.Fatalf("create pack %d: %v", num, err)
	}
	var recs []record
	var off int64
	for _, n := range sizes {
		b := randomRecord(t, n)
		if _, err := w.Write(bytes.Clone(b)); err != nil {
			t.Fatalf("write to pack %d: %v", num, err)
		}
		recs = append(recs, record{off, b})
		off += int64(len(b))
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("sync pack %d: %v", num, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close pack %d: %v", num, err)
	}
	return recs
}

func checkRecords(t *testing.T, p chunk.Packs, num uint32, recs []record) {
	t.Helper()
	r, err := p.Open(num)
	if err != nil {
		t.Fatalf("open pack %d: %v", num, err)
	}
	defer r.Close()
	for i, rec := range recs {
		got := make([]byte, len(rec.bytes))
		if n, err := r.ReadAt(got, rec.off); n != len(got) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("pack %d record %d: read %d of %d bytes: %v", num, i, n, len(got), err)
		}
		if !bytes.Equal(got, rec.bytes) {
			t.Fatalf("pack %d record %d: bytes differ", num, i)
		}
		// A part of a record (the payload alone, as a read of a chunk does).
		part := make([]byte, len(rec.bytes)-chunk.RecordHeaderSize)
		if n, err := r.ReadAt(part, rec.off+chunk.RecordHeaderSize); n != len(part) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("pack %d record %d payload: read %d of %d bytes: %v", num, i, n, len(part), err)
		}
		if !bytes.Equal(part, rec.bytes[chunk.RecordHeaderSize:]) {
			t.Fatalf("pack %d record %d: payload differs", num, i)
		}
	}
}

func testWriteSyncRead(t *testing.T, p chunk.Packs) {
	a := writePack(t, p, 1, 1000, 70_000, 1, 300_000)
	b := writePack(t, p, 7, 5000)
	checkRecords(t, p, 1, a)
	checkRecords(t, p, 7, b)
	sizes, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 2 {
		t.Fatalf("List = %v, want packs 1 and 7", sizes)
	}
	for num, recs := range map[uint32][]record{1: a, 7: b} {
		last := recs[len(recs)-1]
		if end := last.off + int64(len(last.bytes)); sizes[num] < end {
			t.Errorf("List says pack %d has %d bytes, want at least the %d written", num, sizes[num], end)
		}
	}
	// Reading past the end fails rather than inventing bytes.
	r, err := p.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 16)
	if n, err := r.ReadAt(buf, sizes[1]+1000); n == len(buf) && err == nil {
		t.Errorf("read past the end of pack 1 returned %d bytes and no error", n)
	}
}

func testMissing(t *testing.T, p chunk.Packs) {
	_, err := p.Open(42)
	if !errors.Is(err, chunk.ErrPackMissing) {
		t.Fatalf("open of a pack never written: %v, want ErrPackMissing", err)
	}
	if sizes, err := p.List(); err != nil || len(sizes) != 0 {
		t.Fatalf("List of empty packs = %v, %v", sizes, err)
	}
}

func testRemove(t *testing.T, p chunk.Packs) {
	writePack(t, p, 3, 100)
	keep := writePack(t, p, 4, 100)
	if err := p.Remove(3); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(3); err != nil {
		t.Fatalf("removing a pack twice: %v", err)
	}
	if err := p.Remove(99); err != nil {
		t.Fatalf("removing a pack never written: %v", err)
	}
	if _, err := p.Open(3); !errors.Is(err, chunk.ErrPackMissing) {
		t.Fatalf("open of a removed pack: %v, want ErrPackMissing", err)
	}
	sizes, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sizes[3]; ok || len(sizes) != 1 {
		t.Fatalf("List after removing pack 3 = %v", sizes)
	}
	checkRecords(t, p, 4, keep)
}

func testConcurrentReads(t *testing.T, p chunk.Packs) {
	sizes := make([]int, 24)
	for i := range sizes {
		sizes[i] = 1000 + i*3000
	}
	recs := writePack(t, p, 5, sizes...)
	r, err := p.Open(5)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	errs := make(chan error, len(recs))
	for i, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]byte, len(rec.bytes))
			if n, err := r.ReadAt(got, rec.off); n != len(got) || (err != nil && !errors.Is(err, io.EOF)) {
				errs <- fmt.Errorf("record %d: read %d bytes: %v", i, n, err)
			} else if !bytes.Equal(got, rec.bytes) {
				errs <- fmt.Errorf("record %d: bytes differ", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testSeal: where a sync seals the pack, nothing more is written to it;
// elsewhere appends go on and read back.
func testSeal(t *testing.T, p chunk.Packs) {
	w, err := p.Create(6)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first := randomRecord(t, 2000)
	if _, err := w.Write(bytes.Clone(first)); err != nil {
		t.Fatal(err)
	}
	// Two syncs at once cover what was written before them.
	var wg sync.WaitGroup
	syncErrs := make([]error, 2)
	for i := range syncErrs {
		wg.Add(1)
		go func() { defer wg.Done(); syncErrs[i] = w.Sync() }()
	}
	wg.Wait()
	for _, err := range syncErrs {
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	second := randomRecord(t, 3000)
	_, err = w.Write(bytes.Clone(second))
	if p.SealOnSync() {
		if err == nil {
			t.Fatal("a sealed pack took another write")
		}
		checkRecords(t, p, 6, []record{{0, first}})
		return
	}
	if err != nil {
		t.Fatalf("write after sync: %v", err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, p, 6, []record{{0, first}, {int64(len(first)), second}})
}

// testStore runs a chunk.Store over the packs: puts in several batches
// and packs, concurrent commits, reads verified, a reopen (a new Store
// and Packs over the same index and place), a scrub, deletes and
// compaction.
func testStore(t *testing.T, p chunk.Packs, reopen func(t *testing.T, p chunk.Packs) chunk.Packs) {
	fs := vfs.NewMem()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := chunk.Open(db, chunk.Options{Packs: p, PackSize: 256 << 10, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	want := map[chunk.ID][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := s.NewBatch()
			for i := range 6 {
				raw := make([]byte, 10_000+g*1000+i)
				_, _ = rand.Read(raw)
				id := chunk.Sum(raw)
				if _, err := b.Add(id, raw); err != nil {
					errs <- err
					b.Abort()
					return
				}
				mu.Lock()
				want[id] = raw
				mu.Unlock()
			}
			if err := b.Commit(nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("put: %v", err)
	}
	check := func(s *chunk.Store, when string) {
		t.Helper()
		for id, raw := range want {
			got, err := s.Get(id, nil)
			if err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("%s: get %s: %v (bytes equal: %v)", when, id.Short(), err, bytes.Equal(got, raw))
			}
		}
		if st := s.Stats(); st.Chunks != int64(len(want)) {
			t.Fatalf("%s: %d chunks counted, want %d", when, st.Chunks, len(want))
		}
	}
	check(s, "after commit")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = chunk.Open(db, chunk.Options{Packs: reopen(t, p), PackSize: 256 << 10, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, "after reopen")
	// A scrub reads every record back and finds nothing wrong.
	if rep, err := s.Scrub(context.Background(), chunk.ScrubOptions{}); err != nil || rep.Corrupt != 0 || rep.Chunks != int64(len(want)) {
		t.Fatalf("scrub: %+v, %v; want %d chunks, none corrupt", rep, err, len(want))
	}
	// Delete half and compact: the rest moves to new packs and still reads.
	var dead []chunk.ID
	for id := range want {
		if len(dead) < len(want)/2 {
			dead = append(dead, id)
		}
	}
	if _, err := s.Sweep(dead); err != nil {
		t.Fatal(err)
	}
	for _, id := range dead {
		delete(want, id)
	}
	if _, err := s.Compact(context.Background(), chunk.CompactOptions{MinDead: 0.01}); err != nil {
		t.Fatal(err)
	}
	check(s, "after compaction")
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(string, ...any) {}
