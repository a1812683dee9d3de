package site

// HTTP glue of scoped access (access.go has the decisions): the gate in
// front of the router, the checks of the object, listing and lookup
// handlers, POST /api/share, and the dashboard's login and cookie.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

const (
	// DashboardCookie holds a dashboard grant: a share link over
	// DashboardScope, set by POST /login or by opening a dashboard link.
	DashboardCookie = "skyfed_dashboard"
	// loginTTL is how long a login on the dashboard's form lasts (never
	// beyond its token's expiry).
	loginTTL = 7 * 24 * time.Hour
	// DefaultShareExpiry is the lifetime of a share link that names none.
	DefaultShareExpiry = 24 * time.Hour
	// listScanBudget bounds the names one filtered listing page reads.
	listScanBudget = 10 * maxListLimit
)

// accessMetrics count refused requests.
type accessMetrics struct {
	denied *prometheus.CounterVec
}

func newAccessMetrics(reg prometheus.Registerer) *accessMetrics {
	m := &accessMetrics{denied: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skyfed_http_denied_total",
		Help: "HTTP requests refused for their credential (401) or its scope (403), by reason: no_token, bad_token, expired, revoked, scope.",
	}, []string{"reason"})}
	for _, r := range denialReasons {
		m.denied.WithLabelValues(r)
	}
	reg.MustRegister(m.denied)
	return m
}

// onLoopback reports whether the HTTP listener is on loopback, where
// everything is open and credentials are ignored.
func (s *Site) onLoopback() bool { return loopbackAddr(s.httpAddr) }

// loopbackAddr reports whether a listener's host:port is on loopback.
func loopbackAddr(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() || host == "localhost"
}

// access returns what decisions depend on now.
func (s *Site) access() *accessState {
	cfg := s.Config()
	return &accessState{cfg: &cfg, key: tokenKey(s.key.Seed()), pub: s.key.PublicKey(), open: s.onLoopback(), now: time.Now()}
}

// need is what a route asks of a request.
type need int

const (
	needAdmin  need = iota // diff, resync, scrub, gc; also any route not listed
	needNone               // POST /login, which checks what it is given
	needViewer             // status, metrics, dashboard assets and APIs
	needReader             // chunks by ID: a token with some read scope
	needWriter             // chunks sent for a hashmap put: a token with some write scope
	needSelf               // the handler decides by name (/ls, /sha256, /api/share)
	needPage               // the dashboard page: a viewer, else the login form
)

// route is a pattern's need and the op its denials are counted under.
type route struct {
	need need
	op   string
}

// routes maps the router's patterns to what they need. A pattern not
// listed needs an admin token, so a new route is closed until listed.
var routes = map[string]route{
	"GET /ls":                  {needSelf, "ls"},
	"GET /find":                {needSelf, "find"},
	"GET /c/{id}":              {needReader, "chunk"},
	"PUT /c/{id}":              {needWriter, "chunk"},
	"GET /sha256/{hex}":        {needSelf, "sha256"},
	"GET /api/status":          {needViewer, "status"},
	"GET /api/federation":      {needViewer, "federation"},
	"GET /api/diff/{peer}":     {needAdmin, "diff"},
	"POST /api/resync/{peer}":  {needAdmin, "resync"},
	"GET /api/held/{manifest}": {needSelf, "held"},
	"POST /api/scrub":          {needAdmin, "scrub"},
	"GET /api/scrub":           {needViewer, "scrub"},
	"POST /api/gc":             {needAdmin, "gc"},
	"GET /api/gc":              {needViewer, "gc"},
	"GET /metrics":             {needViewer, "metrics"},
	"GET /ui/":                 {needViewer, "ui"},
	"GET /{$}":                 {needPage, "dashboard"},
	"GET /api/arrivals":        {needViewer, "arrivals"},
	"POST /api/share":          {needSelf, "share"},
	"POST /login":              {needNone, "login"},
}

// registerAccess adds the share and login endpoints to mux.
func (s *Site) registerAccess(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/share", s.serveShare)
	mux.HandleFunc("POST /login", s.serveLogin)
}

type principalKey struct{}

// authn is who a request acts as, or why its Authorization header was refused.
type authn struct {
	p   principal
	err *denial
}

// principalOf returns what the gate found for r; a request the gate did
// not see acts as anonymous.
func principalOf(r *http.Request) (principal, *denial) {
	a, _ := r.Context().Value(principalKey{}).(authn)
	return a.p, a.err
}

// serveGuarded authorizes r for the route mux picks, then serves it.
func (s *Site) serveGuarded(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	_, pattern := mux.Handler(r)
	if pattern == "" { // not found, wrong method, redirect: nothing to guard
		mux.ServeHTTP(w, r)
		return
	}
	a := s.access()
	p, authErr := a.authenticate(r.Header.Get("Authorization"))
	rt, ok := routes[pattern]
	if !ok {
		rt = route{needAdmin, "other"}
	}
	var d *denial
	switch rt.need {
	case needAdmin:
		d = a.admin(p, authErr)
	case needViewer:
		d = a.viewer(p, authErr, dashboardCookie(r))
	case needReader:
		d = a.reader(p, authErr)
	case needWriter:
		d = a.writer(p, authErr)
	case needPage:
		if a.open {
			break
		}
		if share := r.URL.Query().Get("share"); share != "" {
			s.openDashboardLink(w, r, a, share)
			return
		}
		if d = a.viewer(p, authErr, dashboardCookie(r)); d != nil {
			s.countDenial(r, rt.op, d)
			s.loginPage(w, r, d)
			return
		}
	}
	if d != nil {
		s.deny(w, r, rt.op, d)
		return
	}
	mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, authn{p, authErr})))
}

func dashboardCookie(r *http.Request) string {
	c, err := r.Cookie(DashboardCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// countDenial counts and logs a refused request. Neither the log nor the
// metrics ever hold a secret: a token is named by its ID.
func (s *Site) countDenial(r *http.Request, op string, d *denial) {
	s.metrics.access.denied.WithLabelValues(d.reason).Inc()
	s.metrics.requests.WithLabelValues(op, strconv.Itoa(d.status)).Inc()
	s.log.Info("request denied", "op", op, "method", r.Method, "path", r.URL.Path, "status", d.status, "reason", d.reason, "why", d.msg)
}

// deny answers a refused request: 401 (with WWW-Authenticate) or 403,
// {"error", "reason", "hint"}.
func (s *Site) deny(w http.ResponseWriter, r *http.Request, op string, d *denial) {
	s.countDenial(r, op, d)
	if d.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="skyfed"`)
	}
	writeJSON(w, d.status, map[string]string{"error": d.msg, "reason": d.reason, "hint": d.hint})
}

// authorizeObject decides a request on /o/NAME; false means it was answered.
func (s *Site) authorizeObject(w http.ResponseWriter, r *http.Request, name naming.Name) bool {
	a := s.access()
	p, authErr := a.authenticate(r.Header.Get("Authorization"))
	var d *denial
	switch r.Method {
	case http.MethodPut, http.MethodPost: // POST: ?restore
		d = a.objectWrite(p, authErr, name.String())
	case http.MethodDelete:
		d = a.objectWrite(p, authErr, name.String())
	case http.MethodGet, http.MethodHead:
		d = a.objectRead(p, authErr, name.String(), r.URL.Query().Get("share"))
	default:
		return true // answered 405 whoever asks
	}
	if d != nil {
		s.deny(w, r, "object", d)
		return false
	}
	return true
}

// authorizeList decides GET /ls?prefix= and returns which names to
// answer (nil: all); false means the request was answered.
func (s *Site) authorizeList(w http.ResponseWriter, r *http.Request, prefix string) (func(string) bool, bool) {
	p, authErr := principalOf(r)
	keep, d := s.access().list(p, authErr, prefix)
	if d != nil {
		s.deny(w, r, "ls", d)
		return nil, false
	}
	return keep, true
}

// listKept is objects.List (ListAsOf when asOf is set) keeping only the
// names keep allows. It reads
// further pages until limit names are kept or listScanBudget names were
// read; next is where the following page starts ("" at the end).
func (s *Site) listKept(prefix, after string, limit int, keep func(string) bool, asOf *manifest.Stamp) (page []*manifest.Manifest, next string, err error) {
	list := s.objects.List
	if asOf != nil {
		list = func(prefix, after string, limit int) ([]*manifest.Manifest, bool, error) {
			return s.objects.ListAsOf(prefix, after, limit, *asOf)
		}
	}
	if keep == nil {
		pg, more, err := list(prefix, after, limit)
		if err != nil || !more || len(pg) == 0 {
			return pg, "", err
		}
		return pg, pg[len(pg)-1].Name, nil
	}
	for scanned := 0; ; {
		pg, more, err := list(prefix, after, limit)
		if err != nil {
			return nil, "", err
		}
		for i, m := range pg {
			if !keep(m.Name) {
				continue
			}
			page = append(page, m)
			if len(page) == limit {
				if more || i < len(pg)-1 {
					return page, m.Name, nil
				}
				return page, "", nil
			}
		}
		if !more || len(pg) == 0 {
			return page, "", nil
		}
		after = pg[len(pg)-1].Name
		if scanned += len(pg); scanned >= listScanBudget {
			return page, after, nil
		}
	}
}

// authorizeLookup decides, before it resolves, a lookup by SHA-256.
func (s *Site) authorizeLookup(w http.ResponseWriter, r *http.Request) bool {
	p, authErr := principalOf(r)
	if d := s.access().lookup(p, authErr); d != nil {
		s.deny(w, r, "sha256", d)
		return false
	}
	return true
}

// authorizeName decides reading name, once a lookup resolved it.
func (s *Site) authorizeName(w http.ResponseWriter, r *http.Request, op, name string) bool {
	p, authErr := principalOf(r)
	if d := s.access().objectRead(p, authErr, name, ""); d != nil {
		s.deny(w, r, op, d)
		return false
	}
	return true
}

// ShareRequest is the body of POST /api/share.
type ShareRequest struct {
	Name      string `json:"name,omitempty"`      // the object the link opens
	Dashboard bool   `json:"dashboard,omitempty"` // a link to the dashboard instead
	Expires   string `json:"expires,omitempty"`   // a duration ("24h", "7d"); DefaultShareExpiry when empty
}

// ShareAnswer is the answer of POST /api/share.
type ShareAnswer struct {
	URL     string `json:"url"`
	Expires string `json:"expires"` // RFC 3339
	Clamped bool   `json:"clamped,omitempty"`
}

// serveShare is POST /api/share: a signed link that opens one name (or
// the dashboard) to anyone until it expires. It needs read scope for the
// name (any valid token for the dashboard); the link dies with the token
// that asked for it and never outlives it.
func (s *Site) serveShare(w http.ResponseWriter, r *http.Request) {
	var req ShareRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(w, r, "share", badRequest(fmt.Errorf("share request: %w", err), `send {"name": "gloria.eu/x.fits", "expires": "24h"} or {"dashboard": true, "expires": "7d"}`))
		return
	}
	ttl := DefaultShareExpiry
	if req.Expires != "" {
		d, err := ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			s.fail(w, r, "share", badRequest(fmt.Errorf("expires %q is not a positive duration", req.Expires), "such as 24h or 7d"))
			return
		}
		ttl = d
	}
	p, authErr := principalOf(r)
	a := s.access()
	scope, path := DashboardScope, "/"
	switch {
	case authErr != nil:
		s.deny(w, r, "share", authErr)
		return
	case req.Dashboard && req.Name != "":
		s.fail(w, r, "share", badRequest(errors.New("give a name or dashboard, not both"), ""))
		return
	case req.Dashboard:
		if !p.authenticated() {
			s.deny(w, r, "share", noToken("sharing the dashboard"))
			return
		}
	default:
		name, err := naming.ParseName(req.Name)
		if err != nil {
			s.fail(w, r, "share", err)
			return
		}
		if !p.mayRead(name.String()) {
			d := scopeDenial(p, "read", name.String())
			if !p.authenticated() {
				d = noToken("sharing " + name.String())
			}
			s.deny(w, r, "share", d)
			return
		}
		scope, path = name.String(), escapeObjectPath(name.String())
	}
	want := a.now.Add(ttl)
	link, exp := signShare(s.key, p, scope, want)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	s.log.Info("share link made", "scope", scope, "issuer", p.who(), "expires", exp.Format(time.RFC3339))
	s.ok(w, "share", http.StatusOK, ShareAnswer{
		URL:     scheme + "://" + r.Host + path + "?share=" + link.String(),
		Expires: exp.Format(time.RFC3339), Clamped: exp.Before(want.Truncate(time.Second)),
	})
}

// escapeObjectPath is /o/NAME with each segment path-escaped.
func escapeObjectPath(name string) string {
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return "/o/" + strings.Join(segs, "/")
}

// setDashboardCookie stores a dashboard grant in the browser. sameSite
// is Strict for a login on the form; a link opened from elsewhere (mail,
// chat) needs Lax, or the browser would not send the cookie on the
// redirect that follows a navigation another site started.
func setDashboardCookie(w http.ResponseWriter, r *http.Request, grant string, exp time.Time, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name: DashboardCookie, Value: grant, Path: "/", Expires: exp,
		MaxAge: max(1, int(time.Until(exp).Seconds())), HttpOnly: true, Secure: r.TLS != nil, SameSite: sameSite,
	})
}

// openDashboardLink is GET /?share=LINK: a valid dashboard link becomes
// the cookie and the browser goes on to "/".
func (s *Site) openDashboardLink(w http.ResponseWriter, r *http.Request, a *accessState, share string) {
	if d := a.checkShare(share, DashboardScope); d != nil {
		s.countDenial(r, "dashboard", d)
		s.loginPage(w, r, d)
		return
	}
	l, _ := parseShare(share) // checked
	setDashboardCookie(w, r, share, time.Unix(l.Exp, 0), http.SameSiteLaxMode)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// serveLogin is POST /login with the form field token: a valid token
// sets the dashboard cookie (HttpOnly, SameSite=Strict, Secure under
// TLS) and the browser goes on to "/". The cookie holds a grant signed
// by the site, not the token, and dies with the token.
func (s *Site) serveLogin(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
			s.fail(w, r, "login", &apiError{status: http.StatusForbidden, err: errors.New("login from another origin"), hint: "open the site's own page"})
			return
		}
	}
	a := s.access()
	if a.open {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, "login", badRequest(err, "send the form field token"))
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	var p principal
	d := noToken("signing in")
	if tok != "" {
		p, d = a.authenticate("Bearer " + tok)
	}
	if d != nil {
		s.countDenial(r, "login", d)
		s.loginPage(w, r, d)
		return
	}
	grant, exp := signShare(s.key, p, DashboardScope, a.now.Add(loginTTL))
	setDashboardCookie(w, r, grant.String(), exp, http.SameSiteStrictMode)
	s.log.Info("dashboard login", "who", p.who(), "until", exp.Format(time.RFC3339))
	s.metrics.requests.WithLabelValues("login", "303").Inc()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>skyfed · {{.Site}} · sign in</title>
<style>body{font:16px system-ui,sans-serif;max-width:28em;margin:4em auto;padding:0 1em;color:#222}
input{font:inherit;width:100%;box-sizing:border-box;padding:.4em;margin:.4em 0}button{font:inherit;padding:.4em 1.2em}
.err{color:#a00}</style></head>
<body><h1>skyfed · {{.Site}}</h1>
<p>This site's dashboard needs a token.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" required placeholder="SF….">
<button type="submit">Sign in</button>
</form>
<p><small>Create one on the site's host with <code>skyfed site token create</code>, or open a link from <code>skyfed share --dashboard</code>.</small></p>
</body></html>
`))

// loginPage answers with the login form and d's status.
func (s *Site) loginPage(w http.ResponseWriter, r *http.Request, d *denial) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	if d.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="skyfed"`)
	}
	msg := d.msg
	if d.reason == ReasonNoToken && r.Method == http.MethodGet {
		msg = "" // first visit: just the form
	}
	w.WriteHeader(d.status)
	if err := loginForm.Execute(w, struct{ Site, Error string }{s.Config().ID, msg}); err != nil {
		s.log.Debug("login page not sent", "err", err)
	}
}
