package site

import (
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// The dashboard is one HTML page (web/index.html, rendered with the
// site's current state so the first paint needs no request) and plain
// JS/CSS under web/ui, all embedded so the page works on an air-gapped
// site. The page then polls /api/status and /api/arrivals.

//go:embed web/index.html web/ui
var webFS embed.FS

var dashboardPage = template.Must(template.ParseFS(webFS, "web/index.html"))

const (
	defaultArrivals = 25   // arrivals of each kind /api/arrivals returns by default
	maxArrivals     = 500  // most arrivals of each kind one request may ask for
	originScan      = 4096 // manifest arrivals before the first arrivals request scanned for the sites they reveal
	originBatch     = 512  // manifest arrivals read at a time for them
)

// registerDashboard adds the dashboard page, its assets and its APIs to mux.
func (s *Site) registerDashboard(mux *http.ServeMux) {
	ui, err := fs.Sub(webFS, "web/ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(ui))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Embedded files carry no modification time: make browsers
		// revalidate so an upgraded binary serves its own assets.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /{$}", s.serveDashboard)
	mux.HandleFunc("GET /api/arrivals", s.serveArrivals)
}

// dashboardBoot is the state the page renders first, embedded in the HTML.
type dashboardBoot struct {
	Status     Status                `json:"status"`
	Arrivals   arrivalsView          `json:"arrivals"`
	Federation client.FederationView `json:"federation"`
	Refresh    int                   `json:"refresh_ms"`
}

// refreshEvery is how often the page polls.
const refreshEvery = 1500 * time.Millisecond

func (s *Site) serveDashboard(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status()
	if err != nil {
		s.fail(w, r, "dashboard", err)
		return
	}
	av, err := s.arrivalsView(defaultArrivals)
	if err != nil {
		s.fail(w, r, "dashboard", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	data := struct {
		Site, Domain string
		Boot         dashboardBoot
	}{st.Site, st.Domain, dashboardBoot{Status: st, Arrivals: av, Federation: s.federation(time.Now()), Refresh: int(refreshEvery / time.Millisecond)}}
	if err := dashboardPage.Execute(w, data); err != nil {
		s.log.Warn("dashboard page not sent", "err", err)
		return
	}
	s.metrics.requests.WithLabelValues("dashboard", "200").Inc()
}

// arrivalView is one arrival as /api/arrivals shows it; manifest
// arrivals carry the version they record.
type arrivalView struct {
	Seq  uint64 `json:"seq"`
	Kind string `json:"kind"` // "manifest" or "chunk"
	ID   string `json:"id"`
	From string `json:"from"`           // link name ("in:beta", "out:beta") or "local"
	Peer string `json:"peer,omitempty"` // neighbour it arrived from; empty when local
	At   int64  `json:"at"`             // unix milliseconds when it was stored here

	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	Origin  string `json:"origin,omitempty"`
	Size    int64  `json:"size,omitempty"`
	Chunks  int    `json:"chunks,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	// Expired: the version's expiry has passed (it acts as a tombstone).
	Expired bool `json:"expired,omitempty"`
	// FITS are the header values the version's manifest carries
	// (fits.* meta), by keyword in upper case.
	FITS map[string]string `json:"fits,omitempty"`
}

// siteSeen is a site that recent manifests name as their origin.
type siteSeen struct {
	Site      string   `json:"site"`
	Via       []string `json:"via"` // neighbours its versions arrived from ("local" for this site)
	Manifests int      `json:"manifests"`
	LastAt    int64    `json:"last_at"` // unix ms of the newest such arrival
}

// arrivalsView is the JSON answer of /api/arrivals.
type arrivalsView struct {
	Now       int64             `json:"now"` // server clock, unix ms: when this sample was taken
	Site      string            `json:"site"`
	Heads     map[string]uint64 `json:"heads"`
	Manifests []arrivalView     `json:"manifests"` // newest first
	Chunks    []arrivalView     `json:"chunks"`    // newest first
	Sites     []siteSeen        `json:"sites"`     // origins of the manifest arrivals since the site started (and 4096 before), by name
}

func (s *Site) serveArrivals(w http.ResponseWriter, r *http.Request) {
	limit := defaultArrivals
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxArrivals {
			s.fail(w, r, "arrivals", badRequest(fmt.Errorf("limit %q must be 1..%d", l, maxArrivals), "limit counts arrivals of each kind"))
			return
		}
		limit = n
	}
	av, err := s.arrivalsView(limit)
	if err != nil {
		s.fail(w, r, "arrivals", err)
		return
	}
	s.ok(w, "arrivals", http.StatusOK, av)
}

// arrivalsView gathers up to limit newest arrivals of each kind and the
// origin sites the newest manifests reveal.
func (s *Site) arrivalsView(limit int) (arrivalsView, error) {
	av := arrivalsView{
		Now: time.Now().UnixMilli(), Site: s.Config().ID,
		Heads: map[string]uint64{
			forward.KindManifest.String(): s.arrivals.Head(forward.KindManifest),
			forward.KindChunk.String():    s.arrivals.Head(forward.KindChunk),
		},
		Manifests: []arrivalView{}, Chunks: []arrivalView{}, Sites: []siteSeen{},
	}
	chunks, err := s.arrivals.Recent(forward.KindChunk, limit)
	if err != nil {
		return av, fmt.Errorf("recent chunk arrivals: %w", err)
	}
	for _, a := range chunks {
		av.Chunks = append(av.Chunks, newArrivalView(a))
	}
	mans, err := s.arrivals.Recent(forward.KindManifest, limit)
	if err != nil {
		return av, fmt.Errorf("recent manifest arrivals: %w", err)
	}
	for _, a := range mans {
		av.Manifests = append(av.Manifests, s.manifestArrival(a))
	}
	if av.Sites, err = s.origins.update(s); err != nil {
		return av, err
	}
	return av, nil
}

// originTracker keeps the sites that manifest arrivals name as their
// origin, for the life of the site process (and the originScan arrivals
// before it started), so that a burst of local puts does not push a peer
// out of "Sites seen". Each update reads only the arrivals since the last.
type originTracker struct {
	mu      sync.Mutex
	scanned uint64 // manifest arrivals up to this sequence are counted
	started bool
	seen    map[string]*siteSeen
}

// update counts the manifest arrivals since the last update and returns
// every origin seen, by name.
func (o *originTracker) update(s *Site) ([]siteSeen, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	head := s.arrivals.Head(forward.KindManifest)
	if !o.started {
		o.started, o.seen = true, map[string]*siteSeen{}
		o.scanned = head - min(head, originScan)
	}
	for o.scanned < head {
		batch, err := s.arrivals.Read(forward.KindManifest, o.scanned, originBatch)
		if err != nil {
			return nil, fmt.Errorf("manifest arrivals: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		for _, a := range batch {
			o.count(s.manifestArrival(a))
		}
		o.scanned = batch[len(batch)-1].Seq
	}
	out := make([]siteSeen, 0, len(o.seen))
	for _, ss := range o.seen {
		out = append(out, siteSeen{Site: ss.Site, Via: slices.Clone(ss.Via), Manifests: ss.Manifests, LastAt: ss.LastAt})
	}
	slices.SortFunc(out, func(a, b siteSeen) int { return strings.Compare(a.Site, b.Site) })
	return out, nil
}

// count adds one manifest arrival to its origin.
func (o *originTracker) count(v arrivalView) {
	if v.Origin == "" {
		return
	}
	ss := o.seen[v.Origin]
	if ss == nil {
		ss = &siteSeen{Site: v.Origin, Via: []string{}}
		o.seen[v.Origin] = ss
	}
	ss.Manifests++
	ss.LastAt = max(ss.LastAt, v.At)
	if via := cmp.Or(v.Peer, forward.FromLocal); !slices.Contains(ss.Via, via) {
		ss.Via = append(ss.Via, via)
		slices.Sort(ss.Via)
	}
}

func newArrivalView(a forward.Arrival) arrivalView {
	v := arrivalView{Seq: a.Seq, Kind: a.Kind.String(), ID: a.ID.String(), From: a.From, At: a.At.UnixMilli()}
	if _, peer, ok := strings.Cut(a.From, ":"); ok {
		v.Peer = peer
	}
	return v
}

// manifestArrival describes a manifest arrival with the version it
// records. A manifest that can no longer be read (expired and collected)
// is shown by ID alone.
func (s *Site) manifestArrival(a forward.Arrival) arrivalView {
	v := newArrivalView(a)
	m, err := s.objects.Manifest(a.ID)
	if err != nil {
		return v
	}
	v.Name, v.Version, v.Origin = m.Name, m.Version(), m.Stamp.Origin
	v.Size, v.Chunks, v.Deleted, v.Expired = m.Size, len(m.Chunks), m.Tombstone, m.Expired(time.Now())
	if v.Expired {
		v.Size = 0 // its bytes are no longer served; the page says "expired"
	}
	for _, kv := range m.Meta {
		if key, ok := strings.CutPrefix(kv.Key, naming.FITSMetaPrefix); ok {
			if v.FITS == nil {
				v.FITS = map[string]string{}
			}
			v.FITS[strings.ToUpper(key)] = kv.Value
		}
	}
	return v
}
