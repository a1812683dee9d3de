package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// linkColumns are the link fields stat shows, in order, when present.
// The status fields that say why a link is not up come right after its
// state; "eta" is computed (etaText). A link's last error is too long for
// a column: linkNotes prints it below the table.
var linkColumns = []string{"peer", "direction", "state", "reason", "mode", "backlog", "lag_seconds", "eta", "send_rate", "receive_rate",
	"sent_chunks", "received_chunks", "duplicates", "rejected", "tls", "clock_offset_seconds", "in_sync", "reconciled_at", "since"}

// columnHeaders renames the columns whose cells are not the raw field.
var columnHeaders = map[string]string{"lag_seconds": "LAG", "eta": "ETA"}

// rateColumns hold bytes per second and are shown in SI units, as --max-rate takes them.
var rateColumns = map[string]bool{"send_rate": true, "receive_rate": true}

// idleRate is the rate below which a link only carries its pings and
// acknowledgements: stat says "idle" rather than "4 B/s".
const idleRate = 1000

// stateUp is the state of a link that carries traffic (forward.StateUp).
const stateUp = "up"

// etaEstimated marks an ETA computed from the backlog's entry count
// rather than its bytes; linkNotes explains it once under the table.
const etaEstimated = "~"

// printLinks prints one row per link with the known columns any link
// has, then a line for each link that is not up: since when, why, and
// its last error.
func printLinks(w io.Writer, links []map[string]any, now time.Time) error {
	var cols []string
	for _, k := range linkColumns {
		for _, l := range links {
			_, ok := l[k]
			if ok || (k == "eta" && l["backlog"] != nil) {
				cols = append(cols, k)
				break
			}
		}
	}
	if len(cols) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headers := make([]string, len(cols))
	for i, k := range cols {
		headers[i] = columnHeaders[k]
		if headers[i] == "" {
			headers[i] = strings.ToUpper(k)
		}
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	estimated := false
	for _, l := range links {
		cells := make([]string, len(cols))
		for i, k := range cols {
			cells[i] = linkCell(l, k)
			estimated = estimated || (k == "eta" && strings.HasPrefix(cells[i], etaEstimated))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if estimated {
		fmt.Fprintln(w, "  ETA ~: backlog entries × mean bytes per entry sent so far ÷ send rate (the site's status has no backlog bytes)")
	}
	for _, note := range linkNotes(links, now) {
		fmt.Fprintln(w, "  "+note)
	}
	return nil
}

// linkCell renders the column k of link l.
func linkCell(l map[string]any, k string) string {
	switch {
	case rateColumns[k]:
		return linkRateText(l, k)
	case k == "lag_seconds":
		return lagText(l[k])
	case k == "eta":
		return etaText(l)
	case k == "backlog":
		return backlogText(l)
	case k == "since" || k == "reconciled_at":
		return sinceText(l[k])
	case k == "clock_offset_seconds":
		return offsetText(l[k])
	case k == "tls":
		return tlsText(l[k], l["state"])
	}
	return cellText(l[k])
}

// backlogText renders a link's backlog as entries and, when the status
// counts them and there are any, their bytes: "3 (572.2 MiB)".
func backlogText(l map[string]any) string {
	text := cellText(l["backlog"])
	if b := jsonInt(l["backlog_bytes"]); b > 0 {
		text += " (" + humanBytes(b) + ")"
	}
	return text
}

// linkRateText renders a link's send or receive rate: "-" while the link
// is not up (the rate it had before is stale), "idle" below idleRate
// unless it is sending a backlog, else in SI units.
func linkRateText(l map[string]any, k string) string {
	if s, ok := l["state"].(string); ok && s != stateUp {
		return "-"
	}
	f, _, ok := jsonFloat(l[k])
	if ok && f < idleRate && (k != "send_rate" || jsonInt(l["backlog"]) == 0) {
		return "idle"
	}
	return rateText(l[k])
}

// lagText renders lag_seconds as a duration: 0s, 1.5s, 16s, 2m5s, 3h4m.
func lagText(v any) string {
	f, text, ok := jsonFloat(v)
	if !ok {
		return text
	}
	return durationText(time.Duration(f * float64(time.Second)))
}

// durationText renders d to the precision a person reads: tenths of a
// second under 10 s, seconds under an hour, minutes under a day, hours
// beyond.
func durationText(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	h := int64(d.Round(time.Hour) / time.Hour)
	return fmt.Sprintf("%dd%dh", h/24, h%24)
}

// etaText estimates how long the link needs to send its backlog at its
// recent send rate: from backlog_bytes when the status has it, otherwise
// from the backlog's entries times the mean bytes of the entries sent so
// far (marked etaEstimated). "-" with nothing to send, "stalled" when
// there is a backlog but nothing moves (the link down or not sending),
// "?" when nothing was sent yet to estimate an entry's size from.
func etaText(l map[string]any) string {
	backlog := jsonInt(l["backlog"])
	if backlog == 0 {
		return "-"
	}
	rate, _, _ := jsonFloat(l["send_rate"])
	if s, _ := l["state"].(string); s != stateUp || rate < idleRate {
		return "stalled"
	}
	if l["backlog_bytes"] != nil {
		return durationText(time.Duration(float64(jsonInt(l["backlog_bytes"])) / rate * float64(time.Second)))
	}
	entries := jsonInt(l["sent_chunks"]) + jsonInt(l["sent_manifests"])
	sent := jsonInt(l["sent_wire_bytes"])
	if entries == 0 || sent == 0 {
		return "?"
	}
	bytes := float64(backlog) * float64(sent) / float64(entries)
	return etaEstimated + durationText(time.Duration(bytes/rate*float64(time.Second)))
}

// linkNotes says, for each link that is not up, since when, why and its
// last error: "beta out: refused since 2026-11-21T03:04:05Z (5m0s ago):
// refused by peer; last error: …".
func linkNotes(links []map[string]any, now time.Time) []string {
	var notes []string
	for _, l := range links {
		state, _ := l["state"].(string)
		if state == stateUp || state == "" {
			continue
		}
		note := fmt.Sprintf("%s %s: %s", cellText(l["peer"]), cellText(l["direction"]), state)
		if t, ok := timeField(l["since"]); ok {
			note += fmt.Sprintf(" since %s (%s ago)", t.UTC().Format(time.RFC3339), durationText(now.Sub(t)))
		}
		if r, _ := l["reason"].(string); r != "" {
			note += ": " + r
		}
		if e, _ := l["last_error"].(string); e != "" {
			note += "; last error: " + e
		}
		notes = append(notes, note)
	}
	return notes
}

// timeField reads an RFC 3339 cell; false when absent, unparsable or zero.
func timeField(v any) (time.Time, bool) {
	s, _ := v.(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}, false
	}
	return t, true
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

// tlsText renders a link's TLS state as "TLS 1.3 pinned" (the cipher is
// in --json), "plain" when the link is up without TLS, "-" while down.
func tlsText(v, state any) string {
	m, ok := v.(map[string]any)
	if !ok {
		if state == stateUp {
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

// jsonInt reads a JSON number cell as a whole number; 0 when it is none.
func jsonInt(v any) int64 {
	f, _, _ := jsonFloat(v)
	return int64(f)
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
