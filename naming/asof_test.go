package naming

import (
	"testing"
	"time"

	"github.com/skyfed/skyfed/manifest"
)

func TestParseAsOf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want manifest.Stamp
		ok   bool
	}{
		{"1763765000123.0007.alpha", manifest.Stamp{WallMS: 1763765000123, Counter: 7, Origin: "alpha"}, true},
		{"2026-12-06T21:00:00Z", manifest.Stamp{WallMS: time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC).UnixMilli(), Counter: 9999, Origin: "~"}, true},
		{"2026-12-06T21:00:00.5+01:00", manifest.Stamp{WallMS: time.Date(2026, 12, 6, 20, 0, 0, 5e8, time.UTC).UnixMilli(), Counter: 9999, Origin: "~"}, true},
		{"2026-12-06", manifest.Stamp{}, false},
		{"yesterday", manifest.Stamp{}, false},
		{"", manifest.Stamp{}, false},
	} {
		got, err := ParseAsOf(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseAsOf(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	// A time is after every stamp of its millisecond.
	at, _ := ParseAsOf("2026-12-06T21:00:00Z")
	last := manifest.Stamp{WallMS: at.WallMS, Counter: 9999, Origin: "zzzz"}
	if last.Compare(at) > 0 {
		t.Errorf("stamp %s sorts after as-of %s of its millisecond", last, at)
	}
}

// FuzzParseAsOf: ?as_of= never panics the parser, and what it accepts
// is a version stamp it reads back as given, or a time's point (after
// every site ID).
func FuzzParseAsOf(f *testing.F) {
	for _, s := range []string{"1763765000123.0007.alpha", "2026-12-06T21:00:00Z", "9999-12-31T23:59:59.999999999-23:59", "-0001-01-01T00:00:00Z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		at, err := ParseAsOf(s)
		if err != nil {
			return
		}
		if at.Origin != "~" && at.String() != s {
			t.Fatalf("%q read as stamp %s", s, at)
		}
	})
}
