package naming

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"time"
)

// Header values are text in a manifest (as the FITS header wrote them);
// the find index types them by one rule, applied alike to what it
// indexes and to what a query asks for, so "30", "30.0" and "3.0D1" are
// the same number and "2026-11-21" takes in every time of that day:
//
//   - T and F are booleans;
//   - what parses as a decimal number (FITS's D exponent too) is a
//     number; RA and DEC written sexagesimally ("10:42:44.3",
//     "+41 16 09") are numbers in degrees, RA's hours times 15;
//   - ISO dates and times (2026-11-21, 2026-11-21T03:04:05.5) and the
//     old FITS dd/mm/yy are times, in UTC;
//   - everything else is a string, compared without regard to case.
//
// Every value is also indexed as its string, so a prefix ("DATE-OBS=
// 2026-11*") matches numbers and dates as they were written.

// Value kinds, the tag byte of an index entry: kinds never compare with
// each other.
const (
	kindString = 's'
	kindNumber = 'n'
	kindTime   = 't'
	kindBool   = 'b'
)

// maxFindValue bounds the indexed length of a string value (a FITS card
// holds at most 68 characters of value).
const maxFindValue = 72

// typedValue is a value as the index orders it: a kind and an encoding
// whose byte order is the kind's order. A time given to a lower
// precision (a day) stands for the span [enc, end).
type typedValue struct {
	kind byte
	enc  []byte
	end  []byte // exclusive end of a time of lower precision; nil: the value alone
}

// stringValue returns the string form of text as indexed, and whether
// it can be indexed (printable, bounded).
func stringValue(text string) ([]byte, bool) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > maxFindValue {
		return nil, false
	}
	for i := 0; i < len(text); i++ {
		if text[i] < 0x20 || text[i] > 0x7e {
			return nil, false
		}
	}
	return []byte(strings.ToUpper(text)), true
}

// typeValue types text, a value of header keyword field (lower case),
// by the rule above; ok is false for what cannot be indexed.
func typeValue(field, text string) (typedValue, bool) {
	text = strings.TrimSpace(text)
	switch text {
	case "T":
		return typedValue{kind: kindBool, enc: []byte{1}}, true
	case "F":
		return typedValue{kind: kindBool, enc: []byte{0}}, true
	}
	if f, ok := parseNumber(text); ok {
		return typedValue{kind: kindNumber, enc: orderedFloat(f)}, true
	}
	if f, ok := parseSexagesimal(field, text); ok {
		return typedValue{kind: kindNumber, enc: orderedFloat(f)}, true
	}
	if from, to, ok := parseTime(text); ok {
		return typedValue{kind: kindTime, enc: orderedInt(from), end: orderedInt(to)}, true
	}
	s, ok := stringValue(text)
	return typedValue{kind: kindString, enc: s}, ok
}

// parseNumber reads a FITS decimal number: Go's syntax without
// underscores, hex or the special values, with D for E allowed.
func parseNumber(s string) (float64, bool) {
	if s == "" || len(s) > 40 || strings.ContainsAny(s, "_xXpPiInN") {
		return 0, false
	}
	s = strings.NewReplacer("D", "E", "d", "e").Replace(s)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// parseSexagesimal reads "h:m:s" or "h m s" (RA, in hours) and
// "±d:m:s" (DEC, in degrees) into degrees.
func parseSexagesimal(field, s string) (float64, bool) {
	if field != "ra" && field != "dec" {
		return 0, false
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ' ' })
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	neg := strings.HasPrefix(parts[0], "-")
	var v float64
	for i, p := range parts {
		f, ok := parseNumber(p)
		if !ok || i > 0 && (f < 0 || f >= 60 || strings.HasPrefix(p, "+")) {
			return 0, false
		}
		v += math.Abs(f) / math.Pow(60, float64(i))
	}
	if neg {
		v = -v
	}
	if field == "ra" {
		v *= 15
	}
	return v, true
}

// timeLayouts are the forms of a time a value may take, each with the
// span a value of that precision stands for.
var timeLayouts = []struct {
	layout string
	span   time.Duration
}{
	{"2006-01-02T15:04:05.999999999Z07:00", 0},
	{"2006-01-02T15:04:05.999999999", 0},
	{"2006-01-02T15:04Z07:00", time.Minute},
	{"2006-01-02T15:04", time.Minute},
	{"2006-01-02", 24 * time.Hour},
	{"02/01/06", 24 * time.Hour}, // FITS's dd/mm/yy, 1900–1999
}

// parseTime reads a time in microseconds since the epoch, UTC, as the
// span [from, to) it stands for (to = from+1 for a full time).
func parseTime(s string) (from, to int64, ok bool) {
	// Every layout starts with two digits, then a digit or '/'.
	if len(s) < 8 || len(s) > 40 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) && s[2] != '/' {
		return 0, 0, false
	}
	for _, l := range timeLayouts {
		t, err := time.Parse(l.layout, s)
		if err != nil {
			continue
		}
		if l.layout == "02/01/06" && t.Year() >= 2000 {
			t = t.AddDate(-100, 0, 0)
		}
		from = t.UTC().UnixMicro()
		return from, from + max(1, l.span.Microseconds()), true
	}
	return 0, 0, false
}

// orderedFloat encodes f so that byte order is numeric order.
func orderedFloat(f float64) []byte {
	if f == 0 {
		f = 0 // -0 and 0 are one number
	}
	b := math.Float64bits(f)
	if b>>63 == 1 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(nil, b)
}

// floatFrom decodes orderedFloat.
func floatFrom(enc []byte) float64 {
	b := binary.BigEndian.Uint64(enc)
	if b>>63 == 1 {
		b &^= 1 << 63
	} else {
		b = ^b
	}
	return math.Float64frombits(b)
}

// orderedInt encodes n so that byte order is numeric order.
func orderedInt(n int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(n)^1<<63)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
