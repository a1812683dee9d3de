package site

import (
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
)

// TestFederationPageInChromium: six sites linked in a ring with two
// chords; chile also dials "lapalma" at tenerife's NATS server, which
// does not let chile talk to a lapalma there, so that link is refused
// ("refused by peer"); then
// australia stops. The page at each of the five sites still running,
// loaded in headless Chromium, shows all six sites, australia as
// unreachable with when it was last heard, and the refused link with
// its reason. Screenshots go to $SKYFED_ARTIFACTS.
func TestFederationPageInChromium(t *testing.T) {
	t.Parallel()
	chromium := needTool(t, "chromium", "chromium")
	names := []string{"lapalma", "tenerife", "chile", "hawaii", "namibia", "australia"}
	// Where the sites are (namibia has no location set): lapalma and
	// tenerife are 150 km apart, closer than two circles on the map.
	locations := map[string]string{"lapalma": "28.76,-17.88", "tenerife": "28.30,-16.51", "chile": "-24.63,-70.40",
		"hawaii": "19.82,-155.47", "australia": "-31.27,149.06"}
	var sites []*testSite
	for _, n := range names {
		// Plain NATS on loopback: with TLS, chile's stray dial would fail
		// on tenerife's certificate (down, "tls") before any handshake.
		sites = append(sites, startBeaconSiteAt(t, n, TLSOff, locations[n]))
	}
	trustAll(t, sites...)
	for i := range sites {
		linkSites(t, sites[i], sites[(i+1)%len(sites)], "", "")
	}
	linkSites(t, sites[0], sites[3], "", "")
	linkSites(t, sites[1], sites[4], "", "")
	// Peer "lapalma" at tenerife's NATS server: refused there.
	if err := LinkTo(sites[2].dir, Link{Peer: "lapalma", URL: "nats://" + sites[1].Config().NATS}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, s := range sites {
				for _, l := range s.Links() {
					t.Logf("%s %s %s: %s %q %s", s.Config().ID, l.Direction, l.Peer, l.State, l.Reason, l.LastError)
				}
			}
		}
	}()
	waitFor(t, "links up, chile's link to lapalma refused", func() bool {
		dialed := 0
		for _, s := range sites {
			for _, l := range s.Links() {
				if l.Direction != forward.DirOut {
					continue // tenerife's side of chile's stray dial is not a link of the federation
				}
				bad := s == sites[2] && l.Peer == "lapalma"
				if bad && (l.State != forward.StateRefused || l.Reason != forward.ReasonRefused) || !bad && l.State != forward.StateUp {
					return false
				}
				dialed++
			}
		}
		return dialed == 9
	})
	if t.Failed() {
		return
	}
	if err := sites[5].Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "australia unreachable everywhere", func() bool {
		for _, s := range sites[:5] {
			f := s.federation(time.Now())
			ok := false
			for _, fs := range f.Sites {
				ok = ok || fs.Site == "australia" && fs.State == "unreachable"
			}
			if !ok || len(f.Sites) != 6 {
				return false
			}
		}
		return true
	})
	artifacts := artifactDir(t)
	for _, s := range sites[:5] {
		id := s.Config().ID
		t.Run(id, func(t *testing.T) {
			shot := filepath.Join(artifacts, "federation-"+id+".png")
			dom := string(runChromium(t, chromium, "--virtual-time-budget=3000", "--window-size=1600,1900", "--hide-scrollbars",
				"--dump-dom", "--screenshot="+shot, s.base+"/"))
			states := map[string]string{}
			at := map[string][2]float64{}
			unplaced := map[string]bool{}
			for _, e := range elements(dom, "data-site") {
				if e.tag == "g" && strings.Contains(e.attrs["class"], "fed") {
					n := e.attrs["data-site"]
					states[n] = e.attrs["data-state"]
					x, _ := strconv.ParseFloat(e.attrs["data-x"], 64)
					y, _ := strconv.ParseFloat(e.attrs["data-y"], 64)
					at[n] = [2]float64{x, y}
					unplaced[n] = strings.Contains(e.attrs["class"], "nolocation")
				}
			}
			checkMapLayout(t, dom, at, unplaced)
			for _, n := range names {
				want := "up"
				if n == "australia" {
					want = "unreachable"
				}
				if states[n] != want {
					t.Errorf("site %s is %q on %s's page, want %q (all: %v)", n, states[n], id, want, states)
				}
			}
			if !strings.Contains(dom, "unreachable, last seen") {
				t.Errorf("%s's page does not say when australia was last seen", id)
			}
			refused := false
			for _, e := range elements(dom, "data-from") {
				refused = refused || e.tag == "line" && e.attrs["data-from"] == "chile" && e.attrs["data-to"] == "lapalma" &&
					e.attrs["data-state"] == forward.StateRefused && e.attrs["data-reason"] == forward.ReasonRefused
			}
			if !refused {
				t.Errorf("%s's page does not show chile's link to lapalma refused (%s)", id, forward.ReasonRefused)
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

// checkMapLayout: the page draws the world outline and every site where
// it is (west to east hawaii, chile, lapalma, australia; chile south of
// lapalma), lapalma and tenerife apart though 150 km apart, and namibia,
// which has no location, in the row for such sites.
func checkMapLayout(t *testing.T, dom string, at map[string][2]float64, unplaced map[string]bool) {
	t.Helper()
	if !regexp.MustCompile(`<svg id="fed"[^>]*data-layout="map"`).MatchString(dom) {
		t.Errorf("the federation is not drawn on the map")
	}
	land := regexp.MustCompile(`<path class="land" d="([^"]*)"`).FindStringSubmatch(dom)
	if land == nil || strings.Count(land[1], "L") < 1000 {
		t.Errorf("the world outline is missing or nearly empty")
	}
	x := func(n string) float64 { return at[n][0] }
	if !(x("hawaii") < x("chile") && x("chile") < x("lapalma") && x("lapalma") < x("australia")) {
		t.Errorf("sites not west to east hawaii, chile, lapalma, australia: %v", at)
	}
	if at["chile"][1] <= at["lapalma"][1] {
		t.Errorf("chile drawn north of lapalma: %v", at)
	}
	if d := math.Hypot(x("lapalma")-x("tenerife"), at["lapalma"][1]-at["tenerife"][1]); d < 32 {
		t.Errorf("lapalma and tenerife drawn %.0f apart, overlapping", d)
	}
	for n, u := range unplaced {
		if u != (n == "namibia") {
			t.Errorf("site %s in the no-location row: %v", n, u)
		}
	}
}
