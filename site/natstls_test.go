package site

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
)

// nonLoopbackIP returns an IPv4 address of this host that is not
// loopback, or skips the test.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this host has no address beyond loopback")
	return ""
}

// startSiteListening starts a site whose NATS server listens on all
// addresses with the given nats_tls, and returns it and its port.
func startSiteListening(t *testing.T, id, mode string) (*testSite, string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	dir := t.TempDir()
	if _, err := Init(dir, Config{ID: id, Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: "0.0.0.0:" + port, NATSTLS: mode, ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	return runSite(t, dir), port
}

// With nats_tls auto (the default) a listener beyond loopback requires
// TLS and a dialer pins it; a peer whose listener is in plain text
// beyond loopback is refused by the dialer (no downgrade), reason tls.
func TestAutoTLSBeyondLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	a := startPeerSite(t, "alpha")
	for _, tc := range []struct {
		mode string
		up   bool
	}{{"", true}, {TLSOff, false}} {
		t.Run("nats_tls="+tc.mode, func(t *testing.T) {
			b, port := startSiteListening(t, "beta", tc.mode)
			cfg := b.Config()
			if want := tc.mode != TLSOff; cfg.NATSTLSOn() != want || cfg.NATSTLS == "" {
				t.Fatalf("nats_tls %q: listener TLS %v, want %v (config says %q)", tc.mode, cfg.NATSTLSOn(), want, cfg.NATSTLS)
			}
			trustKey(t, b, "alpha", a.Key(), "gloria.eu")
			trustKey(t, a, "beta", b.Key(), "gloria.eu")
			if err := LinkTo(a.dir, Link{Peer: "beta", URL: "nats://" + net.JoinHostPort(ip, port)}); err != nil {
				t.Fatal(err)
			}
			if tc.up {
				waitLinkUp(t, a, "beta", forward.DirOut)
				r := linkRow(a.Links(), "beta", forward.DirOut)
				if r.TLS == nil || r.TLS.Verified != forward.TLSPinned {
					t.Fatalf("link beyond loopback: TLS %+v, want pinned", r.TLS)
				}
				if st := apiStatus(t, b); st.NATSTLS != "tls" || st.NATSTLSPeer != forward.TLSPinned {
					t.Errorf("beta's status: nats_tls %q, nats_tls_peers %q", st.NATSTLS, st.NATSTLSPeer)
				}
			} else {
				eventually(t, 20*time.Second, "alpha refuses beta's plain text", func() error {
					r := linkRow(a.Links(), "beta", forward.DirOut)
					if r == nil {
						return errors.New("no link yet")
					}
					if r.Reason != forward.ReasonTLS {
						return errors.New("link " + strconv.Quote(r.Reason) + ": " + r.LastError)
					}
					return nil
				})
			}
			if err := Unlink(a.dir, "beta"); err != nil {
				t.Fatal(err)
			}
			b.Stop()
		})
	}
}

// The site's certificate is bound to its key: a pinned config accepts
// it for the site and refuses it under another site's key, or with no
// trust entry for the site.
func TestSiteCertificatePins(t *testing.T) {
	alpha, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	beta, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := siteCertificate("alpha", alpha)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted map[string]manifest.PublicKey
		ok      bool
	}{
		{"alpha trusted with its key", map[string]manifest.PublicKey{"alpha": alpha.PublicKey()}, true},
		{"alpha trusted with beta's key", map[string]manifest.PublicKey{"alpha": beta.PublicKey()}, false},
		{"no trust entry for alpha", map[string]manifest.PublicKey{"beta": beta.PublicKey()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := forward.PinnedTLS("alpha", func(p string) (manifest.PublicKey, bool) { k, ok := tc.trusted[p]; return k, ok })
			err := cfg.VerifyPeerCertificate(cert.Certificate, nil)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, forward.ErrTLSPin)) {
				t.Fatalf("verify: %v, want ok=%v (or ErrTLSPin)", err, tc.ok)
			}
		})
	}
}
