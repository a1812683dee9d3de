package main

import "github.com/skyfed/skyfed/tools/bench"

// BenchFindCmd is `skyfed bench find`.
type BenchFindCmd struct {
	Versions int    `default:"1000000" help:"Versions with FITS header values indexed before the queries."`
	Queries  int    `default:"100" help:"Queries timed (a mix of keyword, date range, cone and combined conditions)."`
	Dir      string `type:"path" help:"Directory on the disk to use; the bench works in a new subdirectory and removes it (default: under the system temp dir)."`
}

// Run times selective finds over a store of Versions versions against
// a scan of every manifest, in one run.
func (c *BenchFindCmd) Run(app *App) error {
	res, err := bench.RunFind(app.Ctx, bench.FindConfig{Versions: c.Versions, Queries: c.Queries, Dir: c.Dir, Progress: app.Stderr})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}
