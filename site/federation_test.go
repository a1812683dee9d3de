package site

import (
	"net/http"
	"slices"
	"testing"

	"github.com/skyfed/skyfed/site/client"
)

// startBeaconSite is startPeerSite with beacons every second and sites
// unreachable after three silent seconds; tls is its links' NATS TLS.
func startBeaconSite(t *testing.T, id string, tls ...string) *testSite {
	t.Helper()
	mode := TLSOn
	if len(tls) > 0 {
		mode = tls[0]
	}
	return startBeaconSiteAt(t, id, mode, "28.76,-17.88")
}

// startBeaconSiteAt is startBeaconSite with a TLS mode and a location
// ("" for none).
func startBeaconSiteAt(t *testing.T, id, tlsMode, location string) *testSite {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, Config{ID: id, Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: freeAddr(t), NATSTLS: tlsMode, ChunkSize: 64 << 10,
		BeaconInterval: "1s", SiteSilence: "3s", Location: location}); err != nil {
		t.Fatal(err)
	}
	return runSite(t, dir)
}

// Three sites in a line, a–b–c: a learns c's status and the b–c link
// through b's relaying (no map, no collector); when c stops, a shows it
// unreachable since its last beacon, b's link to it down, and its
// skyfed_federation_site_up goes to 0.
func TestFederationView(t *testing.T) {
	a, b, c := startBeaconSite(t, "a"), startBeaconSite(t, "b"), startBeaconSite(t, "c")
	trustEachOther(t, a, b)
	trustEachOther(t, b, c)
	trustEachOther(t, a, c) // a shows c's beacons only if it trusts c's key
	linkSites(t, a, b, "", "")
	linkSites(t, b, c, "", "")
	view := func(s *testSite) client.FederationView {
		t.Helper()
		resp, body := s.do(t, "GET", "/api/federation", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/federation: %d %s", resp.StatusCode, body)
		}
		return decode[client.FederationView](t, body)
	}
	siteOf := func(f client.FederationView, id string) *client.FederationSite {
		i := slices.IndexFunc(f.Sites, func(s client.FederationSite) bool { return s.Site == id })
		if i < 0 {
			return nil
		}
		return &f.Sites[i]
	}
	linkOf := func(f client.FederationView, from, to string) *client.FederationLink {
		i := slices.IndexFunc(f.Links, func(l client.FederationLink) bool { return l.From == from && l.To == to })
		if i < 0 {
			return nil
		}
		return &f.Links[i]
	}
	waitFor(t, "a to see all three sites up and the b→c link up", func() bool {
		f := view(a)
		bc := linkOf(f, "b", "c")
		for _, id := range []string{"a", "b", "c"} {
			if s := siteOf(f, id); s == nil || s.State != "up" || s.Versions == nil {
				return false
			}
		}
		return bc != nil && bc.State == "up"
	})
	f := view(a)
	if s := siteOf(f, "c"); s.Location != "28.76,-17.88" || s.Version == "" || !siteOf(f, "a").Self {
		t.Errorf("c as a sees it: %+v; a: %+v", *s, *siteOf(f, "a"))
	}
	if ab := linkOf(f, "a", "b"); ab == nil || ab.ClockOffsetSeconds == nil || *ab.ClockOffsetSeconds != 0 {
		t.Errorf("a's link to b as a's beacon tells it: %+v; want b's clock offset measured (0.0 here)", ab)
	}
	if metric(t, a, "skyfed_federation_site_up", "site", "c") != 1 {
		t.Error("skyfed_federation_site_up{site=c} is not 1 while c is up")
	}
	lastSeen := siteOf(f, "c").LastSeen
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see c unreachable and b's link to c down", func() bool {
		f := view(a)
		s, bc := siteOf(f, "c"), linkOf(f, "b", "c")
		return s != nil && s.State == "unreachable" && !s.LastSeen.Before(lastSeen) && bc != nil && bc.State != "up"
	})
	if metric(t, a, "skyfed_federation_site_up", "site", "c") != 0 {
		t.Error("skyfed_federation_site_up{site=c} is not 0 once c is unreachable")
	}
}
