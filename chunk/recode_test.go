package chunk

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/skyfed/skyfed/chunk/crashpoint"
)

// Recode replaces a raw record by a compressed one: reads return the
// same bytes, the sizes follow, a second Recode does nothing, and the
// raw record is garbage that Compact reclaims.
func TestRecode(t *testing.T) {
	ts := newTestStore(t, nil, Options{PackSize: 64 << 10})
	var raws [][]byte
	for i := range 8 {
		raws = append(raws, imageLike(uint64(i), 40<<10))
	}
	put(t, ts.Store, raws...)
	before := ts.Stats()
	for _, raw := range raws {
		c, payload, err := Compress(raw)
		if err != nil || c == CodecRaw {
			t.Fatalf("test chunk does not compress: %s %v", c, err)
		}
		ok, err := ts.Recode(Sum(raw), c, payload, uint32(len(raw)))
		if err != nil || !ok {
			t.Fatalf("Recode: %v, %v", ok, err)
		}
		if got, _ := ts.StoredCodec(Sum(raw)); got != c {
			t.Fatalf("stored codec %s after Recode with %s", got, c)
		}
		if ok, err := ts.Recode(Sum(raw), c, payload, uint32(len(raw))); ok || err != nil {
			t.Fatalf("second Recode replaced again: %v, %v", ok, err)
		}
		mustGet(t, ts.Store, raw)
	}
	after := ts.Stats()
	if after.Chunks != before.Chunks || after.RawBytes != before.RawBytes || after.StoredBytes >= before.StoredBytes {
		t.Fatalf("stats before %+v, after %+v", before, after)
	}
	rep, err := ts.Compact(context.Background(), CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reclaimed() < before.StoredBytes-after.StoredBytes {
		t.Fatalf("compaction reclaimed %d bytes; the raw records held %d more than the compressed ones", rep.Reclaimed(), before.StoredBytes-after.StoredBytes)
	}
	ts.reopen(t)
	for _, raw := range raws {
		mustGet(t, ts.Store, raw)
	}
	if got := ts.Stats(); got.StoredBytes != after.StoredBytes {
		t.Fatalf("stored bytes after reopen %d, want %d", got.StoredBytes, after.StoredBytes)
	}
}

// Recode refuses a payload that does not decode to the chunk, and
// leaves alone a chunk not stored.
func TestRecodeRefuses(t *testing.T) {
	ts := newTestStore(t, nil, Options{})
	a, b := imageLike(1, 8<<10), imageLike(2, 8<<10)
	put(t, ts.Store, a)
	c, other, err := Compress(b)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ts.Recode(Sum(a), c, other, uint32(len(a))); ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Recode with another chunk's payload: %v, %v; want ErrCorrupt", ok, err)
	}
	if ok, err := ts.Recode(Sum(a), CodecRaw, a, uint32(len(a))); ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Recode to raw: %v, %v; want ErrCorrupt", ok, err)
	}
	if ok, err := ts.Recode(Sum(b), c, other, uint32(len(b))); ok || err != nil {
		t.Fatalf("Recode of a chunk not stored: %v, %v", ok, err)
	}
	if got, _ := ts.StoredCodec(Sum(a)); got != CodecRaw {
		t.Fatalf("refused Recode changed the codec to %s", got)
	}
	mustGet(t, ts.Store, a)
}

// A crash at any instant of a Recode leaves the chunk readable, raw or
// compressed, never torn: before the index commit it is raw, after it
// compressed.
func TestRecodeCrashSafety(t *testing.T) {
	for _, tc := range []struct {
		name           string
		point          string // crash point inside Recode, or "" for a crash right after it
		wantCompressed bool
	}{
		{"after pack write", crashpoint.AfterPackWrite, false},
		{"after index commit", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			db := openDB(t, fs, "/data/db")
			s, err := Open(db, Options{FS: fs, Dir: "/data/packs", Logger: discardLog})
			if err != nil {
				t.Fatal(err)
			}
			raw := imageLike(9, 30<<10)
			put(t, s, raw)
			c, payload, err := Compress(raw)
			if err != nil {
				t.Fatal(err)
			}
			var clone *vfs.MemFS
			var mu sync.Mutex
			if tc.point != "" {
				restore := crashpoint.Set(tc.point, func() error {
					mu.Lock()
					defer mu.Unlock()
					clone = fs.CrashClone(vfs.CrashCloneCfg{})
					return crashpoint.ErrCrashed
				})
				_, err = s.Recode(Sum(raw), c, payload, uint32(len(raw)))
				restore()
				if !errors.Is(err, crashpoint.ErrCrashed) {
					t.Fatalf("Recode: %v, want the crash", err)
				}
			} else {
				if _, err := s.Recode(Sum(raw), c, payload, uint32(len(raw))); err != nil {
					t.Fatal(err)
				}
				clone = fs.CrashClone(vfs.CrashCloneCfg{})
			}
			s.Close()
			db.Close()

			db2 := openDB(t, clone, "/data/db")
			defer db2.Close()
			s2, err := Open(db2, Options{FS: clone, Dir: "/data/packs", Logger: discardLog})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			mustGet(t, s2, raw)
			got, err := s2.StoredCodec(Sum(raw))
			if err != nil {
				t.Fatal(err)
			}
			if (got != CodecRaw) != tc.wantCompressed {
				t.Fatalf("after the crash the chunk is stored %s", got)
			}
		})
	}
}
