package site

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/site/client"
)

// GET /api/held counts the sites that hold a version with all its
// chunks; after the asking site restarts (its confirmations were in
// memory) a held query has the peer confirm again, so the count comes
// back without a new put.
func TestHeldCountsAgainAfterRestart(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	data := bytes.Repeat([]byte("held frame "), 20000)
	resp, body := a.do(t, "PUT", "/o/gloria.eu/held/frame-1.fits?wait_sites=2&timeout=30s", bytes.NewReader(data))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put: %d %s", resp.StatusCode, body)
	}
	put := decode[client.PutResult](t, body)
	if len(put.Manifest) != 64 {
		t.Fatalf("put answered manifest %q, want 64 hex digits", put.Manifest)
	}
	both := []string{"alpha", "beta"}
	held := func(ts *testSite, query string) client.Held {
		t.Helper()
		resp, body := ts.do(t, "GET", "/api/held/"+put.Manifest+query, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("held%s at %s: %d %s", query, ts.Config().ID, resp.StatusCode, body)
		}
		return decode[client.Held](t, body)
	}
	if h := held(a, "?wait_sites=2&timeout=10s"); h.Sites != 2 || !slices.Equal(h.HeldBy, both) || h.Name != "gloria.eu/held/frame-1.fits" || h.Version != put.Version {
		t.Errorf("held at alpha: %+v, want both sites", h)
	}
	if h := held(b, ""); h.Sites != 2 || !slices.Equal(h.HeldBy, both) {
		t.Errorf("held at beta (asks alpha): %+v, want both sites", h)
	}

	// Restart alpha: the confirmations are gone with its engine.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	a = runSite(t, a.dir)
	waitFor(t, "alpha's link up again", func() bool {
		for _, l := range a.node.Links() {
			if l.State == "up" {
				return true
			}
		}
		return false
	})
	id, err := chunk.ParseID(put.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.node.Confirmed(id); len(got) != 0 {
		t.Fatalf("confirmations right after the restart: %v", got)
	}
	if h := held(a, "?wait_sites=2&timeout=20s"); h.Sites != 2 || !slices.Equal(h.HeldBy, both) || h.Asked == 0 {
		t.Errorf("held at alpha after its restart: %+v, want both sites, by a held query", h)
	}
	if h := held(a, "?wait_sites=3&timeout=300ms"); h.Sites != 2 || h.Wanted != 3 {
		t.Errorf("held waiting for 3 of 2 sites: %+v, want the count of 2 after the timeout", h)
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/held/xyz", http.StatusBadRequest},
		{"/api/held/" + strings.Repeat("ab", 32) + "?timeout=1s", http.StatusNotFound},
		{"/api/held/" + put.Manifest + "?wait_sites=-1", http.StatusBadRequest},
	} {
		if resp, body := a.do(t, "GET", tc.path, nil); resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d %s, want %d", tc.path, resp.StatusCode, body, tc.want)
		}
	}
}
