package main

import (
	"strings"
	"time"

	"github.com/skyfed/skyfed/tools/bench"
)

// BenchReplicateCmd is `skyfed bench replicate`.
type BenchReplicateCmd struct {
	Topology string         `default:"line,ring,ring-chords,cube,mesh" help:"Topologies to run, comma-separated (line, ring, star, mesh, ring-chords, cube, random)."`
	Sites    int            `default:"8" help:"Sites per federation (cube needs 8)."`
	Mode     string         `default:"offer,flood" help:"Link modes to run, comma-separated."`
	Size     bench.ByteSize `help:"FITS-like data put per run (default 64MiB; 256MiB with --baseline, and as many random bytes)."`
	FITS     string         `name:"fits" type:"path" env:"SKYFED_FITS" help:"Directory of real FITS frames; synthetic 16-bit frames when unset."`
	Dir      string         `type:"path" help:"Scratch directory (default: the system temp dir)."`
	MaxRate  string         `name:"max-rate" default:"20MB/s" help:"The --max-rate of the rate-limited link row."`
	Baseline string         `enum:",jetstream" default:"" help:"jetstream: instead of the rows above, time convergence against JetStream mirrors over leafnodes (line and star), all links through byte-counting proxies."`
	Runs     int            `default:"5" help:"Runs per measurement with --baseline; the median is printed."`
}

// Run runs the replication benchmark and prints its table.
func (c *BenchReplicateCmd) Run(app *App) error {
	res, err := bench.RunReplicate(app.Ctx, bench.ReplicateConfig{
		Topologies: splitList(c.Topology), Sites: c.Sites, Modes: splitList(c.Mode), Size: c.Size,
		FITS: c.FITS, Dir: c.Dir, RateLink: c.MaxRate, Baseline: c.Baseline, Runs: c.Runs, Progress: app.Stderr,
	})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}

// BenchLookupCmd is `skyfed bench lookup`.
type BenchLookupCmd struct {
	Sites    int           `default:"8" help:"Sites in the federation."`
	Topology string        `default:"ring-chords" help:"How they are linked (with loops)."`
	Latency  time.Duration `default:"10ms" help:"Added one-way latency per link (through the lab's TCP proxy)."`
	Lookups  int           `default:"200" help:"Samples per measurement."`
	Dir      string        `type:"path" help:"Scratch directory (default: the system temp dir)."`
}

// Run runs the lookup benchmark and prints its table.
func (c *BenchLookupCmd) Run(app *App) error {
	res, err := bench.RunLookup(app.Ctx, bench.LookupConfig{
		Sites: c.Sites, Topology: c.Topology, Latency: c.Latency, Lookups: c.Lookups, Dir: c.Dir, Progress: app.Stderr,
	})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
