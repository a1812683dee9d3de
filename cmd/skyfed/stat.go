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
	JSON     bool          `name:"json" help:"Print the site's status JSON as received (indented)."`
	Watch    bool          `short:"w" help:"Refresh until Ctrl-C: on a terminal the table is redrawn in place, otherwise a new one is printed every --interval."`
	Interval time.Duration `help:"Time between refreshes with --watch." default:"2s"`
	Timeout  time.Duration `help:"Give up on one request after this long (0: no limit)." default:"30s"`
	Conn     siteFlags     `embed:""`
}

// linkColumns are the link fields stat shows, in order, when present.
// The status fields that say why a link is not up come right after its
// state, the time of the change and the error text (long) last.
var linkColumns = []string{"peer", "direction", "state", "reason", "mode", "backlog", "lag_seconds", "send_rate", "receive_rate",
	"sent_chunks", "received_chunks", "duplicates", "rejected", "tls", "clock_offset_seconds", "in_sync", "reconciled_at", "since", "last_error"}

// rateColumns hold bytes per second and are shown in SI units, as --max-rate takes them.
var rateColumns = map[string]bool{"send_rate": true, "receive_rate": true}

// minWatchInterval keeps --watch from hammering a site.
const minWatchInterval = 100 * time.Millisecond

// Run prints the site's status, once or, with --watch, until Ctrl-C.
func (c *StatCmd) Run(app *App) error {
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
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
// line, for logs and pipes. A failed refresh is reported and retried.
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
		if err != nil && !tty {
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
		fmt.Fprintf(&b, "cannot refresh: %v (retrying)\n", fetchErr)
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
	if st.NATSTLS != "" {
		fmt.Fprintf(tw, "links\t%s\n", linksSecurity(st))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printUnrepairable(w, st)
	if len(st.Links) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return printLinks(w, st.Links)
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

// printLinks prints one row per link with the known columns any link has.
func printLinks(w io.Writer, links []map[string]any) error {
	var cols []string
	for _, k := range linkColumns {
		for _, l := range links {
			if _, ok := l[k]; ok {
				cols = append(cols, k)
				break
			}
		}
	}
	if len(cols) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
	for _, l := range links {
		cells := make([]string, len(cols))
		for i, k := range cols {
			switch {
			case rateColumns[k]:
				cells[i] = rateText(l[k])
			case k == "since" || k == "reconciled_at":
				cells[i] = sinceText(l[k])
			case k == "clock_offset_seconds":
				cells[i] = offsetText(l[k])
			case k == "tls":
				cells[i] = tlsText(l[k], l["state"])
			default:
				cells[i] = cellText(l[k])
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func cellText(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return orDash(v)
	case json.Number:
		return v.String()
	case bool:
		return fmt.Sprint(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
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

// tlsText renders a link's TLS state as "TLS 1.3 pinned" (the cipher is
// in --json), "plain" when the link is up without TLS, "-" while down.
func tlsText(v, state any) string {
	m, ok := v.(map[string]any)
	if !ok {
		if state == "up" {
			return "plain"
		}
		return "-"
	}
	return fmt.Sprintf("%v %v", m["version"], m["verified"])
}

// sinceText renders an RFC 3339 time to the second in UTC, which is
// precise enough to line a state change up with logs; "-" if unset.
func sinceText(v any) string {
	s, ok := v.(string)
	if !ok {
		return cellText(v)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return orDash(s)
	}
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// offsetText renders a clock offset in seconds with its sign and one
// decimal (a measurement, not more precise than that); null is "-".
func offsetText(v any) string {
	f, text, ok := jsonFloat(v)
	if !ok {
		return text
	}
	return fmt.Sprintf("%+.1f", f)
}

// jsonFloat reads a JSON number cell; when it is none, it returns the
// cell's plain text instead.
func jsonFloat(v any) (float64, string, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, cellText(v), false
	}
	f, err := n.Float64()
	if err != nil {
		return 0, n.String(), false
	}
	return f, "", true
}

// rateText renders a bytes/s number in SI units: 0 B/s, 950 B/s, 1.2 MB/s.
func rateText(v any) string {
	f, text, ok := jsonFloat(v)
	if !ok {
		return text
	}
	units := []string{"B/s", "kB/s", "MB/s", "GB/s", "TB/s"}
	i := 0
	for ; f >= 1000 && i < len(units)-1; i++ {
		f /= 1000
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", f, units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
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
