package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/skyfed/skyfed/site/client"
)

// StatCmd is `skyfed stat`.
type StatCmd struct {
	JSON       bool          `name:"json" help:"Print the site's status JSON as received (indented)."`
	Federation bool          `help:"Show every site and link of the federation, as this site's status beacons tell it (/api/federation), instead of this site's status."`
	Watch      bool          `short:"w" help:"Refresh until Ctrl-C: on a terminal the table is redrawn in place, otherwise a new one is printed every --interval."`
	Interval   time.Duration `help:"Time between refreshes with --watch." default:"2s"`
	Timeout    time.Duration `help:"Give up on one request after this long (0: no limit)." default:"30s"`
	Conn       siteFlags     `embed:""`
}

// minWatchInterval keeps --watch from hammering a site.
const minWatchInterval = 100 * time.Millisecond

// Run prints the site's status, once or, with --watch, until Ctrl-C.
func (c *StatCmd) Run(app *App) error {
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	if c.Federation {
		if c.Watch {
			return &ExitError{Code: exitUsage, Err: fmt.Errorf("--federation shows one view; leave out --watch")}
		}
		return c.federation(app, cl)
	}
	if !c.Watch {
		st, err := c.fetch(app.Ctx, cl)
		if err != nil {
			return err
		}
		return c.print(app.Stdout, st)
	}
	if c.Interval < minWatchInterval {
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("--interval must be at least %s, got %s", minWatchInterval, c.Interval)}
	}
	return c.watch(app.Ctx, app.Stdout, app.Stderr, cl, isTerminal(app.Stdout))
}

func (c *StatCmd) fetch(ctx context.Context, cl *client.Client) (client.Status, error) {
	ctx, cancel := withTimeout(ctx, c.Timeout)
	defer cancel()
	return cl.Status(ctx)
}

// Terminal control: cursor home, clear to end of line, clear to end of screen.
const (
	ansiHome      = "\x1b[H"
	ansiClearLine = "\x1b[K"
	ansiClearDown = "\x1b[J"
)

// watch prints the status every interval until ctx ends. On a terminal
// each refresh redraws the screen in place (no flicker, no scrollback
// flood); otherwise each refresh is a new block, separated by a blank
// line, for logs and pipes. A failed refresh is reported once (in the
// frame, or on errOut for a --json stream) and retried.
func (c *StatCmd) watch(ctx context.Context, out, errOut io.Writer, cl *client.Client, tty bool) error {
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	if tty {
		io.WriteString(out, ansiHome+"\x1b[2J")
	}
	for first := true; ctx.Err() == nil; first = false {
		st, err := c.fetch(ctx, cl)
		if ctx.Err() != nil {
			break
		}
		if err != nil && !tty && c.JSON { // the JSON stream has no room for it; a table frame says it
			fmt.Fprintf(errOut, "skyfed: stat: %v (retrying every %s)\n", err, c.Interval)
		}
		if err := writeFrame(out, c.frame(st, err, tty), tty, first); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	if tty {
		io.WriteString(out, "\n")
	}
	return nil
}

// frame renders one refresh: a header line, then the status or the error
// that kept it from being fetched.
func (c *StatCmd) frame(st client.Status, fetchErr error, tty bool) []byte {
	var b bytes.Buffer
	switch {
	case tty:
		fmt.Fprintf(&b, "%s  %s  every %s  (Ctrl-C to stop)\n\n", time.Now().Format("15:04:05"), c.Conn.Site, c.Interval)
	case !c.JSON: // --json to a pipe stays a stream of JSON documents
		fmt.Fprintf(&b, "%s  %s\n\n", time.Now().Format("15:04:05"), c.Conn.Site)
	}
	if fetchErr == nil {
		fetchErr = c.print(&b, st)
	}
	if fetchErr != nil && (tty || !c.JSON) {
		fmt.Fprintf(&b, "cannot refresh: %v (retrying every %s)\n", fetchErr, c.Interval)
	}
	return b.Bytes()
}

// writeFrame writes one refresh: in place on a terminal, as a new block
// otherwise.
func writeFrame(w io.Writer, frame []byte, tty, first bool) error {
	var b bytes.Buffer
	switch {
	case tty:
		b.WriteString(ansiHome)
		b.Write(bytes.ReplaceAll(bytes.TrimSuffix(frame, []byte("\n")), []byte("\n"), []byte(ansiClearLine+"\n")))
		b.WriteString(ansiClearLine + "\n" + ansiClearDown)
	case first:
		b.Write(frame)
	default:
		b.WriteString("\n")
		b.Write(frame)
	}
	_, err := b.WriteTo(w)
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// print writes the status as --json or as tables.
func (c *StatCmd) print(w io.Writer, st client.Status) error {
	if c.JSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, st.Raw, "", "  "); err != nil {
			return fmt.Errorf("status: %w", err)
		}
		buf.WriteByte('\n')
		_, err := buf.WriteTo(w)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "site\t%s\ndomain\t%s\n", st.Site, st.Domain)
	fmt.Fprintf(tw, "objects\t%d\nversions\t%d\nchunks\t%d\n", st.Objects, st.Versions, st.Chunks)
	fmt.Fprintf(tw, "stored bytes\t%s\nraw bytes\t%s\n", humanBytes(st.StoredBytes), humanBytes(st.RawBytes))
	fmt.Fprintf(tw, "incomplete\t%s\n", incompleteText(st.IncompleteVersions, st.IncompleteBytes))
	fmt.Fprintf(tw, "unrepairable\t%d chunks (%d repaired since start)\n", st.UnrepairableChunks, st.RepairedChunks)
	disk := fmt.Sprintf("%s free, reserve %s", humanBytes(int64(st.DiskFreeBytes)), humanBytes(int64(st.DiskReserveBytes)))
	if st.DiskFull {
		disk = "FULL: " + disk + "; puts refused, replication into this site paused (free space, skyfed tools gc)"
	}
	fmt.Fprintf(tw, "disk\t%s\n", disk)
	if st.Store.Kind == "s3" {
		line := fmt.Sprintf("%s: %d requests, %d errors, %.1f ms mean", st.Store.Where, st.Store.Requests, st.Store.Errors, st.Store.MeanLatencyMs)
		if st.Store.LastError != "" {
			line += "; last error: " + st.Store.LastError
		}
		fmt.Fprintf(tw, "bucket\t%s\n", line)
	}
	if st.NATSTLS != "" {
		fmt.Fprintf(tw, "links\t%s\n", linksSecurity(st))
	}
	now := time.Now()
	if !st.CountersSince.IsZero() {
		fmt.Fprintf(tw, "counting since\t%s (%s ago; counts and rates restart with the site)\n",
			st.CountersSince.UTC().Format(time.RFC3339), durationText(now.Sub(st.CountersSince)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printUnrepairable(w, st)
	if len(st.Links) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return printLinks(w, st.Links, now)
}

// printUnrepairable lists the chunks lost at the site that no site could
// send, with the objects that use them: what an operator restores.
func printUnrepairable(w io.Writer, st client.Status) {
	for _, u := range st.Unrepairable {
		names := "objects not known yet (skyfed tools scrub names them)"
		if len(u.Names) > 0 {
			names = strings.Join(u.Names, " ")
		}
		fmt.Fprintf(w, "  UNREPAIRABLE chunk %s since %s: %s\n", u.Chunk, u.Since.UTC().Format(time.RFC3339), names)
	}
	if n := st.UnrepairableChunks - int64(len(st.Unrepairable)); n > 0 {
		fmt.Fprintf(w, "  … and %d more (GET /api/status lists the oldest 100)\n", n)
	}
}

// incompleteText says how many versions known at the site still lack
// chunks there: "0 versions", "3 versions (38.2 MiB) still missing chunks".
func incompleteText(versions, missing int64) string {
	noun := "versions"
	if versions == 1 {
		noun = "version"
	}
	if versions == 0 {
		return "0 versions"
	}
	return fmt.Sprintf("%d %s (%s) still missing chunks", versions, noun, humanBytes(missing))
}

// linksSecurity says how a site's links are secured, in one line.
func linksSecurity(st client.Status) string {
	var listener string
	switch st.NATSTLS {
	case "tls":
		listener = "listener requires TLS"
	case "external":
		listener = "external NATS server"
	default:
		listener = "listener in plain text (loopback only; nats_tls)"
	}
	peers := "peers pinned to their trusted keys"
	if st.NATSTLSPeer == "ca" {
		peers = "peers verified by nats_tls_ca"
	}
	https := "HTTP API in plain HTTP"
	if st.HTTPS {
		https = "HTTP API over HTTPS"
	}
	return listener + "; " + peers + "; " + https
}

// humanBytes renders n in IEC units: 0 B, 512 B, 1.5 KiB, 3.2 GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
