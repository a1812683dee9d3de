package testlab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/site/client"
)

// ProcessFederation is a lab federation whose sites are `skyfed site run`
// processes, linked through one Proxy per link, for tests that kill
// sites. It has the shape of Federation; puts and checks go over HTTP.
// Create it with StartProcessFederation and end it with Close.
type ProcessFederation struct {
	lab
	bin   string
	hc    *http.Client
	urls  []string
	logs  []*os.File
	procs []*Process // nil while not running
	env   [][]string // extra environment of each site's process
}

// procHTTPTimeout bounds one HTTP request to a site process.
const procHTTPTimeout = 60 * time.Second

// StartProcessFederation builds the skyfed binary (once per process),
// creates opts.N site dirs with trust and links set up, and starts one
// process per site, its output to Dir/<its ID>.log. On error it closes
// what it started. HTTPAddr, NATSAddr and Direct are not for process
// federations.
func StartProcessFederation(opts FedOptions) (*ProcessFederation, error) {
	if opts.HTTPAddr != nil || opts.NATSAddr != nil || opts.Direct {
		return nil, errors.New("lab: process sites pick their own ports and link through proxies")
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	f := &ProcessFederation{bin: bin, hc: &http.Client{Timeout: procHTTPTimeout}}
	if err := f.setUp(opts); err != nil {
		return nil, err
	}
	if err := f.build(f.initMember, f.Start); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *ProcessFederation) initMember(i int) error {
	id, dir := f.id(i), f.memberDir(i)
	u, key, err := InitSite(f.bin, dir, id, f.opts.Domain)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	err = site.EditConfig(dir, func(c *site.Config) error {
		c.ChunkSize = f.opts.ChunkSize
		c.ReconcileInterval = f.opts.ReconcileInterval
		if f.opts.NATSTLS != "" {
			c.NATSTLS = f.opts.NATSTLS
		}
		if f.opts.Edit != nil {
			f.opts.Edit(i, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab: set chunk size of %s: %w", id, err)
	}
	cfg, err := site.LoadConfig(dir)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	logf, err := os.Create(dir + ".log")
	if err != nil {
		return fmt.Errorf("lab: log of %s: %w", id, err)
	}
	f.mu.Lock()
	f.members = append(f.members, member{id: id, dir: dir, key: key, cfg: cfg, nats: cfg.NATS})
	f.urls = append(f.urls, u)
	f.logs = append(f.logs, logf)
	f.procs = append(f.procs, nil)
	f.env = append(f.env, nil)
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
	f.mu.Lock()
	env := f.env[i]
	f.mu.Unlock()
	p, err := StartProcess(context.Background(), f.bin, f.Dir(i), f.logs[i], env...)
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

// Put stores data under path (in the federation's domain) at site i
// through its HTTP API and records it (with its chunk list, from ?hashmap).
func (f *ProcessFederation) Put(i int, path string, data io.Reader) (Object, error) {
	if f.Process(i) == nil {
		return Object{}, fmt.Errorf("lab: put at %s: %w", f.ID(i), ErrStopped)
	}
	name := fullName(f.opts.Domain, path)
	req, err := http.NewRequest(http.MethodPut, f.URL(i)+"/o/"+escapeName(name), data)
	if err != nil {
		return Object{}, fmt.Errorf("lab: put %s: %w", name, err)
	}
	var ans client.PutResult
	if err := f.do(req, http.StatusCreated, &ans); err != nil {
		return Object{}, fmt.Errorf("lab: put %s at %s: %w", name, f.ID(i), err)
	}
	o := Object{Site: i, Name: ans.Name, Version: ans.Version, Size: ans.Size}
	if _, err := hex.Decode(o.SHA256[:], []byte(ans.SHA256)); err != nil {
		return Object{}, fmt.Errorf("lab: put %s at %s: answer's sha256 %q: %w", name, f.ID(i), ans.SHA256, err)
	}
	hm, err := f.hashmap(i, name, ans.Version)
	if err != nil {
		return Object{}, fmt.Errorf("lab: put %s at %s: %w", name, f.ID(i), err)
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
		return st, fmt.Errorf("lab: %s: %w", f.ID(i), ErrStopped)
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
	return PollUntil(timeout, func() error { return f.linksUp(f.Links) })
}

// Inventory reads site i's inventory over HTTP: chunk count from
// /api/status, latest versions from /ls, every name's versions from
// ?versions.
func (f *ProcessFederation) Inventory(i int) (Inventory, error) {
	inv := Inventory{Site: f.ID(i), Versions: map[string][]string{}, Latest: map[string]string{}}
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
			return fmt.Errorf("%w: %s: %w", ErrNotConverged, f.ID(i), err)
		}
		for _, name := range sampleNames(invs[0].Latest, 3) {
			if err := f.verifyRead(i, name); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrNotConverged, f.ID(i), err)
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

// Close stops every process and proxy, and removes the data dirs unless
// they are in FedOptions.Dir. A process that does not exit cleanly on
// SIGTERM is an error.
func (f *ProcessFederation) Close() error {
	var wg sync.WaitGroup
	errs := make([]error, f.N())
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.Stop(i)
		}()
	}
	wg.Wait()
	f.hc.CloseIdleConnections()
	f.mu.Lock()
	for _, lf := range f.logs {
		lf.Close()
	}
	f.mu.Unlock()
	return errors.Join(append(errs, f.close())...)
}
