package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/site/client"
	"github.com/skyfed/skyfed/testlab"
)

// TestDiffAgainstRealSites runs diff against two linked in-process sites
// (real NATS, Pebble and links): in sync, no such link, peer down.
func TestDiffAgainstRealSites(t *testing.T) {
	leakCheck(t)
	f, err := testlab.StartFederation(testlab.FedOptions{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := f.PutRandom(0, fmt.Sprintf("frames/%d.fits", i), 300<<10, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitConverged(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	url := "http://" + f.Site(0).HTTPAddr()
	inSync := regexp.MustCompile(`^in sync with s1 at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(3 manifests, \d+ chunks\)\n$`)
	err = testlab.PollUntil(20*time.Second, func() error {
		app, out, errb := testApp("")
		if code := run([]string{"diff", "s1", "--site", url}, app); code != exitOK || !inSync.MatchString(out.String()) {
			return fmt.Errorf("diff s1: exit %d, stdout %q, stderr %q", code, out, errb)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	app, out, _ := testApp("")
	if code := run([]string{"diff", "s1", "--json", "--site", url}, app); code != exitOK {
		t.Fatalf("diff --json: exit %d", code)
	}
	var d map[string]any
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatalf("diff --json: %v: %s", err, out)
	}
	for _, field := range []string{"peer", "reconciled_at", "in_sync", "peer_lacks", "local_lacks", "refused"} {
		if _, ok := d[field]; !ok {
			t.Errorf("diff --json lacks %q: %s", field, out)
		}
	}
	if lacks, _ := d["peer_lacks"].(map[string]any); lacks == nil || lacks["versions"] == nil || lacks["chunks"] == nil || lacks["bytes"] == nil {
		t.Errorf("peer_lacks = %v, want versions, chunks, bytes", d["peer_lacks"])
	}

	app, out, errb := testApp("")
	if code := run([]string{"diff", "nosuch", "--site", url}, app); code != exitError || !strings.Contains(errb.String(), "no link to nosuch") {
		t.Errorf("diff nosuch: exit %d, stdout %q, stderr %q; want 1 and \"no link to nosuch\"", code, out, errb)
	}

	if err := f.StopSite(1); err != nil {
		t.Fatal(err)
	}
	app, out, errb = testApp("")
	if code := run([]string{"diff", "s1", "--timeout", "1s", "--site", url}, app); code != exitTimeout {
		t.Errorf("diff with the peer down: exit %d, stdout %q, stderr %q; want 4", code, out, errb)
	}
}

// TestDiffLines checks the line shapes and exit codes of diff and
// resync against answers a site gives.
func TestDiffLines(t *testing.T) {
	leakCheck(t)
	at := time.Date(2026, 11, 29, 14, 2, 11, 0, time.UTC)
	differ := client.Diff{Peer: "gamma", ReconciledAt: at,
		PeerLacks: client.Lacks{Versions: 3, Chunks: 41, Bytes: 40055603}, Refused: client.Refused{Versions: 2},
		Names: []client.DiffName{{Lacks: "there", Name: "gloria.eu/a.fits", Version: "1764424931000.0000.alpha"},
			{Lacks: "here", Name: "gloria.eu/b.fits", Version: "1764424932000.0000.gamma"}}}
	synced := client.Diff{Peer: "beta", ReconciledAt: at, InSync: true, Manifests: 1204311, Chunks: 9873002}
	resyncs := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(client.SiteHeader, "alpha")
		switch {
		case r.URL.Path == "/api/diff/gamma":
			json.NewEncoder(w).Encode(differ)
		case r.URL.Path == "/api/diff/beta":
			json.NewEncoder(w).Encode(synced)
		case r.URL.Path == "/api/resync/gamma" && r.Method == http.MethodPost:
			resyncs++
			enc := json.NewEncoder(w)
			enc.Encode(client.ResyncProgress{Diff: differ})
			half := differ
			half.PeerLacks.Bytes /= 2
			enc.Encode(client.ResyncProgress{Diff: half})
			enc.Encode(client.ResyncProgress{Diff: synced, Done: true})
		default:
			writeErr(w, http.StatusNotFound, "no link to "+strings.TrimPrefix(r.URL.Path, "/api/diff/"), "")
		}
	}))
	defer srv.Close()
	cases := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"diff", "beta"}, exitOK, "in sync with beta at 2026-11-29T14:02:11Z (1204311 manifests, 9873002 chunks)\n"},
		{[]string{"diff", "gamma"}, exitDiffer, "gamma lacks 3 versions, 41 chunks (38.2 MiB); this site lacks 0 versions, 0 chunks (0 B); 2 refused\n"},
		{[]string{"diff", "gamma", "--names"}, exitDiffer, "gamma lacks 3 versions, 41 chunks (38.2 MiB); this site lacks 0 versions, 0 chunks (0 B); 2 refused\n" +
			"lacks-there gloria.eu/a.fits 1764424931000.0000.alpha\nlacks-here gloria.eu/b.fits 1764424932000.0000.gamma\n"},
		{[]string{"resync", "gamma"}, exitOK, "in sync with beta at 2026-11-29T14:02:11Z (1204311 manifests, 9873002 chunks)\n"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			app, out, errb := testApp("")
			if code := run(append(tc.args, "--site", srv.URL), app); code != tc.wantCode || out.String() != tc.wantOut {
				t.Errorf("exit %d, stdout %q (stderr %q); want %d, %q", code, out, errb, tc.wantCode, tc.wantOut)
			}
			if tc.args[0] == "resync" && !strings.Contains(errb.String(), "resync gamma: 44 items (19.1 MiB) left") {
				t.Errorf("resync progress on stderr: %q", errb)
			}
		})
	}
	if resyncs != 1 {
		t.Errorf("resync requests = %d, want 1", resyncs)
	}
}
