package site

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/skyfed/skyfed/manifest"
)

// accessFixture is a site listening on 0.0.0.0 (so access control is
// on) with an object, a public object and one token of each kind.
type accessFixture struct {
	ts                                         *testSite
	legacy                                     string
	admin, readIn, readOut, write, expired     string
	revoked, wrongSecret                       string
	share, shareExpired, shareOther, shareRevd string
	cookie                                     string
	chunkID, sum                               string
	manifest                                   string // accObj's
}

const (
	accObj    = "gloria.eu/bootes-2/a.fits"
	accOther  = "gloria.eu/bootes-2/b.fits"
	accPublic = "gloria.eu/public/p.fits"
)

func createToken(t *testing.T, dir string, tok AccessToken) string {
	t.Helper()
	_, secret, err := CreateToken(dir, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// waitTokens waits until the running site has reloaded a config with n tokens.
func waitTokens(t *testing.T, ts *testSite, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("config with %d tokens", n), func() bool { return len(ts.Config().Tokens) == n })
}

func shareFor(t *testing.T, ts *testSite, bearer string, body string) ShareAnswer {
	t.Helper()
	resp, b := ts.do(t, "POST", "/api/share", strings.NewReader(body), "Authorization", "Bearer "+bearer, "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("POST /api/share %s: %d %s", body, resp.StatusCode, b)
	}
	return decode[ShareAnswer](t, b)
}

func shareParam(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("share")
}

func newAccessFixture(t *testing.T) *accessFixture {
	t.Helper()
	ts := startSite(t, "0.0.0.0")
	f := &accessFixture{ts: ts, legacy: ts.Config().Token}
	for i, o := range []string{accObj, accOther, accPublic} {
		resp, body := ts.do(t, "PUT", "/o/"+o, bytes.NewReader(seeded(uint64(7+i), 1000)), "Authorization", "Bearer "+f.legacy)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", o, resp.StatusCode, body)
		}
		if o == accObj {
			f.manifest = decode[struct {
				Manifest string `json:"manifest"`
			}](t, body).Manifest
		}
	}
	_, body := ts.do(t, "GET", "/o/"+accObj+"?hashmap", nil, "Authorization", "Bearer "+f.legacy)
	hm := decode[struct {
		Chunks []string `json:"chunks"`
		SHA256 string   `json:"sha256"`
	}](t, body)
	f.chunkID, f.sum = hm.Chunks[0], hm.SHA256

	f.admin = createToken(t, ts.dir, AccessToken{Name: "ops", Admin: true})
	f.readIn = createToken(t, ts.dir, AccessToken{Name: "reader", Read: []string{"gloria.eu/bootes-2/"}})
	f.readOut = createToken(t, ts.dir, AccessToken{Name: "elsewhere", Read: []string{"gloria.eu/other/"}})
	f.write = createToken(t, ts.dir, AccessToken{Name: "pipeline", Write: []string{"gloria.eu/bootes-2/"}})
	f.expired = createToken(t, ts.dir, AccessToken{Name: "old", Read: []string{"gloria.eu/"}, Expires: time.Now().Add(-time.Hour)})
	f.revoked = createToken(t, ts.dir, AccessToken{Name: "gone", Read: []string{"gloria.eu/"}})
	if err := EditConfig(ts.dir, func(c *Config) error { c.Public = []string{"gloria.eu/public/"}; return nil }); err != nil {
		t.Fatal(err)
	}
	waitTokens(t, ts, 6)
	waitFor(t, "public prefix", func() bool { return len(ts.Config().Public) == 1 })
	id, _, _ := strings.Cut(f.readIn, ".")
	f.wrongSecret = id + "." + strings.Repeat("A", tokenSecretLen)

	f.share = shareParam(t, shareFor(t, ts, f.readIn, `{"name": "`+accObj+`", "expires": "1h"}`).URL)
	f.shareOther = shareParam(t, shareFor(t, ts, f.readIn, `{"name": "`+accOther+`", "expires": "1h"}`).URL)
	f.shareRevd = shareParam(t, shareFor(t, ts, f.revoked, `{"name": "`+accObj+`", "expires": "1h"}`).URL)
	l, _ := signShare(ts.key, principal{legacy: true}, accObj, time.Now().Add(-time.Minute))
	f.shareExpired = l.String()
	if _, err := RevokeToken(ts.dir, "gone"); err != nil {
		t.Fatal(err)
	}
	waitTokens(t, ts, 5)

	resp, _ := ts.do(t, "POST", "/login", strings.NewReader("token="+url.QueryEscape(f.readIn)), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == DashboardCookie {
			f.cookie = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
				t.Errorf("login cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", c)
			}
		}
	}
	if f.cookie == "" {
		t.Fatal("POST /login set no dashboard cookie")
	}
	return f
}

// cred is one way a request may present itself.
type cred struct {
	name          string
	bearer, share string
	raw           string // a whole Authorization header
	cookie        string
}

func (f *accessFixture) creds() []cred {
	return []cred{
		{name: "none"},
		{name: "legacy", bearer: f.legacy},
		{name: "admin", bearer: f.admin},
		{name: "read-in", bearer: f.readIn},
		{name: "read-out", bearer: f.readOut},
		{name: "write", bearer: f.write},
		{name: "expired", bearer: f.expired},
		{name: "revoked", bearer: f.revoked},
		{name: "wrong-secret", bearer: f.wrongSecret},
		{name: "garbage", raw: "Basic Zm9vOmJhcg=="},
		{name: "share", share: f.share},
		{name: "share-expired", share: f.shareExpired},
		{name: "share-other", share: f.shareOther},
		{name: "share-revoked", share: f.shareRevd},
		{name: "cookie", cookie: f.cookie},
	}
}

func (f *accessFixture) do(t *testing.T, c cred, method, path string) (*http.Response, []byte) {
	t.Helper()
	if c.share != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "share=" + c.share
	}
	var hdr []string
	switch {
	case c.bearer != "":
		hdr = append(hdr, "Authorization", "Bearer "+c.bearer)
	case c.raw != "":
		hdr = append(hdr, "Authorization", c.raw)
	case c.cookie != "":
		hdr = append(hdr, "Cookie", DashboardCookie+"="+c.cookie)
	}
	var body *strings.Reader
	if method == "PUT" {
		body = strings.NewReader("new")
	}
	if body == nil {
		return f.ts.do(t, method, path, nil, hdr...)
	}
	return f.ts.do(t, method, path, body, hdr...)
}

// allowed is any answer but 401 and 403 (the second delete of a name is a 404).
const allowed = 0

// TestAccessRoutes is every route against every kind of credential on
// a site listening beyond loopback.
func TestAccessRoutes(t *testing.T) {
	f := newAccessFixture(t)
	creds := f.creds()
	// Expected statuses, in the order of creds: none, legacy, admin,
	// read-in, read-out, write, expired, revoked, wrong-secret, garbage,
	// share, share-expired, share-other, share-revoked, cookie.
	read := []int{401, 200, 403, 200, 403, 200, 401, 401, 401, 401, 200, 401, 401, 401, 401}
	viewer := []int{401, 200, 200, 200, 200, 200, 401, 401, 401, 401, 401, 401, 401, 401, 200}
	admin := []int{401, 404, 404, 403, 403, 403, 401, 401, 401, 401, 401, 401, 401, 401, 401}
	for _, rt := range []struct {
		method, path string
		want         []int
	}{
		{"GET", "/o/" + accObj, read},
		{"HEAD", "/o/" + accObj, read},
		{"GET", "/o/" + accObj + "?versions", read},
		{"PUT", "/o/gloria.eu/bootes-2/new.fits", []int{401, 201, 403, 403, 403, 201, 401, 401, 401, 401, 401, 401, 401, 401, 401}},
		{"DELETE", "/o/" + accOther, []int{401, allowed, 403, 403, 403, allowed, 401, 401, 401, 401, 401, 401, 401, 401, 401}},
		{"GET", "/ls?prefix=gloria.eu/bootes-2/", []int{401, 200, 403, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 401, 401}},
		{"GET", "/c/" + f.chunkID, []int{401, 200, 403, 200, 200, 200, 401, 401, 401, 401, 401, 401, 401, 401, 401}},
		{"GET", "/sha256/" + f.sum, []int{401, 200, 403, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 401, 401}},
		{"GET", "/api/held/" + f.manifest, []int{401, 200, 403, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 401, 401}},
		{"GET", "/api/status", viewer},
		{"GET", "/metrics", viewer},
		{"GET", "/api/arrivals", viewer},
		{"GET", "/", viewer},
		{"GET", "/ui/app.js", viewer},
		{"GET", "/api/diff/nosuch", admin},
		{"POST", "/api/resync/nosuch", admin},
	} {
		for i, c := range creds {
			resp, body := f.do(t, c, rt.method, rt.path)
			if resp.StatusCode != rt.want[i] && !(rt.want[i] == allowed && resp.StatusCode != 401 && resp.StatusCode != 403) {
				t.Errorf("%s %s as %s: %d, want %d: %.200s", rt.method, rt.path, c.name, resp.StatusCode, rt.want[i], body)
				continue
			}
			if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s as %s: 401 without WWW-Authenticate: Bearer", rt.method, rt.path, c.name)
			}
		}
	}
}

// TestAccessDenialBodies checks the reason and hint of each kind of refusal.
func TestAccessDenialBodies(t *testing.T) {
	f := newAccessFixture(t)
	before := metric(t, f.ts, "skyfed_http_denied_total", "reason", "scope")
	for _, tc := range []struct {
		c      cred
		method string
		path   string
		status int
		reason string
		says   string
	}{
		{cred{name: "none"}, "GET", "/o/" + accObj, 401, ReasonNoToken, "needs a token and none was sent"},
		{cred{name: "garbage", raw: "Bearer nonsense"}, "GET", "/o/" + accObj, 401, ReasonBadToken, "wrong token"},
		{cred{name: "wrong", bearer: f.wrongSecret}, "GET", "/o/" + accObj, 401, ReasonBadToken, "does not match"},
		{cred{name: "expired", bearer: f.expired}, "GET", "/o/" + accObj, 401, ReasonExpired, "expired at"},
		{cred{name: "revoked", bearer: f.revoked}, "GET", "/o/" + accObj, 401, ReasonRevoked, "unknown to this site or was revoked"},
		{cred{name: "scope", bearer: f.readOut}, "GET", "/o/" + accObj, 403, ReasonScope, "lacks read scope for " + accObj},
		{cred{name: "scope-write", bearer: f.readIn}, "PUT", "/o/" + accObj, 403, ReasonScope, "lacks write scope for " + accObj},
		{cred{name: "share-other", share: f.shareOther}, "GET", "/o/" + accObj, 401, ReasonBadToken, "not valid for " + accObj},
		{cred{name: "share-expired", share: f.shareExpired}, "GET", "/o/" + accObj, 401, ReasonExpired, "share link expired"},
		{cred{name: "share-revoked", share: f.shareRevd}, "GET", "/o/" + accObj, 401, ReasonRevoked, "revoked token"},
		{cred{name: "not-admin", bearer: f.write}, "POST", "/api/gc", 403, ReasonScope, "not an admin token"},
	} {
		resp, body := f.do(t, tc.c, tc.method, tc.path)
		got := decode[map[string]string](t, body)
		if resp.StatusCode != tc.status || got["reason"] != tc.reason || !strings.Contains(got["error"], tc.says) || got["hint"] == "" {
			t.Errorf("%s: %d %s; want %d, reason %s, error saying %q", tc.c.name, resp.StatusCode, body, tc.status, tc.reason, tc.says)
		}
		if tc.reason == ReasonNoToken && !strings.Contains(got["hint"], "skyfed site token create") {
			t.Errorf("%s: hint %q does not name skyfed site token create", tc.c.name, got["hint"])
		}
		for _, secret := range []string{f.wrongSecret, f.readOut, f.legacy} {
			if strings.Contains(string(body), secret) {
				t.Errorf("%s: the answer holds a token", tc.c.name)
			}
		}
	}
	if after := metric(t, f.ts, "skyfed_http_denied_total", "reason", "scope"); after != before+3 {
		t.Errorf("skyfed_http_denied_total{reason=scope} went %v -> %v, want +3", before, after)
	}
	if v, ok := metricValue(t, f.ts, "skyfed_http_denied_total", "reason", "revoked"); !ok || v < 2 {
		t.Errorf("skyfed_http_denied_total{reason=revoked} = %v, %v", v, ok)
	}
}

func TestAccessPublicAndListFilter(t *testing.T) {
	f := newAccessFixture(t)
	ts := f.ts
	if resp, body := ts.do(t, "GET", "/o/"+accPublic, nil); resp.StatusCode != 200 {
		t.Errorf("GET public without token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := ts.do(t, "PUT", "/o/"+accPublic, strings.NewReader("x")); resp.StatusCode != 401 {
		t.Errorf("PUT public without token: %d, want 401", resp.StatusCode)
	}
	names := func(body []byte) []string {
		var out []string
		for _, o := range decode[struct {
			Objects []listEntry `json:"objects"`
		}](t, body).Objects {
			out = append(out, o.Name)
		}
		return out
	}
	resp, body := ts.do(t, "GET", "/ls?prefix=gloria.eu/", nil)
	if got := names(body); resp.StatusCode != 200 || strings.Join(got, " ") != accPublic {
		t.Errorf("anonymous ls gloria.eu/: %d %v, want only %s", resp.StatusCode, got, accPublic)
	}
	resp, body = ts.do(t, "GET", "/ls?prefix=gloria.eu/", nil, "Authorization", "Bearer "+f.readIn)
	if got := names(body); resp.StatusCode != 200 || strings.Join(got, " ") != accObj+" "+accOther+" "+accPublic {
		t.Errorf("reader ls gloria.eu/: %d %v", resp.StatusCode, got)
	}
	// Paging over filtered names: one name a page, never one it may not read.
	var got []string
	for after, n := "", 0; n < 10; n++ {
		resp, body := ts.do(t, "GET", "/ls?prefix=gloria.eu/&limit=1&after="+url.QueryEscape(after), nil, "Authorization", "Bearer "+f.readOut)
		if resp.StatusCode != 200 {
			t.Fatalf("ls page: %d %s", resp.StatusCode, body)
		}
		got = append(got, names(body)...)
		if after = decode[struct {
			Next string `json:"next"`
		}](t, body).Next; after == "" {
			break
		}
	}
	if strings.Join(got, " ") != accPublic {
		t.Errorf("paged ls with a token reading gloria.eu/other/: %v, want only the public name", got)
	}
}

func TestAccessDashboard(t *testing.T) {
	f := newAccessFixture(t)
	ts := f.ts
	resp, body := ts.do(t, "GET", "/", nil)
	if resp.StatusCode != 401 || !strings.Contains(string(body), `action="/login"`) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / without credential: %d %s, want 401 and the login form", resp.StatusCode, body)
	}
	resp, body = ts.do(t, "POST", "/login", strings.NewReader("token="+url.QueryEscape(f.wrongSecret)), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 401 || !strings.Contains(string(body), "does not match") || len(resp.Cookies()) != 0 {
		t.Errorf("POST /login with a wrong token: %d %s", resp.StatusCode, body)
	}
	resp, _ = ts.do(t, "POST", "/login", strings.NewReader("token=x"), "Content-Type", "application/x-www-form-urlencoded", "Origin", "http://evil.example")
	if resp.StatusCode != 403 {
		t.Errorf("POST /login from another origin: %d, want 403", resp.StatusCode)
	}
	// The cookie opens the dashboard, not the objects.
	if resp, body := ts.do(t, "GET", "/", nil, "Cookie", DashboardCookie+"="+f.cookie); resp.StatusCode != 200 || !strings.Contains(string(body), "alpha") {
		t.Errorf("GET / with the login cookie: %d", resp.StatusCode)
	}

	// A dashboard link sets the cookie and goes on to /.
	link := shareFor(t, ts, f.readOut, `{"dashboard": true, "expires": "2d"}`)
	u, _ := url.Parse(link.URL)
	if u.Path != "/" {
		t.Fatalf("dashboard link %s", link.URL)
	}
	resp, _ = ts.do(t, "GET", "/?"+u.RawQuery, nil)
	var grant string
	for _, c := range resp.Cookies() {
		if c.Name == DashboardCookie && c.HttpOnly {
			grant = c.Value
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || grant == "" {
		t.Fatalf("GET dashboard link: %d, Location %q, cookie %q", resp.StatusCode, resp.Header.Get("Location"), grant)
	}
	if resp, _ := ts.do(t, "GET", "/api/status", nil, "Cookie", DashboardCookie+"="+grant); resp.StatusCode != 200 {
		t.Errorf("status with the link's cookie: %d", resp.StatusCode)
	}
	// Revoking the token that made it closes the cookie.
	if _, err := RevokeToken(ts.dir, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	waitTokens(t, ts, 4)
	if resp, _ := ts.do(t, "GET", "/api/status", nil, "Cookie", DashboardCookie+"="+grant); resp.StatusCode != 401 {
		t.Errorf("status with the cookie of a revoked token: %d, want 401", resp.StatusCode)
	}

	// dashboard_public opens the dashboard and status, not the objects.
	if err := EditConfig(ts.dir, func(c *Config) error { c.DashboardPublic = true; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dashboard_public", func() bool { return ts.Config().DashboardPublic })
	for path, want := range map[string]int{"/": 200, "/api/status": 200, "/metrics": 200, "/o/" + accObj: 401, "/api/diff/x": 401} {
		if resp, _ := ts.do(t, "GET", path, nil); resp.StatusCode != want {
			t.Errorf("dashboard_public: GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestAccessShareAPI(t *testing.T) {
	f := newAccessFixture(t)
	ts := f.ts
	// A link never outlives the token that asks for it.
	short := createToken(t, ts.dir, AccessToken{Name: "short", Read: []string{"gloria.eu/"}, Expires: time.Now().Add(time.Hour)})
	waitTokens(t, ts, 6)
	sh := shareFor(t, ts, short, `{"name": "`+accObj+`", "expires": "30d"}`)
	exp, err := time.Parse(time.RFC3339, sh.Expires)
	if err != nil || !sh.Clamped || exp.After(time.Now().Add(time.Hour+time.Second)) {
		t.Errorf("share with a token expiring in 1h for 30d: %+v", sh)
	}
	if !strings.HasPrefix(sh.URL, ts.base+"/o/"+accObj+"?share=") {
		t.Errorf("share URL %s", sh.URL)
	}
	for _, tc := range []struct {
		bearer, body string
		want         int
	}{
		{f.readOut, `{"name": "` + accObj + `"}`, 403},
		{"", `{"name": "` + accObj + `"}`, 401},
		{"", `{"dashboard": true}`, 401},
		{f.readIn, `{"name": "nope"}`, 400},
		{f.readIn, `{"name": "` + accObj + `", "expires": "-1h"}`, 400},
		{f.readIn, `{"name": "` + accObj + `", "dashboard": true}`, 400},
		{f.legacy, `{"name": "` + accObj + `", "expires": "7d"}`, 200},
	} {
		var hdr []string
		if tc.bearer != "" {
			hdr = []string{"Authorization", "Bearer " + tc.bearer}
		}
		if resp, body := ts.do(t, "POST", "/api/share", strings.NewReader(tc.body), hdr...); resp.StatusCode != tc.want {
			t.Errorf("POST /api/share %s: %d %s, want %d", tc.body, resp.StatusCode, body, tc.want)
		}
	}
	// A link made with the site token is issued by "site".
	sh = shareFor(t, ts, f.legacy, `{"name": "`+accObj+`"}`)
	if l, err := parseShare(shareParam(t, sh.URL)); err != nil || l.Issuer != SiteIssuer {
		t.Errorf("share by the site token: %v %+v", err, l)
	}
}

// On loopback everything stays open and credentials are ignored.
func TestAccessLoopbackOpen(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	for _, hdr := range [][]string{nil, {"Authorization", "Basic eA=="}, {"Authorization", "Bearer SFAAAAAAAAAAAAAAAAAA." + strings.Repeat("x", 40)}} {
		if resp, body := ts.do(t, "PUT", "/o/gloria.eu/x", strings.NewReader("x"), hdr...); resp.StatusCode != 201 {
			t.Errorf("PUT on loopback with %v: %d %s", hdr, resp.StatusCode, body)
		}
		for _, p := range []string{"/o/gloria.eu/x", "/api/status", "/", "/api/diff/nosuch"} {
			if resp, _ := ts.do(t, "GET", p, nil, hdr...); resp.StatusCode == 401 || resp.StatusCode == 403 {
				t.Errorf("GET %s on loopback with %v: %d", p, hdr, resp.StatusCode)
			}
		}
	}
	sh := shareFor(t, ts, "", `{"name": "gloria.eu/x"}`)
	if l, err := parseShare(shareParam(t, sh.URL)); err != nil || l.Issuer != SiteIssuer {
		t.Errorf("share on loopback: %v %+v", err, l)
	}
}

// Pure parts.

func TestScopes(t *testing.T) {
	tok := AccessToken{Read: []string{"gloria.eu/"}, Write: []string{"gloria.eu/bootes-2/", "other.org/x/"}}
	for _, tc := range []struct {
		name        string
		read, write bool
	}{
		{"gloria.eu/a", true, false},
		{"gloria.eu/bootes-2/a.fits", true, true},
		{"gloria.eu/bootes-20/a.fits", true, false},
		{"gloria.eu.evil/a", false, false},
		{"other.org/x/y", true, true},
		{"other.org/y", false, false},
	} {
		if tok.MayRead(tc.name) != tc.read || tok.MayWrite(tc.name) != tc.write {
			t.Errorf("%s: read %v write %v, want %v %v", tc.name, tok.MayRead(tc.name), tok.MayWrite(tc.name), tc.read, tc.write)
		}
	}
	if (AccessToken{Admin: true}).MayRead("gloria.eu/a") {
		t.Error("admin alone grants reads")
	}
	for prefix, want := range map[string]bool{"": true, "gloria.eu/": true, "gloria.eu/bootes-2/x": true, "glo": true, "other.org/": true, "zeta.org/": false, "other.org/y": false} {
		if got := tok.mayReadUnder(prefix); got != want {
			t.Errorf("mayReadUnder(%q) = %v", prefix, got)
		}
	}
	now := time.Now()
	if (AccessToken{}).Expired(now) || !(AccessToken{Expires: now}).Expired(now) || (AccessToken{Expires: now.Add(time.Second)}).Expired(now) {
		t.Error("Expired")
	}
}

func TestCheckPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"gloria.eu": "gloria.eu/", "gloria.eu/": "gloria.eu/", " gloria.eu/bootes-2/ ": "gloria.eu/bootes-2/", "gloria.eu/b": "gloria.eu/b",
		"Gloria.eu/": "", "/x": "", "": "", "gloria.eu/\x00": "",
	} {
		got, err := CheckPrefix(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("CheckPrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestTokenSecretDerivation(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	k := hmac.New(sha256.New, seed)
	k.Write([]byte("skyfed access tokens v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte("SFAAAAAAAAAAAAAAAAAA"))
	want := base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:40]
	if got := TokenSecretFromSeed(seed, "SFAAAAAAAAAAAAAAAAAA"); got != want || len(got) != 40 {
		t.Fatalf("secret %q, want %q", got, want)
	}
	if TokenSecretFromSeed(seed, "SFAAAAAAAAAAAAAAAAAB") == want || TokenSecretFromSeed(bytes.Repeat([]byte{8}, 32), "SFAAAAAAAAAAAAAAAAAA") == want {
		t.Error("the secret does not depend on the ID and the key")
	}
	for range 100 {
		id := NewTokenID()
		if !ValidTokenID(id) || strings.ToUpper(id) != id {
			t.Fatalf("NewTokenID %q", id)
		}
	}
	for _, bad := range []string{"", "SF", "sfAAAAAAAAAAAAAAAAAA", "SFAAAAAAAAAAAAAAAAA1", "XXAAAAAAAAAAAAAAAAAA", "SFAAAAAAAAAAAAAAAAAAA"} {
		if ValidTokenID(bad) {
			t.Errorf("ValidTokenID(%q)", bad)
		}
	}
}

func TestTokenSecretMethod(t *testing.T) {
	ts := startSite(t, "0.0.0.0")
	tok := createToken(t, ts.dir, AccessToken{Name: "s3", Write: []string{"gloria.eu/"}})
	old := createToken(t, ts.dir, AccessToken{Name: "old", Write: []string{"gloria.eu/"}, Expires: time.Now().Add(-time.Second)})
	waitTokens(t, ts, 2)
	id, secret, _ := strings.Cut(tok, ".")
	got, entry, ok := ts.TokenSecret(id)
	if !ok || got != secret || entry.Name != "s3" || !entry.MayWrite("gloria.eu/x") {
		t.Errorf("TokenSecret(%s) = %q, %+v, %v", id, got, entry, ok)
	}
	oldID, _, _ := strings.Cut(old, ".")
	if got, entry, ok := ts.TokenSecret(oldID); ok || got != "" || entry.Name != "old" {
		t.Errorf("TokenSecret of an expired token = %q, %+v, %v", got, entry, ok)
	}
	if _, _, ok := ts.TokenSecret("SFAAAAAAAAAAAAAAAAAA"); ok {
		t.Error("TokenSecret of an unknown ID")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"24h": 24 * time.Hour, "90d": 90 * 24 * time.Hour, "1d12h": 36 * time.Hour, "0": 0, "0d": 0, "1.5h": 90 * time.Minute, "-5m": -5 * time.Minute,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "1dd", "x1d", "-1d", "1d-1h", "99999999999d", "1w", "1.5d"} {
		if got, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, got)
		}
	}
}

func TestAccessConfig(t *testing.T) {
	base := func() Config {
		return Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:1", NATS: "127.0.0.1:2", ChunkSize: 1 << 20}
	}
	ok := base()
	ok.Tokens = []AccessToken{{Name: "a", ID: NewTokenID(), Read: []string{"gloria.eu/"}, Created: time.Now().UTC().Truncate(time.Second)}}
	ok.Public = []string{"gloria.eu/public/"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	// Round trip through the file: a token that never expires writes no expiry.
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(ok); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "expires") || !strings.Contains(b.String(), "[[access_token]]") {
		t.Errorf("encoded config:\n%s", b.String())
	}
	var back Config
	if _, err := toml.Decode(b.String(), &back); err != nil || len(back.Tokens) != 1 || !back.Tokens[0].Created.Equal(ok.Tokens[0].Created) || back.Public[0] != "gloria.eu/public/" {
		t.Errorf("decoded %+v, %v", back, err)
	}
	for what, edit := range map[string]func(*Config){
		"duplicate name": func(c *Config) {
			c.Tokens = append(c.Tokens, AccessToken{Name: "a", ID: NewTokenID(), Read: []string{"gloria.eu/"}})
		},
		"duplicate id": func(c *Config) {
			c.Tokens = append(c.Tokens, AccessToken{Name: "b", ID: c.Tokens[0].ID, Read: []string{"gloria.eu/"}})
		},
		"bad id":           func(c *Config) { c.Tokens[0].ID = "AKIA0000000000000000" },
		"bad name":         func(c *Config) { c.Tokens[0].Name = "A B" },
		"no scope":         func(c *Config) { c.Tokens[0].Read = nil },
		"bare domain":      func(c *Config) { c.Tokens[0].Read = []string{"gloria.eu"} },
		"bad public":       func(c *Config) { c.Public = []string{"Gloria/"} },
		"duplicate public": func(c *Config) { c.Public = []string{"gloria.eu/", "gloria.eu/"} },
	} {
		c := base()
		c.Tokens = append([]AccessToken(nil), ok.Tokens...)
		c.Public = ok.Public
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
}

func TestCreateRevokeToken(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, Config{ID: "alpha", Domain: "gloria.eu", HTTP: "0.0.0.0:1", NATS: "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := CreateToken(dir, AccessToken{Name: "p", Read: []string{"gloria.eu", "gloria.eu/"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.Read) != 1 || tok.Read[0] != "gloria.eu/" || !strings.HasPrefix(secret, tok.ID+".") {
		t.Errorf("created %+v %q", tok, secret)
	}
	raw, err := readConfigText(dir)
	if err != nil || strings.Contains(raw, secret[len(tok.ID)+1:]) {
		t.Errorf("the config holds the secret (%v)", err)
	}
	if _, _, err := CreateToken(dir, AccessToken{Name: "p", Read: []string{"gloria.eu/"}}, time.Now()); err == nil {
		t.Error("a second token named p")
	}
	if _, err := RevokeToken(dir, "nope"); err == nil {
		t.Error("revoked a token that is not there")
	}
	if _, err := RevokeToken(dir, tok.ID); err != nil {
		t.Errorf("revoke by ID: %v", err)
	}
}

func readConfigText(dir string) (string, error) {
	var b bytes.Buffer
	c, err := LoadConfig(dir)
	if err != nil {
		return "", err
	}
	err = toml.NewEncoder(&b).Encode(c)
	return b.String(), err
}

func TestShareSignature(t *testing.T) {
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cfg := &Config{Tokens: []AccessToken{{Name: "r", ID: "SFAAAAAAAAAAAAAAAAAA", Read: []string{"gloria.eu/"}}}}
	a := &accessState{cfg: cfg, pub: key.PublicKey(), now: now}
	tok := cfg.Tokens[0]
	l, _ := signShare(key, principal{tok: &tok}, "gloria.eu/a", now.Add(time.Hour))
	if d := a.checkShare(l.String(), "gloria.eu/a"); d != nil {
		t.Fatalf("valid link refused: %+v", d)
	}
	sig := string(shareMessage("gloria.eu/a", l.Exp, l.Issuer))
	if sig != fmt.Sprintf("skyfed share v1\ngloria.eu/a\n%d\nSFAAAAAAAAAAAAAAAAAA", l.Exp) {
		t.Errorf("signed message %q", sig)
	}
	forged := l
	forged.Exp++
	if d := a.checkShare(forged.String(), "gloria.eu/a"); d == nil || d.reason != ReasonBadToken {
		t.Errorf("link with a changed expiry: %+v", d)
	}
	if d := a.checkShare(l.String(), DashboardScope); d == nil {
		t.Error("an object link opens the dashboard")
	}
	a.cfg = &Config{Tokens: []AccessToken{{Name: "r", ID: "SFAAAAAAAAAAAAAAAAAA", Read: []string{"other.org/"}}}}
	if d := a.checkShare(l.String(), "gloria.eu/a"); d == nil || d.reason != ReasonRevoked {
		t.Errorf("link of a token no longer reading the name: %+v", d)
	}
}

func FuzzParseCredential(f *testing.F) {
	key, _ := manifest.KeyPairFromSeed(bytes.Repeat([]byte{1}, 32))
	l, _ := signShare(key, principal{legacy: true}, "gloria.eu/a", time.Unix(1800000000, 0))
	for _, seed := range []string{
		"Bearer SFAAAAAAAAAAAAAAAAAA." + strings.Repeat("a", 40), "bearer  x", "Basic Zm9v", "", "Bearer ", "SF.x",
		l.String(), "site.1.x", "SFAAAAAAAAAAAAAAAAAA.0001." + strings.Repeat("A", 86), "site.-5." + strings.Repeat("_", 86), "a.b.c.d",
	} {
		f.Add(seed)
	}
	pub := key.PublicKey()
	f.Fuzz(func(t *testing.T, s string) {
		if tok, err := parseBearer(s); err == nil {
			if tok == "" || strings.TrimSpace(tok) != tok {
				t.Fatalf("parseBearer(%q) = %q", s, tok)
			}
		}
		if id, secret, err := splitToken(s); err == nil {
			if id+"."+secret != s || !ValidTokenID(id) || len(secret) != tokenSecretLen {
				t.Fatalf("splitToken(%q) = %q, %q", s, id, secret)
			}
		}
		if sl, err := parseShare(s); err == nil {
			if sl.String() != s {
				t.Fatalf("parseShare(%q) prints back as %q", s, sl.String())
			}
			a := &accessState{cfg: &Config{}, pub: pub, now: time.Unix(1700000000, 0)}
			if d := a.checkShare(s, "gloria.eu/a"); d == nil && s != l.String() {
				t.Fatalf("forged link %q accepted", s)
			}
		}
		a := &accessState{cfg: &Config{Token: "legacy"}, key: tokenKey([]byte("k")), pub: pub, now: time.Now()}
		if p, d := a.authenticate(s); d == nil && s != "" && !p.legacy {
			t.Fatalf("header %q authenticated as %+v", s, p)
		}
	})
}
