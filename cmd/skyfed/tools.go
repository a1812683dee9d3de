package main

import (
	"fmt"
	"io"

	"github.com/schollz/progressbar/v3"

	"github.com/skyfed/skyfed/site/client"
)

// ToolsCmd groups operator tools that act on a running site.
type ToolsCmd struct {
	Scrub ScrubCmd `cmd:"" help:"Re-hash every chunk and check every version of a running site, repairing from peers what is damaged or missing (exit 0 clean or repaired, 3 something unrepairable)."`
	GC    GCCmd    `cmd:"" help:"Reclaim space on a running site: versions hidden past gc_grace, chunks nothing uses, dead pack bytes (exit 0, 3 something unrepairable met)."`
}

// ScrubCmd is `skyfed tools scrub`.
type ScrubCmd struct {
	Rate string    `help:"Read at most this fast (e.g. 50MB/s); default: as fast as the disk goes."`
	JSON bool      `name:"json" help:"Print the final report as JSON."`
	Conn siteFlags `embed:""`
}

// Run scrubs the site, with a progress bar on a terminal.
func (c *ScrubCmd) Run(app *App) error {
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	var bar *progressbar.ProgressBar
	rep, err := cl.Scrub(app.Ctx, c.Rate, func(p client.ScrubReport) {
		if bar == nil && p.Phase == "chunks" && p.TotalBytes > 0 {
			bar = newProgress(app.Stderr, p.TotalBytes, "scrub")
		}
		if bar != nil {
			_ = bar.Set64(min(p.Bytes, p.TotalBytes))
		}
	})
	finishProgress(bar, err)
	if err != nil {
		return err
	}
	if c.JSON {
		if err := printJSON(app.Stdout, rep); err != nil {
			return err
		}
	} else {
		printScrub(app.Stdout, rep)
	}
	switch {
	case rep.Error != "":
		return &ExitError{Code: exitError, Err: fmt.Errorf("scrub: %s", rep.Error)}
	case rep.Unrepairable > 0 || rep.BadManifests > 0:
		return &ExitError{Code: exitVerify, Err: withHint(fmt.Errorf("scrub: %d chunks unrepairable, %d manifests bad", rep.Unrepairable, rep.BadManifests),
			"no reachable site has a good copy; skyfed stat lists them with their objects, and the site asks its peers again every 10 minutes")}
	}
	return nil
}

func printScrub(w io.Writer, r client.ScrubReport) {
	fmt.Fprintf(w, "scrubbed %d chunks (%s) and %d versions in %.1fs\n", r.Chunks, humanBytes(r.Bytes), r.Manifests, r.Seconds)
	fmt.Fprintf(w, "corrupt %d, missing %d, repaired %d, unrepairable %d, bad manifests %d\n",
		r.Corrupt, r.Missing, r.Repaired, r.Unrepairable, r.BadManifests)
	if r.Untrusted > 0 {
		fmt.Fprintf(w, "%d versions are signed by keys no longer trusted for their names\n", r.Untrusted)
	}
	for _, a := range r.Affected {
		state := "repaired"
		if !a.Repaired {
			state = "UNREPAIRABLE"
		}
		fmt.Fprintf(w, "%s %s %s chunk %s\n", state, a.Name, a.Version, a.Chunk)
	}
}

// GCCmd is `skyfed tools gc`.
type GCCmd struct {
	Grace string    `help:"Keep hidden versions and unused chunks this long (a Go duration); default: the site's gc_grace (7 days)."`
	JSON  bool      `name:"json" help:"Print the final report as JSON."`
	Conn  siteFlags `embed:""`
}

// Run collects garbage at the site and reports the space reclaimed.
func (c *GCCmd) Run(app *App) error {
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	progress := isTerminal(app.Stderr)
	rep, err := cl.GC(app.Ctx, c.Grace, func(p client.GCReport) {
		if progress {
			fmt.Fprintf(app.Stderr, "\rgc: %-8s %d versions, %d chunks collected, %d packs removed, %d rewritten ", p.Phase,
				p.VersionsCollected, p.ChunksCollected, p.PacksRemoved, p.PacksRewritten)
		}
	})
	if progress {
		fmt.Fprintln(app.Stderr)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		if err := printJSON(app.Stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(app.Stdout, "collected %d versions (%s) and %d chunks (%s); %d chunks still in their grace period\n",
			rep.VersionsCollected, humanBytes(rep.VersionBytes), rep.ChunksCollected, humanBytes(rep.ChunkBytes), rep.OrphansWaiting)
		fmt.Fprintf(app.Stdout, "packs: %d removed, %d rewritten (%d chunks moved); %s → %s, reclaimed %s in %.1fs\n",
			rep.PacksRemoved, rep.PacksRewritten, rep.ChunksMoved, humanBytes(rep.PackBytes), humanBytes(rep.PackBytesAfter),
			humanBytes(rep.Reclaimed), rep.Seconds)
	}
	switch {
	case rep.Error != "":
		return &ExitError{Code: exitError, Err: fmt.Errorf("gc: %s", rep.Error)}
	case rep.Unrepairable > 0:
		return &ExitError{Code: exitVerify, Err: withHint(fmt.Errorf("gc: %d damaged chunks met could not be repaired", rep.Unrepairable),
			"skyfed stat lists them with their objects; skyfed tools scrub checks the whole store")}
	}
	return nil
}
