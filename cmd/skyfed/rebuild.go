package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/skyfed/skyfed/site"
)

// SiteRebuildCmd is `skyfed site rebuild`.
type SiteRebuildCmd struct {
	Dir string `required:"" type:"existingdir" help:"The site's data dir, holding its key and skyfed.toml (restored from the operator's backup) and no index."`
}

// Run rebuilds the index and prints what it found.
func (c *SiteRebuildCmd) Run(app *App) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	last := time.Now()
	rep, err := site.Rebuild(ctx, c.Dir, app.Log, func(r site.RebuildReport) {
		if time.Since(last) >= 2*time.Second {
			last = time.Now()
			fmt.Fprintf(app.Stderr, "rebuild: %d packs, %d chunks (%s), %d versions so far\n", r.Packs, r.Chunks, humanBytes(r.RawBytes), r.Manifests)
		}
	})
	if errors.Is(err, site.ErrNotBucketSite) || errors.Is(err, site.ErrIndexExists) {
		return &ExitError{Code: exitUsage, Err: err}
	}
	if err != nil {
		return fmt.Errorf("rebuild %s: %w (the partial index is in %s/index: move it away before trying again)", c.Dir, err, c.Dir)
	}
	fmt.Fprintf(app.Stdout, "rebuilt %s in %s: %d packs, %d chunks (%s), %d versions; left out: %d collected, %d refused by the trust store, %d puts that failed\n",
		c.Dir, time.Since(start).Round(time.Millisecond), rep.Packs, rep.Chunks, humanBytes(rep.RawBytes), rep.Manifests, rep.Collected, rep.Refused, rep.Unacknowledged)
	fmt.Fprintf(app.Stdout, "next: skyfed site run --dir %s\n", c.Dir)
	return nil
}
