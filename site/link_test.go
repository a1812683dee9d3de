package site

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
)

// startPeerSite creates and starts a site with its own embedded NATS
// server on a random loopback port.
func startPeerSite(t *testing.T, id string) *testSite {
	t.Helper()
	dir := t.TempDir()
	natsAddr := freeAddr(t)
	if _, err := Init(dir, Config{ID: id, Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: natsAddr, NATSTLS: TLSOn, ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	return runSite(t, dir)
}

func runSite(t *testing.T, dir string) *testSite {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HTTPListener: ln, ReloadEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			s.Stop()
		}
	})
	return &testSite{Site: s, dir: dir, base: "http://" + s.HTTPAddr()}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// trustEachOther makes a and b trust each other for gloria.eu.
func trustEachOther(t *testing.T, a, b *testSite) {
	t.Helper()
	for _, p := range [][2]*testSite{{a, b}, {b, a}} {
		if err := Trust(p[0].dir, Peer{ID: p[1].Config().ID, Key: p[1].key.PublicKey().String(), Domains: []string{"gloria.eu"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// trustAll makes every pair of sites trust each other and waits until
// every running site has loaded it.
func trustAll(t *testing.T, sites ...*testSite) {
	t.Helper()
	for i := range sites {
		for j := i + 1; j < len(sites); j++ {
			trustEachOther(t, sites[i], sites[j])
		}
	}
	waitFor(t, "trust loaded everywhere", func() bool {
		for _, s := range sites {
			for _, p := range sites {
				if _, ok := s.trust.keyOf(p.Config().ID); p != s && !ok {
					return false
				}
			}
		}
		return true
	})
}

func linkSites(t *testing.T, from, to *testSite, rate, mode string) {
	t.Helper()
	if err := LinkTo(from.dir, Link{Peer: to.Config().ID, URL: "nats://" + to.Config().NATS, MaxRate: rate, Mode: mode}); err != nil {
		t.Fatal(err)
	}
}

func waitObject(t *testing.T, s *testSite, name string, want []byte) {
	t.Helper()
	waitFor(t, name+" at "+s.Config().ID, func() bool {
		m, err := s.Objects().Latest(naming.MustParseName(name))
		if err != nil {
			return false
		}
		got, err := io.ReadAll(s.Objects().NewReader(m, 0, m.Size))
		return err == nil && bytes.Equal(got, want)
	})
}

// replicateBothWays links a to b (trusting each other), puts dataA at a
// as gloria.eu/a.fits and dataB at b as gloria.eu/b.fits, and waits until
// each site holds the other's.
func replicateBothWays(t *testing.T, a, b *testSite, dataA, dataB []byte) ([]byte, []byte) {
	t.Helper()
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	waitFor(t, "link up", func() bool {
		ls := a.node.Links()
		return len(ls) == 1 && ls[0].State == forward.StateUp
	})
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/a.fits", bytes.NewReader(dataA)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	if resp, body := b.do(t, "PUT", "/o/gloria.eu/b.fits", bytes.NewReader(dataB)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/a.fits", dataA)
	waitObject(t, a, "gloria.eu/b.fits", dataB)
	return dataA, dataB
}

func TestTwoSitesReplicateBothWays(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	replicateBothWays(t, a, b, seeded(7, 300<<10), seeded(8, 200<<10))
	for _, s := range []*testSite{a, b} {
		for _, l := range s.node.Links() {
			t.Logf("%s: %+v", s.Config().ID, l)
			if l.Duplicates != 0 {
				t.Errorf("%s link %s: %d duplicates in offer mode", s.Config().ID, l.Peer, l.Duplicates)
			}
		}
	}
	waitFor(t, "backlog drained", func() bool {
		for _, s := range []*testSite{a, b} {
			for _, l := range s.node.Links() {
				if l.Backlog != 0 {
					return false
				}
			}
		}
		return true
	})
	fmt.Println()
}
