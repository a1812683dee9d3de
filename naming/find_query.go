package naming

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrBadQuery marks a find query that cannot be parsed or run.
var ErrBadQuery = errors.New("bad query")

// Predicate is one condition of a find: a header keyword compared with
// values, or a cone on RA/DEC.
type Predicate struct {
	Field  string   // header keyword in lower case ("date-obs"); "" for a cone
	Op     string   // "=", "<", "<=", ">", ">=", "in", "prefix", "cone"
	Values []string // one, or the list of "in"
	Cone   Cone
}

// Cone is a circle on the sky: its centre and radius, in degrees.
type Cone struct{ RA, Dec, Radius float64 }

// maxInValues bounds the list of an "in".
const maxInValues = 256

// fieldChars are those of a FITS keyword (A-Z 0-9 - _), in any case.
func validField(f string) bool {
	if f == "" || len(f) > 32 {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ParsePredicate reads one condition: KEY=VALUE, KEY=PREFIX*, KEY<V,
// KEY<=V, KEY>V, KEY>=V, or KEY in (A,B,…). KEY is a header keyword in
// any case (fits.KEY also); a value may be quoted ('NGC 224' or "…") to
// keep blanks, commas or a final * as they are.
func ParsePredicate(s string) (Predicate, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (Predicate, error) {
		return Predicate{}, fmt.Errorf("%w: %q: %s (e.g. 'FILTER=R', 'EXPTIME>=30', 'DATE-OBS>=2026-11-01', 'OBJECT=NGC*', 'FILTER in (R,V)')", ErrBadQuery, s, why)
	}
	at := strings.IndexAny(s, "=<>!")
	if at < 0 {
		if i := strings.Index(asciiLower(s), " in "); i > 0 {
			return parseIn(s[:i], s[i+4:], bad)
		}
		return bad("no comparison")
	}
	field := strings.TrimSpace(s[:at])
	op := s[at : at+1]
	rest := s[at+1:]
	if strings.HasPrefix(rest, "=") && op != "=" {
		op += "="
		rest = rest[1:]
	}
	if op == "!" || op == "!=" {
		return bad("!= is not supported")
	}
	field, ok := fieldName(field)
	if !ok {
		return bad("the keyword must be a FITS keyword such as OBJECT or DATE-OBS")
	}
	val, quoted, err := unquote(strings.TrimSpace(rest))
	if err != nil {
		return bad(err.Error())
	}
	if op == "=" && !quoted && strings.HasSuffix(val, "*") {
		prefix := strings.TrimSuffix(val, "*")
		if strings.ContainsAny(prefix, "*") {
			return bad("only a final * is a wildcard")
		}
		return Predicate{Field: field, Op: "prefix", Values: []string{prefix}}, nil
	}
	if val == "" {
		return bad("no value")
	}
	if _, ok := typeValue(field, val); !ok {
		return bad("the value cannot be compared (too long, or not printable)")
	}
	return Predicate{Field: field, Op: op, Values: []string{val}}, nil
}

// asciiLower lowers ASCII letters only, so that indexes into it are
// indexes into s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// fieldName returns a keyword as the index keys it, dropping a
// "fits." before it.
func fieldName(f string) (string, bool) {
	f = strings.TrimPrefix(asciiLower(f), FITSMetaPrefix)
	return f, validField(f)
}

// parseIn reads the list of KEY in (A, B, …).
func parseIn(field, list string, bad func(string) (Predicate, error)) (Predicate, error) {
	field, ok := fieldName(strings.TrimSpace(field))
	if !ok {
		return bad("the keyword must be a FITS keyword such as FILTER")
	}
	list = strings.TrimSpace(list)
	if len(list) < 2 || list[0] != '(' || list[len(list)-1] != ')' {
		return bad("in takes a list in parentheses")
	}
	var vals []string
	for _, item := range splitList(list[1 : len(list)-1]) {
		v, _, err := unquote(strings.TrimSpace(item))
		if err != nil {
			return bad(err.Error())
		}
		if _, ok := typeValue(field, v); !ok {
			return bad(fmt.Sprintf("value %q cannot be compared", v))
		}
		vals = append(vals, v)
	}
	if len(vals) == 0 || len(vals) > maxInValues {
		return bad(fmt.Sprintf("in takes 1 to %d values", maxInValues))
	}
	return Predicate{Field: field, Op: "in", Values: vals}, nil
}

// splitList splits at commas outside quotes.
func splitList(s string) []string {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == 0 && c == ',':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote strips one pair of quotes ('…' or "…"), a doubled quote
// inside read as one.
func unquote(s string) (string, bool, error) {
	if s == "" || s[0] != '\'' && s[0] != '"' {
		return s, false, nil
	}
	q := s[:1]
	if len(s) < 2 || !strings.HasSuffix(s, q) {
		return "", false, errors.New("unterminated quote")
	}
	inner := s[1 : len(s)-1]
	if strings.Contains(strings.ReplaceAll(inner, q+q, ""), q) {
		return "", false, errors.New("a quote inside a value is written twice")
	}
	return strings.ReplaceAll(inner, q+q, q), true, nil
}

// ParseCone reads RA,DEC,RADIUS: the centre in degrees (or
// sexagesimally, RA in hours: 00:42:44.3,+41:16:09) and the radius in
// degrees.
func ParseCone(s string) (Predicate, error) {
	bad := func(why string) (Predicate, error) {
		return Predicate{}, fmt.Errorf("%w: cone %q: %s (want RA,DEC,RADIUS in degrees, e.g. 10.684,41.269,0.5)", ErrBadQuery, s, why)
	}
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return bad("three numbers")
	}
	coord := func(field, v string) (float64, bool) {
		v = strings.TrimSpace(v)
		if f, ok := parseNumber(v); ok {
			return f, true
		}
		return parseSexagesimal(field, v)
	}
	ra, ok1 := coord("ra", parts[0])
	dec, ok2 := coord("dec", parts[1])
	r, ok3 := parseNumber(strings.TrimSpace(parts[2]))
	switch {
	case !ok1 || !ok2 || !ok3:
		return bad("not a number")
	case dec < -90 || dec > 90:
		return bad("DEC outside -90..90")
	case r <= 0 || r > 180:
		return bad("radius outside (0, 180]")
	}
	ra = math.Mod(ra, 360)
	if ra < 0 {
		ra += 360
	}
	return Predicate{Op: "cone", Cone: Cone{RA: ra, Dec: dec, Radius: r}}, nil
}

// String writes p back as ParsePredicate reads it.
func (p Predicate) String() string {
	quote := func(v string) string {
		if v == "" || strings.ContainsAny(v, " ,'\"*()") {
			return "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		return v
	}
	key := strings.ToUpper(p.Field)
	switch p.Op {
	case "cone":
		return fmt.Sprintf("cone %g,%g,%g", p.Cone.RA, p.Cone.Dec, p.Cone.Radius)
	case "prefix":
		return key + "=" + p.Values[0] + "*" // never quoted: a quoted value ending in * is no prefix
	case "in":
		qs := make([]string, len(p.Values))
		for i, v := range p.Values {
			qs[i] = quote(v)
		}
		return key + " in (" + strings.Join(qs, ",") + ")"
	}
	return key + p.Op + quote(p.Values[0])
}
