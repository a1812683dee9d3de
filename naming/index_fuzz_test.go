package naming

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// indexSnapshot is every key and value of the site's Pebble DB.
func indexSnapshot(t testing.TB, db *pebble.DB) map[string][]byte {
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	kv := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		kv[string(it.Key())] = bytes.Clone(it.Value())
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return kv
}

// FuzzDamagedIndex damages the version index as a bad disk or an old
// bug might: it overwrites the value of one existing key (a manifest,
// version, name, content, waiting, incomplete or meta record) or adds a
// key of a fuzzed prefix and suffix, then opens the object layer over
// it (which counts versions and loads the incomplete-version tracker)
// and runs every query: Latest, Version, History, List, Objects,
// BySHA256, NewestByHash, ManifestByPrefix, ForEachManifest and reads
// of what they return. Nothing panics or reads past the data; damage is
// an error or a version missing, never a nil answer without an error.
func FuzzDamagedIndex(f *testing.F) {
	fs := vfs.NewMem()
	e := openEnv(f, fs, "/site")
	defer e.close(f)
	x1 := e.put(f, "gloria.eu/x", randomBytes(1, 9000))
	e.put(f, "gloria.eu/x", randomBytes(2, 100))
	e.put(f, "gloria.eu/y/z", []byte("small"))
	if _, err := e.store.Delete(context.Background(), MustParseName("gloria.eu/y/z")); err != nil {
		f.Fatal(err)
	}
	orig := indexSnapshot(f, e.db)
	keys := make([]string, 0, len(orig))
	for k := range orig {
		keys = append(keys, k)
	}
	// Sorted, so that a corpus entry names the same key every run.
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	enc := x1.Encode()
	for i := range keys {
		f.Add(uint16(i), false, []byte(nil), orig[keys[i]][:len(orig[keys[i]])/2])
	}
	f.Add(uint16(0), true, append([]byte{prefixManifest}, make([]byte, 32)...), enc)
	f.Add(uint16(0), true, append([]byte{prefixVersion}, make([]byte, 40)...), []byte{1, 2, 3})
	f.Add(uint16(0), true, []byte{prefixIncomplete, 1}, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(uint16(0), true, []byte{prefixWaiting}, []byte{})
	f.Add(uint16(0), true, []byte{prefixMeta, 'i'}, []byte{9})
	f.Add(uint16(0), true, []byte{prefixName, 'g'}, []byte("x"))
	f.Add(uint16(0), true, []byte{prefixContent}, []byte("x"))
	f.Add(uint16(0), true, []byte{prefixCollected}, []byte("x"))
	cfg := e.store.cfg
	f.Fuzz(func(t *testing.T, which uint16, add bool, key, value []byte) {
		if len(key) > 256 || len(value) > 64<<10 {
			return
		}
		k := []byte(keys[int(which)%len(keys)])
		if add {
			if len(key) == 0 || key[0] == 'c' { // the chunk store's prefix: FuzzStoreRead in package chunk
				return
			}
			k = key
		}
		if err := e.db.Set(k, value, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		defer restoreIndex(t, e.db, orig)
		watchdog := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("damaged index (key %x, value %x): queries hang\n%s", k, value, buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		s, err := Open(e.db, e.chunks, cfg)
		if err != nil {
			return // a damaged tracker or count refuses to open: the site says so
		}
		readAll := func(m *manifest.Manifest) {
			if m == nil || m.Size > 1<<20 {
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(s.NewReader(m, 0, m.Size), 1<<20))
		}
		for _, n := range []string{"gloria.eu/x", "gloria.eu/y/z"} {
			name := MustParseName(n)
			m, _ := s.Latest(name)
			readAll(m)
			hist, _ := s.History(name)
			for _, h := range hist {
				readAll(h)
				if v, err := s.Version(name, h.Stamp); err == nil && v == nil {
					t.Fatal("Version returned neither a manifest nor an error")
				}
				_, _ = s.BySHA256(h.SHA256)
			}
			_, _ = s.NewestByHash(name.Hash())
			_, _ = s.HistoryByHash(name.Hash())
		}
		_, _, _ = s.List("gloria.eu/", "", 10)
		_, _, _ = s.List("", "gloria.eu/x", 1)
		_, _ = s.Objects()
		for _, p := range [][]byte{nil, {x1.ID()[0]}, key} {
			if m, err := s.ManifestByPrefix(p); err == nil && m == nil {
				t.Fatal("ManifestByPrefix returned neither a manifest nor an error")
			}
		}
		_ = s.ForEachManifest(func(id chunk.ID) error {
			_, _ = s.Manifest(id)
			return nil
		})
		_, _, _ = s.scanIncomplete()
	})
}

// restoreIndex puts the DB back to the snapshot orig.
func restoreIndex(t *testing.T, db *pebble.DB, orig map[string][]byte) {
	now := indexSnapshot(t, db)
	b := db.NewBatch()
	for k, v := range now {
		if ov, ok := orig[k]; !ok {
			_ = b.Delete([]byte(k), nil)
		} else if !bytes.Equal(ov, v) {
			_ = b.Set([]byte(k), ov, nil)
		}
	}
	for k, ov := range orig {
		if _, ok := now[k]; !ok {
			_ = b.Set([]byte(k), ov, nil)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}
