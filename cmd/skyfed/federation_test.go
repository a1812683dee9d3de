package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/site/client"
)

// stat --federation: one row per site (this one marked, the silent one
// unreachable with how long ago it was heard, "-" for what its beacon
// did not tell yet) and one per link, as the dialing site reports it.
func TestPrintFederation(t *testing.T) {
	now := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	n := func(v int64) *int64 { return &v }
	yes := true
	f := client.FederationView{Site: "alpha", Now: now,
		Sites: []client.FederationSite{
			{Site: "alpha", State: "up", LastSeen: now.Add(-4 * time.Second), Self: true, Versions: n(12), IncompleteVersions: n(0), IncompleteBytes: n(0), Location: "28.76,-17.88", Version: "v1"},
			{Site: "beta", State: "up", LastSeen: now.Add(-3 * time.Second), Versions: n(12), IncompleteVersions: n(2), IncompleteBytes: n(3 << 20), Version: "v1"},
			{Site: "gamma", State: "unreachable", LastSeen: now.Add(-134 * time.Second)},
		},
		Links: []client.FederationLink{
			{From: "alpha", To: "beta", Direction: "out", State: "up", Since: "2026-12-06T20:00:00Z", Backlog: 3, SendRate: 2_500_000, InSync: &yes},
			{From: "beta", To: "alpha", Direction: "in", State: "up"},
			{From: "beta", To: "gamma", Direction: "out", State: "down", Reason: "dial error", Since: "2026-12-06T20:58:00Z", Backlog: 26},
		}}
	var out bytes.Buffer
	if err := printFederation(&out, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"federation as alpha sees it, 3 sites, 3 links",
		"alpha (this site)  up           now        12        nothing",
		"beta               up           3s ago     12        2 versions, 3.0 MiB",
		"gamma              unreachable  2m14s ago  -         -",
		"alpha  beta   up     -           2026-12-06T20:00:00Z  3        0s   2.4 MiB/s  yes",
		"beta   gamma  down   dial error  2026-12-06T20:58:00Z  26       0s   idle       -",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stat --federation lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "beta   alpha") {
		t.Errorf("a link is listed from both ends:\n%s", out.String())
	}
}
