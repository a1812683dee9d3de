package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadSize is returned (wrapped) for a size that does not parse.
var ErrBadSize = errors.New("bad size")

// ByteSize is a count of bytes that parses from text such as "1GiB",
// "256MiB", "8MB", "4096" or "1.5GiB" (binary units KiB…TiB, decimal
// kB…TB, plain B). It implements encoding.TextUnmarshaler, so kong flags
// can use it directly.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseSize parses s as a ByteSize; it must be positive.
func ParseSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if n := v * mult; err != nil || !(n >= 1 && n <= 1<<62) { // also refuses NaN
		return 0, fmt.Errorf("%w: %q (use e.g. 1GiB, 256MiB, 8MB or a byte count)", ErrBadSize, s)
	}
	return ByteSize(v * mult), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String formats b with the largest binary unit that keeps it ≥ 1.
func (b ByteSize) String() string {
	v := float64(b)
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if v < 1024 {
			return trimFloat(v) + " " + u
		}
		v /= 1024
	}
	return trimFloat(v) + " TiB"
}

func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0")
}
