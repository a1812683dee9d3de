package naming

import (
	"errors"
	"strings"
	"testing"
)

var nameCases = []struct {
	in     string
	ok     bool
	domain string
}{
	{"gloria.eu/bootes-2/2026/11/21/img-0001.fits", true, "gloria.eu"},
	{"gloria.eu/a", true, "gloria.eu"},
	{"obs/ünïcode/ß.fits", true, "obs"},
	{"", false, ""},
	{"gloria.eu", false, ""},
	{"gloria.eu/", false, ""},
	{"gloria.eu//a", false, ""},
	{"gloria.eu/a/", false, ""},
	{"gloria.eu/./a", false, ""},
	{"gloria.eu/a/..", false, ""},
	{"Gloria.eu/a", false, ""},
	{"glo_ria/a", false, ""},
	{".eu/a", false, ""},
	{"gloria.eu/a\x00b", false, ""},
	{"gloria.eu/a\nb", false, ""},
	{"gloria.eu/a\x7fb", false, ""},
	{"gloria.eu/\xff", false, ""},
	{"gloria.eu/" + strings.Repeat("a", MaxNameLen-10), true, "gloria.eu"},
	{"gloria.eu/" + strings.Repeat("a", MaxNameLen-9), false, ""},
}

func TestParseName(t *testing.T) {
	for _, tc := range nameCases {
		t.Run(truncate(tc.in, 30), func(t *testing.T) {
			n, err := ParseName(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("ParseName(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrBadName) {
					t.Fatalf("error %v is not ErrBadName", err)
				}
				return
			}
			if n.String() != tc.in || n.Domain() != tc.domain || tc.domain+"/"+n.Path() != tc.in {
				t.Fatalf("parsed %q as domain %q path %q", tc.in, n.Domain(), n.Path())
			}
		})
	}
}

func TestNameHashAndPartition(t *testing.T) {
	a, b := MustParseName("gloria.eu/a"), MustParseName("gloria.eu/b")
	if a.Hash() == b.Hash() || a.Hash() != MustParseName("gloria.eu/a").Hash() {
		t.Fatal("name hashes are not a function of the name")
	}
	seen := map[int]bool{}
	for i := range 5000 {
		p := MustParseName("d/" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + strings.Repeat("y", i/50)).Hash().Partition()
		if p < 0 || p >= Partitions {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p] = true
	}
	if len(seen) < Partitions/2 {
		t.Fatalf("5000 names fell in only %d partitions", len(seen))
	}
}
