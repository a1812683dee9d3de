package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/testlab"
)

// BaselineJetStream is the --baseline of the convergence comparison.
const BaselineJetStream = "jetstream"

// putParallel is how many puts run at once, for skyfed and JetStream alike.
const putParallel = 2

// randomObjectSize is the size of each random object of the comparison.
const randomObjectSize = 16 << 20

// dataSet is what one comparison puts at site 0: FITS frames held in
// memory (varied per copy), or random objects streamed from a seed.
type dataSet struct {
	Name, Desc string
	Bytes      int64
	frames     [][]byte
	sizes      []int64 // random objects
}

func (d dataSet) count() int { return len(d.frames) + len(d.sizes) }

// object returns object i's path (without the domain), its bytes and size.
func (d dataSet) object(i int) (string, io.Reader, int64) {
	if d.frames != nil {
		return fmt.Sprintf("cam/img-%05d.fits", i), bytes.NewReader(d.frames[i]), int64(len(d.frames[i]))
	}
	return fmt.Sprintf("random/object-%04d.bin", i), NewRandom(uint64(i+1), d.sizes[i]), d.sizes[i]
}

func randomSet(size int64) dataSet {
	d := dataSet{Name: "random", Desc: fmt.Sprintf("random bytes in objects of %s", ByteSize(randomObjectSize))}
	for left := size; left > 0; left -= randomObjectSize {
		d.sizes = append(d.sizes, min(left, randomObjectSize))
	}
	d.Bytes = size
	return d
}

// convergeRun is one measured run of one system.
type convergeRun struct {
	Converge time.Duration // first put to every site holding everything
	Ingest   time.Duration // first put to the last put's return
	Wire     int64         // bytes the link proxies carried meanwhile, both ways
	CPU      time.Duration // CPU time of the process meanwhile (every site runs in it)
}

// ConvergeRow is the median of several runs of one system on one topology.
type ConvergeRow struct {
	Data, Topology string
	System         string // "skyfed" or a JetStreamVariant
	Variant        *JetStreamVariant
	Runs           []convergeRun
	Converge       time.Duration // medians
	Tail           time.Duration // converge − ingest
	Wire           int64
	CPU            time.Duration
}

// ConvergeResult is the convergence comparison of a whole run.
type ConvergeResult struct {
	Sites, Runs        int
	Data               []dataSet
	Rows               []ConvergeRow
	LoadStart, LoadEnd string
}

func medianRow(r ConvergeRow) ConvergeRow {
	med := func(f func(convergeRun) int64) int64 {
		vs := make([]int64, len(r.Runs))
		for i, x := range r.Runs {
			vs[i] = f(x)
		}
		slices.Sort(vs)
		return vs[len(vs)/2]
	}
	r.Converge = time.Duration(med(func(x convergeRun) int64 { return int64(x.Converge) }))
	r.Tail = time.Duration(med(func(x convergeRun) int64 { return int64(x.Converge - x.Ingest) }))
	r.Wire = med(func(x convergeRun) int64 { return x.Wire })
	r.CPU = time.Duration(med(func(x convergeRun) int64 { return int64(x.CPU) }))
	return r
}

// runConvergence measures skyfed on every topology and JetStream mirror
// chains on the trees among them (line and star; line always, as ring
// and ring-chords are held to it), on FITS frames and random data.
func runConvergence(ctx context.Context, cfg ReplicateConfig, scratch string) (*ConvergeResult, error) {
	frames, desc, err := replicationFrames(cfg)
	if err != nil {
		return nil, err
	}
	fits := dataSet{Name: "fits", Desc: desc, frames: frames}
	for _, f := range frames {
		fits.Bytes += int64(len(f))
	}
	res := &ConvergeResult{Sites: cfg.Sites, Runs: cfg.Runs, Data: []dataSet{fits}, LoadStart: loadAverage()}
	if cfg.Random > 0 {
		res.Data = append(res.Data, randomSet(int64(cfg.Random)))
	}
	var jsTopos []string
	for _, t := range []string{"line", "star"} {
		if slices.Contains(cfg.Topologies, t) || t == "line" {
			jsTopos = append(jsTopos, t)
		}
	}
	for _, data := range res.Data {
		for _, topo := range cfg.Topologies {
			row := ConvergeRow{Data: data.Name, Topology: topo, System: "skyfed"}
			for k := range cfg.Runs {
				var err error
				fmt.Fprintf(cfg.Progress, "replicate: %s, %s of %d, skyfed, run %d of %d...\n", data.Name, topo, cfg.Sites, k+1, cfg.Runs)
				var run convergeRun
				pprof.Do(ctx, runLabels("skyfed", data.Name, topo), func(ctx context.Context) {
					run, err = skyfedOnce(ctx, scratch, topo, cfg.Sites, data)
				})
				if err != nil {
					return nil, fmt.Errorf("%s/%s/skyfed: %w", data.Name, topo, err)
				}
				row.Runs = append(row.Runs, run)
			}
			res.Rows = append(res.Rows, medianRow(row))
		}
		for _, topo := range jsTopos {
			for _, v := range jetStreamVariants {
				row := ConvergeRow{Data: data.Name, Topology: topo, System: v.String(), Variant: &v}
				for k := range cfg.Runs {
					fmt.Fprintf(cfg.Progress, "replicate: %s, %s of %d, %s, run %d of %d...\n", data.Name, topo, cfg.Sites, v, k+1, cfg.Runs)
					var run convergeRun
					var err error
					pprof.Do(ctx, runLabels("jetstream "+v.String(), data.Name, topo), func(ctx context.Context) {
						run, err = jetStreamOnce(ctx, scratch, topo, cfg.Sites, v, data)
					})
					if err != nil {
						return nil, fmt.Errorf("%s/%s/%s: %w", data.Name, topo, v, err)
					}
					row.Runs = append(row.Runs, run)
				}
				res.Rows = append(res.Rows, medianRow(row))
			}
		}
	}
	res.LoadEnd = loadAverage()
	return res, nil
}

// runLabels tag a run's goroutines (the sites' and servers' included, as
// they inherit them) so that a --cpuprofile can be split by system, e.g.
// go tool pprof -tagfocus=system=skyfed.
func runLabels(system, data, topo string) pprof.LabelSet {
	return pprof.Labels("system", system, "data", data, "topology", topo)
}

// skyfedOnce puts the data set at site 0 of a fresh federation whose
// links (offer mode, plain text as the JetStream leafnodes are) go
// through byte-counting proxies, and times it until every site holds
// every version with all its chunks.
func skyfedOnce(ctx context.Context, scratch, topo string, n int, data dataSet) (convergeRun, error) {
	dir, err := os.MkdirTemp(scratch, topo+"-")
	if err != nil {
		return convergeRun{}, err
	}
	defer os.RemoveAll(dir)
	fed, err := testlab.StartFederation(testlab.FedOptions{N: n, Topology: topo, Seed: 1, Mode: forward.ModeOffer,
		Dir: dir, Domain: "bench.test", ChunkSize: chunk.DefaultSize, NATSTLS: site.TLSOff})
	if err != nil {
		return convergeRun{}, err
	}
	defer fed.Close()
	sites := fed.Sites()
	if err := waitLinksUp(ctx, sites, len(fed.Edges())); err != nil {
		return convergeRun{}, err
	}
	wire := func() int64 {
		var b int64
		for _, e := range fed.Edges() {
			s := fed.Proxy(e[0], e[1]).Stats()
			b += s.BytesUp + s.BytesDown
		}
		return b
	}
	wire0, cpu0 := wire(), processCPU()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(putParallel)
	for i := range data.count() {
		g.Go(func() error {
			path, r, _ := data.object(i)
			name := naming.MustParseName("bench.test/" + path)
			_, err := sites[0].Objects().Put(gctx, name, r, naming.PutOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return convergeRun{}, err
	}
	ingest := time.Since(start)
	chunks, versions := sites[0].Chunks().Stats().Chunks, int64(data.count())
	err = pollFine(ctx, "convergence", func() bool {
		for _, s := range sites {
			if s.Chunks().Stats().Chunks < chunks || s.Objects().Versions() < versions {
				return false
			}
		}
		return true
	})
	if err != nil {
		return convergeRun{}, err
	}
	return convergeRun{Converge: time.Since(start), Ingest: ingest, Wire: wire() - wire0, CPU: processCPU() - cpu0}, nil
}

// pollFine is poll at a 5 ms step: convergence times are a few hundred
// milliseconds, and both systems are polled alike.
func pollFine(ctx context.Context, what string, done func() bool) error {
	deadline := time.Now().Add(5 * time.Minute)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (r *ConvergeResult) find(data, topo string, v *JetStreamVariant) (ConvergeRow, bool) {
	for _, row := range r.Rows {
		if row.Data == data && row.Topology == topo && (v == nil) == (row.Variant == nil) && (v == nil || *v == *row.Variant) {
			return row, true
		}
	}
	return ConvergeRow{}, false
}

// Goal is one goal of the comparison and whether it was met.
type Goal struct {
	Text string
	Pass bool
}

// Goals returns the comparison's goals: on line and star skyfed within
// 1.0× the time and 0.8× the wire bytes of JetStream (s2_fast, default
// sync); on ring and ring-chords within 1.0× that JetStream's line time.
func (r *ConvergeResult) Goals() []Goal {
	var out []Goal
	for _, d := range r.Data {
		for _, row := range r.Rows {
			if row.Data != d.Name || row.Variant != nil {
				continue
			}
			switch row.Topology {
			case "line", "star":
				js, ok := r.find(d.Name, row.Topology, &goalVariant)
				if !ok {
					continue
				}
				t, w := ratio(row.Converge.Seconds(), js.Converge.Seconds()), ratio(float64(row.Wire), float64(js.Wire))
				out = append(out, Goal{Pass: t <= 1.0 && w <= 0.8,
					Text: fmt.Sprintf("%s %s: %.2f× the time (≤ 1.0), %.2f× the wire bytes (≤ 0.8)", d.Name, row.Topology, t, w)})
			case "ring", "ring-chords":
				js, ok := r.find(d.Name, "line", &goalVariant)
				if !ok {
					continue
				}
				t := ratio(row.Converge.Seconds(), js.Converge.Seconds())
				out = append(out, Goal{Pass: t <= 1.0,
					Text: fmt.Sprintf("%s %s: %.2f× JetStream's line time (≤ 1.0)", d.Name, row.Topology, t)})
			}
		}
	}
	return out
}

// WriteTable prints the comparison, one table per data set, and the goals.
func (r *ConvergeResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "convergence against JetStream: %d sites, median of %d runs, every link through a byte-counting proxy, links in plain text\n",
		r.Sites, r.Runs)
	fmt.Fprintf(w, "load average (1 min): %s at the start, %s at the end\n", r.LoadStart, r.LoadEnd)
	for _, d := range r.Data {
		fmt.Fprintf(w, "\n%s: %s, %s in %d objects\n", d.Name, d.Desc, ByteSize(d.Bytes), d.count())
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "topology\tsystem\tconverge\tafter last put\tCPU\twire\twire/raw\tskyfed÷ time\tskyfed÷ wire\t")
		for _, row := range r.Rows {
			if row.Data != d.Name {
				continue
			}
			vs := ""
			if row.Variant != nil {
				if sky, ok := r.find(d.Name, row.Topology, nil); ok {
					vs = fmt.Sprintf("%.2f×\t%.2f×", ratio(sky.Converge.Seconds(), row.Converge.Seconds()), ratio(float64(sky.Wire), float64(row.Wire)))
				}
			}
			if vs == "" {
				vs = "\t"
			}
			fmt.Fprintf(tw, "%s\t%s\t%.3fs\t%.3fs\t%.2fs\t%s\t%.3f\t%s\t\n", row.Topology, row.System, row.Converge.Seconds(), row.Tail.Seconds(), row.CPU.Seconds(),
				ByteSize(row.Wire), float64(row.Wire)/float64(max(d.Bytes*int64(r.Sites-1), 1)), vs)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\ngoals (against JetStream s2_fast, default sync):")
	for _, g := range r.Goals() {
		fmt.Fprintf(w, "  %s\n", passMiss(g.Pass, g.Text))
	}
	fmt.Fprintln(w, strings.TrimSpace(`
converge = first put at site 0 to every site holding every version with all its chunks (skyfed) or every mirror holding
every message of the Object Store's stream (JetStream); after last put = converge − the time the puts took. Puts run 2 at
a time in both. CPU = CPU time of the bench's process over the same span (every site and server runs in it): on a
machine shared with other work the times follow it. wire = bytes through the link proxies, both ways, from the first
put to convergence; wire/raw divides it by the data × (sites − 1). JetStream runs only on trees (leafnodes refuse cycles): an Object Store at site 0, every other
site a JetStream domain mirroring its parent's stream over a leafnode.`))
	return nil
}
