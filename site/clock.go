package site

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// maxClockSkew is how far ahead of this site's clock a received stamp
// may be (naming's MaxSkew, set from here), and so how far this site's
// clock may run ahead of its peers' before they refuse its versions.
const maxClockSkew = 5 * time.Minute

// ErrClockAhead means this site's clock runs ahead of its peers' by more
// than they accept: its puts would be stamped in their future, acked
// here and refused everywhere else.
var ErrClockAhead = errors.New("this site's clock is ahead of its peers'")

// now is the site's wall clock: the real one, shifted by
// Options.ClockOffset in tests. Stamps, expiry and the skew check all
// read it, so a shifted site behaves as one whose clock is wrong.
func (s *Site) now() time.Time { return time.Now().Add(s.opts.ClockOffset) }

// checkClock returns an error wrapping ErrClockAhead when this site's
// clock is more than maxClockSkew ahead of the median of its up peers'
// clocks (as measured on the links), and nil otherwise or with no up
// peer to compare with. The median, so one peer with a wrong clock
// cannot stop a site's puts.
func (s *Site) checkClock() error {
	offsets := s.node.PeerClockOffsets() // peer minus this site
	if len(offsets) == 0 {
		return nil
	}
	ahead := make([]time.Duration, 0, len(offsets))
	for _, off := range offsets {
		ahead = append(ahead, -off)
	}
	slices.Sort(ahead)
	median := ahead[len(ahead)/2]
	if len(ahead)%2 == 0 {
		median = (ahead[len(ahead)/2-1] + median) / 2
	}
	if median <= maxClockSkew {
		return nil
	}
	return fmt.Errorf("%w: this site's clock is %s ahead of the median of its %d up peers (allowed %s); fix the clock (NTP) — puts are refused until then",
		ErrClockAhead, median.Round(time.Second), len(ahead), maxClockSkew)
}
