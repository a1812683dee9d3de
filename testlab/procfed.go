package testlab

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/site"
)

// ProcessFederation is a lab federation whose sites are `skyfed site run`
// processes, linked through one Proxy per link, for tests that kill
// sites. It has the shape of Federation; puts and checks go over HTTP.
// Create it with NewProcessFederation; it stops itself when the test ends.
type ProcessFederation struct {
	lab
	bin   string
	hc    *http.Client
	urls  []string
	logs  []*os.File
	procs []*Process // nil while not running
}

// procHTTPTimeout bounds one HTTP request to a site process.
const procHTTPTimeout = 60 * time.Second

// NewProcessFederation builds the skyfed binary (once per test binary),
// creates opts.N site dirs with trust and links set up, and starts one
// process per site. It fails t if the federation cannot be built.
func NewProcessFederation(t testing.TB, opts FedOptions) *ProcessFederation {
	t.Helper()
	opts = opts.withDefaults()
	edges, err := Topology(opts.Topology, opts.N, opts.Seed)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	bin, err := Binary()
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	f := &ProcessFederation{lab: lab{t: t, opts: opts}, bin: bin,
		hc: &http.Client{Timeout: procHTTPTimeout}}
	t.Cleanup(f.close)
	if err := f.build(edges, f.initMember, f.Start); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *ProcessFederation) initMember(i int) error {
	base := f.t.TempDir()
	dir := filepath.Join(base, SiteID(i))
	u, key, err := InitSite(f.bin, dir, SiteID(i), Domain)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	err = site.EditConfig(dir, func(c *site.Config) error {
		c.ChunkSize = f.opts.ChunkSize
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab: set chunk size of %s: %w", SiteID(i), err)
	}
	cfg, err := site.LoadConfig(dir)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	logf, err := os.Create(filepath.Join(base, SiteID(i)+".log"))
	if err != nil {
		return fmt.Errorf("lab: log of %s: %w", SiteID(i), err)
	}
	f.mu.Lock()
	f.members = append(f.members, member{id: SiteID(i), dir: dir, nats: cfg.NATS, http: cfg.HTTP, key: key})
	f.urls = append(f.urls, u)
	f.logs = append(f.logs, logf)
	f.procs = append(f.procs, nil)
	f.mu.Unlock()
	return nil
}

// URL returns the HTTP base URL of site i.
func (f *ProcessFederation) URL(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.urls[i]
}

// Process returns the process of site i, or nil while it is not running.
func (f *ProcessFederation) Process(i int) *Process {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[i]
}

// Start starts site i's process (a no-op while it runs) and waits until it
// answers.
func (f *ProcessFederation) Start(i int) error {
	if f.Process(i) != nil {
		return nil
	}
	p, err := StartProcess(f.t.Context(), f.bin, f.Dir(i), f.logs[i])
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	f.mu.Lock()
	f.procs[i] = p
	f.mu.Unlock()
	return nil
}

// Kill kills site i's process with SIGKILL and waits until it is gone.
func (f *ProcessFederation) Kill(i int) error {
	p := f.take(i)
	if p == nil {
		return nil
	}
	return p.Kill()
}

// Stop stops site i's process with SIGTERM; an unclean exit is an error.
func (f *ProcessFederation) Stop(i int) error {
	p := f.take(i)
	if p == nil {
		return nil
	}
	return p.Stop()
}

func (f *ProcessFederation) take(i int) *Process {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[i]
	f.procs[i] = nil
	return p
}

// putAnswer is the JSON answer of PUT /o/{name}.
type putAnswer struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
}

// Put stores data under path (in Domain) at site i through its HTTP API
// and records it (with its chunk list, from ?hashmap).
func (f *ProcessFederation) Put(i int, path string, data io.Reader) (Object, error) {
	if f.Process(i) == nil {
		return Object{}, fmt.Errorf("lab: put at %s: %w", SiteID(i), ErrStopped)
	}
	name := FullName(path)
	req, err := http.NewRequest(http.MethodPut, f.URL(i)+"/o/"+escapeName(name), data)
	if err != nil {
		return Object{}, fmt.Errorf("lab: put %s: %w", name, err)
	}
	var ans putAnswer
	if err := f.do(req, http.StatusCreated, &ans); err != nil {
		return Object{}, fmt.Errorf("lab: put %s at %s: %w", name, SiteID(i), err)
	}
	o := Object{Site: i, Name: ans.Name, Version: ans.Version, Size: ans.Size}
	if _, err := hex.Decode(o.SHA256[:], []byte(ans.SHA256)); err != nil {
		return Object{}, fmt.Errorf("lab: put %s at %s: answer's sha256 %q: %w", name, SiteID(i), ans.SHA256, err)
	}
	hm, err := f.hashmap(i, name, ans.Version)
	if err != nil {
		return Object{}, fmt.Errorf("lab: put %s at %s: %w", name, SiteID(i), err)
	}
	o.Chunks = hm
	f.record(o)
	return o, nil
}

// PutRandom puts size bytes of RandomStream(seed) under path at site i.
func (f *ProcessFederation) PutRandom(i int, path string, size int64, seed uint64) (Object, error) {
	return f.Put(i, path, RandomStream(seed, size))
}

func (f *ProcessFederation) hashmap(i int, name, version string) ([]chunk.ID, error) {
	var hm struct {
		Chunks []chunk.ID `json:"chunks"`
	}
	u := f.URL(i) + "/o/" + escapeName(name) + "?hashmap&version=" + url.QueryEscape(version)
	if err := f.get(u, &hm); err != nil {
		return nil, err
	}
	return hm.Chunks, nil
}

func escapeName(name string) string { return (&url.URL{Path: name}).EscapedPath() }

// do sends req and decodes a JSON answer with status want into v.
func (f *ProcessFederation) do(req *http.Request, want int, v any) error {
	resp, err := f.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, b)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s %s: answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

func (f *ProcessFederation) get(u string, v any) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	return f.do(req, http.StatusOK, v)
}

// Status returns site i's /api/status.
func (f *ProcessFederation) Status(i int) (site.Status, error) {
	var st site.Status
	if f.Process(i) == nil {
		return st, fmt.Errorf("lab: %s: %w", SiteID(i), ErrStopped)
	}
	err := f.get(f.URL(i)+"/api/status", &st)
	return st, err
}

// Links returns the status of site i's links.
func (f *ProcessFederation) Links(i int) ([]forward.LinkStatus, error) {
	st, err := f.Status(i)
	return st.Links, err
}

// Receipts returns the chunk payloads site i stored from its links since
// its process started.
func (f *ProcessFederation) Receipts(i int) int64 { return receipts(f.Links, i) }

// WaitLinksUp waits until every link is up at both its ends.
func (f *ProcessFederation) WaitLinksUp(timeout time.Duration) error {
	return PollUntil(timeout, func() error { return linksUp(f.Edges(), f.Links) })
}

// Inventory reads site i's inventory over HTTP: chunk count from
// /api/status, latest versions from /ls, every name's versions from
// ?versions.
func (f *ProcessFederation) Inventory(i int) (Inventory, error) {
	inv := Inventory{Site: SiteID(i), Versions: map[string][]string{}, Latest: map[string]string{}}
	st, err := f.Status(i)
	if err != nil {
		return inv, err
	}
	inv.ChunkCount = st.Chunks
	after := ""
	for {
		var page struct {
			Objects []struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"objects"`
			Next string `json:"next"`
		}
		if err := f.get(f.URL(i)+"/ls?limit=1000&after="+url.QueryEscape(after), &page); err != nil {
			return inv, fmt.Errorf("inventory of %s: %w", inv.Site, err)
		}
		for _, o := range page.Objects {
			inv.Latest[o.Name] = o.Version
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	for name := range inv.Latest {
		var vs struct {
			Versions []struct {
				Version string `json:"version"`
			} `json:"versions"`
		}
		if err := f.get(f.URL(i)+"/o/"+escapeName(name)+"?versions", &vs); err != nil {
			return inv, fmt.Errorf("inventory of %s: %w", inv.Site, err)
		}
		for _, v := range vs.Versions {
			inv.Versions[name] = append(inv.Versions[name], v.Version)
		}
		slices.Sort(inv.Versions[name])
	}
	return inv, nil
}

// Converged reports nil when every site holds every version and the same
// number of chunks, agrees on every latest version, holds every chunk put
// (GET /c/{id}), and serves a sample of names with bytes that verify;
// else an error wrapping ErrNotConverged.
func (f *ProcessFederation) Converged() error {
	invs := make([]Inventory, f.N())
	for i := range invs {
		var err error
		if invs[i], err = f.Inventory(i); err != nil {
			return fmt.Errorf("%w: %w", ErrNotConverged, err)
		}
	}
	puts := f.Puts()
	if err := Compare(invs, puts); err != nil {
		return err
	}
	for i := range invs {
		if err := f.hasChunks(i, puts); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNotConverged, SiteID(i), err)
		}
		for _, name := range sampleNames(invs[0].Latest, 3) {
			if err := f.verifyRead(i, name); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrNotConverged, SiteID(i), err)
			}
		}
	}
	return nil
}

// WaitConverged polls Converged until it reports nil or timeout passes.
func (f *ProcessFederation) WaitConverged(timeout time.Duration) error {
	return PollUntil(timeout, f.Converged)
}

// hasChunks checks that site i serves every chunk of puts.
func (f *ProcessFederation) hasChunks(i int, puts []Object) error {
	seen := map[chunk.ID]bool{}
	for _, o := range puts {
		for _, id := range o.Chunks {
			if seen[id] {
				continue
			}
			seen[id] = true
			resp, err := f.hc.Get(f.URL(i) + "/c/" + id.String())
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("chunk %s of %s: %s", id.Short(), o.Name, resp.Status)
			}
		}
	}
	return nil
}

// verifyRead reads name at site i and checks the bytes against its ETag
// (the version's SHA-256).
func (f *ProcessFederation) verifyRead(i int, name string) error {
	resp, err := f.hc.Get(f.URL(i) + "/o/" + escapeName(name))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", name, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", name, err)
	}
	if got := `"` + hex.EncodeToString(h.Sum(nil)) + `"`; got != resp.Header.Get("ETag") {
		return fmt.Errorf("GET %s: bytes hash to %s, ETag says %s", name, got, resp.Header.Get("ETag"))
	}
	return nil
}

// close stops every process and proxy; it runs as the test's cleanup.
func (f *ProcessFederation) close() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range f.N() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Stop(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.closeProxies()
	f.hc.CloseIdleConnections()
	if err := errors.Join(errs...); err != nil {
		f.t.Errorf("lab cleanup: %v", err)
	}
	for i, lf := range f.logs {
		if f.t.Failed() {
			f.t.Logf("tail of %s's log:\n%s", SiteID(i), fileTail(lf, 3<<10))
		}
		lf.Close()
	}
}

// fileTail returns the last n bytes of f.
func fileTail(f *os.File, n int64) string {
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(0, st.Size()-n)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(b)
}
