package site

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// "Sites seen" keeps a peer for the life of the site: a burst of local
// puts (more than the 256 newest arrivals once scanned) does not push it
// out of /api/arrivals' sites.
func TestSitesSeenOutlastLocalPuts(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	const name = "gloria.eu/beta/img-0001.fits"
	putObject(t, b, name, []byte("from beta"))
	waitObject(t, a, name, []byte("from beta"))
	sites := func() []string {
		t.Helper()
		resp, body := a.do(t, "GET", "/api/arrivals?limit=5", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("arrivals: %d %s", resp.StatusCode, body)
		}
		var out []string
		for _, s := range decode[arrivalsView](t, body).Sites {
			out = append(out, s.Site)
		}
		return out
	}
	if got := sites(); !slices.Contains(got, "beta") {
		t.Fatalf("sites seen %v before the local puts, want beta", got)
	}
	for i := range 300 {
		putObject(t, a, fmt.Sprintf("gloria.eu/alpha/img-%04d.fits", i), []byte{byte(i)})
	}
	if got := sites(); !slices.Equal(got, []string{"alpha", "beta"}) {
		t.Errorf("sites seen %v after 300 local puts, want [alpha beta]", got)
	}
}

// An expired version is shown as expired, without a size.
func TestArrivalsExpiredVersion(t *testing.T) {
	a := startSite(t, "127.0.0.1")
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/short.fits?expires=1s", strings.NewReader("pixels")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("put: %d %s", resp.StatusCode, body)
	}
	time.Sleep(1100 * time.Millisecond)
	_, body := a.do(t, "GET", "/api/arrivals", nil)
	av := decode[arrivalsView](t, body)
	if len(av.Manifests) != 1 || !av.Manifests[0].Expired || av.Manifests[0].Size != 0 {
		t.Errorf("expired version shown as %+v", av.Manifests)
	}
}
