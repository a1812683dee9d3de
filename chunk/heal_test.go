package chunk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

func chunkSet(n, size int, seed int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = randomBytes(uint64(seed*100000+i), size)
	}
	return out
}

func TestSweepThenCompactReclaimsAndKeepsLive(t *testing.T) {
	ts := newTestStore(t, nil, Options{PackSize: 64 << 10})
	live := chunkSet(20, 5000, 1)
	dead := chunkSet(60, 5000, 2)
	for i := range 20 {
		put(t, ts.Store, live[i], dead[3*i], dead[3*i+1], dead[3*i+2])
	}
	before, err := ts.Packs()
	if err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for _, d := range dead {
		ids = append(ids, Sum(d))
	}
	r, err := ts.Sweep(ids)
	if err != nil || r.Chunks != 60 || len(r.IDs) != 60 {
		t.Fatalf("Sweep = %+v, %v; want 60 chunks", r, err)
	}
	if st := ts.Stats(); st.Chunks != 20 {
		t.Fatalf("Chunks after sweep = %d, want 20", st.Chunks)
	}
	rep, err := ts.Compact(context.Background(), CompactOptions{})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if rep.Reclaimed() < before.Bytes-before.LiveBytes-int64(len(live))*(headerSize+5000) {
		t.Errorf("reclaimed %d of %d dead bytes", rep.Reclaimed(), before.Bytes-before.LiveBytes)
	}
	if rep.ChunksMoved == 0 || rep.PacksRewritten == 0 {
		t.Errorf("report %+v: expected live chunks moved out of rewritten packs", rep)
	}
	for _, c := range live {
		mustGet(t, ts.Store, c)
	}
	for _, d := range dead {
		if has, _ := ts.Has(Sum(d)); has {
			t.Fatalf("swept chunk %s still indexed", Sum(d).Short())
		}
	}
	ts.reopen(t)
	for _, c := range live {
		mustGet(t, ts.Store, c)
	}
	if st := ts.Stats(); st.Chunks != 20 || st.LostAtOpen != 0 {
		t.Fatalf("after reopen: %+v", st)
	}
	after, _ := ts.Packs()
	if after.Bytes != after.LiveBytes {
		t.Errorf("after compaction packs hold %d bytes, %d live", after.Bytes, after.LiveBytes)
	}
}

func TestCompactReclaimsAbortedBatches(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	keep := chunkSet(3, 4000, 3)
	put(t, ts.Store, keep...)
	for i := range 5 {
		b := ts.NewBatch()
		for _, c := range chunkSet(10, 8000, 10+i) {
			if _, err := b.Add(Sum(c), c); err != nil {
				t.Fatal(err)
			}
		}
		b.Abort()
	}
	// An open batch's pack is left alone, and its chunks commit after.
	open := ts.NewBatch()
	pending := chunkSet(2, 3000, 40)
	for _, c := range pending {
		if _, err := open.Add(Sum(c), c); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := ts.Compact(context.Background(), CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := open.Commit(nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(keep, pending...) {
		mustGet(t, ts.Store, c)
	}
	// The aborted bytes shared the open batch's pack: the next pass gets them.
	rep2, err := ts.Compact(context.Background(), CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Reclaimed() + rep2.Reclaimed(); got < 5*10*8000 {
		t.Errorf("reclaimed %d bytes, want at least the %d aborted", got, 5*10*8000)
	}
	ts.reopen(t)
	for _, c := range append(keep, pending...) {
		mustGet(t, ts.Store, c)
	}
}

func TestSweepLeavesPinnedAndReusedChunks(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	a, b := randomBytes(1, 3000), randomBytes(2, 3000)
	put(t, ts.Store, a, b)
	unpin := ts.Pin([]ID{Sum(a)})
	batch := ts.NewBatch()
	if isNew, err := batch.Add(Sum(b), b); err != nil || isNew {
		t.Fatalf("Add of a stored chunk = %v, %v", isNew, err)
	}
	r, err := ts.Sweep([]ID{Sum(a), Sum(b)})
	if err != nil || r.Chunks != 0 || r.Pinned != 2 {
		t.Fatalf("Sweep = %+v, %v; want both pinned", r, err)
	}
	unpin()
	if err := batch.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := ts.Sweep([]ID{Sum(a), Sum(b)}); r.Chunks != 2 {
		t.Fatalf("Sweep after release = %+v, want 2 removed", r)
	}
}

func TestReadsDuringCompaction(t *testing.T) {
	ts := newTestStore(t, nil, Options{PackSize: 32 << 10})
	live := chunkSet(40, 3000, 5)
	dead := chunkSet(120, 3000, 6)
	for i := range 40 {
		put(t, ts.Store, live[i], dead[3*i], dead[3*i+1], dead[3*i+2])
	}
	var ids []ID
	for _, d := range dead {
		ids = append(ids, Sum(d))
	}
	if _, err := ts.Sweep(ids); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var reads, failures atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				c := live[i%len(live)]
				if _, err := ts.Get(Sum(c), nil); err != nil {
					failures.Add(1)
					t.Errorf("Get during compaction: %v", err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for range 3 {
		if _, err := ts.Compact(context.Background(), CompactOptions{MinDead: 0.01}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	if failures.Load() > 0 || reads.Load() == 0 {
		t.Fatalf("%d reads, %d failures", reads.Load(), failures.Load())
	}
}

func TestCompactQuarantinesCorruptLiveChunk(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	good, bad := randomBytes(7, 4000), randomBytes(8, 4000)
	dead := chunkSet(10, 4000, 9)
	put(t, ts.Store, append([][]byte{good, bad}, dead...)...)
	flipByte(t, filepath.Join(ts.opts.Dir, "pack-000001.dat"), headerSize+4000+headerSize+100)
	var ids []ID
	for _, d := range dead {
		ids = append(ids, Sum(d))
	}
	if _, err := ts.Sweep(ids); err != nil {
		t.Fatal(err)
	}
	rep, err := ts.Compact(context.Background(), CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Corrupt) != 1 || rep.Corrupt[0] != Sum(bad) {
		t.Fatalf("Corrupt = %v, want [%s]", rep.Corrupt, Sum(bad).Short())
	}
	mustGet(t, ts.Store, good)
	if _, err := ts.Get(Sum(bad), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of the quarantined chunk = %v, want ErrNotFound", err)
	}
}

func TestScrubFindsCorruptAndTruncated(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	cs := chunkSet(6, 4000, 11)
	put(t, ts.Store, cs...)
	rec := int64(headerSize + 4000)
	flipByte(t, filepath.Join(ts.opts.Dir, "pack-000001.dat"), rec+headerSize+7)
	var bad []ID
	rep, err := ts.Scrub(context.Background(), ScrubOptions{Bad: func(id ID, err error) {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Bad(%s) with %v, want ErrCorrupt", id.Short(), err)
		}
		bad = append(bad, id)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Chunks != 6 || rep.Corrupt != 1 || len(bad) != 1 || bad[0] != Sum(cs[1]) {
		t.Fatalf("Scrub = %+v, bad %v; want 6 chunks, 1 corrupt (%s)", rep, bad, Sum(cs[1]).Short())
	}
	// A pack truncated under a running store shows up too.
	if err := truncateFile(filepath.Join(ts.opts.Dir, "pack-000001.dat"), 3*rec+10); err != nil {
		t.Fatal(err)
	}
	rep, err = ts.Scrub(context.Background(), ScrubOptions{})
	if err != nil || rep.Corrupt != 4 {
		t.Fatalf("Scrub after truncation = %+v, %v; want 4 corrupt", rep, err)
	}
}

func truncateFile(path string, size int64) error { return os.Truncate(path, size) }

func TestGuardReuseKeepsChunksReusedAfterTheScan(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	a := randomBytes(21, 3000)
	put(t, ts.Store, a)
	stop := ts.GuardReuse()
	// A put that reuses a after the collector's reference scan began.
	put(t, ts.Store, a)
	if r, _ := ts.Sweep([]ID{Sum(a)}); r.Chunks != 0 {
		t.Fatalf("Sweep removed a chunk reused under the guard: %+v", r)
	}
	stop()
	if r, _ := ts.Sweep([]ID{Sum(a)}); r.Chunks != 1 {
		t.Fatalf("Sweep after the guard = %+v, want 1 removed", r)
	}
}

func TestGuardReuseCoversPinsTakenBeforeIt(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	a := randomBytes(31, 3000)
	put(t, ts.Store, a)
	b := ts.NewBatch() // a put that relied on a before the collection began
	if _, err := b.Add(Sum(a), a); err != nil {
		t.Fatal(err)
	}
	stop := ts.GuardReuse()
	defer stop()
	if err := b.Commit(nil); err != nil { // commits after the scan, releasing its pin
		t.Fatal(err)
	}
	if r, _ := ts.Sweep([]ID{Sum(a)}); r.Chunks != 0 {
		t.Fatalf("Sweep removed a chunk a put relied on since before the guard: %+v", r)
	}
}

func TestQuarantineLeavesAGoodCopy(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	a := randomBytes(32, 4000)
	put(t, ts.Store, a)
	if removed, err := ts.Quarantine(Sum(a)); err != nil || removed {
		t.Fatalf("Quarantine of a good chunk = %v, %v; want it left", removed, err)
	}
	flipByte(t, filepath.Join(ts.opts.Dir, "pack-000001.dat"), headerSize+100)
	if removed, err := ts.Quarantine(Sum(a)); err != nil || !removed {
		t.Fatalf("Quarantine of a damaged chunk = %v, %v; want it removed", removed, err)
	}
	put(t, ts.Store, a) // repaired: a good copy in a new record
	if removed, err := ts.Quarantine(Sum(a)); err != nil || removed {
		t.Fatalf("Quarantine after the repair = %v, %v; want the good copy left", removed, err)
	}
	mustGet(t, ts.Store, a)
}
