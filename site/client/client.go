// Package client is a small HTTP client for one skyfed site's API: put,
// get, versions, list, delete and status. It owns the wire contract on the
// client side (URL layout, headers, JSON answers, error bodies) and the
// end-to-end check that what a get streams hashes to the SHA-256 the site
// announced. It holds no storage, naming or forwarding logic.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Sentinel errors, for callers to branch on.
var (
	// ErrVerify is returned (wrapped) when bytes do not hash to the
	// SHA-256 the site announced for them.
	ErrVerify = errors.New("verification failed")
	// ErrNotSkyfed is returned (wrapped, by a *NotSkyfedError) when what
	// answers at the site's address is not a skyfed site: an answer
	// without SiteHeader, or no HTTP at all.
	ErrNotSkyfed = errors.New("not a skyfed site")
	// ErrDeleted matches an *APIError saying that the name exists but its
	// latest version is deleted or expired (a 404 with reason "deleted").
	ErrDeleted = errors.New("deleted or expired")
)

// SiteHeader names the site on every answer a skyfed site gives. The
// client refuses answers without it: a 404 from some other HTTP server
// must not read as "no such object".
const SiteHeader = "X-Skyfed-Site"

// ChunkSizeHeader gives, on every answer, where the site cuts objects
// into chunks: what a hashmap put's list must be cut at.
const ChunkSizeHeader = "X-Skyfed-Chunk-Size"

// Headers of an answer for which the site asked the federation (a fresh
// get or versions, a name or version unknown there, a lookup by
// SHA-256): how many sites the query was sent towards, and how many
// answered. Fewer answers than sites asked means a newer version may
// exist than the one served.
const (
	AskedHeader    = "X-Skyfed-Asked"
	AnsweredHeader = "X-Skyfed-Answered"
)

// Limits on how much of a JSON answer the client reads.
const (
	maxJSONBytes  = 64 << 20
	maxErrorBytes = 64 << 10
)

// APIError is a non-2xx answer from the site.
type APIError struct {
	Status  int    // HTTP status code
	Message string // the site's "error" field, or the status text
	Hint    string // the site's "hint" field: what the operator can do
	// Reason is why a 401 or 403 refused the request (access.go in
	// package site): no_token, bad_token, expired, revoked or scope; on a
	// 404, ReasonDeleted when the latest version is deleted or expired.
	Reason string
	// Federation is how the site's lookup across the federation went, if
	// it asked one: a 404 after an incomplete one may not be final.
	Federation *Federation
}

// Federation is how a lookup across the federation went, from an
// answer's AskedHeader and AnsweredHeader.
type Federation struct {
	Asked    int // sites the query was sent towards
	Answered int // sites that answered
}

// Incomplete reports whether some site asked did not answer, so that a
// newer version than the one served may exist.
func (f *Federation) Incomplete() bool { return f != nil && f.Answered < f.Asked }

// federationOf reads the lookup headers; nil if the site asked no lookup.
func federationOf(h http.Header) *Federation {
	asked, err1 := strconv.Atoi(h.Get(AskedHeader))
	answered, err2 := strconv.Atoi(h.Get(AnsweredHeader))
	if err1 != nil || err2 != nil || asked < 0 || answered < 0 {
		return nil
	}
	return &Federation{Asked: asked, Answered: answered}
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// Is makes errors.Is(err, ErrDeleted) hold for a 404 about a deleted or
// expired latest version.
func (e *APIError) Is(target error) bool {
	return target == ErrDeleted && e.Status == http.StatusNotFound && e.Reason == ReasonDeleted
}

// ReasonDeleted is the site's "reason" on a 404 whose name exists but
// whose latest version is deleted or expired.
const ReasonDeleted = "deleted"

// opError wraps err with the operation and the object it was on, once:
// an error that already names the object (the site's answer
// "gloria.eu/big: not found") gets only the operation, and one that
// already says both is returned as it is.
func opError(op, name string, err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, op+" "+name+":"):
		return err
	case strings.HasPrefix(msg, name+":") || strings.HasPrefix(msg, name+" "):
		return fmt.Errorf("%s %w", op, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// UnreachableError is returned when nothing answers at the site's address.
type UnreachableError struct {
	Site string // base URL
	Err  error  // the dial error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach site at %s (%v): is `skyfed site run` running? (set --site or SKYFED_SITE)",
		e.Site, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NotSkyfedError is returned when the server at the site's address is not
// a skyfed site. It wraps ErrNotSkyfed.
type NotSkyfedError struct {
	Site string // base URL
	Why  string // what gave it away
}

func (e *NotSkyfedError) Error() string { return ErrNotSkyfed.Error() + ": " + e.Site }
func (e *NotSkyfedError) Unwrap() error { return ErrNotSkyfed }

// Hint says what answered instead and what to check.
func (e *NotSkyfedError) Hint() string {
	return e.Why + "; check --site (or SKYFED_SITE): it must be the site's HTTP address (http in its skyfed.toml)"
}

// Client talks to one site. It is safe for concurrent use.
type Client struct {
	base     string // scheme://host[:port][/prefix], no trailing slash
	token    string
	hc       *http.Client
	setupErr error // an Option that could not be applied fails every request
	// chunkSize is the site's ChunkSizeHeader as last answered (0: not
	// known yet, or a site too old to say).
	chunkSize atomic.Int64
}

// New returns a client for the site at base (for example
// http://127.0.0.1:7401; a missing scheme means http). A non-empty token
// is sent as a bearer token on every request.
func New(base, token string, opts ...Option) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if strings.HasPrefix(base, "http://") { // under TLS the first bytes are a handshake
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &httpOnlyConn{Conn: conn}, nil
		}
	}
	c := &Client{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Transport: tr}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Site returns the base URL the client talks to.
func (c *Client) Site() string { return c.base }

// CloseIdleConnections closes connections kept alive for reuse.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// errNotHTTP is what a connection reads when the server's first bytes are
// not an HTTP/1 status line.
var errNotHTTP = errors.New("the server does not speak HTTP")

// httpOnlyConn fails the first read of a connection whose server does not
// start its answer with "HTTP/". A NATS port greets every connection with
// "INFO {...}" before any request; left to net/http, that greeting is
// either a "malformed HTTP response" or, when it arrives before the
// request is written, a line logged to stderr and an error without a
// cause. Failing the read instead gives one error to branch on and logs
// nothing.
type httpOnlyConn struct {
	net.Conn
	checked int // bytes of the "HTTP/" prefix seen so far
}

func (c *httpOnlyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	const prefix = "HTTP/"
	if c.checked < len(prefix) && n > 0 {
		k := min(n, len(prefix)-c.checked)
		if string(p[:k]) != prefix[c.checked:c.checked+k] {
			return 0, errNotHTTP
		}
		c.checked += k
	}
	return n, err
}

// objectPath is /o/{name} with each segment of name path-escaped.
func objectPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty object name")
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/o/" + strings.Join(segs, "/"), nil
}

// newRequest builds a request for path (already escaped) and raw query.
func (c *Client) newRequest(ctx context.Context, method, path, rawQuery string, body io.Reader) (*http.Request, error) {
	u := c.base + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("bad site URL %q: %w", c.base, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends req. A non-2xx answer becomes an *APIError (and its body is
// closed); a dial failure becomes an *UnreachableError; an answer that
// is not from a skyfed site becomes a *NotSkyfedError.
func (c *Client) do(req *http.Request) (*http.Response, error) { return c.doAccept(req) }

// doAccept is do, also passing on answers with the statuses in also
// (whose bodies the caller reads).
func (c *Client) doAccept(req *http.Request, also ...int) (*http.Response, error) {
	if c.setupErr != nil {
		return nil, c.setupErr
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if req.Context().Err() == nil && errors.As(err, &op) && op.Op == "dial" {
			return nil, &UnreachableError{Site: c.base, Err: op}
		}
		if errors.Is(err, errNotHTTP) {
			return nil, &NotSkyfedError{Site: c.base, Why: "it does not answer in HTTP (a NATS port greets with INFO)"}
		}
		return nil, err
	}
	if resp.Header.Get(SiteHeader) == "" {
		resp.Body.Close()
		return nil, &NotSkyfedError{Site: c.base,
			Why: fmt.Sprintf("it answered HTTP %d without the %s header", resp.StatusCode, SiteHeader)}
	}
	if n, err := strconv.ParseInt(resp.Header.Get(ChunkSizeHeader), 10, 64); err == nil && n > 0 {
		c.chunkSize.Store(n)
	}
	if (resp.StatusCode < 200 || resp.StatusCode > 299) && !slices.Contains(also, resp.StatusCode) {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		e := parseError(resp.StatusCode, body)
		e.Federation = federationOf(resp.Header)
		return nil, e
	}
	return resp, nil
}

// parseError decodes an error answer {error, hint}; any body that is not
// such JSON is kept as the message when it is short text.
func parseError(status int, body []byte) *APIError {
	e := &APIError{Status: status}
	var wire struct {
		Error  string `json:"error"`
		Hint   string `json:"hint"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(body, &wire) == nil {
		e.Message, e.Hint, e.Reason = wire.Error, wire.Hint, wire.Reason
	} else if s := strings.TrimSpace(string(body)); s != "" && len(s) <= 200 && !strings.ContainsAny(s, "\n\r") {
		e.Message = s
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(status))
		if e.Message == "" {
			e.Message = "unexpected answer"
		}
	}
	if e.Hint == "" && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
		e.Hint = "pass the site's token with --token or SKYFED_TOKEN"
	}
	return e
}

// getJSON GETs path?rawQuery and decodes the JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path, rawQuery string, v any) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, rawQuery, nil)
	if err != nil {
		return err
	}
	return c.doJSON(req, v)
}

// doJSON sends req and decodes the JSON answer into v.
func (c *Client) doJSON(req *http.Request, v any) error {
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeJSON(io.LimitReader(resp.Body, maxJSONBytes), v)
}

func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// Status is the answer of GET /api/status. Fields the client does not know
// are kept only in Raw.
type Status struct {
	// Store is where the site's payload lives (site.StoreStatus).
	Store struct {
		Kind          string  `json:"kind"`
		Where         string  `json:"where"`
		Requests      int64   `json:"requests"`
		Errors        int64   `json:"errors"`
		MeanLatencyMs float64 `json:"mean_latency_ms"`
		LastError     string  `json:"last_error"`
	} `json:"store"`
	Site        string           `json:"site"`
	Domain      string           `json:"domain"`
	Objects     int64            `json:"objects"`
	Versions    int64            `json:"versions"`
	Chunks      int64            `json:"chunks"`
	StoredBytes int64            `json:"stored_bytes"`
	RawBytes    int64            `json:"raw_bytes"`
	Links       []map[string]any `json:"links"` // numbers are json.Number
	Raw         json.RawMessage  `json:"-"`     // the answer as received
	// Versions known at the site whose chunks are not all there yet, and
	// the bytes of them not readable there yet.
	IncompleteVersions int64 `json:"incomplete_versions"`
	IncompleteBytes    int64 `json:"incomplete_bytes"`
	// Chunks lost at the site that no reachable site could send yet, the
	// oldest listed with the objects that use them; chunks repaired.
	UnrepairableChunks int64          `json:"unrepairable_chunks"`
	Unrepairable       []Unrepairable `json:"unrepairable"`
	RepairedChunks     int64          `json:"repaired_chunks"`
	// The disk of the data dir: full below disk_reserve.
	DiskFull         bool   `json:"disk_full"`
	DiskFreeBytes    uint64 `json:"disk_free_bytes"`
	DiskReserveBytes uint64 `json:"disk_reserve_bytes"`
	// How links and the HTTP API are secured (empty from older sites).
	NATSTLS     string `json:"nats_tls"`
	NATSTLSPeer string `json:"nats_tls_peers"`
	HTTPS       bool   `json:"https"`
	// ChunkSize is where the site cuts objects (0 from older sites).
	ChunkSize int `json:"chunk_size"`
	// Build is the site's skyfed build ("" from older sites).
	Build string `json:"build"`
	// CountersSince is when the site process started counting: link
	// counters and rates start from zero then (zero from older sites).
	CountersSince time.Time `json:"counters_since"`
}

// Unrepairable is a chunk lost at the site that no site could send.
type Unrepairable struct {
	Chunk    string    `json:"chunk"`
	Since    time.Time `json:"since"`
	Names    []string  `json:"names"`
	Attempts int       `json:"attempts"`
}

// Status fetches the site's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var raw json.RawMessage
	if err := c.getJSON(ctx, "/api/status", "", &raw); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	st, err := decodeStatus(raw)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

func decodeStatus(raw []byte) (Status, error) {
	var st Status
	if err := decodeJSON(bytes.NewReader(raw), &st); err != nil {
		return Status{}, err
	}
	st.Raw = raw
	return st, nil
}

// Held is the answer of GET /api/held/{manifest}: the sites that hold
// one version durably with all its chunks (this site if so, and every
// site whose signed confirmation it holds).
type Held struct {
	Manifest string   `json:"manifest"`
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Sites    int      `json:"sites"`
	HeldBy   []string `json:"held_by"`
	Wanted   int      `json:"wanted"`
	// Asked and Answered say how the held query across the federation
	// went (both 0 when the site had enough confirmations without one).
	Asked    int `json:"asked"`
	Answered int `json:"answered"`
}

// Held asks how many sites hold the version whose manifest ID is
// manifest (hex) durably, with all its chunks. With want > 0 the site
// waits, up to timeout (0: the site's default), until that many do; it
// answers with the count either way. With want 0 it counts every site
// that answers now.
func (c *Client) Held(ctx context.Context, manifest string, want int, timeout time.Duration) (Held, error) {
	q := url.Values{}
	if want > 0 {
		q.Set("wait_sites", strconv.Itoa(want))
	}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	var h Held
	if err := c.getJSON(ctx, "/api/held/"+url.PathEscape(manifest), q.Encode(), &h); err != nil {
		return Held{}, fmt.Errorf("held %s: %w", manifest, err)
	}
	return h, nil
}

// ListEntry is one object in a listing: its latest version.
type ListEntry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

// ListPage is one page of a listing. Next is "" on the last page;
// otherwise pass it as after to get the next page.
type ListPage struct {
	Objects []ListEntry `json:"objects"`
	Next    string      `json:"next"`
}

// List returns one page of the names that start with prefix and sort
// after after. limit <= 0 lets the site pick the page size.
func (c *Client) List(ctx context.Context, prefix, after string, limit int) (ListPage, error) {
	return c.ListAsOf(ctx, prefix, after, limit, "")
}

// ListAsOf is List of the names as they were at asOf (an RFC 3339 time
// or a version stamp; "" now).
func (c *Client) ListAsOf(ctx context.Context, prefix, after string, limit int, asOf string) (ListPage, error) {
	q := url.Values{}
	if asOf != "" {
		q.Set("as_of", asOf)
	}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var page ListPage
	if err := c.getJSON(ctx, "/ls", q.Encode(), &page); err != nil {
		return ListPage{}, fmt.Errorf("list %q: %w", prefix, err)
	}
	return page, nil
}

// Found is one version a find matched.
type Found struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Size    int64             `json:"size"`
	SHA256  string            `json:"sha256"`
	Meta    map[string]string `json:"meta"` // the manifest's meta: header values as fits.<keyword in lower case>
}

// FindPage is one page of GET /find.
type FindPage struct {
	Results []Found `json:"results"`
	Next    string  `json:"next"` // "" at the end; else pass as after
}

// FindOptions are the optional parts of a find.
type FindOptions struct {
	Cone        string // RA,DEC,RADIUS in degrees
	AllVersions bool
	Limit       int
	After       string
}

// Find returns a page of the versions whose FITS header values match
// every condition ("FILTER=R", "DATE-OBS>=2026-11-01", …).
func (c *Client) Find(ctx context.Context, conds []string, o FindOptions) (FindPage, error) {
	q := url.Values{"q": conds}
	if o.Cone != "" {
		q.Set("cone", o.Cone)
	}
	if o.AllVersions {
		q.Set("all_versions", "true")
	}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	var page FindPage
	if err := c.getJSON(ctx, "/find", q.Encode(), &page); err != nil {
		return FindPage{}, fmt.Errorf("find: %w", err)
	}
	return page, nil
}
