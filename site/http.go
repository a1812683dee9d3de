package site

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// Handler returns the site's HTTP API.
func (s *Site) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ls", s.serveList)
	mux.HandleFunc("GET /find", s.serveFind)
	mux.HandleFunc("GET /c/{id}", s.serveChunk)
	mux.HandleFunc("PUT /c/{id}", s.servePutChunk)
	mux.HandleFunc("GET /sha256/{hex}", s.serveBySHA256)
	mux.HandleFunc("GET /api/status", s.serveStatus)
	mux.HandleFunc("GET /api/federation", s.serveFederation)
	mux.HandleFunc("GET /api/diff/{peer}", s.serveDiff)
	mux.HandleFunc("POST /api/resync/{peer}", s.serveResync)
	mux.HandleFunc("GET /api/held/{manifest}", s.serveHeld)
	s.registerHealing(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{Registry: s.opts.Registry}))
	s.registerDashboard(mux)
	s.registerAccess(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer says which site gave it, errors and the dashboard
		// included, so a client pointed at some other HTTP server can tell
		// "not a skyfed site" from "no such object".
		cfg := s.Config()
		w.Header().Set(client.SiteHeader, cfg.ID)
		w.Header().Set(client.ChunkSizeHeader, strconv.Itoa(cfg.ChunkSize)) // what a hashmap put cuts at
		// A copy: net/http decides by the type of the original request's
		// body how to finish it, and must keep deciding so.
		r = r.WithContext(context.WithValue(r.Context(), answerHeaderKey{}, w.Header()))
		if r.Body != nil && r.Body != http.NoBody {
			body := newIdleBody(w, r, cfg.BodyIdleTimeout(), s.metrics.bodyTimeouts.Inc)
			defer body.handled()
			r.Body = body
		}
		// Object names are taken from the escaped path before any router
		// cleaning: ServeMux would answer "//" with a redirect to another name.
		if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/o/"); ok {
			s.serveObject(w, r, rest)
			return
		}
		s.serveGuarded(mux, w, r) // access_http.go: every route is authorized
	})
}

// apiError is an error with the status and operator hint to answer it with.
type apiError struct {
	status int
	err    error
	hint   string
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func badRequest(err error, hint string) error {
	return &apiError{status: http.StatusBadRequest, err: err, hint: hint}
}

// statusClientGone counts requests whose client went away before the
// answer, which is therefore never sent (nginx's "client closed request").
const statusClientGone = 499

// statusOf maps an error to an HTTP status and a hint.
func statusOf(err error) (int, string) {
	var ae *apiError
	var be *bodyError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.hint
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, ""
	case errors.As(err, &be) && be.timedOut():
		return http.StatusRequestTimeout, "the upload stalled; the site drops a body idle longer than http_body_idle_timeout in its " + ConfigFile
	case errors.As(err, &be):
		return http.StatusBadRequest, "the request body ended early or was malformed (shorter than its Content-Length, or truncated chunked encoding); nothing was stored, send it again"
	case errors.Is(err, naming.ErrBadHashmap), errors.Is(err, ErrRestoreDeleted), errors.Is(err, naming.ErrBadQuery):
		return http.StatusBadRequest, ""
	case errors.Is(err, naming.ErrBadName):
		return http.StatusBadRequest, "names are domain/path: UTF-8, at most 1024 bytes, no empty, . or .. segments"
	case errors.Is(err, naming.ErrDeleted):
		return http.StatusNotFound, "the latest version is deleted or expired; skyfed versions NAME (GET /o/NAME?versions) lists its versions"
	case errors.Is(err, naming.ErrNotFound), errors.Is(err, chunk.ErrNotFound):
		return http.StatusNotFound, ""
	case errors.Is(err, naming.ErrForbidden), errors.Is(err, naming.ErrUntrusted):
		return http.StatusForbidden, "this site's key may write only under its own domain and those granted by site trust"
	case errors.Is(err, manifest.ErrMalformed):
		return http.StatusBadRequest, ""
	case errors.Is(err, chunk.ErrCorrupt):
		return http.StatusBadGateway, "this site's copy of a chunk of it is damaged or lost and no reachable site sent a good one; skyfed stat lists unrepairable chunks and their objects, skyfed tools scrub checks the whole store"
	case errors.Is(err, syscall.ENOSPC):
		return http.StatusInsufficientStorage, "the site's disk is below its disk_reserve: free space (skyfed tools gc reclaims deleted versions), grow the disk, or change disk_reserve in " + ConfigFile + "; reads and replication from this site go on"
	case errors.Is(err, ErrClockAhead):
		return http.StatusServiceUnavailable, "fix this site's clock (NTP); skyfed stat shows each link's clock_offset_seconds"
	case errors.Is(err, forward.ErrCannotReconcile):
		return http.StatusConflict, "upgrade skyfed at the peer; until then its link replicates without reconciliation"
	case errors.Is(err, forward.ErrNoLink):
		return http.StatusNotFound, "skyfed stat lists this site's links and their states"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, forward.ErrReconTimeout):
		return http.StatusGatewayTimeout, "the peer did not answer in time; skyfed stat shows the link's state"
	}
	return http.StatusInternalServerError, ""
}

func (s *Site) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	if clientGone(r, err) {
		s.metrics.requests.WithLabelValues(op, strconv.Itoa(statusClientGone)).Inc()
		s.log.Info("client went away; no answer sent", "op", op, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler) // returning would have net/http send a 200
	}
	status, hint := statusOf(err)
	var be *bodyError
	switch {
	case errors.As(err, &be):
		// The client's doing, no alarm. The rest of the body is in an
		// unknown state, so the connection is not reused.
		w.Header().Set("Connection", "close")
		s.log.Info("request body unusable", "op", op, "path", r.URL.Path, "status", status, "err", err)
	case status >= 500 && !errors.Is(err, ErrClockAhead) && !errors.Is(err, ErrDiskFull):
		s.log.Error("request failed", "op", op, "path", r.URL.Path, "err", err)
	case status != http.StatusNotFound:
		s.metrics.rejected.WithLabelValues(op + "_" + strconv.Itoa(status)).Inc()
		s.log.Warn("request refused", "op", op, "path", r.URL.Path, "status", status, "err", err)
	}
	s.metrics.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	if errors.Is(err, chunk.ErrCorrupt) {
		// A fixed code scripts can test, the detail beside it.
		writeJSON(w, status, map[string]string{"error": errChunkCorrupt, "detail": err.Error(), "hint": hint})
		return
	}
	answer := map[string]string{"error": err.Error(), "hint": hint}
	if errors.Is(err, naming.ErrDeleted) {
		answer["reason"] = reasonDeleted // what a client branches on, as on a 401's reason
	}
	writeJSON(w, status, answer)
}

// reasonDeleted is the "reason" of a 404 whose name exists but whose
// latest version is deleted or expired (client.ErrDeleted).
const reasonDeleted = "deleted"

// clientGone reports whether err means that the client went away, so that
// no answer can reach it: its connection broke while the body was read,
// or the request's context ended (net/http cancels it when the
// connection closes) and that is what stopped the work.
func clientGone(r *http.Request, err error) bool {
	var be *bodyError
	if errors.As(err, &be) {
		return be.clientGone()
	}
	return r.Context().Err() != nil && errors.Is(err, context.Canceled)
}

func (s *Site) ok(w http.ResponseWriter, op string, status int, v any) {
	s.metrics.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	if v != nil {
		writeJSON(w, status, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func parseObjectName(escaped string) (naming.Name, error) {
	raw, err := url.PathUnescape(escaped)
	if err != nil {
		return naming.Name{}, fmt.Errorf("%w: %w", naming.ErrBadName, err)
	}
	return naming.ParseName(raw)
}

func (s *Site) serveObject(w http.ResponseWriter, r *http.Request, escaped string) {
	name, err := parseObjectName(escaped)
	if err != nil {
		s.fail(w, r, "object", err)
		return
	}
	if !s.authorizeObject(w, r, name) {
		return
	}
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && q.Has("hashmap"):
		s.servePutHashmap(w, r, name)
	case r.Method == http.MethodPut:
		s.servePut(w, r, name)
	case r.Method == http.MethodPost && q.Has("restore"):
		s.serveRestore(w, r, name)
	case r.Method == http.MethodDelete:
		s.serveDelete(w, r, name)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE, POST")
		s.fail(w, r, "object", &apiError{status: http.StatusMethodNotAllowed, err: fmt.Errorf("method %s not allowed", r.Method)})
	case q.Has("versions"):
		s.serveVersions(w, r, name)
	case q.Has("hashmap"):
		s.serveHashmap(w, r, name)
	default:
		s.serveGet(w, r, name)
	}
}

// waitOptions reads ?wait_sites=K&timeout=D of a put.
func waitOptions(r *http.Request) (int, time.Duration, error) {
	q := r.URL.Query()
	want, timeout := 0, waitTimeout
	if v := q.Get("wait_sites"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			return 0, 0, badRequest(fmt.Errorf("wait_sites %q must be a count of sites", v), "e.g. wait_sites=3")
		}
		want = n
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, 0, badRequest(fmt.Errorf("timeout %q is not a positive duration", v), "e.g. timeout=30s")
		}
		timeout = d
	}
	return want, timeout, nil
}

// putRequest checks that the site may take a new version now (mayPut)
// and reads what every kind of put asks besides its body: the version's
// options and how many sites to wait for. false: it answered r.
func (s *Site) putRequest(w http.ResponseWriter, r *http.Request, op string) (naming.PutOptions, int, time.Duration, bool) {
	err := s.mayPut()
	var opts naming.PutOptions
	if err == nil {
		opts, err = putOptions(r, s.now())
	}
	var want int
	var timeout time.Duration
	if err == nil {
		want, timeout, err = waitOptions(r)
	}
	if err != nil {
		s.fail(w, r, op, err)
		return opts, 0, 0, false
	}
	return opts, want, timeout, true
}

func (s *Site) servePut(w http.ResponseWriter, r *http.Request, name naming.Name) {
	opts, want, timeout, ok := s.putRequest(w, r, "put")
	if !ok {
		return
	}
	m, err := s.put(r.Context(), name, r.Body, opts)
	if err != nil {
		s.fail(w, r, "put", err)
		return
	}
	s.answerPut(w, r, m, want, timeout)
}

// answerPut answers a put of m with its JSON, once want sites hold it
// (504 after timeout).
func (s *Site) answerPut(w http.ResponseWriter, r *http.Request, m *manifest.Manifest, want int, timeout time.Duration) {
	answer := client.PutResult{Name: m.Name, Version: m.Version(), SHA256: hex.EncodeToString(m.SHA256[:]), Size: m.Size, Chunks: len(m.Chunks), Manifest: m.ID().String()}
	if got, err := s.waitSites(r.Context(), m, want, timeout); err != nil {
		s.metrics.requests.WithLabelValues("put", "504").Inc()
		writeJSON(w, http.StatusGatewayTimeout, map[string]any{
			"error":     fmt.Sprintf("version %s is durable at %d of %d sites after %s", m.Version(), got, want, timeout),
			"hint":      "the version is stored here and keeps replicating; check the links with skyfed stat",
			"confirmed": got, "wanted": want, "name": m.Name, "version": m.Version(), "sha256": answer.SHA256,
		})
		return
	} else {
		answer.Confirmed = got
	}
	s.ok(w, "put", http.StatusCreated, answer)
}

const metaHeaderPrefix = "X-Skyfed-Meta-"

func putOptions(r *http.Request, now time.Time) (naming.PutOptions, error) {
	opts := naming.PutOptions{ContentType: r.Header.Get("Content-Type")}
	for k, vs := range r.Header {
		if key, ok := strings.CutPrefix(k, metaHeaderPrefix); ok && len(vs) > 0 {
			opts.Meta = append(opts.Meta, manifest.Meta{Key: strings.ToLower(key), Value: vs[0]})
		}
	}
	slices.SortFunc(opts.Meta, func(a, b manifest.Meta) int { return strings.Compare(a.Key, b.Key) })
	if e := r.URL.Query().Get("expires"); e != "" {
		d, err := time.ParseDuration(e)
		if err != nil || d <= 0 {
			return opts, badRequest(fmt.Errorf("expires %q is not a positive duration", e), "use a Go duration such as 720h")
		}
		opts.Expires = now.Add(d)
	}
	return opts, nil
}

// mayPut refuses a new version before its body is read: the site's
// clock is too far ahead, or its disk is full.
func (s *Site) mayPut() error {
	if err := s.checkClock(); err != nil {
		return err
	}
	return s.space.refuse()
}

// put stores a new version of name from r (after mayPut), for the HTTP
// and S3 APIs alike: a full disk met on the way is looked at at once,
// and the put is counted.
func (s *Site) put(ctx context.Context, name naming.Name, r io.Reader, opts naming.PutOptions) (*manifest.Manifest, error) {
	start := time.Now()
	m, err := s.objects.Put(ctx, name, r, opts)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			s.space.lookSoon()
		}
		return nil, err
	}
	s.metrics.putSeconds.Observe(time.Since(start).Seconds())
	s.metrics.ingestBytes.Add(float64(m.Size))
	s.metrics.ingestObjs.Inc()
	return m, nil
}

// remove records a tombstone of name, for the HTTP and S3 APIs alike.
func (s *Site) remove(ctx context.Context, name naming.Name) (*manifest.Manifest, error) {
	if err := s.checkClock(); err != nil {
		return nil, err
	}
	m, err := s.objects.Delete(ctx, name)
	if err != nil {
		return nil, err
	}
	s.metrics.ingestObjs.Inc()
	return m, nil
}

func (s *Site) serveDelete(w http.ResponseWriter, r *http.Request, name naming.Name) {
	m, err := s.remove(r.Context(), name)
	if err != nil {
		s.fail(w, r, "delete", err)
		return
	}
	s.ok(w, "delete", http.StatusOK, map[string]string{"name": m.Name, "version": m.Version()})
}

// resolve finds the version a GET asks for.
func (s *Site) resolve(r *http.Request, name naming.Name) (*manifest.Manifest, error) {
	start := time.Now()
	defer func() { s.metrics.lookupSecond.Observe(time.Since(start).Seconds()) }()
	v := r.URL.Query().Get("version")
	if v == "" {
		return s.latest(r, name)
	}
	stamp, err := manifest.ParseStamp(v)
	if err != nil {
		return nil, badRequest(err, "versions look like 1763765000000.0000.alpha; list them with ?versions")
	}
	m, err := s.version(r, name, stamp)
	if err == nil && m.Tombstone {
		return m, fmt.Errorf("%s version %s is a tombstone: %w", name, v, naming.ErrDeleted)
	}
	return m, err
}

func (s *Site) serveGet(w http.ResponseWriter, r *http.Request, name naming.Name) {
	m, err := s.resolve(r, name)
	if err != nil {
		s.fail(w, r, "get", err)
		return
	}
	s.serveContent(w, r, "get", m)
}

// serveContent streams m's bytes with Range support. A chunk that fails
// verification aborts the response: the client sees a broken transfer,
// never a short or wrong body.
func (s *Site) serveContent(w http.ResponseWriter, r *http.Request, op string, m *manifest.Manifest) {
	h := w.Header()
	h.Set("ETag", `"`+hex.EncodeToString(m.SHA256[:])+`"`)
	h.Set("X-Skyfed-Version", m.Version())
	ct := m.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	for _, kv := range m.Meta {
		h.Set(metaHeaderPrefix+kv.Key, kv.Value)
	}
	rt := &readThrough{ctx: r.Context(), s: s, name: m.Name + "@" + m.Version()}
	unpin := s.chunks.Pin(m.Chunks) // no garbage collection under a read
	defer unpin()
	if err := s.primeRead(r, m, rt); err != nil {
		s.fail(w, r, op, err)
		return
	}
	rd := &countingReader{r: naming.NewReader(rt, m, 0, m.Size)}
	http.ServeContent(w, r, "", m.Stamp.Time(), rd)
	s.metrics.servedBytes.Add(float64(rd.n))
	if rd.err != nil && clientGone(r, rd.err) {
		s.metrics.requests.WithLabelValues(op, strconv.Itoa(statusClientGone)).Inc()
		s.log.Info("client went away during a read", "name", m.Name, "version", m.Version(), "err", rd.err)
		panic(http.ErrAbortHandler)
	}
	if rd.err != nil && !errors.Is(rd.err, io.EOF) {
		status, _ := statusOf(rd.err)
		s.metrics.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
		s.log.Error("object read failed; response aborted", "name", m.Name, "version", m.Version(), "err", rd.err)
		panic(http.ErrAbortHandler)
	}
	s.metrics.requests.WithLabelValues(op, "200").Inc()
}

type countingReader struct {
	r   io.ReadSeeker
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *countingReader) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

// versionEntry is one row of ?versions.
type versionEntry struct {
	Version string `json:"version"`
	Origin  string `json:"origin"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Deleted bool   `json:"deleted"`
	Expires string `json:"expires"`
	// Manifest is the version's manifest ID (GET /api/held takes it).
	Manifest string `json:"manifest"`
}

func (s *Site) serveVersions(w http.ResponseWriter, r *http.Request, name naming.Name) {
	asOf, err := asOfParam(r)
	if err != nil {
		s.fail(w, r, "versions", err)
		return
	}
	hist, err := s.history(r, name)
	if err == nil && asOf != nil {
		hist = slices.DeleteFunc(hist, func(m *manifest.Manifest) bool { return m.Stamp.Compare(*asOf) > 0 })
		if len(hist) == 0 {
			err = fmt.Errorf("%s as of %s: %w", name, asOf, naming.ErrNotFound)
		}
	}
	if err != nil {
		s.fail(w, r, "versions", err)
		return
	}
	out := struct {
		Name     string         `json:"name"`
		Latest   string         `json:"latest"`
		Versions []versionEntry `json:"versions"`
	}{Name: name.String(), Latest: hist[0].Version(), Versions: []versionEntry{}}
	now := s.now()
	for _, m := range hist {
		e := versionEntry{Version: m.Version(), Origin: m.Stamp.Origin, Size: m.Size, Deleted: m.Deleted(now), Manifest: m.ID().String()}
		if !m.Tombstone {
			e.SHA256 = hex.EncodeToString(m.SHA256[:])
		}
		if m.Expires != 0 {
			e.Expires = time.UnixMilli(m.Expires).UTC().Format(time.RFC3339)
		}
		out.Versions = append(out.Versions, e)
	}
	s.ok(w, "versions", http.StatusOK, out)
}

func (s *Site) serveHashmap(w http.ResponseWriter, r *http.Request, name naming.Name) {
	m, err := s.resolve(r, name)
	if err != nil {
		s.fail(w, r, "hashmap", err)
		return
	}
	hm := client.Hashmap{ChunkSize: int(m.ChunkSize), Size: m.Size, SHA256: hex.EncodeToString(m.SHA256[:]), Chunks: make([]string, len(m.Chunks))}
	for i, id := range m.Chunks {
		hm.Chunks[i] = id.String()
	}
	s.ok(w, "hashmap", http.StatusOK, hm)
}
