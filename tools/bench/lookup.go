package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/testlab"
)

// LookupConfig says what a lookup run measures.
type LookupConfig struct {
	Sites    int           // sites; default 8
	Topology string        // a testlab topology with loops; default ring-chords
	Latency  time.Duration // one-way delay added on every link by its testlab.Proxy; default 10ms
	Lookups  int           // samples per measurement; default 200
	Dir      string        // scratch dir; "" os.TempDir
	Progress io.Writer     // progress lines; nil discards them
}

// Defaults of a lookup run.
const (
	DefaultLookupSites    = 8
	DefaultLookupTopology = "ring-chords"
	DefaultLookupLatency  = 10 * time.Millisecond
	DefaultLookups        = 200
)

// Row labels of the lookup table (stable: scripts and tests look for them).
const (
	RowFreshLookup     = "fresh lookup (HEAD ?fresh=1)"
	RowReadThrough     = "read-through get (lookup + fetch)"
	RowFetchOnly       = "read-through get (fetch only)"
	RowReplicatedFirst = "get after put (lookup, no fetch)"
	RowLocalLookup     = "local lookup (HEAD)"
)

// lookupObjectSize is the size of every object read: one chunk, one frame.
const lookupObjectSize = 64 << 10

// LookupRow is one measurement: latencies and the bound they are held to.
type LookupRow struct {
	Name     string
	Samples  int
	MinHops  int // hops of the bound over the samples (0: no bound)
	MaxHops  int
	P50, P99 time.Duration
	// RatioP50 and RatioP99 are percentiles of latency ÷ (hops × RTT), each
	// sample against its own hops; 0 when there is no bound.
	RatioP50, RatioP99 float64
	// Detail marks a row of the samples of the row above it that have
	// one hop count.
	Detail bool
}

// LookupResult is a whole lookup run.
type LookupResult struct {
	Machine    Machine
	Config     LookupConfig // with defaults filled in
	Links      int
	Diameter   int
	Rows       []LookupRow
	Fetched    int64 // chunks the reading sites fetched (skyfed_fetched_chunks_total)
	Incomplete int64 // federation lookups that ended at their deadline, not by every answer (skyfed_federation_lookups_incomplete_total)
}

func (c *LookupConfig) defaults() {
	if c.Sites == 0 {
		c.Sites = DefaultLookupSites
	}
	if c.Topology == "" {
		c.Topology = DefaultLookupTopology
	}
	if c.Latency == 0 {
		c.Latency = DefaultLookupLatency
	}
	if c.Lookups == 0 {
		c.Lookups = DefaultLookups
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// RunLookup starts cfg.Sites in-process sites linked by cfg.Topology
// through TCP proxies that add cfg.Latency each way, and measures fresh
// lookups at every site of names put elsewhere, gets right after a put at
// the farthest site (read-through when replication has not brought the
// chunk yet), and local lookups.
func RunLookup(ctx context.Context, cfg LookupConfig) (*LookupResult, error) {
	cfg.defaults()
	scratch, err := os.MkdirTemp(cfg.Dir, "skyfed-bench-lookup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	fed, err := testlab.StartFederation(testlab.FedOptions{N: cfg.Sites, Topology: cfg.Topology, Seed: 1,
		Dir: scratch, Domain: benchDomain, ChunkSize: chunk.DefaultSize})
	if err != nil {
		return nil, err
	}
	defer fed.Close()
	edges := fed.Edges()
	for _, e := range edges {
		fed.Proxy(e[0], e[1]).SetLatency(cfg.Latency)
	}
	run := &lookupRun{cfg: cfg, sites: fed.Sites(), dist: graphDistances(cfg.Sites, edges),
		http: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	defer run.http.CloseIdleConnections()
	res := &LookupResult{Machine: describeMachine(scratch), Config: cfg, Links: len(edges)}
	res.Machine.LoadStart = loadAverage()
	for _, d := range run.dist {
		res.Diameter = max(res.Diameter, slices.Max(d))
	}
	fmt.Fprintf(cfg.Progress, "lookup: %d sites (%s, %d links), %s one way per link; waiting for the links...\n",
		cfg.Sites, cfg.Topology, len(edges), cfg.Latency)
	if err := waitLinksUp(ctx, run.sites, len(edges)); err != nil {
		return nil, err
	}
	rows, err := run.measure(ctx)
	if err != nil {
		return nil, err
	}
	res.Rows = rows
	res.Fetched = run.fetched
	for i := range run.sites {
		n, err := run.metricAt(ctx, i, "skyfed_federation_lookups_incomplete_total")
		if err != nil {
			return nil, err
		}
		res.Incomplete += n
	}
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

// graphDistances returns the hop counts between every pair of sites (BFS).
func graphDistances(n int, edges [][2]int) [][]int {
	adj := make([][]int, n)
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	dist := make([][]int, n)
	for s := range n {
		d := slices.Repeat([]int{-1}, n)
		d[s] = 0
		queue := []int{s}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for _, y := range adj[x] {
				if d[y] < 0 {
					d[y] = d[x] + 1
					queue = append(queue, y)
				}
			}
		}
		dist[s] = d
	}
	return dist
}

// lookupRun is one run in progress.
type lookupRun struct {
	cfg     LookupConfig
	sites   []*site.Site
	http    *http.Client
	dist    [][]int
	fetched int64
}

// sample is one timed request and the hops of its bound (0: none).
type sample struct {
	took time.Duration
	hops int
}

func (r *lookupRun) rtt() time.Duration { return 2 * r.cfg.Latency }

func (r *lookupRun) ecc(i int) int { return slices.Max(r.dist[i]) }

func (r *lookupRun) measure(ctx context.Context) ([]LookupRow, error) {
	names, err := r.putOnePerSite(ctx)
	if err != nil {
		return nil, err
	}
	fresh, err := r.lookups(ctx, names, true)
	if err != nil {
		return nil, fmt.Errorf("fresh lookups: %w", err)
	}
	local, err := r.lookups(ctx, names, false)
	if err != nil {
		return nil, fmt.Errorf("local lookups: %w", err)
	}
	byKind, err := r.readsAfterPut(ctx)
	if err != nil {
		return nil, fmt.Errorf("read-through gets: %w", err)
	}
	rows := summarizeByHops(RowFreshLookup, fresh, r.rtt())
	for _, kind := range []string{RowReadThrough, RowFetchOnly, RowReplicatedFirst} {
		if len(byKind[kind]) > 0 {
			rows = append(rows, summarizeByHops(kind, byKind[kind], r.rtt())...)
		}
	}
	return append(rows, summarize(RowLocalLookup, local, r.rtt())), nil
}

// summarizeByHops returns the row of all samples and, when they have
// several hop counts, a detail row for each: latencies cluster by hops.
func summarizeByHops(name string, ss []sample, rtt time.Duration) []LookupRow {
	rows := []LookupRow{summarize(name, ss, rtt)}
	if rows[0].MinHops == rows[0].MaxHops {
		return rows
	}
	for h := rows[0].MinHops; h <= rows[0].MaxHops; h++ {
		var at []sample
		for _, s := range ss {
			if s.hops == h {
				at = append(at, s)
			}
		}
		if len(at) > 0 {
			row := summarize(fmt.Sprintf("of which %d-hop", h), at, rtt)
			row.Detail = true
			rows = append(rows, row)
		}
	}
	return rows
}

// putOnePerSite puts a small object at every site and waits until every
// site holds all of them, so lookups of them measure the lookup alone.
func (r *lookupRun) putOnePerSite(ctx context.Context) ([]naming.Name, error) {
	var names []naming.Name
	for i, s := range r.sites {
		name := naming.MustParseName(fmt.Sprintf("%s/lookup/%s.fits", benchDomain, testlab.SiteID(i)))
		if _, err := s.Objects().Put(ctx, name, testlab.RandomStream(uint64(i+1), 4<<10), naming.PutOptions{}); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	fmt.Fprintf(r.cfg.Progress, "lookup: one object put at each site; waiting for replication...\n")
	return names, poll(ctx, "replication of the lookup objects", func() bool {
		for _, s := range r.sites {
			for _, n := range names {
				if _, err := s.Objects().Latest(n); err != nil {
					return false
				}
			}
		}
		return true
	})
}

// lookups times HEAD requests at every site in turn for names put at
// the other sites, fresh (across the federation) or local.
func (r *lookupRun) lookups(ctx context.Context, names []naming.Name, fresh bool) ([]sample, error) {
	n := len(r.sites)
	query, what := "", "local"
	if fresh {
		query, what = "?fresh=1", "fresh"
	}
	var out []sample
	for k := range r.cfg.Lookups {
		at := k % n
		other := (at + 1 + (k/n)%(n-1)) % n
		start := time.Now()
		if _, err := r.request(ctx, http.MethodHead, at, "/o/"+names[other].String()+query); err != nil {
			return nil, err
		}
		s := sample{took: time.Since(start)}
		if fresh {
			s.hops = r.ecc(at)
		}
		out = append(out, s)
		r.progress(what+" lookups", k)
	}
	return out, nil
}

func (r *lookupRun) progress(what string, k int) {
	if (k+1)%50 == 0 || k+1 == r.cfg.Lookups {
		fmt.Fprintf(r.cfg.Progress, "lookup: %s %d/%d\n", what, k+1, r.cfg.Lookups)
	}
}

// request sends one request to site i, reads the body and returns its
// SHA-256; anything but 200 is an error.
func (r *lookupRun) request(ctx context.Context, method string, i int, path string) ([32]byte, error) {
	var sum [32]byte
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.sites[i].HTTPAddr()+path, nil)
	if err != nil {
		return sum, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return sum, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return sum, fmt.Errorf("%s %s at %s: %w", method, path, testlab.SiteID(i), err)
	}
	if resp.StatusCode != http.StatusOK {
		return sum, fmt.Errorf("%s %s at %s: HTTP %d", method, path, testlab.SiteID(i), resp.StatusCode)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// farthest returns the sites farthest from o.
func (r *lookupRun) farthest(o int) []int {
	far := r.ecc(o)
	var out []int
	for j, d := range r.dist[o] {
		if d == far {
			out = append(out, j)
		}
	}
	return out
}

// readsAfterPut puts a one-chunk object at each site in turn and at once
// gets it at a site farthest from it. Each sample is classed by what the
// get had to do: ask the federation for the name (it was not indexed at
// the reader yet) and fetch its chunk (the reader's fetched-chunks counter
// moved), or only one of them.
func (r *lookupRun) readsAfterPut(ctx context.Context) (map[string][]sample, error) {
	n := len(r.sites)
	out := map[string][]sample{}
	for k := range r.cfg.Lookups {
		o := k % n
		fars := r.farthest(o)
		at := fars[(k/n)%len(fars)]
		name := naming.MustParseName(fmt.Sprintf("%s/read/%05d.fits", benchDomain, k))
		data, _ := io.ReadAll(testlab.RandomStream(uint64(1000+k), lookupObjectSize))
		before, err := r.fetchedAt(ctx, at)
		if err != nil {
			return nil, err
		}
		m, err := r.sites[o].Objects().Put(ctx, name, bytes.NewReader(data), naming.PutOptions{})
		if err != nil {
			return nil, err
		}
		_, known := r.sites[at].Objects().Latest(name)
		start := time.Now()
		sum, err := r.request(ctx, http.MethodGet, at, "/o/"+name.String())
		took := time.Since(start)
		if err != nil {
			return nil, err
		}
		if sum != m.SHA256 {
			return nil, fmt.Errorf("get %s at %s: bytes do not match the put", name, testlab.SiteID(at))
		}
		after, err := r.fetchedAt(ctx, at)
		if err != nil {
			return nil, err
		}
		r.fetched += after - before
		kind, hops := classify(known == nil, after > before, r.ecc(at), r.dist[o][at])
		out[kind] = append(out[kind], sample{took: took, hops: hops})
		r.progress("gets right after a put", k)
	}
	return out, nil
}

// classify names a get after a put by what it did, with the hops of its
// bound: a federation lookup waits for the farthest site, a fetch for the
// origin of the object.
func classify(indexed, fetched bool, ecc, dist int) (string, int) {
	switch {
	case !indexed && fetched:
		return RowReadThrough, ecc + dist
	case fetched:
		return RowFetchOnly, dist
	case !indexed:
		return RowReplicatedFirst, ecc
	}
	return RowLocalLookup, 0
}

// fetchedAt reads skyfed_fetched_chunks_total from site i's /metrics.
func (r *lookupRun) fetchedAt(ctx context.Context, i int) (int64, error) {
	return r.metricAt(ctx, i, "skyfed_fetched_chunks_total")
}

// metricAt reads a counter without labels from site i's /metrics.
func (r *lookupRun) metricAt(ctx context.Context, i int, name string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.sites[i].HTTPAddr()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /metrics of %s", name, testlab.SiteID(i))
}

// summarize turns samples into a row: nearest-rank percentiles of the
// latencies and of each sample's latency ÷ its hops × RTT.
func summarize(name string, ss []sample, rtt time.Duration) LookupRow {
	row := LookupRow{Name: name, Samples: len(ss)}
	var took []time.Duration
	var ratios []float64
	for _, s := range ss {
		took = append(took, s.took)
		if s.hops == 0 {
			continue
		}
		ratios = append(ratios, float64(s.took)/float64(time.Duration(s.hops)*rtt))
		if row.MinHops == 0 || s.hops < row.MinHops {
			row.MinHops = s.hops
		}
		row.MaxHops = max(row.MaxHops, s.hops)
	}
	slices.Sort(took)
	slices.Sort(ratios)
	row.P50, row.P99 = percentile(took, 50), percentile(took, 99)
	row.RatioP50, row.RatioP99 = percentile(ratios, 50), percentile(ratios, 99)
	return row
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile[T time.Duration | float64](sorted []T, p int) T {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// WriteTable prints the result with the bound of each row.
func (r *LookupResult) WriteTable(w io.Writer) error {
	c := r.Config
	rtt := 2 * c.Latency
	fmt.Fprintf(w, "skyfed bench lookup — %d cores, %s, %s\n", r.Machine.Cores, r.Machine.GoVersion, r.Machine.Platform)
	fmt.Fprintf(w, "federation: %d in-process sites, %s (%d links, diameter %d), +%s one way per link (RTT %s), %d samples per row\n",
		c.Sites, c.Topology, r.Links, r.Diameter, c.Latency, rtt, c.Lookups)
	if m := r.Machine; m.LoadStart != "" {
		fmt.Fprintf(w, "load: %s at start, %s at end (1-min load average; every site runs in this process, so other work skews the rows)\n", m.LoadStart, m.LoadEnd)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\tsamples\thops\thops×RTT\tp50\tp99\tp50÷bound\tp99÷bound\t")
	for _, row := range r.Rows {
		hops, bound, r50, r99 := "—", "—", "—", "—"
		if row.MaxHops > 0 {
			hops = strconv.Itoa(row.MinHops)
			bound = (time.Duration(row.MinHops) * rtt).String()
			if row.MaxHops != row.MinHops {
				hops += "–" + strconv.Itoa(row.MaxHops)
				bound += "–" + (time.Duration(row.MaxHops) * rtt).String()
			}
			r50, r99 = fmt.Sprintf("%.2f", row.RatioP50), fmt.Sprintf("%.2f", row.RatioP99)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.Name, row.Samples, hops, bound,
			fmtLatency(row.P50), fmtLatency(row.P99), r50, r99)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nchunks fetched by read-through: %d; federation lookups ended by their deadline: %d\n", r.Fetched, r.Incomplete)
	notes := []string{
		"hops: a fresh lookup waits for every site's answer, so its hops are the asking site's eccentricity (graph distance to the farthest site). A flood that must hear every site's answer also waits for the 'seen' answers the farthest sites send over their other links, one hop further: on a graph where those sites have such links the least possible is (hops+1)×RTT, a ratio of (hops+1)/hops.",
		"Gets right after a put: a one-chunk object (" + ByteSize(lookupObjectSize).String() + ") is put at each site in turn and at once read at a site farthest from it. 'lookup + fetch': the name was not indexed at the reader, so it asked the federation (eccentricity), then fetched the chunk (graph distance to the origin): a flood finds the nearest holder, a pull goes to it and the chunk comes back, so a fetch is two round trips to the nearest holder, which replication may have brought nearer than the origin by then. 'fetch only': the manifest had arrived, the chunk had not. 'lookup, no fetch': replication brought the chunk while the name was being looked up. A fetch is counted when the reader's skyfed_fetched_chunks_total moved.",
		"Local lookup: HEAD /o/{name} of a name the site holds; no link is crossed. Latencies are HTTP round trips on loopback from this process; ratio = each sample's latency ÷ its own hops × RTT, then the percentile.",
	}
	for i, n := range notes {
		fmt.Fprint(w, wrap(fmt.Sprintf("[%d] %s", i+1, n), 100, "    "))
	}
	return nil
}

func fmtLatency(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}
