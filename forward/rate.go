package forward

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/skyfed/skyfed/forward/wire"
)

// ErrBadRate reports a link rate that does not parse. It is returned
// wrapped with what is accepted.
var ErrBadRate = errors.New("bad rate")

const rateHelp = `want a number of bytes per second with an optional unit ` +
	`B, KB, MB, GB (×1000), KiB, MiB, GiB (×1024) or bit, kbit, Mbit, Gbit, ` +
	`and optional "/s", e.g. "50MB/s", "10 MiB/s", "1Mbit/s"; 0 means unlimited`

// rateUnits maps a lowercased unit to bytes per unit, as a fraction
// (numerator, denominator) so that bits stay exact.
var rateUnits = map[string][2]int64{
	"": {1, 1}, "b": {1, 1},
	"kb": {1e3, 1}, "mb": {1e6, 1}, "gb": {1e9, 1},
	"kib": {1 << 10, 1}, "mib": {1 << 20, 1}, "gib": {1 << 30, 1},
	"bit": {1, 8}, "kbit": {1e3, 8}, "mbit": {1e6, 8}, "gbit": {1e9, 8},
}

// ParseRate parses a --max-rate value into bytes per second: a decimal
// number (fractions allowed) with an optional unit B, KB, MB, GB (×1000),
// KiB, MiB, GiB (×1024) or bit, kbit, Mbit, Gbit (×1000, /8), an optional
// "/s", case-insensitive, optionally a space between number and unit. A
// bare number is bytes. "0" (with or without a unit) means unlimited and
// returns 0. Fractional bytes round to the nearest byte; a nonzero rate
// below 1 byte/s, a negative one, one that overflows 64 bits or anything
// else is an error wrapping ErrBadRate.
func ParseRate(s string) (uint64, error) {
	bad := func(why string) (uint64, error) {
		return 0, fmt.Errorf("%w %q: %s; %s", ErrBadRate, clip(s), why, rateHelp)
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "/s")
	end := strings.IndexFunc(t, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
	if end < 0 {
		end = len(t)
	}
	num, unit := t[:end], strings.TrimPrefix(t[end:], " ")
	if strings.Trim(num, ".") == "" || strings.Count(num, ".") > 1 {
		return bad("no number")
	}
	factor, ok := rateUnits[unit]
	if !ok {
		return bad(fmt.Sprintf("unknown unit %q", clip(unit)))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("not a number")
	}
	if r.Sign() == 0 {
		return 0, nil
	}
	r.Mul(r, big.NewRat(factor[0], factor[1]))
	// Round half up: floor(r + 1/2).
	r.Add(r, big.NewRat(1, 2))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	switch {
	case !n.IsUint64():
		return bad("too large")
	case n.Sign() == 0:
		return bad("below 1 byte/s (0 means unlimited)")
	}
	return n.Uint64(), nil
}

// FormatRate returns bps in a human form that ParseRate reads back
// exactly: "unlimited" for 0, else, at the largest magnitude (G, M, K)
// where one fits, a whole number of decimal or binary units ("50 MB/s",
// "10 MiB/s") or a decimal unit with up to three decimals ("1.5 GB/s");
// bytes below 1000 ("100 B/s").
func FormatRate(bps uint64) string {
	if bps == 0 {
		return "unlimited"
	}
	levels := []struct {
		dec, bin         uint64
		decName, binName string
	}{{1e9, 1 << 30, "GB", "GiB"}, {1e6, 1 << 20, "MB", "MiB"}, {1e3, 1 << 10, "KB", "KiB"}}
	for _, lv := range levels {
		switch {
		case bps >= lv.dec && bps%lv.dec == 0:
			return fmt.Sprintf("%d %s/s", bps/lv.dec, lv.decName)
		case bps >= lv.bin && bps%lv.bin == 0:
			return fmt.Sprintf("%d %s/s", bps/lv.bin, lv.binName)
		case bps >= lv.dec && bps%(lv.dec/1000) == 0:
			frac := strings.TrimRight(fmt.Sprintf("%03d", bps%lv.dec/(lv.dec/1000)), "0")
			return fmt.Sprintf("%d.%s %s/s", bps/lv.dec, frac, lv.decName)
		}
	}
	return fmt.Sprintf("%d B/s", bps)
}

// Clock is the time source of a Limiter (a fake one in tests).
type Clock interface {
	Now() time.Time
}

type limiterClock struct{}

func (limiterClock) Now() time.Time { return time.Now() }

// Limiter is a token bucket over bytes, safe for concurrent use. The
// bucket holds at most a burst of max(rate/8, 2×wire.FrameSize) bytes: about
// 1/8 s of traffic, and never less than two frames, so a full frame is
// always sendable at once from a rested bucket even on a 1 Mbit/s link.
// Reservations may take the bucket into debt; the debt is paid off at the
// rate before the next reservation can go out, so a caller that waits for
// what Reserve returns sends at most rate×t + burst bytes in any t.
type Limiter struct {
	clk Clock

	mu     sync.Mutex
	bps    uint64 // 0: unlimited
	burst  float64
	tokens float64 // may be negative: debt
	last   time.Time
}

// NewLimiter returns a limiter at bps bytes per second (0: unlimited, never
// waits) with a full bucket. A nil clk means the real clock.
func NewLimiter(bps uint64, clk Clock) *Limiter {
	if clk == nil {
		clk = limiterClock{}
	}
	l := &Limiter{clk: clk, last: clk.Now()}
	l.setRate(bps)
	l.tokens = l.burst
	return l
}

func rateBurst(bps uint64) float64 {
	return math.Max(float64(bps)/8, 2*wire.FrameSize)
}

// refill adds the tokens earned since the last call. l.mu must be held.
func (l *Limiter) refill() {
	now := l.clk.Now()
	if elapsed := now.Sub(l.last); elapsed > 0 && l.bps > 0 {
		l.tokens = math.Min(l.burst, l.tokens+elapsed.Seconds()*float64(l.bps))
	}
	if now.After(l.last) {
		l.last = now
	}
}

// Reserve takes n bytes of tokens (possibly into debt) and returns how long
// the caller must wait before sending them: 0 means now.
func (l *Limiter) Reserve(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bps == 0 || n <= 0 {
		return 0
	}
	l.refill()
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	wait := -l.tokens * float64(time.Second) / float64(l.bps)
	if wait >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(wait))
}

// Wait reserves n bytes and sleeps until they may be sent. If ctx ends
// first it returns ctx.Err() and gives the tokens back, since the caller
// will not send them.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := l.Reserve(n)
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.refund(n)
		return ctx.Err()
	}
}

func (l *Limiter) refund(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bps > 0 {
		l.refill()
		l.tokens = math.Min(l.burst, l.tokens+float64(n))
	}
}

// SetRate changes the rate on the fly (config reload). Tokens earned so far
// count at the old rate; the burst follows the new rate.
func (l *Limiter) SetRate(bps uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill()
	wasUnlimited := l.bps == 0
	l.setRate(bps)
	if wasUnlimited {
		l.tokens = l.burst
	}
	l.tokens = math.Min(l.tokens, l.burst)
}

func (l *Limiter) setRate(bps uint64) {
	l.bps = bps
	l.burst = rateBurst(bps)
}

// Rate returns the current rate in bytes per second, 0 for unlimited.
func (l *Limiter) Rate() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bps
}

// clip shortens what a user typed for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
