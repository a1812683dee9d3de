package naming

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// staticTrust trusts fixed keys for fixed domains.
type staticTrust map[manifest.PublicKey][]string

func (t staticTrust) MayWrite(k manifest.PublicKey, domain string) (bool, bool) {
	ds, known := t[k]
	for _, d := range ds {
		if d == domain {
			return true, true
		}
	}
	return known, false
}

type testEnv struct {
	fs     vfs.FS
	dir    string
	db     *pebble.DB
	chunks *chunk.Store
	store  *Store
	key    *manifest.KeyPair
	now    time.Time
}

func seedKey(t testing.TB, b byte) *manifest.KeyPair {
	k, err := manifest.KeyPairFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openEnv opens a store on fs under dir; chunkSize is small so tests make many chunks.
func openEnv(t testing.TB, fs vfs.FS, dir string) *testEnv {
	return openEnvJournal(t, fs, dir, nil)
}

// openEnvJournal is openEnv with a journal.
func openEnvJournal(t testing.TB, fs vfs.FS, dir string, j Journal) *testEnv {
	t.Helper()
	e := &testEnv{fs: fs, dir: dir, key: seedKey(t, 1), now: time.UnixMilli(1763700000000)}
	var err error
	e.db, err = pebble.Open(dir+"/index", &pebble.Options{FS: fs, Logger: quietPebble{t}})
	if err != nil {
		t.Fatal(err)
	}
	e.chunks, err = chunk.Open(e.db, chunk.Options{FS: fs, Dir: dir + "/packs"})
	if err != nil {
		t.Fatal(err)
	}
	e.store, err = Open(e.db, e.chunks, Config{
		Signer:    e.key,
		Clock:     manifest.NewClock("alpha", func() time.Time { return e.now }),
		Trust:     staticTrust{e.key.PublicKey(): {"gloria.eu"}, seedKey(t, 2).PublicKey(): {"other.org"}},
		ChunkSize: 4096,
		Now:       func() time.Time { return e.now },
		Journal:   j,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *testEnv) close(t testing.TB) {
	t.Helper()
	e.store.Close()
	if err := errors.Join(e.chunks.Close(), e.db.Close()); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func (e *testEnv) put(t testing.TB, name string, data []byte) *manifest.Manifest {
	t.Helper()
	m, err := e.store.Put(context.Background(), MustParseName(name), bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
	e.now = e.now.Add(time.Millisecond)
	return m
}

func (e *testEnv) read(t testing.TB, m *manifest.Manifest) []byte {
	t.Helper()
	b, err := io.ReadAll(e.store.NewReader(m, 0, m.Size))
	if err != nil {
		t.Fatalf("read %s: %v", m.Name, err)
	}
	return b
}

func TestPutReadVersions(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	data := randomBytes(1, 3*4096+17)
	m1 := e.put(t, "gloria.eu/cam/a.fits", data)
	if m1.Size != int64(len(data)) || len(m1.Chunks) != 4 || m1.SHA256 != sha256.Sum256(data) {
		t.Fatalf("manifest size %d chunks %d", m1.Size, len(m1.Chunks))
	}
	if got := e.read(t, m1); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	m2 := e.put(t, "gloria.eu/cam/a.fits", []byte("second"))
	latest, err := e.store.Latest(MustParseName("gloria.eu/cam/a.fits"))
	if err != nil || latest.ID() != m2.ID() {
		t.Fatalf("latest = %v, %v; want second put", latest, err)
	}
	old, err := e.store.Version(MustParseName("gloria.eu/cam/a.fits"), m1.Stamp)
	if err != nil || old.ID() != m1.ID() {
		t.Fatalf("version lookup: %v", err)
	}
	hist, err := e.store.History(MustParseName("gloria.eu/cam/a.fits"))
	if err != nil || len(hist) != 2 || hist[0].ID() != m2.ID() {
		t.Fatalf("history = %d versions, %v", len(hist), err)
	}
	if got, err := e.store.BySHA256(m1.SHA256); err != nil || got.ID() != m1.ID() {
		t.Fatalf("by sha256: %v", err)
	}
}

func TestRangeReads(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	data := randomBytes(2, 5*4096+100)
	m := e.put(t, "gloria.eu/r", data)
	for _, rg := range [][2]int64{{0, 1}, {4095, 2}, {4096, 4096}, {100, 3 * 4096}, {int64(len(data)) - 5, 100}, {int64(len(data)), 10}} {
		r := e.store.NewReader(m, rg[0], rg[1])
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		end := min(rg[0]+rg[1], int64(len(data)))
		if !bytes.Equal(got, data[min(rg[0], end):end]) {
			t.Fatalf("range %v: wrong bytes", rg)
		}
	}
	r := e.store.NewReader(m, 0, m.Size)
	if _, err := r.Seek(9000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, data[9000:]) {
		t.Fatal("seek then read: wrong bytes")
	}
}

func TestDedupAcrossNames(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	block := randomBytes(3, 4096)
	data := bytes.Repeat(block, 3) // one chunk three times
	e.put(t, "gloria.eu/x", data)
	e.put(t, "gloria.eu/y", data)
	if st := e.chunks.Stats(); st.Chunks != 1 || st.RawBytes != 4096 {
		t.Fatalf("stats = %+v, want one unique chunk", st)
	}
}

func TestTombstonesAndExpiry(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	ctx := context.Background()
	name := MustParseName("gloria.eu/t")
	e.put(t, name.String(), []byte("v1"))
	if _, err := e.store.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Latest(name); !errors.Is(err, ErrDeleted) {
		t.Fatalf("after delete Latest err = %v, want ErrDeleted", err)
	}
	if _, err := e.store.Delete(ctx, name); !errors.Is(err, ErrDeleted) {
		t.Fatalf("second delete err = %v", err)
	}
	if hist, _ := e.store.History(name); len(hist) != 2 || !hist[0].Tombstone {
		t.Fatal("history should keep the put under the tombstone")
	}
	e.now = e.now.Add(time.Millisecond)
	e.put(t, name.String(), []byte("v3"))
	if _, err := e.store.Latest(name); err != nil {
		t.Fatalf("put after delete: %v", err)
	}

	exp := MustParseName("gloria.eu/exp")
	if _, err := e.store.Put(ctx, exp, bytes.NewReader([]byte("soon gone")), PutOptions{Expires: e.now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Latest(exp); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	e.now = e.now.Add(time.Hour)
	if _, err := e.store.Latest(exp); !errors.Is(err, ErrDeleted) {
		t.Fatalf("at expiry err = %v, want ErrDeleted", err)
	}
	if n, _ := e.store.Objects(); n != 1 {
		t.Fatalf("objects = %d, want 1 (t live, exp expired)", n)
	}
}

func TestListPaging(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	names := []string{"gloria.eu/a/1", "gloria.eu/a/2", "gloria.eu/a/3", "gloria.eu/b/1", "gloria.eu/a0"}
	for _, n := range names {
		e.put(t, n, []byte(n))
	}
	if _, err := e.store.Delete(context.Background(), MustParseName("gloria.eu/a/2")); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		page, more, err := e.store.List("gloria.eu/a/", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			got = append(got, m.Name)
		}
		if !more {
			break
		}
		after = page[len(page)-1].Name
	}
	if want := []string{"gloria.eu/a/1", "gloria.eu/a/3"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("list = %v, want %v", got, want)
	}
}

func TestWriterMustBeTrusted(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	_, err := e.store.Put(context.Background(), MustParseName("other.org/x"), bytes.NewReader(nil), PutOptions{})
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("put under a foreign domain: err = %v, want ErrForbidden", err)
	}
}

func TestAcceptVerifies(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	peer := seedKey(t, 2)
	stranger := seedKey(t, 3)
	mk := func(name string, k *manifest.KeyPair) *manifest.Manifest {
		m := &manifest.Manifest{Name: name, Stamp: manifest.Stamp{WallMS: 1763700000500, Origin: "beta"}, ChunkSize: 4096}
		m.Sign(k)
		return m
	}
	good := mk("other.org/p", peer)
	if isNew, err := e.store.Accept(good, "test"); err != nil || !isNew {
		t.Fatalf("accept good: %v %v", isNew, err)
	}
	if isNew, err := e.store.Accept(good, "test"); err != nil || isNew {
		t.Fatalf("accept again: new=%v err=%v, want a no-op", isNew, err)
	}
	tampered := mk("other.org/q", peer)
	tampered.Size = 1
	tampered.Chunks = []chunk.ID{{1}}
	cases := []struct {
		name string
		m    *manifest.Manifest
		want error
	}{
		{"tampered", tampered, manifest.ErrBadSignature},
		{"wrong domain", mk("gloria.eu/p", peer), ErrForbidden},
		{"unknown signer", mk("other.org/r", stranger), ErrUntrusted},
	}
	for _, tc := range cases {
		if _, err := e.store.Accept(tc.m, "test"); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCorruptChunkNeverServed(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, vfs.Default, dir)
	m := e.put(t, "gloria.eu/c", randomBytes(4, 3*4096))
	e.close(t)
	flipLastPackByte(t, dir+"/packs")
	e = openEnv(t, vfs.Default, dir)
	defer e.close(t)
	m2, err := e.store.Latest(MustParseName("gloria.eu/c"))
	if err != nil || m2.ID() != m.ID() {
		t.Fatal(err)
	}
	_, err = io.ReadAll(e.store.NewReader(m2, 0, m2.Size))
	if !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("read of a corrupt object: err = %v, want ErrCorrupt", err)
	}
}

// flipLastPackByte damages the payload bytes near the end of the largest pack file.
func flipLastPackByte(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var path string
	var size int64
	for _, de := range entries {
		if info, err := de.Info(); err == nil && info.Size() > size {
			path, size = filepath.Join(dir, de.Name()), info.Size()
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, size-10)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, size-10); err != nil {
		t.Fatal(err)
	}
}

// quietPebble drops Pebble's info chatter in tests.
type quietPebble struct{ t testing.TB }

func (quietPebble) Infof(string, ...any)           {}
func (q quietPebble) Errorf(f string, args ...any) { q.t.Logf("pebble: "+f, args...) }
func (q quietPebble) Fatalf(f string, args ...any) { q.t.Fatalf("pebble: "+f, args...) }
