package site

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/skyfed/skyfed/forward"
)

// Defaults of the self-healing and space keys of skyfed.toml.
const (
	DefaultScrubInterval = 30 * 24 * time.Hour // a full background scrub pass
	DefaultScrubRate     = 50_000_000          // bytes per second the background scrub may read
	DefaultGCGrace       = 7 * 24 * time.Hour  // hidden versions and unreferenced chunks kept this long
	DefaultGCInterval    = 24 * time.Hour      // background garbage collection
	// The free space puts and replication leave on the disk: the smaller
	// of these two.
	DefaultDiskReserveBytes   = 1 << 30
	DefaultDiskReservePercent = 2
)

// ScrubEvery is how often the background scrub makes a full pass
// (scrub_interval; 0 turns it off).
func (c *Config) ScrubEvery() time.Duration {
	return durationOr(c.ScrubInterval, DefaultScrubInterval)
}

// ScrubBytesPerSecond is the background scrub's read rate (scrub_rate).
func (c *Config) ScrubBytesPerSecond() uint64 {
	if c.ScrubRate == "" {
		return DefaultScrubRate
	}
	r, err := forward.ParseRate(c.ScrubRate)
	if err != nil || r == 0 {
		return DefaultScrubRate
	}
	return r
}

// Grace is how long garbage collection keeps a hidden version or an
// unreferenced chunk (gc_grace).
func (c *Config) Grace() time.Duration { return durationOr(c.GCGrace, DefaultGCGrace) }

// GCEvery is how often the background garbage collection runs
// (gc_interval; 0 turns it off).
func (c *Config) GCEvery() time.Duration { return durationOr(c.GCInterval, DefaultGCInterval) }

// DiskReserveFor returns the bytes to keep free on a disk of the given
// size (disk_reserve: a size such as "1GiB", or a percentage such as
// "2%"; by default the smaller of 1 GiB and 2 %).
func (c *Config) DiskReserveFor(diskBytes uint64) uint64 {
	if bytes, pct, err := parseReserve(c.DiskReserve); err == nil && c.DiskReserve != "" {
		if pct > 0 {
			return uint64(float64(diskBytes) * pct / 100)
		}
		return bytes
	}
	return min(DefaultDiskReserveBytes, diskBytes*DefaultDiskReservePercent/100)
}

func durationOr(v string, def time.Duration) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return def
	}
	return d
}

// parseReserve reads disk_reserve: "N%" or a size with an optional
// unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).
func parseReserve(v string) (bytes uint64, percent float64, err error) {
	v = strings.TrimSpace(v)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(f >= 0 && f < 100) { // NaN fails both
			return 0, 0, fmt.Errorf("disk_reserve %q: a percentage must be 0..99%%", v)
		}
		return 0, f, nil
	}
	num := strings.TrimRightFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(v[len(num):])
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("disk_reserve %q must be a size such as \"1GiB\" or a percentage such as \"2%%\"", v)
	}
	mult := map[string]uint64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	if mult == 0 {
		return 0, 0, fmt.Errorf("disk_reserve %q: unknown unit %q (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", v, unit)
	}
	if n > math.MaxUint64/mult {
		return 0, 0, fmt.Errorf("disk_reserve %q is too large", v)
	}
	return n * mult, 0, nil
}

// validateHealing checks the self-healing and space keys.
func (c *Config) validateHealing() error {
	for _, d := range []struct{ key, v string }{
		{"scrub_interval", c.ScrubInterval}, {"gc_grace", c.GCGrace}, {"gc_interval", c.GCInterval},
	} {
		if d.v == "" {
			continue
		}
		if dur, err := time.ParseDuration(d.v); err != nil || dur < 0 {
			return fmt.Errorf("%w: %s %q must be a duration such as \"24h\" (0 turns it off)", ErrBadConfig, d.key, d.v)
		}
	}
	if c.ScrubRate != "" {
		if r, err := forward.ParseRate(c.ScrubRate); err != nil || r == 0 {
			return fmt.Errorf("%w: scrub_rate %q must be a rate such as \"50MB/s\"", ErrBadConfig, c.ScrubRate)
		}
	}
	if c.DiskReserve != "" {
		if _, _, err := parseReserve(c.DiskReserve); err != nil {
			return fmt.Errorf("%w: %w", ErrBadConfig, err)
		}
	}
	return nil
}
