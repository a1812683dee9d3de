package chunk

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/skyfed/skyfed/chunk/crashpoint"
)

// TestCrashSafety crashes the store at every named point (by snapshotting a
// crashable in-memory FS as a crash would leave it) and checks, on a fresh
// Pebble + Store opened on the snapshot, that earlier batches are intact and
// the interrupted batch is all or nothing, and never indexed but unreadable.
func TestCrashSafety(t *testing.T) {
	points := []struct {
		name        string
		hit         int  // crash at this hit of the point (counting from 1)
		wantPresent bool // whether the interrupted batch survives
	}{
		{crashpoint.AfterPackWrite, 3, false},
		{crashpoint.AfterPackSync, 1, false},
		{crashpoint.AfterIndexCommit, 1, true},
	}
	for _, pt := range points {
		for _, unsynced := range []int{0, 50, 100} {
			t.Run(fmt.Sprintf("%s/unsynced=%d", pt.name, unsynced), func(t *testing.T) {
				cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced}
				if unsynced > 0 {
					cfg.RNG = rand.New(rand.NewPCG(uint64(unsynced), 7))
				}
				crashAt(t, pt.name, pt.hit, cfg, pt.wantPresent)
			})
		}
	}
}

func crashAt(t *testing.T, point string, hit int, cfg vfs.CrashCloneCfg, wantPresent bool) {
	fs := vfs.NewCrashableMem()
	db := openDB(t, fs, "/data/db")
	s, err := Open(db, Options{FS: fs, Dir: "/data/packs", PackSize: 8 << 10, Logger: discardLog})
	if err != nil {
		t.Fatal(err)
	}
	var committed [][]byte
	for i := range 3 {
		batch := [][]byte{randomBytes(uint64(10*i), 3000), imageLike(uint64(10*i+1), 4000)}
		putMixed(t, s, batch)
		committed = append(committed, batch...)
	}

	var clone *vfs.MemFS
	var mu sync.Mutex
	hits := 0
	restore := crashpoint.Set(point, func() error {
		mu.Lock()
		defer mu.Unlock()
		if hits++; hits == hit {
			clone = fs.CrashClone(cfg)
			return crashpoint.ErrCrashed
		}
		return nil
	})
	interrupted := [][]byte{randomBytes(50, 3000), imageLike(51, 5000), randomBytes(52, 100), committed[0]}
	err = putMixedErr(s, interrupted)
	restore()
	if !errors.Is(err, crashpoint.ErrCrashed) {
		t.Fatalf("interrupted batch: %v, want ErrCrashed", err)
	}
	if clone == nil {
		t.Fatal("crash point never reached")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	checkAfterCrash(t, clone, committed, interrupted[:3], wantPresent)
}

// checkAfterCrash "restarts" on what the crash left: earlier batches intact,
// the interrupted one all or nothing, and the store still usable.
func checkAfterCrash(t *testing.T, clone *vfs.MemFS, committed, interrupted [][]byte, wantPresent bool) {
	db2 := openDB(t, clone, "/data/db")
	defer db2.Close()
	s2, err := Open(db2, Options{FS: clone, Dir: "/data/packs", Logger: discardLog})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, c := range committed {
		mustGet(t, s2, c)
	}
	present := 0
	for _, c := range interrupted {
		has, err := s2.Has(Sum(c))
		if err != nil {
			t.Fatal(err)
		}
		if has {
			present++
			mustGet(t, s2, c) // indexed ⇒ readable
		}
	}
	if present != 0 && present != len(interrupted) {
		t.Fatalf("%d of %d chunks of the interrupted batch survived: torn batch", present, len(interrupted))
	}
	if (present > 0) != wantPresent {
		t.Errorf("interrupted batch present = %v, want %v", present > 0, wantPresent)
	}
	if got, want := s2.Stats().Chunks, int64(len(committed)+present); got != want {
		t.Errorf("Chunks after crash = %d, want %d", got, want)
	}
	// The restarted store keeps working and never clobbers old packs.
	fresh := randomBytes(60, 7000)
	putMixed(t, s2, [][]byte{fresh})
	mustGet(t, s2, fresh)
	for _, c := range committed {
		mustGet(t, s2, c)
	}
}

// putMixed stores chunks in one batch, compressible ones compressed via AddStored.
func putMixed(t *testing.T, s *Store, chunks [][]byte) {
	t.Helper()
	if err := putMixedErr(s, chunks); err != nil {
		t.Fatal(err)
	}
}

func putMixedErr(s *Store, chunks [][]byte) error {
	b := s.NewBatch()
	for _, raw := range chunks {
		c, payload, err := Compress(raw)
		if err != nil {
			return err
		}
		if _, err := b.AddStored(Sum(raw), c, payload, uint32(len(raw))); err != nil {
			b.Abort()
			return err
		}
	}
	return b.Commit(func(pb *pebble.Batch, _ []ID) error {
		return pb.Set([]byte("x-caller-key"), []byte("v"), nil)
	})
}
