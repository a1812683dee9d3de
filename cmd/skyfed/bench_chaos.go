package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/skyfed/skyfed/tools/bench"
)

// BenchChaosCmd is `skyfed bench chaos`.
type BenchChaosCmd struct {
	Seed      uint64         `default:"1" help:"Seed every schedule is drawn from."`
	Schedules int            `default:"10" help:"How many schedules to run, from --first on."`
	First     int            `default:"1" help:"Number of the first schedule (runs resume where an earlier one stopped)."`
	Schedule  int            `help:"Run only this schedule (a replay); overrides --first and --schedules."`
	Verbose   bool           `short:"v" help:"Print every fault and operation as it happens."`
	Duration  time.Duration  `default:"30s" help:"Workload and fault phase of each schedule."`
	Converge  time.Duration  `default:"60s" help:"How long to wait for convergence once every fault is healed."`
	MinSites  int            `name:"min-sites" default:"4" help:"Fewest sites in a schedule."`
	MaxSites  int            `name:"max-sites" default:"8" help:"Most sites in a schedule."`
	MaxSize   bench.ByteSize `name:"max-size" default:"50MB" help:"Largest object put."`
	FITS      string         `name:"fits" type:"path" env:"SKYFED_FITS" help:"Directory of real FITS frames to put beside random bytes."`
	Dir       string         `type:"path" help:"Scratch directory (default: the system temp dir); failed schedules' data dirs and logs stay there."`
	Results   string         `default:"chaos-results.jsonl" help:"File the results are appended to, one JSON line per schedule; the summary covers every result of --seed in it."`
	Keep      bool           `help:"Keep every schedule's data dirs and logs, not only failed ones."`
}

// Run runs the schedules and prints a line per schedule and a summary;
// it exits non-zero if any schedule failed.
func (c *BenchChaosCmd) Run(app *App) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench chaos: find the skyfed binary to run sites with: %w", err)
	}
	first, n := c.First, c.Schedules
	if c.Schedule > 0 {
		first, n = c.Schedule, 1
	}
	return bench.RunChaos(app.Ctx, bench.ChaosConfig{
		Seed: c.Seed, First: first, Schedules: n, Duration: c.Duration, Converge: c.Converge,
		MinSites: c.MinSites, MaxSites: c.MaxSites, MaxSize: int64(c.MaxSize), FITS: c.FITS, Dir: c.Dir,
		Results: c.Results, Binary: bin, Keep: c.Keep, Verbose: c.Verbose, Progress: app.Stderr, Flags: c.shapeFlags(),
	}, app.Stdout)
}

// shapeFlags are the flags that change what a schedule draws, for the
// replay command: a replay must draw the same plan.
func (c *BenchChaosCmd) shapeFlags() string {
	var f []string
	if c.Duration != 30*time.Second {
		f = append(f, "--duration "+c.Duration.String())
	}
	if c.Converge != 60*time.Second {
		f = append(f, "--converge "+c.Converge.String())
	}
	if c.MinSites != 4 {
		f = append(f, fmt.Sprintf("--min-sites %d", c.MinSites))
	}
	if c.MaxSites != 8 {
		f = append(f, fmt.Sprintf("--max-sites %d", c.MaxSites))
	}
	if c.MaxSize != 50_000_000 {
		f = append(f, "--max-size "+sizeFlag(c.MaxSize))
	}
	if c.FITS != "" {
		f = append(f, "--fits "+c.FITS)
	}
	return strings.Join(f, " ")
}

// sizeFlag writes a size as one shell word that parses back to it: "4MiB"
// where that is exact, else the byte count.
func sizeFlag(b bench.ByteSize) string {
	s := strings.ReplaceAll(b.String(), " ", "")
	if v, err := bench.ParseSize(s); err == nil && v == b {
		return s
	}
	return fmt.Sprint(int64(b))
}
