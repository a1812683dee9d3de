package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// goldenID is the ID of goldenManifest; it changes only with the encoding.
const goldenID = "faadb2f470200d8dd7136575fa82c384748ec61bf3c0b27a07bf98843fc267b3"

func testKey(t testing.TB, first byte) *KeyPair {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = first + byte(i)
	}
	k, err := KeyPairFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goldenManifest is a fixed, signed 1.5 MiB object in two chunks.
func goldenManifest(t testing.TB) *Manifest {
	m := &Manifest{
		Name:        "gloria.eu/bootes-2/2026/11/21/img-0001.fits",
		Stamp:       Stamp{WallMS: 1795219200000, Counter: 7, Origin: "gloria-eu"},
		Size:        3 << 19,
		ChunkSize:   1 << 20,
		Chunks:      []chunk.ID{sha256.Sum256([]byte("chunk 0")), sha256.Sum256([]byte("chunk 1"))},
		SHA256:      sha256.Sum256([]byte("whole object")),
		ContentType: "application/fits",
		Meta:        []Meta{{"exposure", "30s"}, {"telescope", "bootes-2"}},
	}
	m.Sign(testKey(t, 1))
	return m
}

func TestGolden(t *testing.T) {
	m := goldenManifest(t)
	enc := m.Encode()
	path := filepath.Join("testdata", "manifest-v1.golden")
	if *update {
		var sb strings.Builder
		for h := hex.EncodeToString(enc); len(h) > 0; {
			n := min(64, len(h))
			sb.WriteString(h[:n] + "\n")
			h = h[n:]
		}
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !bytes.Equal(enc, want) {
		t.Fatalf("Encode() differs from %s (run with -update if the format changed on purpose)\ngot  %x\nwant %x", path, enc, want)
	}
	if got := m.ID().String(); got != goldenID {
		t.Errorf("ID() = %s, want %s", got, goldenID)
	}
	if got := chunk.ID(sha256.Sum256(want)); m.ID() != got {
		t.Errorf("ID() = %s, want SHA-256 of encoding %s", m.ID(), got)
	}
	if !bytes.HasPrefix(enc, m.SigningBytes()) || enc[0] != FormatVersion {
		t.Errorf("Encode() does not start with FormatVersion and SigningBytes()")
	}
	got, err := Decode(want)
	if err != nil {
		t.Fatalf("Decode(golden): %v", err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("Verify(golden): %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	key := testKey(t, 9)
	cases := map[string]*Manifest{
		"golden":  goldenManifest(t),
		"empty":   {Name: "a/b", Stamp: Stamp{1, 0, "a"}, ChunkSize: 1, SHA256: sha256.Sum256(nil)},
		"partial": {Name: "a/ü", Stamp: Stamp{maxWallMS, maxCounter, "z"}, Size: 5, ChunkSize: 2, Chunks: make([]chunk.ID, 3), Expires: 1},
		"tomb":    {Name: "a/b", Stamp: Stamp{2, 3, "a-1"}, Tombstone: true, Meta: []Meta{{"k", ""}}},
		"unsigned": {Name: strings.Repeat("n", maxNameLen), Stamp: Stamp{2, 3, "a"}, Size: 1, ChunkSize: maxChunkSize,
			Chunks: make([]chunk.ID, 1), ContentType: strings.Repeat("c", maxContentTypeLen)},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			if name != "unsigned" && name != "golden" {
				m.Sign(key)
			}
			enc := m.Encode()
			got, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got.Encode(), enc) || got.ID() != m.ID() {
				t.Fatalf("round trip changed the encoding")
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	tamper := map[string]func(m *Manifest){
		"name":         func(m *Manifest) { m.Name += "x" },
		"stamp wall":   func(m *Manifest) { m.Stamp.WallMS++ },
		"stamp count":  func(m *Manifest) { m.Stamp.Counter++ },
		"stamp origin": func(m *Manifest) { m.Stamp.Origin = "other" },
		"size":         func(m *Manifest) { m.Size-- },
		"chunk size":   func(m *Manifest) { m.ChunkSize++ },
		"chunk":        func(m *Manifest) { m.Chunks[1][0] ^= 1 },
		"sha256":       func(m *Manifest) { m.SHA256[31] ^= 1 },
		"content type": func(m *Manifest) { m.ContentType = "text/plain" },
		"meta value":   func(m *Manifest) { m.Meta[0].Value = "31s" },
		"meta dropped": func(m *Manifest) { m.Meta = m.Meta[:1] },
		"expires":      func(m *Manifest) { m.Expires = 1 },
		"tombstone":    func(m *Manifest) { m.Tombstone = true },
		"signature":    func(m *Manifest) { m.Signature[0] ^= 1 },
		"short sig":    func(m *Manifest) { m.Signature = m.Signature[:63] },
		"no sig":       func(m *Manifest) { m.Signature = nil },
		"wrong signer": func(m *Manifest) { m.Signer = testKey(t, 2).PublicKey() },
		"resigned by other": func(m *Manifest) {
			m.Signature = testKey(t, 2).Sign(m.SigningBytes())
		},
	}
	if err := goldenManifest(t).Verify(); err != nil {
		t.Fatalf("Verify of untouched manifest: %v", err)
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			m := goldenManifest(t)
			f(m)
			if err := m.Verify(); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify() = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(m *Manifest)
		field string // substring of the error; "" means valid
	}{
		{"golden", func(m *Manifest) {}, ""},
		{"name empty", func(m *Manifest) { m.Name = "" }, "name"},
		{"name max", func(m *Manifest) { m.Name = strings.Repeat("n", maxNameLen) }, ""},
		{"name too long", func(m *Manifest) { m.Name = strings.Repeat("n", maxNameLen+1) }, "name"},
		{"name bad utf8", func(m *Manifest) { m.Name = "a/\xff" }, "UTF-8"},
		{"stamp origin", func(m *Manifest) { m.Stamp.Origin = "Bad" }, "stamp"},
		{"stamp wall", func(m *Manifest) { m.Stamp.WallMS = -1 }, "stamp"},
		{"stamp wall max", func(m *Manifest) { m.Stamp.WallMS = maxWallMS + 1 }, "stamp"},
		{"stamp counter", func(m *Manifest) { m.Stamp.Counter = maxCounter + 1 }, "stamp"},
		{"size negative", func(m *Manifest) { m.Size = -1 }, "size"},
		{"chunk size zero", func(m *Manifest) { m.ChunkSize = 0 }, "chunk size"},
		{"chunk size max", func(m *Manifest) { m.ChunkSize, m.Chunks = maxChunkSize, m.Chunks[:1] }, ""},
		{"chunk size too big", func(m *Manifest) { m.ChunkSize = maxChunkSize + 1 }, "chunk size"},
		{"too few chunks", func(m *Manifest) { m.Chunks = m.Chunks[:1] }, "chunks"},
		{"too many chunks", func(m *Manifest) { m.Chunks = append(m.Chunks, chunk.ID{}) }, "chunks"},
		{"exact multiple", func(m *Manifest) { m.Size = 2 << 20 }, ""},
		{"one over multiple", func(m *Manifest) { m.Size = 2<<20 + 1 }, "chunks"},
		{"empty object", func(m *Manifest) { m.Size, m.Chunks = 0, nil }, ""},
		{"empty object with chunk", func(m *Manifest) { m.Size, m.Chunks = 0, m.Chunks[:1] }, "chunks"},
		{"tombstone", func(m *Manifest) { *m = Manifest{Name: "a", Stamp: m.Stamp, Tombstone: true} }, ""},
		{"tombstone chunk size", func(m *Manifest) { *m = Manifest{Name: "a", Stamp: m.Stamp, Tombstone: true, ChunkSize: 1 << 20} }, ""},
		{"tombstone size", func(m *Manifest) { m.Tombstone, m.Chunks = true, nil }, "tombstone has size"},
		{"tombstone chunks", func(m *Manifest) { m.Tombstone, m.Size = true, 0 }, "tombstone has 2 chunks"},
		{"tombstone sha", func(m *Manifest) { m.Tombstone, m.Size, m.Chunks = true, 0, nil }, "sha256"},
		{"content type max", func(m *Manifest) { m.ContentType = strings.Repeat("c", maxContentTypeLen) }, ""},
		{"content type too long", func(m *Manifest) { m.ContentType = strings.Repeat("c", maxContentTypeLen+1) }, "content type"},
		{"meta max", func(m *Manifest) { m.Meta = manyMeta(maxMetaPairs) }, ""},
		{"meta too many", func(m *Manifest) { m.Meta = manyMeta(maxMetaPairs + 1) }, "meta"},
		{"meta key max", func(m *Manifest) { m.Meta = []Meta{{strings.Repeat("k", maxMetaKeyLen), "v"}} }, ""},
		{"meta key too long", func(m *Manifest) { m.Meta = []Meta{{strings.Repeat("k", maxMetaKeyLen+1), "v"}} }, "meta"},
		{"meta key empty", func(m *Manifest) { m.Meta = []Meta{{"", "v"}} }, "meta"},
		{"meta value max", func(m *Manifest) { m.Meta = []Meta{{"k", strings.Repeat("v", maxMetaValueLen)}} }, ""},
		{"meta value too long", func(m *Manifest) { m.Meta = []Meta{{"k", strings.Repeat("v", maxMetaValueLen+1)}} }, "meta"},
		{"meta unsorted", func(m *Manifest) { m.Meta[0], m.Meta[1] = m.Meta[1], m.Meta[0] }, "sorted"},
		{"meta duplicate", func(m *Manifest) { m.Meta[1].Key = m.Meta[0].Key }, "sorted"},
		{"expires negative", func(m *Manifest) { m.Expires = -1 }, "expires"},
		{"signature short", func(m *Manifest) { m.Signature = m.Signature[:10] }, "signature"},
		{"unsigned", func(m *Manifest) { m.Signature = nil }, ""},
		{"encoding too big", func(m *Manifest) {
			m.ChunkSize, m.Size = 1, maxEncodedLen/32
			m.Chunks = make([]chunk.ID, m.Size)
		}, "encoded size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := goldenManifest(t)
			tc.edit(m)
			err := m.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want ErrMalformed mentioning %q", err, tc.field)
			}
			if _, derr := Decode(m.Encode()); !errors.Is(derr, ErrMalformed) {
				t.Fatalf("Decode of invalid manifest = %v, want ErrMalformed", derr)
			}
		})
	}
}

func manyMeta(n int) []Meta {
	meta := make([]Meta, n)
	for i := range meta {
		meta[i] = Meta{Key: string(rune('A'+i/26)) + string(rune('a'+i%26)), Value: "v"}
	}
	return meta
}

func TestDecodeStrict(t *testing.T) {
	good := goldenManifest(t).Encode()
	nameLen := len(goldenManifest(t).Name)
	flagAt := len(good) - 1 - signatureLen - 32 - 1
	prefix := 1 + bytesLen(nameLen) + 8 + 2 + bytesLen(len("gloria-eu")) + 8 + 4 // up to the chunk count
	unsorted := goldenManifest(t)
	unsorted.Meta[0], unsorted.Meta[1] = unsorted.Meta[1], unsorted.Meta[0]
	cases := []struct {
		name string
		b    []byte
		why  string
	}{
		{"empty", nil, "format version: truncated"},
		{"version only", []byte{FormatVersion}, "name: bad varint"},
		{"unknown version", append([]byte{2}, good[1:]...), "unknown format version 2"},
		{"version zero", append([]byte{0}, good[1:]...), "unknown format version 0"},
		{"trailing byte", append(bytes.Clone(good), 0), "1 trailing bytes"},
		{"truncated", good[:len(good)-1], "signature: truncated"},
		{"no signature", good[:len(good)-signatureLen-1], "signature: bad varint"},
		{"non-minimal varint", append([]byte{FormatVersion, byte(nameLen) | 0x80, 0x00}, good[2:]...), "non-minimal varint"},
		{"flags unknown bit", append(append(bytes.Clone(good[:flagAt]), 3), good[flagAt+1:]...), "unknown bits 0x2"},
		{"huge chunk count", append(bytes.Clone(good[:prefix]), 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3), "chunks: truncated"},
		{"unsorted meta", unsorted.Encode(), "not sorted"},
		{"too large", make([]byte, maxEncodedLen+1), "exceed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.b)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Decode = %v, %v; want ErrMalformed mentioning %q", m, err, tc.why)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(goldenManifest(f).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatalf("Encode(Decode(b)) != b")
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Decode accepted a manifest that fails Validate: %v", err)
		}
		if m.ID() != chunk.ID(sha256.Sum256(b)) {
			t.Fatalf("ID() is not the SHA-256 of the encoding")
		}
		_ = m.Verify() // must not panic
	})
}

// TestFuzzSeedsValid keeps the accept path covered by the checked-in corpus.
func TestFuzzSeedsValid(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "valid-*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no valid seeds: %v", err)
	}
	for _, path := range paths {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(text)), "go test fuzz v1\n[]byte(")
		b, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if !ok || err != nil {
			t.Fatalf("%s: not a []byte seed: %v", path, err)
		}
		if _, err := Decode([]byte(b)); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestParsePublicKey(t *testing.T) {
	k := testKey(t, 1).PublicKey()
	lower := hex.EncodeToString(k[:])
	cases := []struct {
		in string
		ok bool
	}{
		{"ed25519:" + lower, true},
		{"ed25519:" + strings.ToUpper(lower), true},
		{"ED25519:" + lower, false},
		{lower, false},
		{"ed25519:" + lower[:62], false},
		{"ed25519:" + lower + "00", false},
		{"ed25519:" + lower[:63] + "g", false},
		{"ed25519: " + lower[1:], false},
		{"", false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePublicKey(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrBadKey) {
					t.Fatalf("ParsePublicKey = %v, %v; want ErrBadKey", got, err)
				}
				return
			}
			if err != nil || got != k || got.String() != "ed25519:"+lower {
				t.Fatalf("ParsePublicKey = %v, %v; want %v", got, err, k)
			}
		})
	}
}

func TestKeyPair(t *testing.T) {
	if _, err := KeyPairFromSeed(make([]byte, 31)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("KeyPairFromSeed(31 bytes) = %v, want ErrBadKey", err)
	}
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	again, err := KeyPairFromSeed(k.Seed())
	if err != nil || again.PublicKey() != k.PublicKey() {
		t.Fatalf("KeyPairFromSeed(Seed()) = %v, %v; want same public key", again, err)
	}
	msg := []byte("hello")
	sig := k.Sign(msg)
	if !k.PublicKey().Verify(msg, sig) || k.PublicKey().Verify([]byte("hellO"), sig) ||
		k.PublicKey().Verify(msg, sig[:63]) || testKey(t, 1).PublicKey().Verify(msg, sig) {
		t.Fatalf("PublicKey.Verify gives wrong answers")
	}
}

func TestExpiry(t *testing.T) {
	at := time.UnixMilli(1795219200000)
	cases := []struct {
		name             string
		expires          int64
		tomb             bool
		expired, deleted bool
	}{
		{"never", 0, false, false, false},
		{"future", at.UnixMilli() + 1, false, false, false},
		{"exactly now", at.UnixMilli(), false, true, true},
		{"past", 1, false, true, true},
		{"tombstone", 0, true, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manifest{Expires: tc.expires, Tombstone: tc.tomb}
			if m.Expired(at) != tc.expired || m.Deleted(at) != tc.deleted {
				t.Fatalf("Expired, Deleted = %v, %v; want %v, %v", m.Expired(at), m.Deleted(at), tc.expired, tc.deleted)
			}
		})
	}
}

func TestSortNewestFirst(t *testing.T) {
	var ms []*Manifest
	for _, i := range []int{3, 0, 7, 12, 5, 1} {
		ms = append(ms, &Manifest{Stamp: orderedStamps[i]})
	}
	SortNewestFirst(ms)
	for i := 1; i < len(ms); i++ {
		if !Newer(ms[i-1], ms[i]) || Newer(ms[i], ms[i-1]) {
			t.Fatalf("not newest first at %d: %s then %s", i, ms[i-1].Version(), ms[i].Version())
		}
	}
	if ms[0].Version() != orderedStamps[12].String() {
		t.Fatalf("newest = %s", ms[0].Version())
	}
}
