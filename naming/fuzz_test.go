package naming

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// FuzzParseName checks object names as every entry point takes them
// (HTTP paths, manifests from peers, share requests): errors wrap
// ErrBadName; an accepted name keeps the documented rules (UTF-8, at
// most MaxNameLen bytes, no control characters, a valid domain, no
// empty, "." or ".." segment) and splits into Domain and Path that
// join back to it.
func FuzzParseName(f *testing.F) {
	for _, s := range fuzzNameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v does not wrap ErrBadName", err)
			}
			if !n.IsZero() {
				t.Fatalf("ParseName(%q) failed but returned %q", s, n)
			}
			return
		}
		switch {
		case n.String() != s:
			t.Fatalf("ParseName(%q).String() = %q", s, n)
		case len(s) > MaxNameLen || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
			t.Fatalf("ParseName accepted %q", s)
		case n.Domain()+"/"+n.Path() != s:
			t.Fatalf("Domain %q + Path %q != %q", n.Domain(), n.Path(), s)
		case CheckDomain(n.Domain()) != nil:
			t.Fatalf("ParseName(%q) accepted domain %q", s, n.Domain())
		}
		for _, seg := range strings.Split(n.Path(), "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("ParseName(%q) accepted segment %q", s, seg)
			}
		}
		if h := n.Hash(); h.Partition() < 0 || h.Partition() >= Partitions {
			t.Fatalf("partition %d", h.Partition())
		}
	})
}

func fuzzNameSeeds() []string {
	return []string{
		"gloria.eu/bootes-2/2026/11/21/img-0001.fits",
		"a/b", "a/ü/日本", "gloria.eu/x/../y", "gloria.eu//x", "gloria.eu/x/", "Gloria.eu/x",
		"gloria.eu/x\x00y", "gloria.eu", "/x", "gloria.eu/\xff", "a." + strings.Repeat("b", 63) + "/x",
		"gloria.eu/" + strings.Repeat("x", MaxNameLen-10),
	}
}

// FuzzDecodeMissing checks the 'i' values of the incomplete-version
// tracker read back from Pebble: a value decodes only at its exact
// length, re-encodes to itself, and errors wrap chunk.ErrCorrupt.
func FuzzDecodeMissing(f *testing.F) {
	for _, b := range fuzzMissingSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMissing(b)
		if err != nil {
			if !errors.Is(err, chunk.ErrCorrupt) {
				t.Fatalf("error %v does not wrap chunk.ErrCorrupt", err)
			}
			return
		}
		if got := m.encode(); !bytes.Equal(got, b) {
			t.Fatalf("encode(decode(%x)) = %x", b, got)
		}
	})
}

func fuzzMissingSeeds() [][]byte {
	return [][]byte{missing{chunks: 3, bytes: 3 << 20}.encode(), missing{}.encode(), {1, 2, 3}, nil}
}

// FuzzStampKeyOrder checks the property the version index relies on:
// the byte order of version keys ('v' + name hash + stampKey) is the
// order of the stamps, so the last key under a name is its latest
// version. Stamps are as ParseStamp reads them from peers and requests.
func FuzzStampKeyOrder(f *testing.F) {
	for _, p := range fuzzStampPairs() {
		f.Add(p[0], p[1])
	}
	h := MustParseName("gloria.eu/x").Hash()
	f.Fuzz(func(t *testing.T, a, b string) {
		sa, errA := manifest.ParseStamp(a)
		sb, errB := manifest.ParseStamp(b)
		if errA != nil || errB != nil {
			return
		}
		ka, kb := versionKey(h, sa), versionKey(h, sb)
		if got, want := bytes.Compare(ka, kb), sa.Compare(sb); got != want {
			t.Fatalf("stamps %s, %s compare %d, their keys %d", sa, sb, want, got)
		}
		if !bytes.HasPrefix(ka, versionPrefix(h)) || bytes.Compare(ka, prefixEnd(versionPrefix(h))) >= 0 {
			t.Fatalf("key %x outside its name's range", ka)
		}
	})
}

func fuzzStampPairs() [][2]string {
	return [][2]string{
		{"1763765000000.0000.alpha", "1763765000000.0001.alpha"},
		{"1763765000000.0000.alpha", "1763765000000.0000.alpha-2"},
		{"1763765000000.0000.b", "1763765000000.0000.a-b"},
		{"0000000000000.0000.a", "9999999999999.9999.zzzz"},
		{"1763765000000.0000.a", "1763765000000.0000.a"},
	}
}
