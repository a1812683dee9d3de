package naming

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/manifest"
)

func TestParsePredicate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Predicate
		err  bool
	}{
		{in: "TELESCOP=BOOTES-2", want: Predicate{Field: "telescop", Op: "=", Values: []string{"BOOTES-2"}}},
		{in: " filter = R ", want: Predicate{Field: "filter", Op: "=", Values: []string{"R"}}},
		{in: "fits.object=M31", want: Predicate{Field: "object", Op: "=", Values: []string{"M31"}}},
		{in: "DATE-OBS>=2026-11-01", want: Predicate{Field: "date-obs", Op: ">=", Values: []string{"2026-11-01"}}},
		{in: "EXPTIME<30", want: Predicate{Field: "exptime", Op: "<", Values: []string{"30"}}},
		{in: "EXPTIME<=30", want: Predicate{Field: "exptime", Op: "<=", Values: []string{"30"}}},
		{in: "EXPTIME>3.0D1", want: Predicate{Field: "exptime", Op: ">", Values: []string{"3.0D1"}}},
		{in: "OBJECT=NGC*", want: Predicate{Field: "object", Op: "prefix", Values: []string{"NGC"}}},
		{in: "OBJECT=*", want: Predicate{Field: "object", Op: "prefix", Values: []string{""}}},
		{in: "OBJECT='NGC 224'", want: Predicate{Field: "object", Op: "=", Values: []string{"NGC 224"}}},
		{in: `OBJECT="it's"`, want: Predicate{Field: "object", Op: "=", Values: []string{"it's"}}},
		{in: "OBJECT='a*'", want: Predicate{Field: "object", Op: "=", Values: []string{"a*"}}},
		{in: "FILTER in (R,V)", want: Predicate{Field: "filter", Op: "in", Values: []string{"R", "V"}}},
		{in: "FILTER IN ( R , 'B,V' )", want: Predicate{Field: "filter", Op: "in", Values: []string{"R", "B,V"}}},
		{in: "FILTER", err: true},
		{in: "=R", err: true},
		{in: "FILTER=", err: true},
		{in: "FILTER!=R", err: true},
		{in: "FIL TER=R", err: true},
		{in: "OBJECT='M31", err: true},
		{in: "OBJECT=a*b*", err: true},
		{in: "FILTER in R,V", err: true},
		{in: "FILTER in ()", err: true},
		{in: "OBJECT=" + strings.Repeat("x", 80), err: true},
	} {
		got, err := ParsePredicate(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("%q: parsed as %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got.Field != tc.want.Field || got.Op != tc.want.Op || !slices.Equal(got.Values, tc.want.Values) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseCone(t *testing.T) {
	for _, tc := range []struct {
		in         string
		ra, dec, r float64
		err        bool
	}{
		{in: "10.684,41.269,0.5", ra: 10.684, dec: 41.269, r: 0.5},
		{in: "00:42:44.3, +41:16:09, 0.1", ra: (42 + 44.3/60) / 60 * 15, dec: 41 + 16.0/60 + 9.0/3600, r: 0.1},
		{in: "-10,-20,1", ra: 350, dec: -20, r: 1},
		{in: "10,91,1", err: true},
		{in: "10,20", err: true},
		{in: "10,20,0", err: true},
		{in: "x,20,1", err: true},
	} {
		p, err := ParseCone(tc.in)
		if tc.err != (err != nil) {
			t.Errorf("%q: error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && (math.Abs(p.Cone.RA-tc.ra) > 1e-9 || math.Abs(p.Cone.Dec-tc.dec) > 1e-9 || p.Cone.Radius != tc.r) {
			t.Errorf("%q: got %+v", tc.in, p.Cone)
		}
	}
}

func TestTypeValue(t *testing.T) {
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		field, in string
		kind      byte
		num       float64
		from, to  time.Time
	}{
		{field: "exptime", in: "30", kind: kindNumber, num: 30},
		{field: "exptime", in: "30.0", kind: kindNumber, num: 30},
		{field: "exptime", in: "3.0D1", kind: kindNumber, num: 30},
		{field: "exptime", in: "-1.5E-3", kind: kindNumber, num: -1.5e-3},
		{field: "object", in: "NaN", kind: kindString},
		{field: "object", in: "0x1F", kind: kindString},
		{field: "ra", in: "10:42:44.3", kind: kindNumber, num: (10 + 42.0/60 + 44.3/3600) * 15},
		{field: "dec", in: "-41 16 09", kind: kindNumber, num: -(41 + 16.0/60 + 9.0/3600)},
		{field: "object", in: "10:42:44", kind: kindString},
		{field: "dec", in: "+41:75:00", kind: kindString},
		{field: "simple", in: "T", kind: kindBool},
		{field: "date-obs", in: "2026-11-21", kind: kindTime, from: day, to: day.AddDate(0, 0, 1)},
		{field: "date-obs", in: "2026-11-21T03:04:05.5", kind: kindTime, from: day.Add(3*time.Hour + 4*time.Minute + 5500*time.Millisecond)},
		{field: "date-obs", in: "21/11/98", kind: kindTime, from: time.Date(1998, 11, 21, 0, 0, 0, 0, time.UTC), to: time.Date(1998, 11, 22, 0, 0, 0, 0, time.UTC)},
		{field: "object", in: "M31", kind: kindString},
	} {
		tv, ok := typeValue(tc.field, tc.in)
		if !ok || tv.kind != tc.kind {
			t.Errorf("%s=%q: kind %c (ok %v), want %c", tc.field, tc.in, tv.kind, ok, tc.kind)
			continue
		}
		switch tc.kind {
		case kindNumber:
			if got := floatFrom(tv.enc); math.Abs(got-tc.num) > 1e-9 {
				t.Errorf("%s=%q: %v, want %v", tc.field, tc.in, got, tc.num)
			}
		case kindTime:
			to := tc.to
			if to.IsZero() {
				to = tc.from.Add(time.Microsecond)
			}
			if !bytes.Equal(tv.enc, orderedInt(tc.from.UnixMicro())) || !bytes.Equal(tv.end, orderedInt(to.UnixMicro())) {
				t.Errorf("%s=%q: span wrong", tc.field, tc.in)
			}
		}
	}
}

// frameMeta is the header values of a synthetic frame i: a few objects,
// filters and exposures, times over a month, positions over the sky
// (some sexagesimal, some through RA 0h and near the pole).
func frameMeta(r *rand.Rand) []manifest.Meta {
	objects := []string{"M31", "M33", "NGC 224", "NGC 7331", "m31", "Vega"}
	filters := []string{"R", "V", "B", "I", "T"}
	ra, dec := r.Float64()*360, math.Asin(2*r.Float64()-1)*180/math.Pi
	if r.IntN(4) == 0 { // a cluster near M31, some across RA 0h
		ra, dec = math.Mod(10.684+r.NormFloat64()*2+360, 360), 41.269+r.NormFloat64()*2
	}
	raText := fmt.Sprintf("%.6f", ra)
	if r.IntN(3) == 0 {
		h := ra / 15
		raText = fmt.Sprintf("%02d:%02d:%06.3f", int(h), int(h*60)%60, math.Mod(h*3600, 60))
	}
	at := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(40*24*3600)) * time.Second)
	meta := []manifest.Meta{
		{Key: "fits.object", Value: objects[r.IntN(len(objects))]},
		{Key: "fits.filter", Value: filters[r.IntN(len(filters))]},
		{Key: "fits.exptime", Value: fmt.Sprint([]float64{1, 5, 30, 30.0, 120, 0.5}[r.IntN(6)])},
		{Key: "fits.date-obs", Value: at.Format("2006-01-02T15:04:05.000")},
		{Key: "fits.ra", Value: raText},
		{Key: "fits.dec", Value: fmt.Sprintf("%.6f", dec)},
		{Key: "fits.telescop", Value: []string{"BOOTES-2", "BOOTES-3"}[r.IntN(2)]},
	}
	if r.IntN(10) == 0 {
		meta = meta[:2] // no position, no time
	}
	return mergeMeta(nil, meta)
}

// bruteMatch evaluates p on a version's meta without the index.
func bruteMatch(p Predicate, m *manifest.Manifest) bool {
	get := func(field string) (string, bool) {
		for _, kv := range m.Meta {
			if kv.Key == FITSMetaPrefix+field {
				return kv.Value, true
			}
		}
		return "", false
	}
	if p.Op == "cone" {
		rt, ok1 := get("ra")
		dt, ok2 := get("dec")
		ra, ok3 := typeValue("ra", rt)
		dec, ok4 := typeValue("dec", dt)
		if !ok1 || !ok2 || !ok3 || !ok4 || ra.kind != kindNumber || dec.kind != kindNumber {
			return false
		}
		r := math.Mod(floatFrom(ra.enc)+360, 360)
		return angularDistance(p.Cone.RA, p.Cone.Dec, r, floatFrom(dec.enc)) <= p.Cone.Radius+1e-9
	}
	text, ok := get(p.Field)
	if !ok {
		return false
	}
	if p.Op == "prefix" {
		s, ok := stringValue(text)
		return ok && strings.HasPrefix(string(s), strings.ToUpper(p.Values[0]))
	}
	have, ok := typeValue(p.Field, text)
	if !ok {
		return false
	}
	for _, v := range p.Values {
		want, _ := typeValue(p.Field, v)
		have := have
		if want.kind != have.kind {
			// A string predicate still compares with every value's string.
			if want.kind != kindString {
				continue
			}
			s, _ := stringValue(text)
			have = typedValue{kind: kindString, enc: s}
		}
		c := bytes.Compare(have.enc, want.enc)
		end := 0 // where the value lies against want's span end
		if want.kind == kindTime {
			end = bytes.Compare(have.enc, want.end)
		}
		var ok bool
		switch p.Op {
		case "=", "in":
			ok = c == 0 || want.kind == kindTime && c >= 0 && end < 0
		case "<":
			ok = c < 0
		case "<=":
			ok = c <= 0 || want.kind == kindTime && end < 0
		case ">":
			ok = c > 0 && (want.kind != kindTime || end >= 0)
		case ">=":
			ok = c >= 0
		}
		if ok {
			return true
		}
	}
	return false
}

func TestFindAgainstBruteForce(t *testing.T) {
	e := openEnv(t, vfs.NewMem(), "/site")
	defer e.close(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 7))
	var all []*manifest.Manifest
	for i := range 600 {
		name := fmt.Sprintf("gloria.eu/bootes-2/f%03d.fits", i%450) // some names get two versions
		m, err := e.store.Put(ctx, MustParseName(name), bytes.NewReader([]byte(name)), PutOptions{Meta: frameMeta(r)})
		if err != nil {
			t.Fatal(err)
		}
		e.now = e.now.Add(time.Millisecond)
		all = append(all, m)
	}
	for _, name := range []string{"gloria.eu/bootes-2/f007.fits", "gloria.eu/bootes-2/f140.fits"} {
		m, err := e.store.Delete(ctx, MustParseName(name))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m)
		e.now = e.now.Add(time.Millisecond)
	}
	latest := map[string]*manifest.Manifest{}
	for _, m := range all {
		latest[m.Name] = m
	}
	queries := [][]string{
		{"TELESCOP=BOOTES-2"},
		{"OBJECT=m31"},
		{"OBJECT=NGC*"},
		{"OBJECT='NGC 224'"},
		{"FILTER in (R,V)", "EXPTIME>=30"},
		{"FILTER=T"},
		{"EXPTIME=30"},
		{"EXPTIME<5", "EXPTIME>0.5"},
		{"EXPTIME<=5"},
		{"DATE-OBS>=2026-11-01", "DATE-OBS<2026-11-08"},
		{"DATE-OBS=2026-11-03"},
		{"DATE-OBS<=2026-10-25"},
		{"DATE-OBS>2026-11-20"},
		{"DATE-OBS=2026-11*"},
		{"OBJECT>=N", "OBJECT<V"},
		{"cone 10.684,41.269,1.5"},
		{"cone 10.684,41.269,1.5", "FILTER=R"},
		{"cone 359,41,12"}, // across RA 0h
		{"cone 30,85,15"},  // over the pole
		{"cone 180,-30,40"},
		{"RA>350"},
		{"FILTER in (R,V,I,B,T)"},
	}
	for _, qs := range queries {
		var preds []Predicate
		for _, s := range qs {
			var p Predicate
			var err error
			if c, ok := strings.CutPrefix(s, "cone "); ok {
				p, err = ParseCone(c)
			} else {
				p, err = ParsePredicate(s)
			}
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			preds = append(preds, p)
		}
		for _, allVersions := range []bool{false, true} {
			want := map[string]bool{}
			for _, m := range all {
				if m.Tombstone || !allVersions && latest[m.Name] != m {
					continue
				}
				if !slices.ContainsFunc(preds, func(p Predicate) bool { return !bruteMatch(p, m) }) {
					want[m.ID().String()] = true
				}
			}
			for _, limit := range []int{7, MaxFindLimit} { // pages inside one batch of candidates, and across batches
				got := map[string]bool{}
				q := FindQuery{Predicates: preds, AllVersions: allVersions, Limit: limit}
				for pages := 0; ; pages++ {
					page, err := e.store.Find(ctx, q)
					if err != nil {
						t.Fatalf("%v: %v", qs, err)
					}
					for _, m := range page.Versions {
						if got[m.ID().String()] {
							t.Errorf("%v: %s found twice", qs, m.Name)
						}
						got[m.ID().String()] = true
					}
					if page.Next == "" {
						break
					}
					if len(page.Versions) != limit || pages > 1000 {
						t.Fatalf("%v: a short page (%d) with a next token", qs, len(page.Versions))
					}
					q.After = page.Next
				}
				for id := range want {
					if !got[id] {
						t.Errorf("%v (all versions %v): missed %s", qs, allVersions, id)
					}
				}
				for id := range got {
					if !want[id] {
						t.Errorf("%v (all versions %v): found %s, which does not match", qs, allVersions, id)
					}
				}
				if len(want) == 0 {
					t.Errorf("%v: nothing matches: a query that cannot fail", qs)
				}
			}
		}
	}
}

func TestFindIndexFollowsGCAndReopen(t *testing.T) {
	fs := vfs.NewMem()
	e := openEnv(t, fs, "/site")
	ctx := context.Background()
	meta := []manifest.Meta{{Key: "fits.dec", Value: "41.269"}, {Key: "fits.object", Value: "M31"}, {Key: "fits.ra", Value: "10.684"}}
	find := func(e *testEnv, all bool) int {
		t.Helper()
		p, _ := ParsePredicate("OBJECT=M31")
		c, _ := ParseCone("10.7,41.3,0.1")
		page, err := e.store.Find(ctx, FindQuery{Predicates: []Predicate{c, p}, AllVersions: all})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Versions)
	}
	name := MustParseName("gloria.eu/a.fits")
	for range 2 {
		if _, err := e.store.Put(ctx, name, strings.NewReader("x"), PutOptions{Meta: meta}); err != nil {
			t.Fatal(err)
		}
		e.now = e.now.Add(time.Millisecond)
	}
	if n, all := find(e, false), find(e, true); n != 1 || all != 2 {
		t.Fatalf("found %d latest, %d in all, want 1 and 2", n, all)
	}
	if _, err := e.store.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if n := find(e, false); n != 0 {
		t.Fatalf("a deleted name is still found (%d)", n)
	}
	// Collection removes the versions and their entries.
	e.collect(t, 365*24*time.Hour)
	if n := countKeys(t, e, prefixFind) + countKeys(t, e, prefixCone); n != 0 {
		t.Fatalf("%d find entries left after collection", n)
	}
	// A data dir older than the index is indexed at open.
	if _, err := e.store.Put(ctx, name, strings.NewReader("y"), PutOptions{Meta: meta}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.DeleteRange([]byte{prefixFind}, []byte{prefixCone + 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Delete(findMarker, nil); err != nil {
		t.Fatal(err)
	}
	e.close(t)
	e = openEnv(t, fs, "/site")
	defer e.close(t)
	if n := find(e, false); n != 1 {
		t.Fatalf("after reopening found %d, want 1", n)
	}
}

func countKeys(t *testing.T, e *testEnv, p byte) int {
	t.Helper()
	n := 0
	if err := e.store.forEachKey(p, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFindRefusesForeignTokens(t *testing.T) {
	e := openEnv(t, vfs.NewMem(), "/site")
	defer e.close(t)
	p, _ := ParsePredicate("OBJECT=M31")
	for _, tok := range []string{"x", "AQ", findToken(3, []byte("q")), findToken(0, []byte("zzz"))} {
		if _, err := e.store.Find(context.Background(), FindQuery{Predicates: []Predicate{p}, After: tok}); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
}
