package main

import (
	"fmt"

	"github.com/skyfed/skyfed/testlab/seaweed"
	"github.com/skyfed/skyfed/tools/bench"
)

// runBucket measures a site on a bucket against the AWS SDK: the
// bucket given, or a local SeaweedFS cluster started for the run.
func (c *BenchIngestCmd) runBucket(app *App, bin string) error {
	cfg := bench.BucketIngestConfig{Store: c.Store, Size: c.Size, Small: c.Small, SmallSize: c.SmallSize, Runs: c.Runs,
		Binary: bin, Dir: c.Dir, Progress: app.Stderr}
	if c.Store == "" {
		weed, err := seaweed.Binary()
		if err != nil {
			return err
		}
		fmt.Fprintln(app.Stderr, "bench ingest: starting a SeaweedFS cluster (master, 3 volume servers with replication 001, filer, S3 gateway) …")
		cl, err := seaweed.Start(app.Ctx, seaweed.Options{Binary: weed})
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := cl.CreateBucket(app.Ctx, "skyfed-bench"); err != nil {
			return err
		}
		cfg.Store = fmt.Sprintf("s3://skyfed-bench/bench?endpoint=%s&region=%s", cl.Endpoint, cl.Region)
		cfg.AccessKey, cfg.SecretKey = cl.AccessKey, cl.SecretKey
	}
	res, err := bench.RunBucketIngest(app.Ctx, cfg)
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}

// BenchIndexCmd is `skyfed bench index`.
type BenchIndexCmd struct {
	Chunks           int    `default:"1000000" help:"Chunks indexed."`
	ChunksPerVersion int    `default:"8" help:"Chunks per version (8: frames of 8 MiB in 1 MiB chunks)."`
	Dir              string `type:"path" help:"Directory to build the index in (a new subdirectory, removed after; default: under the system temp dir)."`
}

// Run builds the index and prints its size.
func (c *BenchIndexCmd) Run(app *App) error {
	res, err := bench.RunIndexSize(app.Ctx, bench.IndexSizeConfig{Chunks: c.Chunks, ChunksPerVersion: c.ChunksPerVersion, Dir: c.Dir, Progress: app.Stderr})
	if err != nil {
		return err
	}
	return res.WriteTable(app.Stdout)
}
