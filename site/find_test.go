package site

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/skyfed/skyfed/site/client"
)

// GET /find answers from the header values of FITS frames put through
// the API, pages through them, refuses bad queries with 400 and a hint,
// and shows each credential only the names it may read.
func TestFindOverHTTP(t *testing.T) {
	f := newAccessFixture(t)
	ts := f.ts
	frames := map[string][]string{
		"gloria.eu/bootes-2/m31-r.fits": {"OBJECT  = 'M31     '", "FILTER  = 'R'", "DATE-OBS= '2026-11-21T03:04:05'", "EXPTIME =                 30.0", "RA      = '00:42:44.3'", "DEC     = '+41:16:09'"},
		"gloria.eu/bootes-2/m31-v.fits": {"OBJECT  = 'M31     '", "FILTER  = 'V'", "DATE-OBS= '2026-11-22T03:04:05'", "EXPTIME =                 60.0", "RA      =            10.684708", "DEC     =            41.269065"},
		"gloria.eu/bootes-2/m33-r.fits": {"OBJECT  = 'M33     '", "FILTER  = 'R'", "DATE-OBS= '2026-10-01T01:00:00'", "EXPTIME =                 30.0", "RA      =              23.4621", "DEC     =              30.6599"},
		"gloria.eu/public/m31-b.fits":   {"OBJECT  = 'M31     '", "FILTER  = 'B'", "DATE-OBS= '2026-11-23T03:04:05'", "EXPTIME =                120.0"},
		"gloria.eu/other/m31-i.fits":    {"OBJECT  = 'M31     '", "FILTER  = 'I'", "DATE-OBS= '2026-11-24T03:04:05'"},
	}
	for name, cards := range frames {
		resp, body := ts.do(t, "PUT", "/o/"+name, bytes.NewReader(fitsFrame(cards...)), "Authorization", "Bearer "+f.legacy)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", name, resp.StatusCode, body)
		}
	}
	find := func(bearer string, query string) (int, []string, client.FindPage) {
		t.Helper()
		var hdr []string
		if bearer != "" {
			hdr = []string{"Authorization", "Bearer " + bearer}
		}
		resp, body := ts.do(t, "GET", "/find?"+query, nil, hdr...)
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, nil, client.FindPage{}
		}
		page := decode[client.FindPage](t, body)
		var names []string
		for _, r := range page.Results {
			names = append(names, r.Name)
		}
		slices.Sort(names)
		return resp.StatusCode, names, page
	}
	q := func(conds ...string) string { return url.Values{"q": conds}.Encode() }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{q("OBJECT=m31", "FILTER in (R,V)"), []string{"gloria.eu/bootes-2/m31-r.fits", "gloria.eu/bootes-2/m31-v.fits"}},
		{q("DATE-OBS>=2026-11-22", "DATE-OBS<=2026-11-23"), []string{"gloria.eu/bootes-2/m31-v.fits", "gloria.eu/public/m31-b.fits"}},
		{q("EXPTIME=30"), []string{"gloria.eu/bootes-2/m31-r.fits", "gloria.eu/bootes-2/m33-r.fits"}},
		{q("OBJECT=M3*", "EXPTIME>30"), []string{"gloria.eu/bootes-2/m31-v.fits", "gloria.eu/public/m31-b.fits"}},
		{"cone=10.684,41.269,0.1", []string{"gloria.eu/bootes-2/m31-r.fits", "gloria.eu/bootes-2/m31-v.fits"}},
		{"cone=01:33:50.9,%2B30:39:36,0.5&" + q("FILTER=R"), []string{"gloria.eu/bootes-2/m33-r.fits"}},
		{q("TELESCOP=BOOTES-2"), nil},
	} {
		code, names, _ := find(f.legacy, tc.query)
		if code != http.StatusOK || !slices.Equal(names, tc.want) {
			t.Errorf("find %s: %d %v, want %v", tc.query, code, names, tc.want)
		}
	}
	// Pages of one follow each other without repeats.
	var all []string
	after := ""
	for range 10 {
		code, _, page := find(f.legacy, q("OBJECT=M3*")+"&limit=2&after="+url.QueryEscape(after))
		if code != http.StatusOK {
			t.Fatalf("page after %q: %d", after, code)
		}
		for _, r := range page.Results {
			all = append(all, r.Name)
		}
		if after = page.Next; after == "" {
			break
		}
	}
	if slices.Sort(all); len(all) != 5 || len(slices.Compact(all)) != 5 {
		t.Errorf("paged find gave %v, want the 5 frames once each", all)
	}
	// What each credential sees of OBJECT=M31.
	for _, tc := range []struct {
		who, bearer string
		code        int
		want        int
	}{
		{"reader of bootes-2", f.readIn, 200, 3}, // m31-r, m31-v, and the public one
		{"reader elsewhere", f.readOut, 200, 2},  // its own (other/) and the public one
		{"no token", "", 200, 1},                 // public names are for anyone
		{"wrong secret", f.wrongSecret, 401, 0},  // a bad token is refused, not treated as none
		{"everything (site token)", f.legacy, 200, 4},
	} {
		code, names, _ := find(tc.bearer, q("OBJECT=M31"))
		if code != tc.code || len(names) != tc.want {
			t.Errorf("%s: %d %v, want %d and %d names", tc.who, code, names, tc.code, tc.want)
		}
	}
	for _, bad := range []string{"", q("FILTER!=R"), q("FILTER"), "cone=1,2", q("OBJECT=M31") + "&limit=0", q("OBJECT=M31") + "&after=xyz"} {
		resp, body := ts.do(t, "GET", "/find?"+bad, nil, "Authorization", "Bearer "+f.legacy)
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("hint")) {
			t.Errorf("find %q: %d %s, want 400 with a hint", bad, resp.StatusCode, body)
		}
	}
}
