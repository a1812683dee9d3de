package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/site/client"
)

// decodeLinks encodes links as /api/status does (forward.LinkStatus)
// and decodes them as the client does.
func decodeLinks(t *testing.T, links any) []map[string]any {
	t.Helper()
	b, err := json.Marshal(links)
	if err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // as the client decodes status
	if err := dec.Decode(&decoded); err != nil {
		t.Fatal(err)
	}
	return decoded
}

// TestStatShowsWhyALinkIsDown prints links as /api/status encodes them
// (forward.LinkStatus): a refused link shows its reason in the table and,
// below it, since when (down since) and its last error, without the
// rates it had while up; an up link its measured clock offset.
func TestStatShowsWhyALinkIsDown(t *testing.T) {
	offset := -600.0042
	since := time.Date(2026, 11, 21, 3, 4, 5, 678_000_000, time.UTC)
	now := since.Add(5*time.Minute + 30*time.Second)
	links := []forward.LinkStatus{
		{Peer: "beta", Direction: forward.DirOut, State: forward.StateRefused, Reason: forward.ReasonRefused,
			Since: since, LastError: "dial nats://127.0.0.1:7502: nats: authorization violation", Backlog: 1,
			SendRate: 2_500_000, ReceiveRate: 800_000},
		{Peer: "delta", Direction: forward.DirOut, State: forward.StateDown, Reason: forward.ReasonDial, Since: since.Add(-50 * time.Hour)},
		{Peer: "gamma", Direction: forward.DirIn, State: forward.StateUp, Since: since, ClockOffsetSeconds: &offset},
	}
	var out bytes.Buffer
	if err := printLinks(&out, decodeLinks(t, links), now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("want a header, 3 rows and 2 notes:\n%s", out.String())
	}
	header := strings.Fields(lines[0])
	for _, col := range []string{"REASON", "CLOCK_OFFSET_SECONDS", "SINCE", "LAG", "ETA"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %q", col, lines[0])
		}
	}
	if header[3] != "REASON" || strings.Contains(lines[0], "LAST_ERROR") {
		t.Errorf("header %v: want reason right after state, the last error below the table", header)
	}
	if !strings.Contains(lines[1], "refused by peer") || !strings.Contains(lines[1], "2026-11-21T03:04:05Z") ||
		strings.Contains(lines[1], "MB/s") || strings.Contains(lines[1], "kB/s") {
		t.Errorf("refused row %q: want its reason and since, and no stale rates", lines[1])
	}
	if !strings.Contains(lines[3], "-600.0") || strings.Contains(lines[3], "refused") {
		t.Errorf("up row: %q, want offset -600.0 and no reason", lines[3])
	}
	for i, want := range []string{
		"  beta out: refused since 2026-11-21T03:04:05Z (5m30s ago): refused by peer; last error: dial nats://127.0.0.1:7502: nats: authorization violation",
		"  delta out: down since 2026-11-19T01:04:05Z (2d2h ago): dial error",
	} {
		if lines[4+i] != want {
			t.Errorf("note %d:\n%q\nwant\n%q", i, lines[4+i], want)
		}
	}
	if got := offsetText(nil); got != "-" {
		t.Errorf("unmeasured offset = %q, want -", got)
	}
}

// TestStatLagRatesAndETA: lag is a duration, links that only carry pings
// say idle, and each link with a backlog says how long it needs to send
// it at its recent rate (from backlog_bytes when the status has them,
// otherwise estimated from the mean size of the entries sent, and said so).
func TestStatLagRatesAndETA(t *testing.T) {
	links := []map[string]any{
		{"peer": "beta", "direction": "out", "state": "up", "backlog": 40, "lag_seconds": 16.218038465,
			"send_rate": 2_000_000, "receive_rate": 4, "sent_chunks": 90, "sent_manifests": 10, "sent_wire_bytes": 500_000_000},
		{"peer": "gamma", "direction": "out", "state": "up", "backlog": 3, "backlog_bytes": 600_000_000, "lag_seconds": 4000,
			"send_rate": 1_000_000, "receive_rate": 1500},
		{"peer": "delta", "direction": "in", "state": "up", "backlog": 0, "lag_seconds": 0, "send_rate": 4, "receive_rate": 12},
		{"peer": "eps", "direction": "out", "state": "up", "backlog": 5, "lag_seconds": 0.25, "send_rate": 3, "receive_rate": 0},
	}
	var out bytes.Buffer
	if err := printLinks(&out, decodeLinks(t, links), time.Now()); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^beta +out +up +40 +16s +~1m40s +2\.0 MB/s +idle `,
		`(?m)^gamma +out +up +3 \(572\.2 MiB\) +1h7m +10m0s +1\.0 MB/s +1\.5 kB/s `,
		`(?m)^delta +in +up +0 +0s +- +idle +idle `,
		`(?m)^eps +out +up +5 +0\.2s +stalled +3 B/s +idle `,
		`(?m)^  ETA ~: backlog entries × mean bytes per entry sent so far ÷ send rate \(the site's status has no backlog bytes\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("stat links lack %s:\n%s", re, text)
		}
	}
}

// TestStatCountersSince: the summary says since when the site counts,
// as /api/status gives it.
func TestStatCountersSince(t *testing.T) {
	var out bytes.Buffer
	st := client.Status{Site: "alpha", CountersSince: time.Now().Add(-3*time.Hour - 4*time.Minute)}
	if err := (&StatCmd{}).print(&out, st); err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^counting since +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(3h4m ago; counts and rates restart with the site\)$`)
	if !want.MatchString(out.String()) {
		t.Errorf("stat lacks %s:\n%s", want, out.String())
	}
}

// TestStatShowsIncompleteVersions: the site summary says how many
// versions known there still lack chunks, and how many bytes.
func TestStatShowsIncompleteVersions(t *testing.T) {
	cases := []struct {
		versions, bytes int64
		want            string
	}{
		{0, 0, "incomplete    0 versions\n"},
		{1, 512, "incomplete    1 version (512 B) still missing chunks\n"},
		{3, 40055603, "incomplete    3 versions (38.2 MiB) still missing chunks\n"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		st := client.Status{Site: "alpha", IncompleteVersions: tc.versions, IncompleteBytes: tc.bytes}
		if err := (&StatCmd{}).print(&out, st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("stat output lacks %q:\n%s", tc.want, out.String())
		}
	}
}

// TestStatShowsTheBucket: a bucket site's stat says which bucket and how
// its requests go.
func TestStatShowsTheBucket(t *testing.T) {
	var st client.Status
	st.Site = "lapalma"
	st.Store.Kind, st.Store.Where, st.Store.Requests, st.Store.Errors, st.Store.MeanLatencyMs = "s3", "s3://archive/lapalma?endpoint=http://rgw:7480", 1200, 2, 12.34
	var out bytes.Buffer
	if err := (&StatCmd{}).print(&out, st); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^bucket +s3://archive/lapalma\?endpoint=http://rgw:7480: 1200 requests, 2 errors, 12\.3 ms mean$`).MatchString(out.String()) {
		t.Errorf("stat lacks the bucket line:\n%s", out.String())
	}
}
