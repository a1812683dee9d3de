package main

import (
	"github.com/skyfed/skyfed/tools/bench"
)

// BenchHealCmd is `skyfed bench heal`.
type BenchHealCmd struct {
	Size bench.ByteSize `default:"1GiB" help:"Bytes stored before the passes (e.g. 1GiB, 256MiB)."`
	Dir  string         `type:"path" help:"Directory on the disk to measure; the bench works in a new subdirectory and removes it (default: under the system temp dir)."`
}

// Run measures scrub and compaction against raw reads, SHA-256 and raw
// writes in the same run.
func (c *BenchHealCmd) Run(app *App) error {
	res, err := bench.RunHeal(app.Ctx, bench.HealConfig{Size: c.Size, Dir: c.Dir, Progress: app.Stderr})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}
