package naming

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzParsePredicate checks the find query parser on any text (CLI
// arguments and ?q= values): errors wrap ErrBadQuery; an accepted
// predicate has a valid keyword, writes back (String) to text that
// parses to the same predicate, and compiles to sorted, disjoint,
// non-empty index spans inside its keyword's part of the index.
func FuzzParsePredicate(f *testing.F) {
	for _, s := range []string{
		"TELESCOP=BOOTES-2", "DATE-OBS>=2026-11-01", "FILTER in (R,V)", "OBJECT=NGC*", "OBJECT='NGC 224'",
		"EXPTIME<3.0D1", "RA>10:42:44", "DEC<=-41 16 09", "FILTER IN ('a,b', \"c\")", "X=*", "X=''", "X='a''b'",
		"DATE-OBS=21/11/98", "SIMPLE=T", "X<=", "x in ()", "=", "a=b=c", "A>=>", "NAXIS1>-0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePredicate(s)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("error %v does not wrap ErrBadQuery", err)
			}
			return
		}
		if !validField(p.Field) {
			t.Fatalf("%q: keyword %q accepted", s, p.Field)
		}
		again, err := ParsePredicate(p.String())
		if err != nil {
			t.Fatalf("%q wrote back as %q, which does not parse: %v", s, p.String(), err)
		}
		if again.Field != p.Field || again.Op != p.Op || !slices.Equal(again.Values, p.Values) {
			t.Fatalf("%q → %+v → %q → %+v", s, p, p.String(), again)
		}
		spans, err := p.spans()
		if err != nil {
			t.Fatalf("%q: parsed but does not compile: %v", s, err)
		}
		field := append([]byte{prefixFind}, p.Field...)
		field = append(field, 0)
		for i, sp := range spans {
			if sp.hi != nil && bytes.Compare(sp.lo, sp.hi) > 0 {
				t.Fatalf("%q: span %d runs backwards", s, i)
			}
			if i > 0 && bytes.Compare(spans[i-1].hi, sp.lo) > 0 {
				t.Fatalf("%q: spans overlap or are unsorted", s)
			}
			if !bytes.HasPrefix(sp.lo, field) || sp.hi != nil && bytes.Compare(sp.hi, prefixEnd(field)) > 0 {
				t.Fatalf("%q: span %d leaves the keyword's entries", s, i)
			}
		}
	})
}

// FuzzParseCone checks cones as --cone and ?cone= take them: an
// accepted cone is on the sky, its spans are sorted and hold its
// centre.
func FuzzParseCone(f *testing.F) {
	for _, s := range []string{"10.684,41.269,0.5", "00:42:44.3,+41:16:09,0.1", "359.9,0,1", "0,90,180", "1,2", "a,b,c", "-0,-90,1e-9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCone(s)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("error %v does not wrap ErrBadQuery", err)
			}
			return
		}
		c := p.Cone
		if c.RA < 0 || c.RA >= 360 || c.Dec < -90 || c.Dec > 90 || c.Radius <= 0 || c.Radius > 180 {
			t.Fatalf("%q: accepted %+v", s, c)
		}
		centre := append(conePrefix(zoneOf(c.Dec), c.RA), orderedFloat(c.Dec)...)
		if !c.holds(centre) || !inSpans(c.spans(), centre) {
			t.Fatalf("%q: the cone's spans miss its centre", s)
		}
	})
}

// FuzzTypeValue checks the typing of header values: the encodings of
// numbers keep their order, and no value breaks the index key layout.
func FuzzTypeValue(f *testing.F) {
	for _, s := range []string{"30", "3.0D1", "-0", "1e308", "10:42:44.3", "-41 16 09", "2026-11-21", "2026-11-21T03:04:05.5", "21/11/98", "T", "M31", ""} {
		f.Add("ra", s, "1.5")
	}
	f.Fuzz(func(t *testing.T, field, a, b string) {
		ta, oka := typeValue(field, a)
		tb, okb := typeValue(field, b)
		if oka && ta.kind == kindString && bytes.IndexByte(ta.enc, 0) >= 0 {
			t.Fatalf("%q: a string value holds 0, which ends strings in keys", a)
		}
		if oka && okb && ta.kind == kindNumber && tb.kind == kindNumber {
			fa, fb := floatFrom(ta.enc), floatFrom(tb.enc)
			if (fa < fb) != (bytes.Compare(ta.enc, tb.enc) < 0) {
				t.Fatalf("%q (%v) and %q (%v) encode out of order", a, fa, b, fb)
			}
		}
		if oka && ta.kind == kindTime && bytes.Compare(ta.enc, ta.end) >= 0 {
			t.Fatalf("%q: an empty time span", a)
		}
	})
}
