package site

// Scoped access for people on the HTTP API: access tokens with read,
// write and admin scopes, public name prefixes and signed share links.
// This file holds the pure parts (types, config checks, credential
// parsing, scope decisions); access_http.go applies them to requests.
//
// A token is an ID and a secret. The secret is never stored: it is
// derived from the site key, secret = base64url(HMAC-SHA256(K, ID))[:40]
// with K = HMAC-SHA256(site key seed, "skyfed access tokens v1"), so
// skyfed.toml holds nothing secret per token and removing an entry
// revokes it. People pass "ID.SECRET" as a bearer token.
//
// A share link is "ISSUER.EXPUNIX.SIG", SIG the site key's ed25519
// signature (base64url) of "skyfed share v1\n"+SCOPE+"\n"+EXP+"\n"+ISSUER,
// where SCOPE is an object name or "dashboard" and ISSUER is the ID of
// the token that asked for it ("site" for the site-wide token and for
// loopback). A link dies with its issuing token: revoked, expired, or no
// longer allowed to read SCOPE.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

const (
	tokenIDPrefix  = "SF"
	tokenIDLen     = 20 // usable as an AWS access key ID
	tokenSecretLen = 40
	tokenKeyLabel  = "skyfed access tokens v1"
	shareLabel     = "skyfed share v1\n"
	// SiteIssuer is the issuer of share links asked for with the
	// site-wide token or on loopback.
	SiteIssuer = "site"
	// DashboardScope is what a dashboard share link (and the dashboard
	// cookie) is signed over; object names always hold a '/'.
	DashboardScope = "dashboard"
	maxTokenName   = 64
)

// AccessToken is one [[access_token]] entry of skyfed.toml. Write implies
// read under the same prefixes; Admin allows the operator APIs (diff,
// resync, scrub, gc). The secret is derived, never stored.
type AccessToken struct {
	Name    string    `toml:"name"`
	ID      string    `toml:"id"`
	Read    []string  `toml:"read,omitempty"`
	Write   []string  `toml:"write,omitempty"`
	Admin   bool      `toml:"admin,omitempty"`
	Expires time.Time `toml:"expires,omitempty"` // zero: never
	Created time.Time `toml:"created"`
}

// MayRead reports whether the token's scopes cover reading name.
func (t AccessToken) MayRead(name string) bool {
	return coveredBy(name, t.Read) || coveredBy(name, t.Write)
}

// MayWrite reports whether the token's scopes cover writing name.
func (t AccessToken) MayWrite(name string) bool { return coveredBy(name, t.Write) }

// Expired reports whether the token has expired at now.
func (t AccessToken) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

// reader reports whether the token may read anything at all.
func (t AccessToken) reader() bool { return len(t.Read)+len(t.Write) > 0 }

// mayReadUnder reports whether some name starting with prefix could be
// readable with the token.
func (t AccessToken) mayReadUnder(prefix string) bool {
	return overlaps(prefix, t.Read) || overlaps(prefix, t.Write)
}

func coveredBy(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// overlaps reports whether a name could start with both prefix and one
// of prefixes.
func overlaps(prefix string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(p, prefix) || strings.HasPrefix(prefix, p) {
			return true
		}
	}
	return false
}

// CheckPrefix validates a name prefix for a scope or a public prefix
// and returns it normalized: a bare domain ("gloria.eu") becomes
// "gloria.eu/", so that it cannot match "gloria.eu.example/...".
func CheckPrefix(p string) (string, error) {
	p = strings.TrimSpace(p)
	if !strings.Contains(p, "/") {
		p += "/"
	}
	if err := checkPrefix(p); err != nil {
		return "", err
	}
	return p, nil
}

func checkPrefix(p string) error {
	domain, _, ok := strings.Cut(p, "/")
	if !ok {
		return fmt.Errorf("prefix %q must start with a domain and '/', as gloria.eu/ or gloria.eu/bootes-2/", p)
	}
	if err := naming.CheckDomain(domain); err != nil {
		return fmt.Errorf("prefix %q: %w", p, err)
	}
	if len(p) > naming.MaxNameLen || !utf8.ValidString(p) || strings.ContainsFunc(p, unicode.IsControl) {
		return fmt.Errorf("prefix %q: names are UTF-8 without control characters, at most %d bytes", p, naming.MaxNameLen)
	}
	return nil
}

// ValidTokenID reports whether id looks like a token ID: "SF" and 18
// base32 characters (A-Z, 2-7).
func ValidTokenID(id string) bool {
	if len(id) != tokenIDLen || !strings.HasPrefix(id, tokenIDPrefix) {
		return false
	}
	for _, c := range []byte(id[len(tokenIDPrefix):]) {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// NewTokenID returns a fresh random token ID.
func NewTokenID() string {
	var b [15]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return tokenIDPrefix + base32.StdEncoding.EncodeToString(b[:])[:tokenIDLen-len(tokenIDPrefix)]
}

func validTokenName(n string) bool {
	if n == "" || len(n) > maxTokenName {
		return false
	}
	for _, c := range []byte(n) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// tokenKey is K, the HMAC key every token secret is derived with.
func tokenKey(seed []byte) []byte {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte(tokenKeyLabel))
	return m.Sum(nil)
}

// tokenSecret derives the secret of token id under K.
func tokenSecret(k []byte, id string) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:tokenSecretLen]
}

// TokenSecretFromSeed derives the secret of token id from the site key's
// seed (manifest.KeyPair.Seed).
func TokenSecretFromSeed(seed []byte, id string) string { return tokenSecret(tokenKey(seed), id) }

func (t AccessToken) validate() error {
	if !validTokenName(t.Name) {
		return fmt.Errorf("%w: access_token name %q must match [a-z0-9._-]{1,%d}", ErrBadConfig, t.Name, maxTokenName)
	}
	if !ValidTokenID(t.ID) {
		return fmt.Errorf("%w: access_token %s: id %q must be SF and 18 characters A-Z, 2-7", ErrBadConfig, t.Name, t.ID)
	}
	if len(t.Read)+len(t.Write) == 0 && !t.Admin {
		return fmt.Errorf("%w: access_token %s grants nothing: give read or write prefixes, or admin", ErrBadConfig, t.Name)
	}
	for _, p := range slices.Concat(t.Read, t.Write) {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("%w: access_token %s: %w", ErrBadConfig, t.Name, err)
		}
	}
	return nil
}

// validateAccess checks the access tokens and public prefixes.
func (c *Config) validateAccess() error {
	names, ids := map[string]bool{}, map[string]bool{}
	for _, t := range c.Tokens {
		if err := t.validate(); err != nil {
			return err
		}
		if names[t.Name] || ids[t.ID] {
			return fmt.Errorf("%w: access_token %s (%s) listed twice", ErrBadConfig, t.Name, t.ID)
		}
		names[t.Name], ids[t.ID] = true, true
	}
	seen := map[string]bool{}
	for _, p := range c.Public {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("%w: public: %w", ErrBadConfig, err)
		}
		if seen[p] {
			return fmt.Errorf("%w: public prefix %q listed twice", ErrBadConfig, p)
		}
		seen[p] = true
	}
	return nil
}

// accessToken returns the token with ID id.
func (c *Config) accessToken(id string) (AccessToken, bool) {
	for _, t := range c.Tokens {
		if t.ID == id {
			return t, true
		}
	}
	return AccessToken{}, false
}

// ParseDuration is time.ParseDuration that also takes days: "90d",
// "1d12h". Every duration flag of the CLI and the share API use it.
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 32)
		if err != nil || i == 0 {
			return 0, fmt.Errorf("duration %q: want a Go duration such as 36h or days such as 90d", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		if days/(24*time.Hour) != time.Duration(n) || n > 100*366 {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a Go duration such as 36h or days such as 90d", s)
	}
	if days > 0 && d < 0 {
		return 0, fmt.Errorf("duration %q: days then a negative part", s)
	}
	if d > math.MaxInt64-days {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return days + d, nil
}

// Token strings and share links.

var (
	errNoBearer   = errors.New("the Authorization header is not \"Bearer <token>\"")
	errBadToken   = errors.New("not a token: tokens look like SF…(20 characters).(40 characters)")
	errBadShare   = errors.New("not a share link")
	b64url        = base64.RawURLEncoding.Strict() // one spelling per signature
	shareSigChars = b64url.EncodedLen(64)
)

// parseBearer returns the token of an Authorization header.
func parseBearer(h string) (string, error) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", errNoBearer
	}
	return tok, nil
}

// splitToken splits "ID.SECRET".
func splitToken(tok string) (id, secret string, err error) {
	id, secret, ok := strings.Cut(tok, ".")
	if !ok || !ValidTokenID(id) || len(secret) != tokenSecretLen {
		return "", "", errBadToken
	}
	if _, err := b64url.DecodeString(secret); err != nil {
		return "", "", errBadToken
	}
	return id, secret, nil
}

// shareLink is a parsed share link.
type shareLink struct {
	Issuer string // token ID or SiteIssuer
	Exp    int64  // unix seconds
	Sig    []byte
}

func (l shareLink) String() string {
	return l.Issuer + "." + strconv.FormatInt(l.Exp, 10) + "." + b64url.EncodeToString(l.Sig)
}

// parseShare parses "ISSUER.EXPUNIX.SIG".
func parseShare(s string) (shareLink, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != SiteIssuer && !ValidTokenID(parts[0])) || len(parts[2]) != shareSigChars {
		return shareLink{}, errBadShare
	}
	// Canonical decimal only, so one link has one spelling.
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || exp <= 0 || strconv.FormatInt(exp, 10) != parts[1] {
		return shareLink{}, errBadShare
	}
	sig, err := b64url.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return shareLink{}, errBadShare
	}
	return shareLink{Issuer: parts[0], Exp: exp, Sig: sig}, nil
}

// shareMessage is what a share link's signature covers.
func shareMessage(scope string, exp int64, issuer string) []byte {
	return []byte(shareLabel + scope + "\n" + strconv.FormatInt(exp, 10) + "\n" + issuer)
}

// Decisions.

// Denial reasons, the "reason" of a 401 or 403 answer and the label of
// skyfed_http_denied_total.
const (
	ReasonNoToken  = "no_token"
	ReasonBadToken = "bad_token"
	ReasonExpired  = "expired"
	ReasonRevoked  = "revoked"
	ReasonScope    = "scope"
)

var denialReasons = []string{ReasonNoToken, ReasonBadToken, ReasonExpired, ReasonRevoked, ReasonScope}

// denial is a refused request: 401 or 403.
type denial struct {
	status int
	reason string
	msg    string
	hint   string
}

const hintCreate = "create one with skyfed site token create --dir DIR (on the site's host), and pass it with --token or SKYFED_TOKEN"

func unauthenticated(reason, msg, hint string) *denial {
	return &denial{status: http.StatusUnauthorized, reason: reason, msg: msg, hint: hint}
}

func noToken(what string) *denial {
	return unauthenticated(ReasonNoToken, what+" needs a token and none was sent", hintCreate)
}

// principal is who a request acts as.
type principal struct {
	open   bool         // the listener is on loopback: everything is allowed
	legacy bool         // the site-wide token of skyfed.toml: read, write and admin everywhere
	tok    *AccessToken // an access token
}

func (p principal) authenticated() bool { return p.open || p.legacy || p.tok != nil }
func (p principal) all() bool           { return p.open || p.legacy }

func (p principal) mayRead(name string) bool  { return p.all() || p.tok != nil && p.tok.MayRead(name) }
func (p principal) mayWrite(name string) bool { return p.all() || p.tok != nil && p.tok.MayWrite(name) }
func (p principal) admin() bool               { return p.all() || p.tok != nil && p.tok.Admin }
func (p principal) reader() bool              { return p.all() || p.tok != nil && p.tok.reader() }

// issuer is the issuer recorded in the share links p asks for.
func (p principal) issuer() string {
	if p.tok != nil {
		return p.tok.ID
	}
	return SiteIssuer
}

// who names p in messages and logs: never a secret.
func (p principal) who() string {
	switch {
	case p.tok != nil:
		return "token " + p.tok.Name + " (" + p.tok.ID + ")"
	case p.legacy:
		return "the site token"
	case p.open:
		return "loopback"
	}
	return "anonymous"
}

// accessState is what access decisions depend on: the config in force,
// the key tokens and links are checked with, and the time.
type accessState struct {
	cfg  *Config
	key  []byte             // K of tokenKey
	pub  manifest.PublicKey // verifies share links
	open bool               // the HTTP listener is on loopback
	now  time.Time
}

// authenticate finds who the Authorization header speaks for. An empty
// header is the anonymous principal, not a denial.
func (a *accessState) authenticate(header string) (principal, *denial) {
	if a.open {
		return principal{open: true}, nil
	}
	if header == "" {
		return principal{}, nil
	}
	tok, err := parseBearer(header)
	if err != nil {
		return principal{}, unauthenticated(ReasonBadToken, err.Error(), "send Authorization: Bearer ID.SECRET; "+hintCreate)
	}
	if legacy := a.cfg.Token; legacy != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(legacy)) == 1 {
		return principal{legacy: true}, nil
	}
	id, secret, err := splitToken(tok)
	if err != nil {
		return principal{}, unauthenticated(ReasonBadToken, "wrong token: "+err.Error(), "check --token or SKYFED_TOKEN; skyfed site token list shows the site's tokens")
	}
	t, ok := a.cfg.accessToken(id)
	if !ok {
		return principal{}, unauthenticated(ReasonRevoked, "token "+id+" is unknown to this site or was revoked",
			"skyfed site token list --dir DIR shows the site's tokens; "+hintCreate)
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(tokenSecret(a.key, id))) != 1 {
		return principal{}, unauthenticated(ReasonBadToken, "wrong token: the secret of token "+t.Name+" ("+id+") does not match",
			"pass the whole ID.SECRET that skyfed site token create printed")
	}
	if t.Expired(a.now) {
		return principal{}, unauthenticated(ReasonExpired, fmt.Sprintf("token %s (%s) expired at %s", t.Name, id, t.Expires.UTC().Format(time.RFC3339)),
			"create a new one with skyfed site token create, or ask the site's operator")
	}
	return principal{tok: &t}, nil
}

// public reports whether name is under a public prefix.
func (a *accessState) public(name string) bool { return coveredBy(name, a.cfg.Public) }

// checkShare verifies a share link for scope (an object name or
// DashboardScope): signature, expiry and its issuing token.
func (a *accessState) checkShare(raw, scope string) *denial {
	l, err := parseShare(raw)
	if err != nil {
		return unauthenticated(ReasonBadToken, "bad share link: "+err.Error(), "ask for a new one with skyfed share")
	}
	if !a.pub.Verify(shareMessage(scope, l.Exp, l.Issuer), l.Sig) {
		return unauthenticated(ReasonBadToken, "share link not valid for "+scope, "a share link opens exactly the name it was made for; ask for one with skyfed share")
	}
	if a.now.Unix() >= l.Exp {
		return unauthenticated(ReasonExpired, "share link expired at "+time.Unix(l.Exp, 0).UTC().Format(time.RFC3339), "ask for a new one with skyfed share")
	}
	if l.Issuer == SiteIssuer {
		return nil
	}
	t, ok := a.cfg.accessToken(l.Issuer)
	switch {
	case !ok:
		return unauthenticated(ReasonRevoked, "share link of revoked token "+l.Issuer, "ask for a new one with skyfed share")
	case t.Expired(a.now):
		return unauthenticated(ReasonExpired, "share link of token "+t.Name+", which expired", "ask for a new one with skyfed share")
	case scope != DashboardScope && !t.MayRead(scope):
		return unauthenticated(ReasonRevoked, "share link of token "+t.Name+", which may no longer read "+scope, "ask for a new one with skyfed share")
	}
	return nil
}

// signShare makes a share link for scope issued by p, expiring at exp
// clamped to the issuing token's expiry.
func signShare(signer manifest.Signer, p principal, scope string, exp time.Time) (shareLink, time.Time) {
	if p.tok != nil && !p.tok.Expires.IsZero() && p.tok.Expires.Before(exp) {
		exp = p.tok.Expires
	}
	l := shareLink{Issuer: p.issuer(), Exp: exp.Unix()}
	l.Sig = signer.Sign(shareMessage(scope, l.Exp, l.Issuer))
	return l, time.Unix(l.Exp, 0).UTC()
}

// objectRead decides a GET or HEAD of name; share is the ?share=
// parameter, authErr what authenticate said of the Authorization header.
func (a *accessState) objectRead(p principal, authErr *denial, name, share string) *denial {
	switch {
	case authErr != nil:
		return authErr
	case p.mayRead(name):
		return nil
	case share != "" && !p.authenticated():
		return a.checkShare(share, name)
	case a.public(name):
		return nil
	case !p.authenticated():
		return noToken("reading " + name)
	}
	return scopeDenial(p, "read", name)
}

// objectWrite decides a PUT or DELETE of name.
func (a *accessState) objectWrite(p principal, authErr *denial, name string) *denial {
	switch {
	case authErr != nil:
		return authErr
	case p.mayWrite(name):
		return nil
	case !p.authenticated():
		return noToken("writing " + name)
	}
	return scopeDenial(p, "write", name)
}

func scopeDenial(p principal, what, name string) *denial {
	msg := fmt.Sprintf("%s lacks %s scope for %s", p.who(), what, name)
	if name == "" {
		msg = fmt.Sprintf("%s lacks %s scope", p.who(), what)
	}
	return &denial{status: http.StatusForbidden, reason: ReasonScope, msg: msg,
		hint: "skyfed site token list --dir DIR shows each token's scopes; create one that covers it with skyfed site token create --" + what + " PREFIX"}
}

// viewer decides the dashboard, its APIs, /api/status and /metrics:
// any valid token, a dashboard cookie, or dashboard_public.
func (a *accessState) viewer(p principal, authErr *denial, cookie string) *denial {
	switch {
	case authErr != nil:
		return authErr
	case p.authenticated():
		return nil
	case cookie != "":
		return a.checkShare(cookie, DashboardScope)
	case a.cfg.DashboardPublic:
		return nil
	}
	return noToken("viewing the dashboard, status or metrics")
}

// admin decides diff, resync, scrub and gc.
func (a *accessState) admin(p principal, authErr *denial) *denial {
	switch {
	case authErr != nil:
		return authErr
	case p.admin():
		return nil
	case !p.authenticated():
		return noToken("this operator API (diff, resync, scrub, gc)")
	}
	return &denial{status: http.StatusForbidden, reason: ReasonScope, msg: p.who() + " is not an admin token",
		hint: "use the site token of skyfed.toml or a token made with skyfed site token create --admin"}
}

// reader decides requests that need some read scope (chunks by ID).
func (a *accessState) reader(p principal, authErr *denial) *denial {
	switch {
	case authErr != nil:
		return authErr
	case p.reader():
		return nil
	case !p.authenticated():
		return noToken("reading chunks")
	}
	return scopeDenial(p, "read", "")
}

// writer decides PUT /c/{id}: a token with some write scope (a chunk
// names nothing; the hashmap put that uses it needs write scope on its
// name).
func (a *accessState) writer(p principal, authErr *denial) *denial {
	switch {
	case authErr != nil:
		return authErr
	case p.all() || p.tok != nil && len(p.tok.Write) > 0:
		return nil
	case !p.authenticated():
		return noToken("sending chunks")
	}
	return scopeDenial(p, "write", "")
}

// list decides GET /ls?prefix= and returns which names to answer: nil
// keep means all of them.
func (a *accessState) list(p principal, authErr *denial, prefix string) (keep func(string) bool, d *denial) {
	switch {
	case authErr != nil:
		return nil, authErr
	case p.all():
		return nil, nil
	}
	pub := overlaps(prefix, a.cfg.Public)
	switch {
	case p.tok != nil && (pub || p.tok.mayReadUnder(prefix)):
		return func(n string) bool { return p.tok.MayRead(n) || a.public(n) }, nil
	case p.tok == nil && pub:
		return a.public, nil
	case p.tok == nil:
		return nil, noToken("listing " + strconv.Quote(prefix))
	}
	return nil, scopeDenial(p, "read", "names starting with "+strconv.Quote(prefix))
}

// find decides GET /find and returns which names to answer: nil for
// all, else those the token may read and the public ones.
func (a *accessState) find(p principal, authErr *denial) (keep func(string) bool, d *denial) {
	switch {
	case authErr != nil:
		return nil, authErr
	case p.all():
		return nil, nil
	case p.tok != nil && p.tok.reader():
		return func(n string) bool { return p.tok.MayRead(n) || a.public(n) }, nil
	case len(a.cfg.Public) > 0:
		return a.public, nil
	case !p.authenticated():
		return nil, noToken("finding objects")
	}
	return nil, scopeDenial(p, "read", "")
}

// lookup decides, before a lookup by SHA-256 resolves the name, whether
// any name could be readable at all.
func (a *accessState) lookup(p principal, authErr *denial) *denial {
	switch {
	case authErr != nil:
		return authErr
	case p.reader(), len(a.cfg.Public) > 0:
		return nil
	case !p.authenticated():
		return noToken("reading by SHA-256")
	}
	return scopeDenial(p, "read", "")
}

// Config file edits for the CLI.

// CreateToken adds t to dir's config with a fresh ID and creation time
// and returns it with the token string "ID.SECRET" to hand out. The
// secret is derived from the site key and never written anywhere.
func CreateToken(dir string, t AccessToken, now time.Time) (AccessToken, string, error) {
	key, err := LoadKey(dir)
	if err != nil {
		return t, "", err
	}
	if t.Read, err = normalizePrefixes(t.Read); err != nil {
		return t, "", err
	}
	if t.Write, err = normalizePrefixes(t.Write); err != nil {
		return t, "", err
	}
	t.ID, t.Created = NewTokenID(), now.UTC().Truncate(time.Second)
	if !t.Expires.IsZero() {
		t.Expires = t.Expires.UTC().Truncate(time.Second)
	}
	if err := t.validate(); err != nil {
		return t, "", err
	}
	err = EditConfig(dir, func(c *Config) error {
		for _, o := range c.Tokens {
			if o.Name == t.Name {
				return fmt.Errorf("%w: %q (revoke it first, or pick another --name)", ErrTokenExists, t.Name)
			}
		}
		c.Tokens = append(c.Tokens, t)
		return nil
	})
	if err != nil {
		return t, "", err
	}
	return t, t.ID + "." + TokenSecretFromSeed(key.Seed(), t.ID), nil
}

func normalizePrefixes(ps []string) ([]string, error) {
	var out []string
	for _, p := range ps {
		n, err := CheckPrefix(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// RevokeToken removes the token named name (or with ID name) from dir's
// config, and returns it.
func RevokeToken(dir, name string) (AccessToken, error) {
	var gone AccessToken
	err := EditConfig(dir, func(c *Config) error {
		i := slices.IndexFunc(c.Tokens, func(t AccessToken) bool { return t.Name == name || t.ID == name })
		if i < 0 {
			return fmt.Errorf("%w: %q", ErrNoSuchToken, name)
		}
		gone = c.Tokens[i]
		c.Tokens = slices.Delete(c.Tokens, i, i+1)
		return nil
	})
	return gone, err
}

// AddPublic makes names under prefix readable without a token.
func AddPublic(dir, prefix string) (string, error) {
	p, err := CheckPrefix(prefix)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return p, EditConfig(dir, func(c *Config) error {
		if !slices.Contains(c.Public, p) {
			c.Public = append(c.Public, p)
		}
		return nil
	})
}

// RemovePublic takes prefix out of the public prefixes.
func RemovePublic(dir, prefix string) (string, error) {
	p, err := CheckPrefix(prefix)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return p, EditConfig(dir, func(c *Config) error {
		i := slices.Index(c.Public, p)
		if i < 0 {
			return fmt.Errorf("%w: %q", ErrNoSuchPublic, p)
		}
		c.Public = slices.Delete(c.Public, i, i+1)
		return nil
	})
}

// Errors of the token and public-prefix edits.
var (
	ErrTokenExists  = errors.New("a token with this name exists")
	ErrNoSuchToken  = errors.New("no such token")
	ErrNoSuchPublic = errors.New("not a public prefix")
)

// TokenSecret returns the secret of the access token id with its entry,
// for APIs that need the secret itself (S3 SigV4). ok is false for an ID
// the config does not hold and for an expired token (whose entry is
// still returned).
func (s *Site) TokenSecret(id string) (secret string, tok AccessToken, ok bool) {
	cfg := s.Config()
	tok, found := cfg.accessToken(id)
	if !found {
		return "", AccessToken{}, false
	}
	if tok.Expired(time.Now()) {
		return "", tok, false
	}
	return tokenSecret(tokenKey(s.key.Seed()), id), tok, true
}
