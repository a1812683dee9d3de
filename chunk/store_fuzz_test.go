package chunk

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// FuzzParseID checks the text form of chunk IDs (HTTP paths, JSON, TOML):
// errors wrap ErrBadID, and what parses prints back as its lower-case
// input.
func FuzzParseID(f *testing.F) {
	for _, s := range fuzzIDSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		var viaText ID
		errText := viaText.UnmarshalText([]byte(s))
		if (err == nil) != (errText == nil) || viaText != id {
			t.Fatalf("ParseID and UnmarshalText disagree on %q: %v / %v", s, err, errText)
		}
		if err != nil {
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("error %v does not wrap ErrBadID", err)
			}
			return
		}
		if id.String() != strings.ToLower(s) {
			t.Fatalf("ParseID(%q).String() = %q", s, id.String())
		}
	})
}

func fuzzIDSeeds() []string {
	return []string{
		Sum([]byte("x")).String(),
		strings.ToUpper(Sum(nil).String()),
		strings.Repeat("0", 64),
		strings.Repeat("g", 64),
		"abc",
		"",
	}
}

// FuzzParsePackName checks the names of pack files found in the packs
// directory: a name is taken only if packName gives it back for its
// number (no sign, no spaces, no other suffix), or is a longer
// zero-padding of it.
func FuzzParsePackName(f *testing.F) {
	for _, s := range fuzzPackNameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		num, ok := parsePackName(name)
		if !ok {
			if num != 0 {
				t.Fatalf("parsePackName(%q) = %d, false", name, num)
			}
			return
		}
		if !strings.HasPrefix(name, "pack-") || !strings.HasSuffix(name, ".dat") {
			t.Fatalf("parsePackName(%q) accepted a name without pack-/.dat", name)
		}
		digits := name[len("pack-") : len(name)-len(".dat")]
		for _, c := range digits {
			if c < '0' || c > '9' {
				t.Fatalf("parsePackName(%q) = %d accepted a non-digit", name, num)
			}
		}
		if back, ok := parsePackName(packName(num)); !ok || back != num {
			t.Fatalf("packName(%d) = %q does not parse back", num, packName(num))
		}
	})
}

func fuzzPackNameSeeds() []string {
	return []string{packName(1), packName(1234567), "pack-+1.dat", "pack-4294967296.dat", "pack-.dat", "MANIFEST-000001"}
}

// fuzzStoreChunks are the two chunks FuzzStoreRead damages: one stored
// raw, one stored compressed.
func fuzzStoreChunks() (raw, image []byte) {
	return bytes.Repeat([]byte("skyfed fuzz "), 40), imageLike(7, 4096)
}

// fuzzStoreLayout writes the two chunks into a fresh store on fs and
// returns the pack file's bytes and the two index values.
func fuzzStoreLayout(t testing.TB, fs vfs.FS) (pack, entryRaw, entryImage []byte) {
	t.Helper()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db, Options{FS: fs, Dir: "/packs", Logger: discardLog})
	if err != nil {
		t.Fatal(err)
	}
	raw, image := fuzzStoreChunks()
	c, payload, err := Compress(image)
	if err != nil || c == CodecRaw {
		t.Fatalf("Compress: %v %v", c, err)
	}
	b := s.NewBatch()
	if _, err := b.Add(Sum(raw), raw); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddStored(Sum(image), c, payload, uint32(len(image))); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	get := func(key []byte) []byte {
		v, closer, err := db.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		defer closer.Close()
		return bytes.Clone(v)
	}
	entryRaw, entryImage = get(indexKey(Sum(raw))), get(indexKey(Sum(image)))
	e, err := decodeEntry(entryRaw)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := fs.Open(fs.PathJoin("/packs", packName(e.pack)))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	st, err := pf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pack = make([]byte, st.Size())
	if _, err := pf.ReadAt(pack, 0); err != nil {
		t.Fatal(err)
	}
	return pack, entryRaw, entryImage
}

// FuzzStoreRead damages what the chunk store reads from disk, the pack
// file holding two records and their index entries, reopens the store
// and reads both chunks: every read returns the chunk's exact bytes or
// an error wrapping ErrCorrupt or ErrNotFound, GetStored never returns
// a payload that decodes to more than its declared raw length, Open
// forgets every entry whose record lies past the end of its pack, and
// nothing panics.
func FuzzStoreRead(f *testing.F) {
	pack, entryRaw, entryImage := fuzzStoreLayout(f, vfs.NewMem())
	f.Add(pack, entryRaw, entryImage)
	f.Add(pack[:len(pack)-1], entryRaw, entryImage)
	f.Add(pack, entryImage, entryRaw)
	raw, image := fuzzStoreChunks()
	f.Fuzz(func(t *testing.T, pack, entryRaw, entryImage []byte) {
		fs := vfs.NewMem()
		fuzzStoreLayout(t, fs) // the records go to pack 1: overwrite it
		name := fs.PathJoin("/packs", packName(1))
		if pf, err := fs.Create(name, vfs.WriteCategoryUnspecified); err != nil {
			t.Fatal(err)
		} else {
			if _, err := pf.Write(pack); err != nil {
				t.Fatal(err)
			}
			pf.Close()
		}
		db, err := pebble.Open("/db", &pebble.Options{FS: fs, Logger: quietLogger{}})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, kv := range []struct{ key, v []byte }{{indexKey(Sum(raw)), entryRaw}, {indexKey(Sum(image)), entryImage}} {
			if err := db.Set(kv.key, kv.v, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		s, err := Open(db, Options{FS: fs, Dir: "/packs", Logger: discardLog})
		if err != nil {
			return // refusing to open is fine; panicking is not
		}
		defer s.Close()
		for _, want := range [][]byte{raw, image} {
			id := Sum(want)
			// Open forgets entries whose record cannot lie within its
			// pack file (pack 1 holds len(pack) bytes, no other exists).
			if e, err := s.lookup(id); err == nil && (e.pack != 1 || e.offset > int64(len(pack))-headerSize-int64(e.storedLen)) {
				t.Fatalf("Open kept the entry %+v of chunk %s past the end of its pack (%d bytes)", e, id.Short(), len(pack))
			}
			got, err := s.Get(id, nil)
			switch {
			case err == nil && !bytes.Equal(got, want):
				t.Fatalf("Get %s returned %d wrong bytes", id.Short(), len(got))
			case err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound):
				t.Fatalf("Get %s: %v wraps neither ErrCorrupt nor ErrNotFound", id.Short(), err)
			}
			c, payload, rawLen, err := s.GetStored(id, nil)
			if err != nil {
				continue
			}
			dec, err := Decode(c, payload, nil, int(rawLen))
			if err == nil && len(dec) > int(rawLen) {
				t.Fatalf("GetStored %s: payload decodes to %d bytes, said %d", id.Short(), len(dec), rawLen)
			}
		}
	})
}
