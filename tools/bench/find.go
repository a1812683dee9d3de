package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
)

// FindConfig configures `skyfed bench find`.
type FindConfig struct {
	Versions int       // versions indexed before the queries; default 1,000,000
	Queries  int       // queries timed; default 100
	Dir      string    // scratch dir ("" → temp dir)
	Progress io.Writer // nil → discard
}

// Defaults of a find run.
const (
	DefaultFindVersions = 1_000_000
	DefaultFindQueries  = 100
	// FindGoal is the latency a selective find must stay within, p50 and p99.
	FindGoal = 100 * time.Millisecond
)

// FindKind is one kind of query timed, with its latencies.
type FindKind struct {
	Name     string
	Example  string // one of its queries, as skyfed find takes it
	Samples  int
	P50, P99 time.Duration
	MaxHits  int // the most versions one query of the kind matched
	MeanHits float64
}

// FindResult is a whole find run.
type FindResult struct {
	Config   FindConfig
	Machine  Machine
	Build    time.Duration // putting the versions (signed, synced, indexed)
	Kinds    []FindKind
	All      FindKind      // every query
	Scan     time.Duration // one query answered by reading every manifest (no index): the baseline
	ScanHits int
}

// RunFind puts Versions versions with FITS header values (objects,
// filters, exposures, a year of dates, positions over the sky) into a
// real store on Pebble, then times selective queries through
// Store.Find, reading every page, against one query answered by a scan
// of every manifest.
func RunFind(ctx context.Context, cfg FindConfig) (*FindResult, error) {
	if cfg.Versions <= 0 {
		cfg.Versions = DefaultFindVersions
	}
	if cfg.Queries <= 0 {
		cfg.Queries = DefaultFindQueries
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir, err := scratchDir(cfg.Dir, "find")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &FindResult{Config: cfg, Machine: thisMachine(dir)}

	fmt.Fprintf(progress, "bench find: putting %d versions with FITS header values…\n", cfg.Versions)
	start := time.Now()
	if err := buildFindStore(ctx, dir, cfg.Versions, progress); err != nil {
		return nil, err
	}
	res.Build = time.Since(start)
	store, closeStore, err := openFindStore(dir, false)
	if err != nil {
		return nil, err
	}
	defer closeStore()

	fmt.Fprintf(progress, "bench find: %d queries…\n", cfg.Queries)
	r := rand.New(rand.NewPCG(42, 42))
	byKind := map[string]*FindKind{}
	var order []string
	var all []time.Duration
	lat := map[string][]time.Duration{}
	hits := map[string]int{}
	for i := range cfg.Queries {
		name, conds := findQuery(r, i)
		q, err := parseConds(conds)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		n, err := findAll(ctx, store, q)
		if err != nil {
			return nil, fmt.Errorf("find %v: %w", conds, err)
		}
		d := time.Since(start)
		k := byKind[name]
		if k == nil {
			k = &FindKind{Name: name, Example: strings.Join(conds, " ")}
			byKind[name] = k
			order = append(order, name)
		}
		k.Samples++
		k.MaxHits = max(k.MaxHits, n)
		hits[name] += n
		lat[name] = append(lat[name], d)
		all = append(all, d)
	}
	for _, name := range order {
		k := byKind[name]
		k.P50, k.P99 = pct(lat[name], 50), pct(lat[name], 99)
		k.MeanHits = float64(hits[name]) / float64(k.Samples)
		res.Kinds = append(res.Kinds, *k)
		res.All.MaxHits = max(res.All.MaxHits, k.MaxHits)
	}
	total := 0
	for _, n := range hits {
		total += n
	}
	res.All.Name, res.All.Samples, res.All.MeanHits = "all queries", len(all), float64(total)/float64(len(all))
	res.All.P50, res.All.P99 = pct(all, 50), pct(all, 99)

	fmt.Fprintln(progress, "bench find: one query by scanning every manifest (the baseline)…")
	_, conds := findQuery(rand.New(rand.NewPCG(42, 42)), 0)
	q, _ := parseConds(conds)
	start = time.Now()
	res.ScanHits, err = scanFind(ctx, store, q)
	if err != nil {
		return nil, err
	}
	res.Scan = time.Since(start)
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

var (
	findFilters   = []string{"U", "B", "V", "R", "I", "H-ALPHA"}
	findExposures = []string{"1", "5", "10", "30", "60", "120", "300"}
	findScopes    = []string{"BOOTES-1", "BOOTES-2", "BOOTES-3", "BOOTES-4", "BOOTES-5", "ESO-NTT", "NOT", "VLT-U2"}
	findEpoch     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const findDomain = "bench.org"

// findObjects is how many distinct OBJECT values the frames name.
const findObjects = 2000

// frameHeader returns the header values of frame i: uniform over the
// sky and the year, as a survey's frames would be.
func frameHeader(i int) []manifest.Meta {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	ra := r.Float64() * 360
	dec := math.Asin(2*r.Float64()-1) * 180 / math.Pi
	at := findEpoch.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
	return []manifest.Meta{ // sorted by key, as a manifest keeps them
		{Key: "fits.date-obs", Value: at.Format("2006-01-02T15:04:05.000")},
		{Key: "fits.dec", Value: fmt.Sprintf("%.6f", dec)},
		{Key: "fits.exptime", Value: findExposures[r.IntN(len(findExposures))]},
		{Key: "fits.filter", Value: findFilters[r.IntN(len(findFilters))]},
		{Key: "fits.object", Value: fmt.Sprintf("SKY-%04d", r.IntN(findObjects))},
		{Key: "fits.ra", Value: fmt.Sprintf("%.6f", ra)},
		{Key: "fits.telescop", Value: findScopes[r.IntN(len(findScopes))]},
	}
}

// openFindStore opens the bench's store in dir; with noSync, its
// fsyncs do nothing (the build, which is not what is measured, then
// does not wait on the disk for every put).
func openFindStore(dir string, noSync bool) (*naming.Store, func() error, error) {
	fs := vfs.Default
	if noSync {
		fs = noSyncFS{fs}
	}
	cache := pebble.NewCache(site.IndexCacheSize) // as a site opens its index
	defer cache.Unref()
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{Logger: quietPebbleLog{}, FS: fs, Cache: cache})
	if err != nil {
		return nil, nil, err
	}
	chunks, err := chunk.Open(db, chunk.Options{Dir: filepath.Join(dir, "packs"), FS: fs})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	key, err := manifest.KeyPairFromSeed(make([]byte, 32))
	if err != nil {
		return nil, nil, errors.Join(err, chunks.Close(), db.Close())
	}
	store, err := naming.Open(db, chunks, naming.Config{Signer: key, Clock: manifest.NewClock("bench", time.Now), Trust: ownDomain{key.PublicKey()}})
	if err != nil {
		return nil, nil, errors.Join(err, chunks.Close(), db.Close())
	}
	return store, func() error {
		store.Close()
		return errors.Join(chunks.Close(), db.Close())
	}, nil
}

// noSyncFS is the disk with fsync a no-op, for building the bench's
// store only: it is closed and opened again on the plain disk before
// anything is measured.
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                { return nil }
func (noSyncFile) SyncData() error            { return nil }
func (noSyncFile) SyncTo(int64) (bool, error) { return true, nil }
func wrapFile(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}
func (fs noSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return wrapFile(fs.FS.Create(name, c))
}
func (fs noSyncFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return wrapFile(fs.FS.Open(name, opts...))
}
func (fs noSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return wrapFile(fs.FS.OpenReadWrite(name, c, opts...))
}
func (fs noSyncFS) OpenDir(name string) (vfs.File, error) { return wrapFile(fs.FS.OpenDir(name)) }
func (fs noSyncFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return wrapFile(fs.FS.ReuseForWrite(old, name, c))
}

// buildFindStore puts n versions through Store.Put with fsync off,
// then closes the store (Pebble writes its tables).
func buildFindStore(ctx context.Context, dir string, n int, progress io.Writer) error {
	store, closeStore, err := openFindStore(dir, true)
	if err != nil {
		return err
	}
	err = putFrames(ctx, store, n, progress)
	return errors.Join(err, closeStore())
}

// putFrames puts n empty versions with header values, eight at a time.
func putFrames(ctx context.Context, store *naming.Store, n int, progress io.Writer) error {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				name := naming.MustParseName(fmt.Sprintf("%s/frames/%03d/%07d.fits", findDomain, i%1000, i))
				body := strings.NewReader("") // the header values are what is indexed
				if _, err := store.Put(ctx, name, body, naming.PutOptions{Meta: frameHeader(i)}); err != nil {
					errs <- err
					return
				}
				if d := done.Add(1); d%100_000 == 0 {
					fmt.Fprintf(progress, "  %d versions\n", d)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// findQuery returns query i of the mix: each selective (hundreds of
// hits at 1M versions), over the kinds of index range find reads.
func findQuery(r *rand.Rand, i int) (string, []string) {
	day := findEpoch.Add(time.Duration(r.IntN(364)) * 24 * time.Hour)
	hour := day.Add(time.Duration(r.IntN(24)) * time.Hour)
	switch i % 4 {
	case 0:
		return "object = (string)", []string{fmt.Sprintf("OBJECT=SKY-%04d", r.IntN(findObjects))}
	case 1:
		return "date range (1 h)", []string{"DATE-OBS>=" + hour.Format("2006-01-02T15:04"), "DATE-OBS<" + hour.Add(time.Hour).Format("2006-01-02T15:04")}
	case 2:
		ra, dec := r.Float64()*360, math.Asin(2*r.Float64()-1)*180/math.Pi
		return "cone 2° + filter", []string{fmt.Sprintf("cone %.4f,%.4f,2", ra, dec), "FILTER=" + findFilters[r.IntN(len(findFilters))]}
	}
	return "telescope + day + exptime", []string{"TELESCOP=" + findScopes[r.IntN(len(findScopes))], "DATE-OBS=" + day.Format("2006-01-02"), "EXPTIME>=60"}
}

func parseConds(conds []string) (naming.FindQuery, error) {
	var q naming.FindQuery
	for _, c := range conds {
		var p naming.Predicate
		var err error
		if cone, ok := strings.CutPrefix(c, "cone "); ok {
			p, err = naming.ParseCone(cone)
		} else {
			p, err = naming.ParsePredicate(c)
		}
		if err != nil {
			return q, err
		}
		q.Predicates = append(q.Predicates, p)
	}
	q.Limit = naming.MaxFindLimit
	return q, nil
}

// findAll reads every page of q and returns the versions found.
func findAll(ctx context.Context, store *naming.Store, q naming.FindQuery) (int, error) {
	n := 0
	for {
		page, err := store.Find(ctx, q)
		if err != nil {
			return 0, err
		}
		n += len(page.Versions)
		if page.Next == "" {
			return n, nil
		}
		q.After = page.Next
	}
}

// scanFind answers q without the index: every manifest read and its
// values checked (latest versions only, as find answers).
func scanFind(ctx context.Context, store *naming.Store, q naming.FindQuery) (int, error) {
	mt, err := naming.NewMatcher(q.Predicates)
	if err != nil {
		return 0, err
	}
	n := 0
	err = store.ForEachManifest(func(id chunk.ID) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m, err := store.Manifest(id)
		if err != nil {
			return err
		}
		if mt.Match(m) {
			n++
		}
		return nil
	})
	return n, err
}

// pct returns the nearest-rank p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return percentile(s, p)
}

// ownDomain lets the bench's key write under its own domain only.
type ownDomain struct{ key manifest.PublicKey }

func (t ownDomain) MayWrite(k manifest.PublicKey, domain string) (bool, bool) {
	return k == t.key, k == t.key && domain == findDomain
}

// WriteTable prints the run.
func (r *FindResult) WriteTable(w io.Writer) error {
	var sb strings.Builder
	m := r.Machine
	fmt.Fprintf(&sb, "skyfed bench find: %d versions with FITS header values, %d queries (every page read, up to 1000 per page), in %s\n", r.Config.Versions, r.Config.Queries, m.Dir)
	fmt.Fprintf(&sb, "machine: %d cores (%s), %s %s\n", m.Cores, m.CPU, m.GoVersion, m.Platform)
	if m.LoadStart != "" {
		fmt.Fprintf(&sb, "load:    %s at start, %s at end (1-min load average)\n", m.LoadStart, m.LoadEnd)
	}
	fmt.Fprintf(&sb, "put:     %d versions in %.1fs (%.0f/s through Store.Put: signed and indexed, fsync off for the build only)\n\n", r.Config.Versions, r.Build.Seconds(), float64(r.Config.Versions)/r.Build.Seconds())
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "query\tsamples\thits (mean, max)\tp50 ms\tp99 ms\tgoal\texample")
	row := func(k FindKind, example string) {
		goal := "ok"
		if k.P50 > FindGoal || k.P99 > FindGoal {
			goal = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f, %d\t%.2f\t%.2f\t%s (≤ %d ms)\t%s\n", k.Name, k.Samples, k.MeanHits, k.MaxHits,
			ms(k.P50), ms(k.P99), goal, FindGoal.Milliseconds(), example)
	}
	for _, k := range r.Kinds {
		row(k, k.Example)
	}
	row(r.All, "")
	if err := tw.Flush(); err != nil {
		return err
	}
	ratio := 0.0
	if r.All.P50 > 0 {
		ratio = float64(r.Scan) / float64(r.All.P50)
	}
	fmt.Fprintf(&sb, "\nwithout the index (every manifest read, the first query): %.0f ms for %d hits; find's p50 is %.0f× faster\n", ms(r.Scan), r.ScanHits, ratio)
	_, err := io.WriteString(w, sb.String())
	return err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
