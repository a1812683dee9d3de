package main

import (
	"github.com/skyfed/skyfed/tools/bench"
)

// BenchReconcileCmd is `skyfed bench reconcile`.
type BenchReconcileCmd struct {
	Items  int    `default:"1000000" help:"IDs both sides hold in common."`
	Seed   uint64 `default:"1" help:"Seed of the IDs and the planted differences."`
	Diffs  []int  `default:"0,1,1000,100000" help:"Differences to plant, comma-separated (each split both ways and as after an outage)."`
	Trials int    `default:"100" help:"Extra seeds of the d=1000 split row, for its spread (0: none)."`
}

// Run runs the reconciliation benchmark and prints its table.
func (c *BenchReconcileCmd) Run(app *App) error {
	trials := c.Trials
	if trials == 0 {
		trials = -1
	}
	res, err := bench.RunReconcile(app.Ctx, bench.ReconcileConfig{
		Items: c.Items, Seed: c.Seed, Diffs: c.Diffs, Trials: trials, Progress: app.Stderr,
	})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}
