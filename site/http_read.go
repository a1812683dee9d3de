package site

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/tools/heal"
)

// Status is the JSON answer of /api/status.
type Status struct {
	Site        string               `json:"site"`
	Domain      string               `json:"domain"`
	Key         string               `json:"key"`
	Objects     int64                `json:"objects"`
	Versions    int64                `json:"versions"`
	Chunks      int64                `json:"chunks"`
	StoredBytes int64                `json:"stored_bytes"`
	RawBytes    int64                `json:"raw_bytes"`
	Links       []forward.LinkStatus `json:"links"`
	// Versions indexed here whose chunks are not all here yet, and the
	// bytes of them not readable here yet (exact, not sampled).
	IncompleteVersions int64 `json:"incomplete_versions"`
	IncompleteBytes    int64 `json:"incomplete_bytes"`
	// Chunks lost here that no reachable site could send yet, with the
	// objects that use them (the oldest 100 listed), and chunks healed
	// from other sites since start.
	UnrepairableChunks int64                  `json:"unrepairable_chunks"`
	Unrepairable       []forward.Unrepairable `json:"unrepairable"`
	RepairedChunks     int64                  `json:"repaired_chunks"`
	// The last scrub and garbage collection since start (or the ones
	// running), without their lists of affected objects.
	LastScrub *heal.ScrubReport `json:"last_scrub,omitempty"`
	LastGC    *heal.GCReport    `json:"last_gc,omitempty"`
	// The disk of the data dir: full while its free space is below
	// disk_reserve (puts refused, replication into the site paused).
	DiskFull         bool   `json:"disk_full"`
	DiskFreeBytes    uint64 `json:"disk_free_bytes"`
	DiskReserveBytes uint64 `json:"disk_reserve_bytes"`
	// NATSTLS says how the site's links are secured: "tls" when its NATS
	// listener requires TLS, "plain" otherwise; dialers check peers'
	// certificates "pinned" to their trusted keys or by "ca". HTTPS says
	// whether the HTTP API is served over TLS.
	NATSTLS     string `json:"nats_tls"`
	NATSTLSPeer string `json:"nats_tls_peers"`
	HTTPS       bool   `json:"https"`
	// S3 is the S3 API's endpoint (http:// or https://), "" when off.
	S3 string `json:"s3"`
	// ChunkSize is where this site cuts objects into chunks: what a
	// hashmap put's chunk list must be cut at.
	ChunkSize int `json:"chunk_size"`
	// Build is the skyfed build serving (Build).
	Build string `json:"build"`
	// CountersSince is when this site process started: its link counters,
	// rates and "since start" counts begin there.
	CountersSince time.Time `json:"counters_since"`
	// Store is where the payload lives (local packs or a bucket) and,
	// for a bucket, its requests, errors and mean latency.
	Store StoreStatus `json:"store"`
}

// maxStatusUnrepairable bounds the unrepairable chunks /api/status lists.
const maxStatusUnrepairable = 100

// Status reports what the site holds.
func (s *Site) Status() (Status, error) {
	cfg := s.Config()
	objects, err := s.objects.Objects()
	if err != nil {
		return Status{}, err
	}
	cs := s.chunks.Stats()
	incVersions, incBytes := s.objects.Incomplete()
	st := Status{
		Site: cfg.ID, Domain: cfg.Domain, Key: s.key.PublicKey().String(),
		Objects: objects, Versions: s.objects.Versions(),
		Chunks: cs.Chunks, StoredBytes: cs.StoredBytes, RawBytes: cs.RawBytes,
		IncompleteVersions: incVersions, IncompleteBytes: incBytes,
		Links:         s.node.Links(),
		Unrepairable:  []forward.Unrepairable{},
		ChunkSize:     cfg.ChunkSize,
		Build:         Build(),
		CountersSince: s.started,
		Store:         s.storeStatus(),
	}
	st.NATSTLS, st.NATSTLSPeer, st.HTTPS = "plain", forward.TLSPinned, s.httpsOn
	if s.s3Addr != "" {
		st.S3 = "http://" + s.s3Addr
		if s.s3TLS {
			st.S3 = "https://" + s.s3Addr
		}
	}
	if s.tls != nil && s.tls.listen {
		st.NATSTLS = "tls"
	}
	if cfg.NATSURL != "" {
		st.NATSTLS = "external"
	}
	if cfg.NATSTLSCA != "" {
		st.NATSTLSPeer = forward.TLSCA
	}
	if sp := s.space; sp != nil {
		st.DiskFull, st.DiskFreeBytes, st.DiskReserveBytes = sp.full.Load(), sp.free.Load(), sp.reserved.Load()
	}
	if h := s.heal; h != nil {
		bad := h.repair.Unrepairable()
		st.UnrepairableChunks = int64(len(bad))
		st.Unrepairable = bad[:min(len(bad), maxStatusUnrepairable)]
		st.RepairedChunks, _, _ = h.repair.Counts()
		h.mu.Lock()
		if h.lastScrub != nil {
			r := *h.lastScrub
			r.Affected = nil
			st.LastScrub = &r
		}
		if h.lastGC != nil {
			r := *h.lastGC
			st.LastGC = &r
		}
		h.mu.Unlock()
	}
	return st, nil
}

func (s *Site) serveStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status()
	if err != nil {
		s.fail(w, r, "status", err)
		return
	}
	s.ok(w, "status", http.StatusOK, st)
}

type listEntry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

const maxListLimit = 10000

// asOfParam reads ?as_of= (an RFC 3339 time or a version stamp): nil
// when absent.
func asOfParam(r *http.Request) (*manifest.Stamp, error) {
	v := r.URL.Query().Get("as_of")
	if v == "" {
		return nil, nil
	}
	at, err := naming.ParseAsOf(v)
	if err != nil {
		return nil, badRequest(err, "as_of=2026-12-06T21:00:00Z, or a version as skyfed versions lists it")
	}
	return &at, nil
}

func (s *Site) serveList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 1000
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxListLimit {
			s.fail(w, r, "ls", badRequest(fmt.Errorf("limit %q must be 1..%d", l, maxListLimit), ""))
			return
		}
		limit = n
	}
	asOf, err := asOfParam(r)
	if err != nil {
		s.fail(w, r, "ls", err)
		return
	}
	keep, ok := s.authorizeList(w, r, q.Get("prefix"))
	if !ok {
		return
	}
	page, next, err := s.listKept(q.Get("prefix"), q.Get("after"), limit, keep, asOf) // only what the credential may read
	if err != nil {
		s.fail(w, r, "ls", err)
		return
	}
	out := struct {
		Objects []listEntry `json:"objects"`
		Next    string      `json:"next"`
	}{Objects: []listEntry{}}
	for _, m := range page {
		out.Objects = append(out.Objects, listEntry{Name: m.Name, Version: m.Version(), Size: m.Size, SHA256: hex.EncodeToString(m.SHA256[:])})
	}
	out.Next = next
	s.ok(w, "ls", http.StatusOK, out)
}

func (s *Site) serveChunk(w http.ResponseWriter, r *http.Request) {
	id, err := chunk.ParseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, "chunk", badRequest(err, "chunk IDs are 64 hex digits"))
		return
	}
	raw, err := s.chunks.Get(id, nil)
	if err != nil {
		s.fail(w, r, "chunk", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+id.String()+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	s.ok(w, "chunk", http.StatusOK, nil)
	w.WriteHeader(http.StatusOK)
	n, _ := w.Write(raw)
	s.metrics.servedBytes.Add(float64(n))
}

func (s *Site) serveBySHA256(w http.ResponseWriter, r *http.Request) {
	var sum [32]byte
	b, err := hex.DecodeString(r.PathValue("hex"))
	if err != nil || len(b) != len(sum) {
		s.fail(w, r, "sha256", badRequest(fmt.Errorf("%q is not a SHA-256", r.PathValue("hex")), "give 64 hex digits"))
		return
	}
	copy(sum[:], b)
	if !s.authorizeLookup(w, r) {
		return
	}
	m, err := s.bySHA256(r, sum)
	if err != nil {
		s.fail(w, r, "sha256", err)
		return
	}
	if !s.authorizeName(w, r, "sha256", m.Name) {
		return
	}
	s.serveContent(w, r, "sha256", m)
}
