package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/skyfed/skyfed/site/client"
)

// DiffCmd is `skyfed diff PEER`.
type DiffCmd struct {
	Peer    string        `arg:"" help:"Site ID of a peer linked to this site."`
	Names   bool          `help:"Print one line per version that differs: lacks-there NAME VERSION or lacks-here NAME VERSION."`
	JSON    bool          `name:"json" help:"Print the result as JSON."`
	Timeout time.Duration `help:"Give up when the peer has not answered after this long (exit 4)." default:"30s"`
	Conn    siteFlags     `embed:""`
}

// diffJSON is the --json shape.
type diffJSON struct {
	Peer         string            `json:"peer"`
	ReconciledAt time.Time         `json:"reconciled_at"`
	InSync       bool              `json:"in_sync"`
	PeerLacks    client.Lacks      `json:"peer_lacks"`
	LocalLacks   client.Lacks      `json:"local_lacks"`
	Refused      client.Refused    `json:"refused"`
	Names        []client.DiffName `json:"names,omitempty"`
}

// Run reconciles and prints the result; exit 0 in sync, 5 differ.
func (c *DiffCmd) Run(app *App) error {
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	ctx, cancel := withTimeout(app.Ctx, c.Timeout+5*time.Second) // the site times out first and says so
	defer cancel()
	d, err := cl.Diff(ctx, c.Peer, c.Names, c.Timeout)
	if err != nil {
		return reconError(c.Peer, err)
	}
	if c.JSON {
		enc := json.NewEncoder(app.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(diffJSON{Peer: d.Peer, ReconciledAt: d.ReconciledAt, InSync: d.InSync,
			PeerLacks: d.PeerLacks, LocalLacks: d.LocalLacks, Refused: d.Refused, Names: d.Names}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(app.Stdout, diffLine(d))
		if c.Names {
			printDiffNames(app.Stdout, d.Names)
		}
	}
	if !d.InSync {
		return &ExitError{Code: exitDiffer}
	}
	return nil
}

// diffLine is the one-line summary of a diff.
func diffLine(d client.Diff) string {
	if d.InSync {
		line := fmt.Sprintf("in sync with %s at %s (%d manifests, %d chunks)", d.Peer,
			d.ReconciledAt.UTC().Format(time.RFC3339), d.Manifests, d.Chunks)
		if d.Refused.Versions > 0 {
			line += fmt.Sprintf("; %d refused", d.Refused.Versions)
		}
		return line
	}
	line := fmt.Sprintf("%s lacks %d versions, %d chunks (%s); this site lacks %d versions, %d chunks (%s)",
		d.Peer, d.PeerLacks.Versions, d.PeerLacks.Chunks, humanBytes(d.PeerLacks.Bytes),
		d.LocalLacks.Versions, d.LocalLacks.Chunks, humanBytes(d.LocalLacks.Bytes))
	if d.Refused.Versions > 0 {
		line += fmt.Sprintf("; %d refused", d.Refused.Versions)
	}
	return line
}

func printDiffNames(w io.Writer, names []client.DiffName) {
	for _, n := range names {
		fmt.Fprintf(w, "lacks-%s %s %s\n", n.Lacks, n.Name, n.Version)
	}
}

// reconError maps a diff or resync failure to its exit code: no link is
// an error (1, "no link to PEER"), a peer not answering a timeout (4).
func reconError(peer string, err error) error {
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == 404:
		return &ExitError{Code: exitError, Err: withHint(fmt.Errorf("no link to %s", peer), "skyfed stat lists this site's links; add one with skyfed site link")}
	case errors.As(err, &ae) && ae.Status == 504, errors.Is(err, context.DeadlineExceeded):
		return &ExitError{Code: exitTimeout, Err: fmt.Errorf("%s did not answer in time: %w", peer, err)}
	}
	return &ExitError{Code: exitError, Err: err}
}

// ResyncCmd is `skyfed resync PEER`.
type ResyncCmd struct {
	Peer    string        `arg:"" help:"Site ID of a peer linked to this site."`
	Timeout time.Duration `help:"Give up when the two sites are not in sync after this long (exit 4)." default:"10m"`
	Conn    siteFlags     `embed:""`
}

// Run reconciles until in sync, printing progress and an ETA on stderr.
func (c *ResyncCmd) Run(app *App) error {
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	ctx, cancel := withTimeout(app.Ctx, c.Timeout+30*time.Second) // the site ends the stream first
	defer cancel()
	start := time.Now()
	var first *client.Diff
	last, err := cl.Resync(ctx, c.Peer, c.Timeout, func(p client.ResyncProgress) {
		if first == nil {
			d := p.Diff
			first = &d
		}
		fmt.Fprintln(app.Stderr, resyncLine(*first, p.Diff, time.Since(start)))
	})
	if err != nil {
		return reconError(c.Peer, err)
	}
	switch {
	case last.TimedOut:
		fmt.Fprintln(app.Stdout, diffLine(last.Diff))
		return &ExitError{Code: exitTimeout, Err: fmt.Errorf("resync with %s: not in sync after %s", c.Peer, c.Timeout)}
	case last.Error != "":
		return &ExitError{Code: exitError, Err: fmt.Errorf("resync with %s: %s", c.Peer, last.Error)}
	}
	fmt.Fprintln(app.Stdout, diffLine(last.Diff))
	return nil
}

// resyncLine is one progress line: what is left both ways, the rate so
// far and an estimate of the time left.
func resyncLine(first, now client.Diff, elapsed time.Duration) string {
	left := now.PeerLacks.Bytes + now.LocalLacks.Bytes
	items := now.PeerLacks.Versions + now.PeerLacks.Chunks + now.LocalLacks.Versions + now.LocalLacks.Chunks
	moved := first.PeerLacks.Bytes + first.LocalLacks.Bytes - left
	line := fmt.Sprintf("resync %s: %d items (%s) left", now.Peer, items, humanBytes(left))
	if moved > 0 && elapsed > 0 {
		rate := float64(moved) / elapsed.Seconds()
		eta := time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second)
		line += fmt.Sprintf(", %s/s, ETA %s", humanBytes(int64(rate)), eta)
	}
	return line
}
