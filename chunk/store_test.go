package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quietLogger keeps Pebble's logs out of test output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func openDB(t testing.TB, fs vfs.FS, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: quietLogger{}})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	return db
}

// testStore is a Store on its own Pebble DB, on disk or on a given FS.
type testStore struct {
	*Store
	db     *pebble.DB
	fs     vfs.FS
	dir    string
	opts   Options
	closed bool
}

func newTestStore(t testing.TB, fs vfs.FS, opts Options) *testStore {
	t.Helper()
	dir := "/data"
	if fs == nil {
		fs, dir = vfs.Default, t.TempDir()
	}
	opts.FS = fs
	opts.Dir = fs.PathJoin(dir, "packs")
	if opts.Logger == nil {
		opts.Logger = discardLog
	}
	ts := &testStore{fs: fs, dir: dir, opts: opts}
	ts.open(t)
	t.Cleanup(func() { ts.close(t) })
	return ts
}

func (ts *testStore) open(t testing.TB) {
	t.Helper()
	ts.db = openDB(t, ts.fs, ts.fs.PathJoin(ts.dir, "db"))
	s, err := Open(ts.db, ts.opts)
	if err != nil {
		_ = ts.db.Close()
		t.Fatalf("Open: %v", err)
	}
	ts.Store, ts.closed = s, false
}

func (ts *testStore) close(t testing.TB) {
	t.Helper()
	if ts.closed {
		return
	}
	ts.closed = true
	if err := ts.Store.Close(); err != nil {
		t.Errorf("Store.Close: %v", err)
	}
	if err := ts.db.Close(); err != nil {
		t.Errorf("db.Close: %v", err)
	}
}

func (ts *testStore) reopen(t testing.TB) {
	t.Helper()
	ts.close(t)
	ts.open(t)
}

// put adds chunks in one batch and commits it.
func put(t testing.TB, s *Store, chunks ...[]byte) {
	t.Helper()
	b := s.NewBatch()
	for _, c := range chunks {
		if _, err := b.Add(Sum(c), c); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	if err := b.Commit(nil); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func mustGet(t testing.TB, s *Store, want []byte) {
	t.Helper()
	got, err := s.Get(Sum(want), nil)
	if err != nil {
		t.Fatalf("Get %s: %v", Sum(want).Short(), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s returned other bytes", Sum(want).Short())
	}
}

func TestStorePutGetDedup(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	a, b, c := randomBytes(10, 1000), randomBytes(11, 2000), imageLike(12, 3000)
	batch := ts.NewBatch()
	for i, tc := range []struct {
		raw  []byte
		want bool
	}{{a, true}, {b, true}, {a, false}} {
		added, err := batch.Add(Sum(tc.raw), tc.raw)
		if err != nil || added != tc.want {
			t.Fatalf("Add #%d = %v, %v; want %v", i, added, err, tc.want)
		}
	}
	if has, _ := ts.Has(Sum(a)); has {
		t.Fatal("staged chunk visible before Commit")
	}
	if _, err := ts.Get(Sum(a), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Commit = %v, want ErrNotFound", err)
	}
	if err := batch.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := batch.Add(Sum(c), c); err == nil {
		t.Fatal("Add on a committed batch succeeded")
	}
	batch = ts.NewBatch()
	if added, err := batch.Add(Sum(a), a); added || err != nil {
		t.Fatalf("Add of a stored chunk = %v, %v; want false", added, err)
	}
	if added, err := batch.Add(Sum(c), c); !added || err != nil {
		t.Fatalf("Add c = %v, %v", added, err)
	}
	if err := batch.Commit(nil); err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][]byte{a, b, c} {
		mustGet(t, ts.Store, raw)
		if has, err := ts.Has(Sum(raw)); !has || err != nil {
			t.Errorf("Has = %v, %v", has, err)
		}
	}
	want := Stats{Chunks: 3, StoredBytes: 6000, RawBytes: 6000}
	if got := ts.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if _, err := ts.Get(Sum([]byte("missing")), nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get missing = %v, want ErrNotFound", err)
	}
	ts.reopen(t)
	for _, raw := range [][]byte{a, b, c} {
		mustGet(t, ts.Store, raw)
	}
	if got := ts.Stats(); got != want {
		t.Errorf("Stats after reopen = %+v, want %+v", got, want)
	}
	put(t, ts.Store, randomBytes(13, 10))
	if got := ts.Stats().Chunks; got != 4 {
		t.Errorf("Chunks after one more = %d, want 4", got)
	}
	names, err := os.ReadDir(ts.opts.Dir)
	if err != nil || len(names) != 2 || names[0].Name() != "pack-000001.dat" || names[1].Name() != "pack-000002.dat" {
		t.Errorf("pack dir holds %v (%v), want a new pack per Open", names, err)
	}
}

func TestStoreCompressed(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	raw := imageLike(20, DefaultSize)
	id := Sum(raw)
	c, payload, err := Compress(raw)
	if err != nil || c == CodecRaw {
		t.Fatalf("Compress = %s, %v", c, err)
	}
	b := ts.NewBatch()
	if added, err := b.AddStored(id, c, payload, uint32(len(raw))); !added || err != nil {
		t.Fatalf("AddStored = %v, %v", added, err)
	}
	if added, err := b.AddStored(id, c, payload, uint32(len(raw))); added || err != nil {
		t.Fatalf("AddStored again = %v, %v; want false", added, err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	mustGet(t, ts.Store, raw)
	gc, gp, gl, err := ts.GetStored(id, nil)
	if err != nil || gc != c || !bytes.Equal(gp, payload) || gl != uint32(len(raw)) {
		t.Fatalf("GetStored = %s, %d bytes, %d, %v", gc, len(gp), gl, err)
	}
	want := Stats{Chunks: 1, StoredBytes: int64(len(payload)), RawBytes: int64(len(raw))}
	if got := ts.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestAddStoredRejects(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	raw := imageLike(21, 50000)
	c, payload, err := Compress(raw)
	if err != nil {
		t.Fatal(err)
	}
	other := Sum([]byte("other"))
	cases := []struct {
		name    string
		id      ID
		c       Codec
		payload []byte
		rawLen  uint32
		wantErr error
	}{
		{"wrong hash", other, c, payload, uint32(len(raw)), ErrCorrupt},
		{"wrong hash raw", other, CodecRaw, raw, uint32(len(raw)), ErrCorrupt},
		{"raw length mismatch", Sum(raw), CodecRaw, raw, 5, ErrCorrupt},
		{"short raw length", Sum(raw), c, payload, 100, ErrCorrupt},
		{"long raw length", Sum(raw), c, payload, uint32(len(raw)) + 1, ErrCorrupt},
		{"garbage", Sum(raw), CodecZstd, []byte("garbage"), uint32(len(raw)), ErrCorrupt},
		{"unknown codec", Sum(raw), Codec(7), payload, uint32(len(raw)), ErrCorrupt},
		{"too large", Sum(raw), c, payload, MaxSize + 1, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := ts.NewBatch()
			defer b.Abort()
			added, err := b.AddStored(tc.id, tc.c, tc.payload, tc.rawLen)
			if added || !errors.Is(err, tc.wantErr) {
				t.Fatalf("AddStored = %v, %v; want %v", added, err, tc.wantErr)
			}
		})
	}
	if _, err := ts.NewBatch().Add(Sum(nil), make([]byte, MaxSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Add of MaxSize+1 bytes = %v, want ErrTooLarge", err)
	}
	if got := ts.Stats(); got != (Stats{}) {
		t.Errorf("Stats = %+v, want zero", got)
	}
}

func TestStoreDetectsCorruption(t *testing.T) {
	raw := randomBytes(30, 5000)
	cases := []struct {
		name   string
		offset int64 // byte to flip, from the start of the record
		stored bool  // GetStored also reports it
	}{
		{"payload", headerSize + 100, true},
		{"header id", 10, true},
		{"header crc", 50, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			ts := newTestStore(t, nil, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			put(t, ts.Store, raw)
			flipByte(t, filepath.Join(ts.opts.Dir, "pack-000001.dat"), tc.offset)
			_, err := ts.Get(Sum(raw), nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get = %v, want ErrCorrupt", err)
			}
			if got := ts.Stats().CorruptReads; got != 1 {
				t.Errorf("CorruptReads = %d, want 1", got)
			}
			if !bytes.Contains(logs.Bytes(), []byte("level=ERROR")) || !bytes.Contains(logs.Bytes(), []byte(Sum(raw).String())) {
				t.Errorf("no error logged naming the chunk; logs: %s", logs.String())
			}
			if _, _, _, err := ts.GetStored(Sum(raw), nil); !errors.Is(err, ErrCorrupt) {
				t.Errorf("GetStored = %v, want ErrCorrupt", err)
			}
		})
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestStoreMissingPackAndBadIndex(t *testing.T) {
	ts := newTestStore(t, vfs.NewMem(), Options{})
	a, b := randomBytes(31, 100), randomBytes(32, 100)
	put(t, ts.Store, a, b)
	// An index entry pointing at a pack that does not exist.
	e := entry{pack: 999, offset: 0, storedLen: 100, rawLen: 100}
	if err := ts.db.Set(indexKey(Sum(a)), e.appendTo(nil), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// A malformed index value.
	if err := ts.db.Set(indexKey(Sum(b)), []byte("junk"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][]byte{a, b} {
		if _, err := ts.Get(Sum(raw), nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Get = %v, want ErrCorrupt", err)
		}
	}
	if got := ts.Stats().CorruptReads; got != 2 {
		t.Errorf("CorruptReads = %d, want 2", got)
	}
	ts.reopen(t) // the scan skips the bad entry and forgets the one whose pack is gone
	if got := ts.Stats(); got.Chunks != 0 || got.LostAtOpen != 1 {
		t.Errorf("after reopen: %d chunks, %d lost, want 0 and 1", got.Chunks, got.LostAtOpen)
	}
	if has, err := ts.Has(Sum(a)); err != nil || has {
		t.Errorf("Has(chunk of a lost pack) = %v, %v; want false", has, err)
	}
}

func TestStoreForgetsChunksOfLostAndTruncatedPacks(t *testing.T) {
	ts := newTestStore(t, vfs.NewMem(), Options{PackSize: 1})
	// PackSize 1: every commit after the first record starts a new pack.
	a, b, c := randomBytes(41, 5000), randomBytes(42, 5000), randomBytes(43, 5000)
	for _, raw := range [][]byte{a, b, c} {
		put(t, ts.Store, raw)
	}
	names, err := ts.fs.List(ts.opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	for _, n := range names {
		if _, ok := parsePackName(n); ok {
			if fi, err := ts.fs.Stat(ts.fs.PathJoin(ts.opts.Dir, n)); err == nil && fi.Size() > 0 {
				packs = append(packs, n)
			}
		}
	}
	slices.Sort(packs)
	if len(packs) != 3 {
		t.Fatalf("non-empty packs = %v, want 3", packs)
	}
	if err := ts.fs.Remove(ts.fs.PathJoin(ts.opts.Dir, packs[0])); err != nil {
		t.Fatal(err)
	}
	truncated := ts.fs.PathJoin(ts.opts.Dir, packs[1])
	head := make([]byte, 100)
	r, err := ts.fs.Open(truncated)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	r.Close()
	w, err := ts.fs.Create(truncated, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(head); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ts.reopen(t)
	if got := ts.Stats(); got.Chunks != 1 || got.LostAtOpen != 2 {
		t.Errorf("after reopen: %d chunks, %d lost; want 1 and 2", got.Chunks, got.LostAtOpen)
	}
	for raw, want := range map[*[]byte]bool{&a: false, &b: false, &c: true} {
		if has, err := ts.Has(Sum(*raw)); err != nil || has != want {
			t.Errorf("Has = %v, %v; want %v", has, err, want)
		}
	}
	put(t, ts.Store, a) // a lost chunk can be stored again
	if got, err := ts.Get(Sum(a), nil); err != nil || !bytes.Equal(got, a) {
		t.Errorf("Get after storing a lost chunk again: %v", err)
	}
}

func TestStoreRotatesPacks(t *testing.T) {
	ts := newTestStore(t, vfs.NewMem(), Options{PackSize: 10000})
	var all [][]byte
	for i := range 10 {
		c := randomBytes(uint64(40+i), 3000)
		all = append(all, c)
		put(t, ts.Store, c)
	}
	names, err := ts.fs.List(ts.opts.Dir)
	if err != nil || len(names) < 4 {
		t.Fatalf("pack dir holds %v (%v), want rotation", names, err)
	}
	ts.reopen(t)
	for _, c := range all {
		mustGet(t, ts.Store, c)
	}
}

func TestStoreClosed(t *testing.T) {
	ts := newTestStore(t, vfs.NewMem(), Options{})
	raw := randomBytes(50, 10)
	put(t, ts.Store, raw)
	b := ts.NewBatch()
	if err := ts.Store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(Sum(raw), nil); err == nil {
		t.Error("Get after Close succeeded")
	}
	if _, err := b.Add(Sum([]byte("x")), []byte("x")); err == nil {
		t.Error("Add after Close succeeded")
	}
	if err := ts.Store.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStoreConcurrentBatches(t *testing.T) {
	ts := newTestStore(t, nil, Options{PackSize: 64 << 10})
	const workers, perWorker = 4, 24
	shared := make([][]byte, 8) // every worker adds these too
	for i := range shared {
		shared[i] = randomBytes(uint64(100+i), 4000)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				own := randomBytes(uint64(1000*w+i), 3000+i)
				b := ts.NewBatch()
				for _, c := range [][]byte{own, shared[(w+i)%len(shared)]} {
					if _, err := b.Add(Sum(c), c); err != nil {
						errs <- err
						return
					}
				}
				if err := b.Commit(nil); err != nil {
					errs <- err
					return
				}
				if _, err := ts.Get(Sum(own), nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := ts.Stats().Chunks, int64(workers*perWorker+len(shared)); got != want {
		t.Errorf("Chunks = %d, want %d", got, want)
	}
	ts.reopen(t)
	if got, want := ts.Stats().Chunks, int64(workers*perWorker+len(shared)); got != want {
		t.Errorf("Chunks after reopen = %d, want %d", got, want)
	}
	for _, c := range shared {
		mustGet(t, ts.Store, c)
	}
}

func TestCommitExtraWrites(t *testing.T) {
	ts := newTestStore(t, vfs.NewMem(), Options{})
	raw := randomBytes(60, 100)
	b := ts.NewBatch()
	if _, err := b.Add(Sum(raw), raw); err != nil {
		t.Fatal(err)
	}
	err := b.Commit(func(pb *pebble.Batch, _ []ID) error {
		return pb.Set([]byte("m-manifest"), []byte("v"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, closer, err := ts.db.Get([]byte("m-manifest")); err != nil || string(v) != "v" {
		t.Fatalf("caller's key = %q, %v", v, err)
	} else {
		closer.Close()
	}
	// A failing extra aborts the whole commit.
	raw2 := randomBytes(61, 100)
	b = ts.NewBatch()
	if _, err := b.Add(Sum(raw2), raw2); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := b.Commit(func(*pebble.Batch, []ID) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Commit = %v, want boom", err)
	}
	if has, _ := ts.Has(Sum(raw2)); has {
		t.Error("chunk of a failed commit is visible")
	}
	if err := b.Commit(nil); err == nil {
		t.Error("second Commit succeeded")
	}
}

// TestStoreDiskErrors injects ENOSPC into pack writes and syncs: the error
// comes back wrapped, stored chunks stay readable, and later batches work.
func TestStoreDiskErrors(t *testing.T) {
	cases := []struct {
		name string
		kind errorfs.OpKind
	}{
		{"write", errorfs.OpFileWrite},
		{"sync", errorfs.OpFileSync},
		{"create", errorfs.OpCreate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fail sync.Map // path → struct{} of failing files; "*" fails every file
			inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
				if _, all := fail.Load("*"); all && op.Kind == tc.kind {
					return fmt.Errorf("%s: %w", op.Path, syscall.ENOSPC)
				}
				return nil
			})
			mem := vfs.NewMem()
			packFS := errorfs.Wrap(mem, inj)
			db := openDB(t, mem, "/db")
			defer db.Close()
			s, err := Open(db, Options{FS: packFS, Dir: "/packs", Logger: discardLog})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			old := randomBytes(70, 1000)
			put(t, s, old)

			// Make the active pack unusable for the create case.
			if tc.kind == errorfs.OpCreate {
				s.active.broken.Store(true)
			}
			fail.Store("*", struct{}{})
			failed := randomBytes(71, 1000)
			b := s.NewBatch()
			_, err = b.Add(Sum(failed), failed)
			if err == nil {
				err = b.Commit(nil)
			} else {
				b.Abort()
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("got %v, want ENOSPC", err)
			}
			mustGet(t, s, old)
			if has, _ := s.Has(Sum(failed)); has {
				t.Error("chunk of the failed batch is visible")
			}
			fail.Delete("*")
			later := randomBytes(72, 1000)
			put(t, s, later, failed)
			mustGet(t, s, later)
			mustGet(t, s, failed)
		})
	}
}

// TestSyncErrorIsSticky: after an fsync of a pack fails, no batch that wrote
// into that pack may commit, even if a later fsync would "succeed".
func TestSyncErrorIsSticky(t *testing.T) {
	var failing sync.Map
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if _, on := failing.Load(op.Kind); on {
			return fmt.Errorf("%s: %w", op.Path, syscall.EIO)
		}
		return nil
	})
	mem := vfs.NewMem()
	db := openDB(t, mem, "/db")
	defer db.Close()
	s, err := Open(db, Options{FS: errorfs.Wrap(mem, inj), Dir: "/packs", Logger: discardLog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x, y := randomBytes(80, 100), randomBytes(81, 100)
	b1, b2 := s.NewBatch(), s.NewBatch()
	if _, err := b1.Add(Sum(x), x); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Add(Sum(y), y); err != nil {
		t.Fatal(err)
	}
	failing.Store(errorfs.OpFileSync, true)
	if err := b1.Commit(nil); !errors.Is(err, syscall.EIO) {
		t.Fatalf("b1.Commit = %v, want EIO", err)
	}
	failing.Delete(errorfs.OpFileSync)
	if err := b2.Commit(nil); !errors.Is(err, syscall.EIO) {
		t.Fatalf("b2.Commit = %v, want the sticky EIO", err)
	}
	put(t, s, x, y) // a new pack takes them
	mustGet(t, s, x)
	mustGet(t, s, y)
}
