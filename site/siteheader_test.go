package site

import (
	"net/http"
	"testing"

	"github.com/skyfed/skyfed/site/client"
)

// TestEveryAnswerNamesTheSite: the client tells a skyfed site from any
// other HTTP server by X-Skyfed-Site, so every answer carries it: errors,
// metrics and the dashboard included.
func TestEveryAnswerNamesTheSite(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	for _, path := range []string{
		"/", "/api/status", "/metrics", "/ls", "/no/such/route",
		"/o/gloria.eu/missing.fits", "/o/gloria.eu/a/../b", "/c/nothex", "/sha256/00",
	} {
		resp, body := ts.do(t, "GET", path, nil)
		if got := resp.Header.Get(client.SiteHeader); got != "alpha" {
			t.Errorf("GET %s: HTTP %d, %s = %q, want alpha (%.80s)", path, resp.StatusCode, client.SiteHeader, got, body)
		}
	}
	resp, _ := ts.do(t, "POST", "/o/gloria.eu/x", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get(client.SiteHeader) != "alpha" {
		t.Errorf("POST: HTTP %d, %s = %q", resp.StatusCode, client.SiteHeader, resp.Header.Get(client.SiteHeader))
	}
}
