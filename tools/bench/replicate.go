package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
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

// ReplicateConfig says what a replication run measures.
type ReplicateConfig struct {
	Topologies []string // default: line, ring, ring-chords, cube, mesh
	Sites      int      // default 8
	Modes      []string // default: offer, flood
	Size       ByteSize // FITS-like bytes put per run; default 64 MiB
	FITS       string   // real frames; "" synthetic
	Dir        string   // scratch dir; "" os.TempDir
	RateLink   string   // the --max-rate of the rate row; default 20MB/s
	// Baseline "jetstream" runs the convergence comparison instead of
	// the rows above: skyfed (offer) against JetStream mirrors, on FITS
	// frames and on as many random bytes, Size of each (default 256 MiB).
	Baseline string
	Runs     int // runs per measurement of the comparison, the median printed; default 5
	Random   ByteSize
	Progress io.Writer
}

// ReplicateRow is one topology and mode.
type ReplicateRow struct {
	Topology      string
	Sites, Links  int
	Mode          string
	UniqueChunks  int64
	Receipts      int64 // chunk payloads that crossed into a site, duplicates included
	PerChunkSite  float64
	ControlRatio  float64 // control bytes ÷ payload bytes on the wire
	WireRatio     float64 // wire bytes ÷ raw bytes
	Converge      time.Duration
	RawBytesMoved int64
}

// RateRow is the achieved rate of a limited link.
type RateRow struct {
	Setting  uint64
	Achieved float64 // bytes/s
	Bytes    int64
	Elapsed  time.Duration
}

// TLSRow is one link's convergence with nats_tls off or on.
type TLSRow struct {
	Mode     string
	Converge time.Duration
	Bytes    int64
}

// ReplicateResult is a whole run.
type ReplicateResult struct {
	Machine Machine
	Data    string
	Rows    []ReplicateRow
	Rate    RateRow
	TLS     []TLSRow        // off, then on
	Compare *ConvergeResult // with a baseline, instead of the above
}

func (c *ReplicateConfig) defaults() {
	if len(c.Topologies) == 0 {
		c.Topologies = []string{"line", "ring", "ring-chords", "cube", "mesh"}
	}
	if c.Sites == 0 {
		c.Sites = 8
	}
	if len(c.Modes) == 0 {
		c.Modes = []string{forward.ModeOffer, forward.ModeFlood}
	}
	if c.Size == 0 {
		c.Size = 64 << 20
		if c.Baseline != "" {
			c.Size = 256 << 20
		}
	}
	if c.Random == 0 && c.Baseline != "" {
		c.Random = c.Size
	}
	if c.Runs <= 0 {
		c.Runs = 5
	}
	if c.RateLink == "" {
		c.RateLink = "20MB/s"
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// RunReplicate runs every topology in every mode on in-process sites
// with embedded NATS servers, then the rate row.
func RunReplicate(ctx context.Context, cfg ReplicateConfig) (*ReplicateResult, error) {
	cfg.defaults()
	scratch, err := os.MkdirTemp(cfg.Dir, "skyfed-bench-replicate-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	switch cfg.Baseline {
	case "":
	case BaselineJetStream:
		cmp, err := runConvergence(ctx, cfg, scratch)
		if err != nil {
			return nil, err
		}
		return &ReplicateResult{Machine: describeMachine(scratch), Compare: cmp}, nil
	default:
		return nil, fmt.Errorf("unknown baseline %q (known: %s)", cfg.Baseline, BaselineJetStream)
	}
	frames, desc, err := replicationFrames(cfg)
	if err != nil {
		return nil, err
	}
	res := &ReplicateResult{Machine: describeMachine(scratch), Data: desc}
	for _, topo := range cfg.Topologies {
		for _, mode := range cfg.Modes {
			fmt.Fprintf(cfg.Progress, "replicate: %s of %d, %s...\n", topo, cfg.Sites, mode)
			row, err := replicateOnce(ctx, scratch, topo, cfg.Sites, mode, "", site.TLSOn, frames)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", topo, mode, err)
			}
			res.Rows = append(res.Rows, row.ReplicateRow)
		}
	}
	fmt.Fprintf(cfg.Progress, "replicate: rate-limited link at %s...\n", cfg.RateLink)
	row, err := replicateOnce(ctx, scratch, "line", 2, forward.ModeOffer, cfg.RateLink, site.TLSOn, frames)
	if err != nil {
		return nil, fmt.Errorf("rate row: %w", err)
	}
	setting, _ := forward.ParseRate(cfg.RateLink)
	res.Rate = RateRow{Setting: setting, Bytes: row.RawBytesMoved, Elapsed: row.Converge}
	if row.Converge > 0 {
		res.Rate.Achieved = float64(row.wireBytes) / row.Converge.Seconds()
	}
	// What TLS costs: one unlimited link, the same data, in plain text
	// and in TLS, best of three each (start-up noise is large next to it).
	for _, mode := range []string{site.TLSOff, site.TLSOn} {
		fmt.Fprintf(cfg.Progress, "replicate: line of 2, links nats_tls=%s...\n", mode)
		best := time.Duration(0)
		for range 3 {
			row, err := replicateOnce(ctx, scratch, "line", 2, forward.ModeOffer, "", mode, frames)
			if err != nil {
				return nil, fmt.Errorf("TLS row (%s): %w", mode, err)
			}
			if best == 0 || row.Converge < best {
				best = row.Converge
			}
		}
		res.TLS = append(res.TLS, TLSRow{Mode: mode, Converge: best, Bytes: int64(cfg.Size)})
	}
	return res, nil
}

// replicationFrames returns distinct FITS-like frames totalling about
// cfg.Size: real frames varied per copy, or synthetic ones.
func replicationFrames(cfg ReplicateConfig) ([][]byte, string, error) {
	var base [][]byte
	desc := "synthetic 16-bit 1024×1024 FITS frames"
	if cfg.FITS != "" {
		paths, err := testlab.FindFITS(cfg.FITS, 1<<20)
		if err != nil {
			return nil, "", err
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, "", err
			}
			if _, err := testlab.VaryFrame(b, 0); err == nil {
				base = append(base, b)
			}
		}
		desc = fmt.Sprintf("real FITS frames from %s, varied per copy", cfg.FITS)
	}
	if len(base) == 0 {
		for i := range 4 {
			var buf bytes.Buffer
			if err := testlab.WriteSyntheticFrame(&buf, uint64(i), 1024, 1024); err != nil {
				return nil, "", err
			}
			base = append(base, buf.Bytes())
		}
	}
	var frames [][]byte
	var total int64
	for i := 0; total < int64(cfg.Size); i++ {
		f, err := testlab.VaryFrame(base[i%len(base)], uint64(i+1))
		if err != nil {
			return nil, "", err
		}
		frames = append(frames, f)
		total += int64(len(f))
	}
	return frames, desc, nil
}

type replicateRun struct {
	ReplicateRow
	wireBytes int64
}

func replicateOnce(ctx context.Context, scratch, topo string, n int, mode, rate, natsTLS string, frames [][]byte) (replicateRun, error) {
	dir, err := os.MkdirTemp(scratch, topo+"-")
	if err != nil {
		return replicateRun{}, err
	}
	defer os.RemoveAll(dir)
	// Links dial the sites' NATS servers directly: no proxy in the way of
	// what is measured.
	nats := make([]string, n)
	for i := range nats {
		if nats[i], err = testlab.FreeAddr(); err != nil {
			return replicateRun{}, err
		}
	}
	fed, err := testlab.StartFederation(testlab.FedOptions{N: n, Topology: topo, Seed: 1, Mode: mode, MaxRate: rate,
		Dir: dir, Domain: "bench.test", ChunkSize: chunk.DefaultSize, NATSTLS: natsTLS,
		NATSAddr: func(i int) string { return nats[i] }, Direct: true})
	if err != nil {
		return replicateRun{}, err
	}
	defer fed.Close()
	sites, links := fed.Sites(), len(fed.Edges())
	if err := waitLinksUp(ctx, sites, links); err != nil {
		return replicateRun{}, err
	}
	start := time.Now()
	if err := putFramesAt(ctx, sites[0], frames); err != nil {
		return replicateRun{}, err
	}
	unique := sites[0].Chunks().Stats().Chunks
	if err := waitReplicated(ctx, sites, unique, int64(len(frames))); err != nil {
		return replicateRun{}, err
	}
	run := replicateRun{ReplicateRow: ReplicateRow{Topology: topo, Sites: n, Links: links, Mode: mode, UniqueChunks: unique, Converge: time.Since(start)}}
	var wire, payload, raw int64
	for _, s := range sites {
		for _, l := range s.Links() {
			run.Receipts += l.ReceivedChunks + l.DuplicateChunks
			wire += l.SentWireBytes
			payload += l.SentPayloadBytes
			raw += l.SentRawBytes
		}
	}
	run.PerChunkSite = float64(run.Receipts) / float64(unique*int64(n-1))
	run.ControlRatio = float64(wire-payload) / float64(max(payload, 1))
	run.WireRatio = float64(wire) / float64(max(raw, 1))
	run.RawBytesMoved, run.wireBytes = raw, wire
	return run, nil
}

// poll calls done every 50 ms until it reports true, ctx ends or a
// minute passes.
func poll(ctx context.Context, what string, done func() bool) error {
	deadline := time.Now().Add(5 * time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func waitLinksUp(ctx context.Context, sites []*site.Site, links int) error {
	return poll(ctx, "links up", func() bool {
		up := 0
		for _, s := range sites {
			for _, l := range s.Links() {
				if l.State == forward.StateUp && l.Direction == forward.DirOut {
					up++
				}
			}
		}
		return up == links
	})
}

func putFramesAt(ctx context.Context, s *site.Site, frames [][]byte) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, f := range frames {
		name := naming.MustParseName(fmt.Sprintf("bench.test/cam/img-%05d.fits", i))
		g.Go(func() error {
			_, err := s.Objects().Put(gctx, name, bytes.NewReader(f), naming.PutOptions{ContentType: "image/fits"})
			return err
		})
	}
	return g.Wait()
}

func waitReplicated(ctx context.Context, sites []*site.Site, chunks, versions int64) error {
	return poll(ctx, "convergence", func() bool {
		for _, s := range sites {
			if s.Chunks().Stats().Chunks < chunks || s.Objects().Versions() < versions {
				return false
			}
			for _, l := range s.Links() {
				if l.Backlog > 0 {
					return false
				}
			}
		}
		return true
	})
}

// WriteTable prints the result with the goals.
func (r *ReplicateResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "skyfed bench replicate — %d cores, %s, %s\n", r.Machine.Cores, r.Machine.GoVersion, r.Machine.Platform)
	if r.Compare != nil {
		return r.Compare.WriteTable(w)
	}
	fmt.Fprintf(w, "data: %s\n\n", r.Data)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "topology\tsites\tlinks\tmode\tchunks\treceipts\ttransfers/chunk/site\tcontrol/payload\twire/raw\tconverge\tgoal\t")
	for _, row := range r.Rows {
		goal := ""
		if row.Mode == forward.ModeOffer {
			goal = passMiss(row.PerChunkSite <= 1.02 && row.ControlRatio <= 0.01, "≤1.02, ≤1%")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%.3f\t%.3f%%\t%.3f\t%.1fs\t%s\t\n", row.Topology, row.Sites, row.Links, row.Mode,
			row.UniqueChunks, row.Receipts, row.PerChunkSite, 100*row.ControlRatio, row.WireRatio, row.Converge.Seconds(), goal)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nrate-limited link (line of 2, offer): setting %s, achieved %s on the wire (%.2f× the setting)\n",
		forward.FormatRate(r.Rate.Setting), forward.FormatRate(uint64(r.Rate.Achieved)), r.Rate.Achieved/float64(max(r.Rate.Setting, 1)))
	if len(r.TLS) == 2 && r.TLS[0].Converge > 0 {
		fmt.Fprintf(w, "TLS on one link (line of 2, offer, %s, best of 3): plain %.2fs, TLS %.2fs (%.2f× plain); the rows above run in TLS\n",
			ByteSize(r.TLS[0].Bytes), r.TLS[0].Converge.Seconds(), r.TLS[1].Converge.Seconds(), r.TLS[1].Converge.Seconds()/r.TLS[0].Converge.Seconds())
	}
	fmt.Fprintln(w, strings.TrimSpace(`
transfers/chunk/site = chunk payload receipts (duplicates included) ÷ (unique chunks × (sites−1)); flood's theory: mesh of 8 = 7.0, ring of 8 = 1.29.
control/payload = wire bytes that are not chunk/manifest payload ÷ payload bytes. wire/raw = bytes on the wire ÷ raw bytes of what was sent (compression).
converge = first put to every site holding every chunk and manifest with empty backlogs; the rate row's time includes link start-up.`))
	return nil
}

func passMiss(ok bool, goal string) string {
	if ok {
		return "PASS " + goal
	}
	return "MISS " + goal
}

// describeMachine says where a run happens.
func describeMachine(dir string) Machine {
	return Machine{Cores: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Dir: dir}
}
