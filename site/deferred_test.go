package site

import (
	"bytes"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
)

// A version relayed to a site that does not trust its signer at that
// moment is not lost: the site leaves it unacknowledged (deferred), the
// relay offers it again, and once the site trusts the signer again it
// arrives. Before, the relay took the refusal as final, its cursor
// passed the version, and the site never got it (found by `skyfed
// bench chaos`: an untrust and trust again of one peer lost versions
// that peer wrote meanwhile and a third site relayed).
func TestVersionRelayedWhileUntrustedArrivesOnceTrusted(t *testing.T) {
	// gamma knows alpha's key, but no link joins them: alpha's versions
	// reach it through beta.
	a, b, c := startRelayLine(t, true)

	if err := Untrust(c.dir, "alpha"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gamma forgets alpha's key", func() bool { _, ok := c.trust.keyOf("alpha"); return !ok })

	data := seeded(31, 150<<10)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/while-untrusted.fits", bytes.NewReader(data)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/while-untrusted.fits", data)
	// Gamma has seen the manifest and turned it down (deferred now;
	// refused for good before) before it trusts alpha again.
	waitFor(t, "gamma turns alpha's manifest down", func() bool {
		l, _ := linkTo(c, "beta", forward.DirIn)
		_, body := c.do(t, "GET", "/metrics", nil)
		return l.Rejected > 0 || bytes.Contains(body, []byte(`kind="payload refused for now"`))
	})
	if l, _ := linkTo(b, "gamma", forward.DirOut); l.Backlog == 0 {
		t.Fatal("beta's backlog toward gamma is 0 although gamma does not hold alpha's version")
	}

	if err := Trust(c.dir, Peer{ID: "alpha", Key: a.key.PublicKey().String(), Domains: []string{"gloria.eu"}}); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 60*time.Second, "alpha's version at gamma", func() bool {
		l, _ := linkTo(b, "gamma", forward.DirOut)
		return l.Backlog == 0
	})
	waitObject(t, c, "gloria.eu/while-untrusted.fits", data)
}

// A key never trusted here is refused for good: its versions are acked
// as rejected, so the relays' backlogs drain instead of offering them
// every few seconds forever (a federation may mean some sites not to
// take some writers).
func TestVersionOfANeverTrustedSignerIsRefusedForGood(t *testing.T) {
	a, b, c := startRelayLine(t, false) // gamma never trusts alpha
	data := seeded(32, 20<<10)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/not-for-gamma.fits", bytes.NewReader(data)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/not-for-gamma.fits", data)
	waitFor(t, "gamma refuses alpha's manifest and beta's backlog drains", func() bool {
		lc, _ := linkTo(c, "beta", forward.DirIn)
		lb, _ := linkTo(b, "gamma", forward.DirOut)
		return lc.Rejected > 0 && lb.Backlog == 0
	})
}

// site untrust remembers the key it took out (for RevocationGrace), and
// site trust of the same key forgets it again.
func TestUntrustRemembersTheRevokedKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	k := newKey(t).PublicKey()
	if err := Trust(dir, Peer{ID: "beta", Key: k.String(), Domains: []string{"gloria.eu"}}); err != nil {
		t.Fatal(err)
	}
	if err := Untrust(dir, "beta"); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Revoked) != 1 || cfg.Revoked[0].Key != k.String() || time.Since(cfg.Revoked[0].At) > time.Minute {
		t.Fatalf("revoked after untrust: %+v", cfg.Revoked)
	}
	ts := newTrustStore(newKey(t).PublicKey(), cfg)
	if known, _ := ts.MayWrite(k, "gloria.eu"); known || !ts.Revoked(k) {
		t.Fatalf("trust store: known %v revoked %v, want false true", known, ts.Revoked(k))
	}
	if err := Trust(dir, Peer{ID: "beta", Key: k.String(), Domains: []string{"gloria.eu"}}); err != nil {
		t.Fatal(err)
	}
	if cfg, _ = LoadConfig(dir); len(cfg.Revoked) != 0 {
		t.Fatalf("revoked after trust again: %+v", cfg.Revoked)
	}
}

// startRelayLine starts alpha → beta → gamma, linked and up; gamma
// trusts alpha too if gammaTrustsAlpha.
func startRelayLine(t *testing.T, gammaTrustsAlpha bool) (a, b, c *testSite) {
	t.Helper()
	a, b, c = startPeerSite(t, "alpha"), startPeerSite(t, "beta"), startPeerSite(t, "gamma")
	trustEachOther(t, a, b)
	trustEachOther(t, b, c)
	if gammaTrustsAlpha {
		trustEachOther(t, a, c)
	}
	linkSites(t, a, b, "", "")
	linkSites(t, b, c, "", "")
	waitFor(t, "links up", func() bool {
		la, okA := linkTo(a, "beta", forward.DirOut)
		lb, okB := linkTo(b, "gamma", forward.DirOut)
		return okA && okB && la.State == forward.StateUp && lb.State == forward.StateUp
	})
	return a, b, c
}
