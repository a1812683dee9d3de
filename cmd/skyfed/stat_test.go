package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/site/client"
)

// TestStatShowsWhyALinkIsDown prints links as /api/status encodes them
// (forward.LinkStatus): a refused link shows its reason, since and last
// error; an up link its measured clock offset; one never measured "-".
func TestStatShowsWhyALinkIsDown(t *testing.T) {
	offset := -600.0042
	since := time.Date(2026, 11, 21, 3, 4, 5, 678_000_000, time.UTC)
	links := []forward.LinkStatus{
		{Peer: "beta", Direction: forward.DirOut, State: forward.StateRefused, Reason: forward.ReasonRefused,
			Since: since, LastError: "dial nats://127.0.0.1:7502: nats: authorization violation", Backlog: 1},
		{Peer: "gamma", Direction: forward.DirIn, State: forward.StateUp, Since: since, ClockOffsetSeconds: &offset},
	}
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
	var out bytes.Buffer
	if err := printLinks(&out, decoded); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", out.String())
	}
	header := strings.Fields(lines[0])
	for _, col := range []string{"REASON", "CLOCK_OFFSET_SECONDS", "SINCE", "LAST_ERROR"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %q", col, lines[0])
		}
	}
	if header[3] != "REASON" {
		t.Errorf("reason is column %v, want right after state", header)
	}
	for _, want := range []string{"refused by peer", "2026-11-21T03:04:05Z", "nats: authorization violation"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("refused row lacks %q: %q", want, lines[1])
		}
	}
	if !strings.Contains(lines[2], "-600.0") || strings.Contains(lines[2], "refused") {
		t.Errorf("up row: %q, want offset -600.0 and no reason", lines[2])
	}
	if got := offsetText(nil); got != "-" {
		t.Errorf("unmeasured offset = %q, want -", got)
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
