package manifest

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

var parseStampCases = []struct {
	in   string
	want Stamp
	ok   bool
}{
	{"0000000000000.0000.a", Stamp{0, 0, "a"}, true},
	{"1795219200000.0007.gloria-eu", Stamp{1795219200000, 7, "gloria-eu"}, true},
	{"9999999999999.9999." + strings.Repeat("z", 32), Stamp{maxWallMS, maxCounter, strings.Repeat("z", 32)}, true},
	{"", Stamp{}, false},
	{"1795219200000.0007.", Stamp{}, false},
	{"1795219200000.0007", Stamp{}, false},
	{"179521920000.0007.a", Stamp{}, false},   // 12 digits
	{"17952192000000.0007.a", Stamp{}, false}, // 14 digits
	{"1795219200000.007.a", Stamp{}, false},
	{"1795219200000.00007.a", Stamp{}, false},
	{"+795219200000.0007.a", Stamp{}, false},
	{"-795219200000.0007.a", Stamp{}, false},
	{"1795219200000.-007.a", Stamp{}, false},
	{"1795219200000_0007.a", Stamp{}, false},
	{"1795219200000.0007_a", Stamp{}, false},
	{"1795219200000.0007.Gloria", Stamp{}, false},
	{"1795219200000.0007.a.b", Stamp{}, false},
	{"1795219200000.0007.a ", Stamp{}, false},
	{"1795219200000.0007." + strings.Repeat("z", 33), Stamp{}, false},
	{"179521920000٠.0007.a", Stamp{}, false}, // Arabic-Indic digit
}

func TestParseStamp(t *testing.T) {
	for _, tc := range parseStampCases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseStamp(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrBadStamp) {
					t.Fatalf("ParseStamp(%q) = %v, %v; want ErrBadStamp", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseStamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Fatalf("String() = %q, want %q", s, tc.in)
			}
		})
	}
}

// orderedStamps is in strictly increasing version order.
var orderedStamps = []Stamp{
	{0, 0, "a"},
	{0, 0, "a-b"},
	{0, 0, "ab"},
	{0, 0, "b"},
	{0, 1, "0"},
	{0, 9999, "a"},
	{1, 0, "a"},
	{999, 0, "a"},
	{1000, 0, "a"},
	{1795219200000, 0, "z"},
	{1795219200000, 10, "a"},
	{1795219200000, 100, "a"},
	{maxWallMS, maxCounter, "zzz"},
}

func TestStampOrder(t *testing.T) {
	for i, a := range orderedStamps {
		for j, b := range orderedStamps {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
			if got := strings.Compare(a.String(), b.String()); got != want {
				t.Errorf("strings.Compare(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestStampTime(t *testing.T) {
	s := Stamp{WallMS: 1795219200123, Origin: "a"}
	if got := s.Time().UnixMilli(); got != s.WallMS {
		t.Fatalf("Time().UnixMilli() = %d, want %d", got, s.WallMS)
	}
}

func TestValidSiteID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "gloria-eu": true, "0-9": true, strings.Repeat("x", 32): true,
		"": false, "A": false, "a_b": false, "a.b": false, "é": false, strings.Repeat("x", 33): false,
	} {
		if got := ValidSiteID(id); got != want {
			t.Errorf("ValidSiteID(%q) = %v, want %v", id, got, want)
		}
	}
}

// fakeTime is a settable wall clock for Clock tests.
type fakeTime struct{ ms int64 }

func (f *fakeTime) now() time.Time { return time.UnixMilli(f.ms) }

// clockStep sets the wall clock, optionally observes a stamp, then calls Now.
type clockStep struct {
	wall    int64
	observe *Stamp
	want    Stamp
}

var clockCases = []struct {
	name  string
	steps []clockStep
}{
	{"follows wall clock", []clockStep{
		{wall: 1000, want: Stamp{1000, 0, "s"}},
		{wall: 2000, want: Stamp{2000, 0, "s"}},
	}},
	{"same millisecond bumps counter", []clockStep{
		{wall: 1000, want: Stamp{1000, 0, "s"}},
		{wall: 1000, want: Stamp{1000, 1, "s"}},
		{wall: 1000, want: Stamp{1000, 2, "s"}},
	}},
	{"monotonic when wall clock goes backwards", []clockStep{
		{wall: 5000, want: Stamp{5000, 0, "s"}},
		{wall: 4000, want: Stamp{5000, 1, "s"}},
		{wall: 3000, want: Stamp{5000, 2, "s"}},
		{wall: 5001, want: Stamp{5001, 0, "s"}},
	}},
	{"observe future stamp", []clockStep{
		{wall: 1000, want: Stamp{1000, 0, "s"}},
		{wall: 1000, observe: &Stamp{9000, 3, "other"}, want: Stamp{9000, 4, "s"}},
		{wall: 1001, want: Stamp{9000, 5, "s"}},
		{wall: 9001, want: Stamp{9001, 0, "s"}},
	}},
	{"observe past stamp changes nothing", []clockStep{
		{wall: 5000, want: Stamp{5000, 0, "s"}},
		{wall: 5000, observe: &Stamp{4000, 99, "other"}, want: Stamp{5000, 1, "s"}},
	}},
	{"observe same millisecond higher counter", []clockStep{
		{wall: 5000, want: Stamp{5000, 0, "s"}},
		{wall: 5000, observe: &Stamp{5000, 42, "a"}, want: Stamp{5000, 43, "s"}},
	}},
	{"observe ignores out-of-range stamps", []clockStep{
		{wall: 5000, observe: &Stamp{maxWallMS + 1, 0, "a"}, want: Stamp{5000, 0, "s"}},
		{wall: 5000, observe: &Stamp{-1, 0, "a"}, want: Stamp{5000, 1, "s"}},
		{wall: 5000, observe: &Stamp{6000, maxCounter + 1, "a"}, want: Stamp{5000, 2, "s"}},
	}},
	{"counter overflow bumps wall", []clockStep{
		{wall: 7000, observe: &Stamp{7000, 9998, "a"}, want: Stamp{7000, 9999, "s"}},
		{wall: 7000, want: Stamp{7001, 0, "s"}},
		{wall: 7000, want: Stamp{7001, 1, "s"}},
	}},
	{"wall clock before epoch", []clockStep{
		{wall: -5, want: Stamp{0, 1, "s"}},
		{wall: -5, want: Stamp{0, 2, "s"}},
	}},
	{"saturates at the last stamp", []clockStep{
		{wall: 1, observe: &Stamp{maxWallMS, maxCounter, "a"}, want: Stamp{maxWallMS, maxCounter, "s"}},
		{wall: maxWallMS + 10, want: Stamp{maxWallMS, maxCounter, "s"}},
	}},
}

func TestClock(t *testing.T) {
	for _, tc := range clockCases {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTime{}
			c := NewClock("s", ft.now)
			for i, st := range tc.steps {
				ft.ms = st.wall
				if st.observe != nil {
					c.Observe(*st.observe)
				}
				if got := c.Now(); got != st.want {
					t.Fatalf("step %d: Now() = %v, want %v", i, got, st.want)
				}
			}
		})
	}
}

func TestClockNilNow(t *testing.T) {
	c := NewClock("s", nil)
	a, b := c.Now(), c.Now()
	if a.Compare(b) >= 0 || a.check() != nil {
		t.Fatalf("Now() = %v then %v, want valid increasing stamps", a, b)
	}
}

func TestClockConcurrent(t *testing.T) {
	ft := &fakeTime{ms: 1000} // frozen wall clock: every stamp comes from the counter
	c := NewClock("s", ft.now)
	const workers, each = 4, 500
	stamps := make([][]Stamp, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				stamps[w] = append(stamps[w], c.Now())
			}
		})
	}
	wg.Wait()
	seen := make(map[Stamp]bool)
	for w := range stamps {
		for i, s := range stamps[w] {
			if seen[s] {
				t.Fatalf("stamp %v issued twice", s)
			}
			seen[s] = true
			if i > 0 && stamps[w][i-1].Compare(s) >= 0 {
				t.Fatalf("worker %d: %v then %v", w, stamps[w][i-1], s)
			}
		}
	}
}

func FuzzParseStamp(f *testing.F) {
	for _, tc := range parseStampCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseStamp(s)
		if err != nil {
			if !errors.Is(err, ErrBadStamp) {
				t.Fatalf("ParseStamp(%q) error %v does not wrap ErrBadStamp", s, err)
			}
			return
		}
		if got := st.String(); got != s {
			t.Fatalf("ParseStamp(%q).String() = %q", s, got)
		}
		if err := st.check(); err != nil {
			t.Fatalf("ParseStamp(%q) = %v, which fails check: %v", s, st, err)
		}
	})
}
