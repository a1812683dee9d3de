package heal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(string, ...any) {}

type ownKey struct{ key manifest.PublicKey }

func (o ownKey) MayWrite(k manifest.PublicKey, _ string) (bool, bool) { return k == o.key, k == o.key }

// testSite is a site's stores on a real Pebble DB and pack dir, with a
// repairer whose fetch copies a chunk from another such site (what the
// links do, without them).
type testSite struct {
	*Site
	stores *forward.Stores
	donor  *testSite
	now    time.Time
}

func openTestSite(t *testing.T, key *manifest.KeyPair, donor *testSite) *testSite {
	t.Helper()
	dir := t.TempDir()
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	chunks, err := chunk.Open(db, chunk.Options{Dir: filepath.Join(dir, "packs"), PackSize: 256 << 10, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	arrivals, err := forward.OpenLog(db)
	if err != nil {
		t.Fatal(err)
	}
	stores := &forward.Stores{Chunks: chunks, Log: arrivals}
	ts := &testSite{stores: stores, donor: donor, now: time.Now()}
	objects, err := naming.Open(db, chunks, naming.Config{Signer: key, Clock: manifest.NewClock("alpha", func() time.Time { return ts.now }),
		Trust: ownKey{key.PublicKey()}, ChunkSize: 64 << 10, Journal: stores, Now: func() time.Time { return ts.now }})
	if err != nil {
		t.Fatal(err)
	}
	stores.Objects = objects
	inv, err := forward.OpenInventory(db, stores, log)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := forward.NewRepairer(db, stores, inv, ts.fetch, log)
	if err != nil {
		t.Fatal(err)
	}
	ts.Site = &Site{DB: db, Chunks: chunks, Objects: objects, Arrivals: arrivals, Repairer: rep, Inventory: inv, Log: log}
	t.Cleanup(func() {
		chunks.Close()
		db.Close()
	})
	return ts
}

// fetch stores the donor's copy of a chunk here, as a link would.
func (ts *testSite) fetch(_ context.Context, id chunk.ID) error {
	if ts.donor == nil {
		return fmt.Errorf("no peer: %w", chunk.ErrNotFound)
	}
	c, payload, rawLen, err := ts.donor.Chunks.GetStored(id, nil)
	if err != nil {
		return err
	}
	_, err = ts.stores.Put(forward.KindChunk, id, c, payload, rawLen, "link:donor")
	return err
}

func (ts *testSite) put(t *testing.T, name string, data []byte) *manifest.Manifest {
	t.Helper()
	m, err := ts.Objects.Put(context.Background(), naming.MustParseName("gloria.eu/"+name), bytes.NewReader(data), naming.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (ts *testSite) rm(t *testing.T, name string) {
	t.Helper()
	if _, err := ts.Objects.Delete(context.Background(), naming.MustParseName("gloria.eu/"+name)); err != nil {
		t.Fatal(err)
	}
}

// tableMatches checks the reconciliation table against the index.
func (ts *testSite) tableMatches(t *testing.T) {
	t.Helper()
	if err := ts.Inventory.Sync(true); err != nil {
		t.Fatal(err)
	}
	fresh := recon.NewTable()
	_ = ts.Objects.ForEachManifest(func(id chunk.ID) error { fresh.Toggle(byte(forward.KindManifest), id, true); return nil })
	_ = ts.Chunks.ForEach(func(id chunk.ID) error { fresh.Toggle(byte(forward.KindChunk), id, true); return nil })
	if !ts.Inventory.Table().Equal(fresh) {
		m, c := ts.Inventory.Counts()
		t.Fatalf("reconciliation table (%d manifests, %d chunks) differs from the index (%d versions, %d chunks)",
			m, c, ts.Objects.Versions(), ts.Chunks.Stats().Chunks)
	}
}

func payload(seed, n int) []byte {
	b := make([]byte, n)
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestGCCollectsHiddenVersionsAndTheirChunks(t *testing.T) {
	key, _ := manifest.GenerateKey()
	s := openTestSite(t, key, nil)
	keep := s.put(t, "keep.fits", payload(1, 300<<10))
	old := s.put(t, "gone.fits", payload(2, 300<<10))
	s.rm(t, "gone.fits")
	ctx := context.Background()

	rep, err := s.GC(ctx, GCOptions{Grace: time.Hour, Now: func() time.Time { return s.now }})
	if err != nil || rep.VersionsCollected != 0 || rep.ChunksCollected != 0 {
		t.Fatalf("GC within grace = %+v, %v; want nothing collected", rep, err)
	}
	s.now = s.now.Add(2 * time.Hour)
	rep, err = s.GC(ctx, GCOptions{Grace: time.Hour, Now: func() time.Time { return s.now }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.VersionsCollected != 1 || rep.ChunksCollected != int64(len(old.Chunks)) || rep.Reclaimed <= 0 || !rep.Done {
		t.Fatalf("GC past grace = %+v; want 1 version and its %d chunks collected, space reclaimed", rep, len(old.Chunks))
	}
	for _, c := range keep.Chunks {
		if has, _ := s.Chunks.Has(c); !has {
			t.Fatalf("a chunk of the kept version was collected")
		}
	}
	s.tableMatches(t)
	if collected, _ := s.Objects.IsCollected(old.ID()); !collected {
		t.Fatal("the collected version is not remembered as collected")
	}
	if _, err := s.Objects.Accept(old, "link:x"); !errors.Is(err, naming.ErrCollected) {
		t.Fatalf("Accept of a collected version = %v, want ErrCollected", err)
	}
}

func TestGCWaitsGraceForOrphanChunks(t *testing.T) {
	key, _ := manifest.GenerateKey()
	s := openTestSite(t, key, nil)
	orphan := payload(3, 5000)
	id := chunk.Sum(orphan)
	if _, err := s.stores.Put(forward.KindChunk, id, chunk.CodecRaw, orphan, uint32(len(orphan)), "link:x"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gc := func() GCReport {
		rep, err := s.GC(ctx, GCOptions{Grace: time.Hour, Now: func() time.Time { return s.now }})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := gc(); rep.OrphansWaiting != 1 || rep.ChunksCollected != 0 {
		t.Fatalf("first GC: %+v; want the orphan marked, kept", rep)
	}
	s.now = s.now.Add(30 * time.Minute)
	if rep := gc(); rep.OrphansWaiting != 1 || rep.ChunksCollected != 0 {
		t.Fatalf("GC within grace of the mark: %+v; want it kept", rep)
	}
	s.now = s.now.Add(31 * time.Minute)
	if rep := gc(); rep.ChunksCollected != 1 {
		t.Fatalf("GC past grace of the mark: %+v; want it collected", rep)
	}
	s.tableMatches(t)

	// An orphan whose manifest arrives loses its mark.
	late := payload(4, 5000)
	s.now = s.now.Add(time.Minute)
	if _, err := s.stores.Put(forward.KindChunk, chunk.Sum(late), chunk.CodecRaw, late, uint32(len(late)), "link:x"); err != nil {
		t.Fatal(err)
	}
	gc()
	s.put(t, "late.fits", late)
	s.now = s.now.Add(2 * time.Hour)
	if rep := gc(); rep.ChunksCollected != 0 {
		t.Fatalf("GC collected a chunk its version now uses: %+v", rep)
	}
}

func TestScrubRepairsAndNamesUnrepairable(t *testing.T) {
	key, _ := manifest.GenerateKey()
	donor := openTestSite(t, key, nil)
	m := donor.put(t, "frame.fits", payload(5, 200<<10))
	s := openTestSite(t, key, donor)
	for _, c := range m.Chunks {
		if err := s.fetch(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Objects.Accept(m, "link:donor"); err != nil {
		t.Fatal(err)
	}
	// A chunk lost here (quarantined, as a read would): scrub fetches it.
	if _, err := s.Chunks.Sweep(m.Chunks[1:2]); err != nil {
		t.Fatal(err)
	}
	s.Inventory.Forget(forward.KindChunk, m.Chunks[1:2])
	rep, err := s.Scrub(context.Background(), ScrubOptions{})
	if err != nil || rep.Missing != 1 || rep.Repaired != 1 || rep.Unrepairable != 0 || !rep.Clean() {
		t.Fatalf("scrub = %+v, %v; want 1 missing, repaired", rep, err)
	}
	s.tableMatches(t)

	// Lost here and at the donor: unrepairable, and named.
	if _, err := s.Chunks.Sweep(m.Chunks[2:3]); err != nil {
		t.Fatal(err)
	}
	s.Inventory.Forget(forward.KindChunk, m.Chunks[2:3])
	if _, err := donor.Chunks.Sweep(m.Chunks[2:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.Repairer.Repair(context.Background(), m.Chunks[2]); !errors.Is(err, forward.ErrUnrepairable) {
		t.Fatalf("Repair = %v, want ErrUnrepairable", err)
	}
	if n, err := s.NameUnrepairable(context.Background()); err != nil || n != 1 {
		t.Fatalf("NameUnrepairable = %d, %v; want 1", n, err)
	}
	bad := s.Repairer.Unrepairable()
	if len(bad) != 1 || len(bad[0].Names) != 1 || bad[0].Names[0] != m.Name+"@"+m.Version() {
		t.Fatalf("unrepairable = %+v; want the chunk named %s@%s", bad, m.Name, m.Version())
	}
	rep, err = s.Scrub(context.Background(), ScrubOptions{})
	if err != nil || rep.Clean() || rep.Unrepairable != 1 {
		t.Fatalf("scrub with an unrepairable chunk = %+v, %v; want it reported", rep, err)
	}
}
