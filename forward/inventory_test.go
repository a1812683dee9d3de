package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

var discard = slog.New(slog.DiscardHandler)

// ownKeyOnly trusts one key, for every domain.
type ownKeyOnly struct{ key manifest.PublicKey }

func (o ownKeyOnly) MayWrite(k manifest.PublicKey, _ string) (bool, bool) {
	return k == o.key, k == o.key
}

// invSite is a site's stores on a real Pebble DB and pack dir.
type invSite struct {
	dir    string
	db     *pebble.DB
	stores *Stores
	key    *manifest.KeyPair
}

func openInvSite(t *testing.T, dir string, key *manifest.KeyPair) *invSite {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := chunk.Open(db, chunk.Options{FS: vfs.Default, Dir: filepath.Join(dir, "packs"), PackSize: 200 << 10, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	log, err := OpenLog(db)
	if err != nil {
		t.Fatal(err)
	}
	stores := &Stores{Chunks: chunks, Log: log}
	objects, err := naming.Open(db, chunks, naming.Config{Signer: key, Clock: manifest.NewClock("alpha", time.Now),
		Trust: ownKeyOnly{key.PublicKey()}, ChunkSize: 64 << 10, Journal: stores})
	if err != nil {
		t.Fatal(err)
	}
	stores.Objects = objects
	return &invSite{dir: dir, db: db, stores: stores, key: key}
}

func (s *invSite) close() {
	s.stores.Chunks.Close()
	s.db.Close()
}

func (s *invSite) put(t *testing.T, name string, size int) *manifest.Manifest {
	t.Helper()
	n, err := naming.ParseName("gloria.eu/" + name)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte(name), size/len(name)+1)[:size]
	m, err := s.stores.Objects.Put(context.Background(), n, bytes.NewReader(data), naming.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fresh builds the table the site's index says it should have.
func (s *invSite) fresh(t *testing.T) *recon.Table {
	t.Helper()
	tab := recon.NewTable()
	s.stores.Objects.ForEachManifest(func(id chunk.ID) error { tab.Toggle(byte(KindManifest), id, true); return nil })
	s.stores.Chunks.ForEach(func(id chunk.ID) error { tab.Toggle(byte(KindChunk), id, true); return nil })
	return tab
}

func TestInventoryFoldsPersistsAndRebuilds(t *testing.T) {
	dir := t.TempDir()
	key, _ := manifest.GenerateKey()
	s := openInvSite(t, dir, key)
	for i := range 3 {
		s.put(t, fmt.Sprintf("a-%d.fits", i), 150<<10)
	}
	inv, err := OpenInventory(s.db, s.stores, discard) // no table yet: rebuilt from the index
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Table().Equal(s.fresh(t)) {
		t.Fatal("the rebuilt table differs from the index")
	}
	m := s.put(t, "b.fits", 300<<10) // folded from the log, not rescanned
	if !inv.Table().Equal(s.fresh(t)) {
		t.Fatal("the folded table differs from the index")
	}
	if got, gotM := inv.Counts(); got != 4 || gotM != s.stores.Chunks.Stats().Chunks {
		t.Errorf("counts %d, %d; want 4 manifests and %d chunks", got, gotM, s.stores.Chunks.Stats().Chunks)
	}
	it, info, ok := inv.Resolve(recon.KeyOf(byte(KindManifest), m.ID()))
	if !ok || it.ID != m.ID() || info.Name != m.Name || info.Version != m.Stamp.String() {
		t.Errorf("Resolve(manifest) = %v %+v %v", it, info, ok)
	}
	it, info, ok = inv.Resolve(recon.KeyOf(byte(KindChunk), m.Chunks[0]))
	if !ok || it.ID != m.Chunks[0] || it.Kind != byte(KindChunk) || info.Bytes != 64<<10 {
		t.Errorf("Resolve(chunk) = %v %+v %v", it, info, ok)
	}
	if _, _, ok := inv.Resolve(recon.KeyOf(byte(KindChunk), chunk.Sum([]byte("not here")))); ok {
		t.Error("Resolve found a chunk that is not here")
	}
	if err := inv.Sync(true); err != nil {
		t.Fatal(err)
	}
	s.put(t, "c.fits", 10<<10) // logged after the persisted fold point
	s.close()

	// Reopen: the persisted table plus the log's tail, no rebuild.
	s = openInvSite(t, dir, key)
	inv, err = OpenInventory(s.db, s.stores, discard)
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Table().Equal(s.fresh(t)) {
		t.Fatal("the reopened table differs from the index")
	}
	s.close()

	// Lose the largest pack: the chunk store forgets its chunks at open,
	// and the table no longer matches, so it is rebuilt.
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "pack-*.dat"))
	var biggest string
	var size int64
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			biggest, size = p, fi.Size()
		}
	}
	if err := os.Remove(biggest); err != nil {
		t.Fatal(err)
	}
	s = openInvSite(t, dir, key)
	defer s.close()
	if s.stores.Chunks.Stats().LostAtOpen == 0 {
		t.Fatal("no chunk lost with the pack")
	}
	inv, err = OpenInventory(s.db, s.stores, discard)
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Table().Equal(s.fresh(t)) {
		t.Fatal("after a lost pack the table differs from the index")
	}
}

func TestInventoryRemembersRefusedManifests(t *testing.T) {
	key, _ := manifest.GenerateKey()
	s := openInvSite(t, t.TempDir(), key)
	defer s.close()
	otherKey, _ := manifest.GenerateKey()
	other := openInvSite(t, t.TempDir(), otherKey)
	defer other.close()
	m := other.put(t, "theirs.fits", 1000)

	inv, err := OpenInventory(s.db, s.stores, discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.stores.Objects.Accept(m, "in:beta")
	if !errors.Is(err, naming.ErrUntrusted) {
		t.Fatalf("Accept of an untrusted signer's manifest: %v", err)
	}
	k := recon.KeyOf(byte(KindManifest), m.ID())
	if inv.Refuses(k) {
		t.Fatal("refused before it was noted")
	}
	inv.NoteRefused(m, err)
	if !inv.Refuses(k) || !inv.Refused(m.ID()) {
		t.Error("a manifest refused for good is not remembered")
	}
	if has, _ := (reconStorage{storage{s.stores}, inv}).Has(KindManifest, m.ID()); !has {
		t.Error("offers of a refused manifest are not answered have")
	}
	inv.NoteRefused(m, fmt.Errorf("%w: %w", naming.ErrUntrusted, naming.ErrRevoked)) // refused only for now: not noted
}

func TestPrefixUpperBound(t *testing.T) {
	for _, tc := range []struct{ p, want []byte }{
		{[]byte{'f', 1, 2}, []byte{'f', 1, 3}},
		{[]byte{'f', 1, 0xff}, []byte{'f', 2}},
		{[]byte{'f', 0xff, 0xff}, []byte{'g'}},
		{[]byte{0xff}, nil},
	} {
		if got := prefixUpperBound(tc.p); !bytes.Equal(got, tc.want) {
			t.Errorf("prefixUpperBound(%x) = %x, want %x", tc.p, got, tc.want)
		}
	}
}
