package site

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/skyfed/skyfed/forward"
)

// TestReadThroughWhileBulkBacklog: a name put at A after a bulk backlog
// on a slowed A–B link is read at C (via lookup and fetch over the
// priority lane) while the bulk is still queued.
func TestReadThroughWhileBulkBacklog(t *testing.T) {
	readThroughBehindBacklog(t, startPeerSite(t, "alpha"), startPeerSite(t, "beta"), startPeerSite(t, "gamma"))
}

// readThroughBehindBacklog links a–b (slowed to 1 MB/s) and b–c, puts a
// 12 MiB bulk then a small name at a, and reads the name at c while at
// least half the bulk is still queued at a; it returns the name's bytes.
func readThroughBehindBacklog(t *testing.T, a, b, c *testSite) []byte {
	t.Helper()
	trustAll(t, a, b, c)
	linkSites(t, a, b, "1MB/s", "")
	linkSites(t, b, c, "", "")
	waitDialedUp(t, 2, a, b)
	bulk := seeded(9, 12<<20)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/bulk.fits", bytes.NewReader(bulk)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	small := seeded(10, 300<<10)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/late.fits", bytes.NewReader(small)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	resp, body := c.do(t, "GET", "/o/gloria.eu/late.fits", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, small) {
		t.Fatalf("GET at %s: %d, %d bytes", c.Config().ID, resp.StatusCode, len(body))
	}
	var backlog uint64
	for _, l := range a.Links() {
		backlog += l.Backlog
	}
	// Half the bulk still queued proves the read overtook it; a loaded
	// machine (or the adaptive window's startup) may have sent the rest.
	if backlog < uint64(len(bulk)/2/(64<<10)) {
		t.Fatalf("%s's link backlog is %d chunks: the bulk was no longer queued, so this proves nothing", a.Config().ID, backlog)
	}
	t.Logf("read at %s while %s's backlog held %d chunks", c.Config().ID, a.Config().ID, backlog)
	return small
}

// waitDialedUp waits until the sites' links they dial, n in all, are up.
func waitDialedUp(t *testing.T, n int, sites ...*testSite) {
	t.Helper()
	waitFor(t, "links up", func() bool {
		up := 0
		for _, s := range sites {
			for _, l := range s.Links() {
				if l.State == forward.StateUp && l.Direction == forward.DirOut {
					up++
				}
			}
		}
		return up == n
	})
}
