package forward

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
)

func openTestDB(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(string, ...any) {}

func TestLogStageReadCursor(t *testing.T) {
	fs := vfs.NewMem()
	db := openTestDB(t, fs)
	l, err := OpenLog(db)
	if err != nil {
		t.Fatal(err)
	}
	changed := l.Changed()
	pb := db.NewBatch()
	at := time.UnixMilli(1763700000123)
	if err := l.Stage(pb, KindChunk, ids(1, 2, 3), func(id chunk.ID) uint64 { return uint64(id[0]) * 100 }, "in:a", at); err != nil {
		t.Fatal(err)
	}
	if err := l.Stage(pb, KindManifest, ids(9), func(chunk.ID) uint64 { return 7 }, FromLocal, at); err != nil {
		t.Fatal(err)
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	l.Committed()
	select {
	case <-changed:
	default:
		t.Fatal("Committed did not wake waiters")
	}
	if l.Head(KindChunk) != 3 || l.Head(KindManifest) != 1 {
		t.Fatalf("heads %d %d", l.Head(KindChunk), l.Head(KindManifest))
	}
	as, err := l.Read(KindChunk, 1, 10)
	if err != nil || len(as) != 2 || as[0].Seq != 2 || as[0].ID != ids(2)[0] || as[0].From != "in:a" || !as[0].At.Equal(at) {
		t.Fatalf("read %+v %v", as, err)
	}
	if as[1].Through != 600 || !as[1].HasThrough {
		t.Fatalf("running total %d %v, want 600", as[1].Through, as[1].HasThrough)
	}
	if head, through := l.Tip(KindChunk); head != 3 || through != 600 {
		t.Fatalf("Tip = %d, %d; want 3, 600", head, through)
	}
	if err := l.SetCursor(KindChunk, "out:b", 2); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openTestDB(t, fs)
	defer db.Close()
	l, err = OpenLog(db)
	if err != nil {
		t.Fatal(err)
	}
	if l.Head(KindChunk) != 3 {
		t.Fatalf("head after reopen %d", l.Head(KindChunk))
	}
	if c, _ := l.Cursor(KindChunk, "out:b"); c != 2 {
		t.Fatalf("cursor after reopen %d", c)
	}
	if c, _ := l.Cursor(KindManifest, "out:b"); c != 0 {
		t.Fatalf("manifest cursor %d, want its own (0)", c)
	}
	// The running total survives a reopen: the next entry continues it,
	// and a span's bytes are a subtraction (a gap reads the entry before).
	pb = db.NewBatch()
	if err := l.Stage(pb, KindChunk, ids(4), func(chunk.ID) uint64 { return 50 }, "in:a", at); err != nil {
		t.Fatal(err)
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ seq, want uint64 }{{0, 0}, {1, 100}, {2, 300}, {4, 650}, {99, 650}} {
		if got, ok, err := l.BytesThrough(KindChunk, c.seq); err != nil || !ok || got != c.want {
			t.Fatalf("BytesThrough(%d) = %d %v %v, want %d", c.seq, got, ok, err, c.want)
		}
	}
	if a, ok, err := l.At(KindManifest, 1); err != nil || !ok || a.ID != ids(9)[0] || a.From != FromLocal {
		t.Fatalf("At: %+v %v %v", a, ok, err)
	}
}

func FuzzDecodeArrival(f *testing.F) {
	f.Add(arrivalKey(KindChunk, 7), encodeArrival(chunk.ID{1}, "in:a", time.UnixMilli(5), 1<<40))
	// An entry from before running totals: the link name right after the time.
	f.Add(arrivalKey(KindChunk, 7), append(make([]byte, 40), "in:a"...))
	f.Add([]byte{prefixArrival}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, key, v []byte) {
		a, err := decodeArrival(KindChunk, key, v)
		if err != nil {
			return
		}
		got := encodeArrival(a.ID, a.From, a.At, a.Through)
		if !a.HasThrough {
			got = append(got[:40], a.From...)
		}
		if string(got) != string(v) {
			t.Fatalf("round trip: %x != %x", got, v)
		}
	})
}

func ids(n ...byte) []chunk.ID {
	out := make([]chunk.ID, len(n))
	for i, b := range n {
		out[i] = chunk.ID{b}
	}
	return out
}
