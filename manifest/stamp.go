package manifest

import (
	"cmp"
	"fmt"
	"strings"
	"sync"
	"time"
)

const (
	maxWallMS    = 9_999_999_999_999 // 13 decimal digits: year 2286
	maxCounter   = 9_999
	maxSiteIDLen = 32
	wallDigits   = 13
	counterDigit = 4
)

// Stamp is a hybrid-logical-clock version stamp plus its origin site.
// Stamps are totally ordered by Compare, and their String forms sort
// lexically in the same order.
type Stamp struct {
	WallMS  int64  // unix milliseconds, 0..9999999999999
	Counter uint16 // 0..9999
	Origin  string // site ID, [a-z0-9-]{1,32}
}

// String formats the stamp as "%013d.%04d.%s".
func (s Stamp) String() string {
	return fmt.Sprintf("%0*d.%0*d.%s", wallDigits, s.WallMS, counterDigit, s.Counter, s.Origin)
}

// ParseStamp is the strict inverse of Stamp.String.
func ParseStamp(s string) (Stamp, error) {
	const originAt = wallDigits + 1 + counterDigit + 1
	if len(s) <= originAt || s[wallDigits] != '.' || s[originAt-1] != '.' {
		return Stamp{}, fmt.Errorf("%w: %q: want 13 digits, '.', 4 digits, '.', site ID", ErrBadStamp, clip(s))
	}
	wall, ok1 := parseDigits(s[:wallDigits])
	counter, ok2 := parseDigits(s[wallDigits+1 : originAt-1])
	if !ok1 || !ok2 {
		return Stamp{}, fmt.Errorf("%w: %q: wall clock and counter must be decimal digits", ErrBadStamp, clip(s))
	}
	st := Stamp{WallMS: wall, Counter: uint16(counter), Origin: s[originAt:]}
	if !ValidSiteID(st.Origin) {
		return Stamp{}, fmt.Errorf("%w: %q: origin is not a site ID [a-z0-9-]{1,32}", ErrBadStamp, clip(s))
	}
	return st, nil
}

func parseDigits(s string) (int64, bool) {
	var v int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int64(s[i]-'0')
	}
	return v, true
}

// Compare orders stamps by WallMS, then Counter, then Origin (bytewise),
// returning -1, 0 or 1.
func (s Stamp) Compare(o Stamp) int {
	if c := cmp.Compare(s.WallMS, o.WallMS); c != 0 {
		return c
	}
	if c := cmp.Compare(s.Counter, o.Counter); c != 0 {
		return c
	}
	return strings.Compare(s.Origin, o.Origin)
}

// Time returns the wall-clock part of the stamp.
func (s Stamp) Time() time.Time { return time.UnixMilli(s.WallMS) }

// check reports why s is out of range, wrapping ErrBadStamp.
func (s Stamp) check() error {
	switch {
	case s.WallMS < 0 || s.WallMS > maxWallMS:
		return fmt.Errorf("%w: wall clock %d outside 0..%d", ErrBadStamp, s.WallMS, maxWallMS)
	case s.Counter > maxCounter:
		return fmt.Errorf("%w: counter %d exceeds %d", ErrBadStamp, s.Counter, maxCounter)
	case !ValidSiteID(s.Origin):
		return fmt.Errorf("%w: origin %q is not a site ID [a-z0-9-]{1,32}", ErrBadStamp, clip(s.Origin))
	}
	return nil
}

// ValidSiteID reports whether id matches [a-z0-9-]{1,32}.
func ValidSiteID(id string) bool {
	if len(id) == 0 || len(id) > maxSiteIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// Clock is a hybrid logical clock issuing stamps for one origin site.
// It is safe for concurrent use.
type Clock struct {
	origin string
	now    func() time.Time

	mu      sync.Mutex
	wall    int64  // highest (wall, counter) issued or observed
	counter uint16 // so far
}

// NewClock returns a clock stamping with origin, which should satisfy
// ValidSiteID (stamps with a bad origin fail Manifest.Validate).
// now reads the wall clock; nil means time.Now.
func NewClock(origin string, now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{origin: origin, now: now}
}

// Now returns a stamp strictly greater than every stamp the clock has
// issued or observed. It follows the wall clock when that is ahead, and
// otherwise advances the counter; past counter 9999 it moves one
// millisecond ahead of the wall clock. Only if the clock has reached the
// last representable stamp (year 2286, or a peer's stamp that far ahead)
// does it repeat that stamp.
func (c *Clock) Now() Stamp {
	pt := min(max(c.now().UnixMilli(), 0), maxWallMS)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.wall:
		c.wall, c.counter = pt, 0
	case c.counter < maxCounter:
		c.counter++
	case c.wall < maxWallMS:
		c.wall, c.counter = c.wall+1, 0
	}
	return Stamp{WallMS: c.wall, Counter: c.counter, Origin: c.origin}
}

// Observe merges a stamp received from elsewhere (the HLC receive rule),
// so later stamps from Now sort after it. Origin is ignored, and so are
// stamps outside the valid range.
func (c *Clock) Observe(s Stamp) {
	if s.WallMS < 0 || s.WallMS > maxWallMS || s.Counter > maxCounter {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.WallMS > c.wall || (s.WallMS == c.wall && s.Counter > c.counter) {
		c.wall, c.counter = s.WallMS, s.Counter
	}
}
