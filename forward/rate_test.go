package forward

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward/wire"
	"go.uber.org/goleak"
)

var parseRateCases = []struct {
	in   string
	want uint64
}{
	{"50MB/s", 50e6},
	{"50mb", 50e6},
	{"10 MiB/s", 10485760},
	{"1Mbit/s", 125000},
	{"8kbit/s", 1000},
	{"1.5GB/s", 1.5e9},
	{"0", 0},
	{"0MB/s", 0},
	{"0.0 GiB", 0},
	{"100", 100},
	{"100B/s", 100},
	{" 2 KiB/S ", 2048},
	{"1gbit", 125e6},
	{".5KB", 500},
	{"12bit/s", 2},         // 1.5 bytes rounds half up
	{"10bit", 1},           // 1.25 bytes rounds down
	{"1.0000001MB/s", 1e6}, // fractions of a byte round to the nearest
	{"18446744073709551615", 1<<64 - 1},
}

var parseRateErrors = []string{
	"", "fast", "-1MB/s", "5 parsecs", "1e999GB", "MB/s", "NaN", "Inf", "1..5MB", ".", "1.2.3",
	"18446744073709551616", "20000000000GB", "1bit", "0.4", "5 MB/s/s", "5  MB", "5MB/h", "+5MB",
}

func TestParseRate(t *testing.T) {
	for _, tc := range parseRateCases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
	for _, in := range parseRateErrors {
		t.Run("bad "+in, func(t *testing.T) {
			got, err := ParseRate(in)
			if !errors.Is(err, ErrBadRate) || !strings.Contains(err.Error(), "MiB") {
				t.Fatalf("ParseRate(%q) = %d, %v; want ErrBadRate saying what is accepted", in, got, err)
			}
		})
	}
}

func TestFormatRate(t *testing.T) {
	cases := []struct {
		bps  uint64
		want string
	}{
		{0, "unlimited"},
		{1, "1 B/s"},
		{100, "100 B/s"},
		{999, "999 B/s"},
		{1000, "1 KB/s"},
		{1001, "1.001 KB/s"},
		{2048, "2 KiB/s"},
		{125000, "125 KB/s"},
		{1024000, "1.024 MB/s"},
		{1234567, "1234.567 KB/s"},
		{50e6, "50 MB/s"},
		{10485760, "10 MiB/s"},
		{1.5e9, "1.5 GB/s"},
		{2e9, "2 GB/s"},
		{1 << 30, "1 GiB/s"},
		{1<<64 - 1, "18446744073709551.615 KB/s"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			if got := FormatRate(tc.bps); got != tc.want {
				t.Fatalf("FormatRate(%d) = %q, want %q", tc.bps, got, tc.want)
			}
		})
	}
}

func TestFormatRateParsesBack(t *testing.T) {
	for bps := uint64(1); bps < 1<<60; bps = bps*3 + bps/7 + 1 {
		s := FormatRate(bps)
		if back, err := ParseRate(s); err != nil || back != bps {
			t.Fatalf("ParseRate(FormatRate(%d) = %q) = %d, %v", bps, s, back, err)
		}
	}
}

// rateClock is a fake Clock moved by hand. onNow, if set, runs inside Now.
type rateClock struct {
	mu    sync.Mutex
	now   time.Time
	onNow func()
}

func newRateClock() *rateClock {
	return &rateClock{now: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}
}

func (c *rateClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.onNow != nil {
		c.onNow()
	}
	return c.now
}

func (c *rateClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rateSendFor sends frames through l as fast as it allows for a simulated span,
// advancing clk by every delay, and returns the bytes sent.
func rateSendFor(l *Limiter, clk *rateClock, span time.Duration, frame int) uint64 {
	var sent uint64
	var elapsed time.Duration
	for {
		d := l.Reserve(frame)
		if elapsed+d > span {
			return sent
		}
		clk.advance(d)
		elapsed += d
		sent += uint64(frame)
	}
}

func TestLimiterThroughput(t *testing.T) {
	const span = 10 * time.Second
	for _, bps := range []uint64{1000, 125000, 10e6, 1e9} {
		t.Run(FormatRate(bps), func(t *testing.T) {
			clk := newRateClock()
			l := NewLimiter(bps, clk)
			sent := rateSendFor(l, clk, span, wire.FrameSize)
			want := bps * uint64(span/time.Second)
			burst := uint64(rateBurst(bps))
			if sent+wire.FrameSize < want || sent > want+burst+wire.FrameSize {
				t.Fatalf("sent %d bytes in %v at %d B/s, want %d within burst %d", sent, span, bps, want, burst)
			}
		})
	}
}

func TestLimiterBurstFitsFrames(t *testing.T) {
	clk := newRateClock()
	l := NewLimiter(1000, clk) // far below a frame per second
	for i := range 2 {
		if d := l.Reserve(wire.FrameSize); d != 0 {
			t.Fatalf("frame %d from a rested bucket waits %v", i, d)
		}
	}
	if d := l.Reserve(wire.FrameSize); d != wire.FrameSize*time.Second/1000 {
		t.Fatalf("third frame waits %v, want %v", d, wire.FrameSize*time.Second/1000)
	}
	// Resting refills the bucket, never beyond the burst.
	clk.advance(time.Hour)
	for i := range 2 {
		if d := l.Reserve(wire.FrameSize); d != 0 {
			t.Fatalf("after rest, frame %d waits %v", i, d)
		}
	}
	if d := l.Reserve(1000); d != time.Second {
		t.Fatalf("after rest, the bucket held more than its burst: wait %v", d)
	}
}

func TestLimiterUnlimited(t *testing.T) {
	clk := newRateClock()
	l := NewLimiter(0, clk)
	for range 1000 {
		if d := l.Reserve(1 << 30); d != 0 {
			t.Fatalf("unlimited limiter waits %v", d)
		}
	}
	if err := l.Wait(context.Background(), 1<<30); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if l.Rate() != 0 {
		t.Fatalf("Rate = %d", l.Rate())
	}
	if d := NewLimiter(1000, clk).Reserve(0); d != 0 {
		t.Fatalf("Reserve(0) waits %v", d)
	}
}

func TestLimiterSetRate(t *testing.T) {
	clk := newRateClock()
	l := NewLimiter(1e6, clk)
	rateSendFor(l, clk, time.Second, wire.FrameSize) // drain the burst
	l.SetRate(10e6)
	if l.Rate() != 10e6 {
		t.Fatalf("Rate = %d after SetRate(10e6)", l.Rate())
	}
	sent := rateSendFor(l, clk, 10*time.Second, wire.FrameSize)
	if sent < 100e6-2*wire.FrameSize || sent > 100e6+uint64(rateBurst(10e6))+wire.FrameSize {
		t.Fatalf("sent %d bytes in 10 s after SetRate(10 MB/s)", sent)
	}

	l.SetRate(0)
	if d := l.Reserve(1 << 30); d != 0 {
		t.Fatalf("after SetRate(0) Reserve waits %v", d)
	}
	l.SetRate(1000)
	if d := l.Reserve(int(rateBurst(1000)) + 1000); d != time.Second {
		t.Fatalf("after SetRate(1000) from unlimited, burst+1000 bytes wait %v, want 1s", d)
	}
	l.SetRate(2000) // the debt is now paid at the new rate
	if d := l.Reserve(1000); d != time.Second {
		t.Fatalf("after SetRate(2000), 1000 more bytes wait %v, want 1s", d)
	}
}

func TestLimiterWaitCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := newRateClock()
	l := NewLimiter(1000, clk)
	l.Reserve(int(rateBurst(1000))) // empty bucket

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, wire.FrameSize); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled ctx = %v", err)
	}

	// Cancel while Wait is about to sleep: it must return, and give the
	// tokens back.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	clk.onNow = cancel
	if err := l.Wait(ctx, wire.FrameSize); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait cancelled while sleeping = %v", err)
	}
	clk.onNow = nil
	if d := l.Reserve(1000); d != time.Second {
		t.Fatalf("after cancelled Waits, 1000 bytes wait %v, want 1s (tokens not given back)", d)
	}
}

func TestLimiterWaitRealClock(t *testing.T) {
	l := NewLimiter(1e9, nil)
	for range 3 {
		if err := l.Wait(context.Background(), wire.FrameSize); err != nil {
			t.Fatalf("Wait within the burst = %v", err)
		}
	}
}

func TestLimiterConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := newRateClock()
	l := NewLimiter(1e6, clk)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				l.Reserve(1000)
				if i%50 == 0 {
					l.SetRate(uint64(1e6 + g))
				}
				clk.advance(time.Millisecond)
				_ = l.Rate()
			}
		})
	}
	wg.Wait()
	// 800 KB reserved over 0.8 s simulated at ~1 MB/s from a full bucket:
	// no debt left, so a byte goes at once.
	if d := l.Reserve(1); d != 0 {
		t.Fatalf("after concurrent use, Reserve(1) waits %v", d)
	}
}
