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
	if err := l.Stage(pb, KindChunk, ids(1, 2, 3), "in:a", at); err != nil {
		t.Fatal(err)
	}
	if err := l.Stage(pb, KindManifest, ids(9), FromLocal, at); err != nil {
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
	if a, ok, err := l.At(KindManifest, 1); err != nil || !ok || a.ID != ids(9)[0] || a.From != FromLocal {
		t.Fatalf("At: %+v %v %v", a, ok, err)
	}
}

func FuzzDecodeArrival(f *testing.F) {
	f.Add(arrivalKey(KindChunk, 7), encodeArrival(chunk.ID{1}, "in:a", time.UnixMilli(5)))
	f.Add([]byte{prefixArrival}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, key, v []byte) {
		a, err := decodeArrival(KindChunk, key, v)
		if err != nil {
			return
		}
		if got := encodeArrival(a.ID, a.From, a.At); string(got) != string(v) {
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
