package testlab_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/testlab"
)

// markedObject is 2 MiB of random bytes (which no codec compresses, so
// in plain text they cross the wire as they are) with a marker string
// every 64 KiB.
func markedObject(t *testing.T, marker string) []byte {
	t.Helper()
	data := make([]byte, 2<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	for off := 0; off+len(marker) < len(data); off += 64 << 10 {
		copy(data[off:], marker)
	}
	return data
}

// markerSeen counts the recorded streams that hold marker in clear.
func markerSeen(rec *testlab.Recording, marker string) (streams, bytesCarried int) {
	for _, s := range rec.Streams() {
		bytesCarried += len(s)
		if bytes.Contains(s, []byte(marker)) {
			streams++
		}
	}
	return streams, bytesCarried
}

// TestTLSLinkCarriesNoClearText puts an object holding a marker string
// at s0 of two site processes and looks for the marker in every byte
// the lab proxy between them carried. With nats_tls off (the control,
// which shows the search can find it) the marker crosses in clear; with
// TLS on it never does, and both ends show the link's TLS state:
// pinned to the peer's key on the dialer, proved by key on the acceptor.
func TestTLSLinkCarriesNoClearText(t *testing.T) {
	for _, mode := range []string{"off", "on"} {
		t.Run("nats_tls="+mode, func(t *testing.T) {
			f := reconFed(t, testlab.FedOptions{N: 2, Topology: "line", NATSTLS: mode})
			marker := "SKYFED-MARKER-" + mode + "-7c1e9a"
			rec := f.Proxy(0, 1).Record()
			name := testlab.Domain + "/tls/marked.fits"
			if _, err := f.Put(0, name, bytes.NewReader(markedObject(t, marker))); err != nil {
				t.Fatal(err)
			}
			if err := f.WaitConverged(60 * time.Second); err != nil {
				t.Fatal(err)
			}
			f.Proxy(0, 1).StopRecording()
			seen, carried := markerSeen(rec, marker)
			t.Logf("nats_tls=%s: the proxy carried %d bytes; the marker was in clear in %d streams", mode, carried, seen)
			if carried < 2<<20 {
				t.Fatalf("the proxy carried %d bytes, less than the object: the recording missed the link", carried)
			}
			dialer, acceptor := linkStatus(t, f, 0, 1), linkStatus(t, f, 1, 0)
			switch mode {
			case "off":
				if seen == 0 {
					t.Fatal("with TLS off the marker never crossed in clear: the search cannot tell")
				}
				if dialer.TLS != nil || acceptor.TLS != nil {
					t.Errorf("plain-text link shows TLS: dialer %+v, acceptor %+v", dialer.TLS, acceptor.TLS)
				}
			case "on":
				if seen != 0 {
					t.Fatalf("the marker crossed the wire in clear in %d streams with TLS on", seen)
				}
				if dialer.TLS == nil || dialer.TLS.Verified != forward.TLSPinned || !strings.HasPrefix(dialer.TLS.Version, "TLS 1.") || dialer.TLS.Cipher == "" {
					t.Errorf("dialer's link TLS = %+v, want a TLS version, a cipher and verified=pinned", dialer.TLS)
				}
				if acceptor.TLS == nil || acceptor.TLS.Verified != forward.TLSKey {
					t.Errorf("acceptor's link TLS = %+v, want verified=key", acceptor.TLS)
				}
			}
		})
	}
}

// linkStatus returns site i's link to site j (dialed when i < j in a
// line: the lab links each site to the next).
func linkStatus(t *testing.T, f *testlab.ProcessFederation, i, j int) forward.LinkStatus {
	t.Helper()
	links, err := f.Links(i)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Peer == f.ID(j) {
			return l
		}
	}
	t.Fatalf("site %d has no link to %s: %+v", i, f.ID(j), links)
	return forward.LinkStatus{}
}

// TestTLSInterceptorRefused puts a man in the middle on the link: it
// terminates TLS with a certificate of its own. The dialer refuses it
// (reason "tls", counted in skyfed_rejected_total{reason="tls"}), no
// byte of the link's protocol crosses it, and the link comes back once
// the path is clean again.
func TestTLSInterceptorRefused(t *testing.T) {
	f := reconFed(t, testlab.FedOptions{N: 2, Topology: "line"})
	mitm, err := testlab.NewTLSInterceptor(f.NATSAddr(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mitm.Close() })
	p := f.Proxy(0, 1)
	p.Cut()
	if err := p.SetTarget(mitm.Addr()); err != nil {
		t.Fatal(err)
	}
	p.Heal()
	waitForLong(t, "s0 refuses the interceptor in TLS", func() bool {
		l := linkStatus(t, f, 0, 1)
		return l.State != forward.StateUp && l.Reason == forward.ReasonTLS && metric(t, f.URL(0), "skyfed_rejected_total", "") > 0
	})
	if accepted, refused := mitm.Handshakes(); accepted != 0 || refused == 0 {
		t.Errorf("interceptor: %d handshakes completed, %d refused; want 0 completed and some refused", accepted, refused)
	}
	if n := rejectedFor(t, f.URL(0), "tls"); n == 0 {
		t.Error(`skyfed_rejected_total{reason="tls"} is 0 at the dialer`)
	}
	l := linkStatus(t, f, 0, 1)
	t.Logf("dialer's link while intercepted: state %s, reason %q, last error %q", l.State, l.Reason, l.LastError)
	p.Cut()
	if err := p.SetTarget(f.NATSAddr(1)); err != nil {
		t.Fatal(err)
	}
	p.Heal()
	if err := f.WaitLinksUp(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestPlainTextDialerRefused: a site whose listener requires TLS refuses
// a client that speaks plain text after the greeting, and a NATS client
// that does not pin the site's key (the system's CAs know no such
// certificate); the site counts the refusals with reason "tls".
func TestPlainTextDialerRefused(t *testing.T) {
	f := reconFed(t, testlab.FedOptions{N: 1})
	addr := f.NATSAddr(0)
	before := rejectedFor(t, f.URL(0), "tls")

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("greeting does not require TLS: %s", info)
	}
	if _, err := c.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	rest, _ := r.ReadString('\n') // the server closes the connection (or says why first)
	if strings.Contains(rest, "PONG") {
		t.Fatalf("the site answered a plain-text client: %q", rest)
	}

	if nc, err := nats.Connect("nats://"+addr, nats.Timeout(5*time.Second), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a NATS client that does not pin the site's key connected")
	} else {
		t.Logf("unpinned NATS client refused: %v", err)
	}
	waitForLong(t, "the site counts the refusals", func() bool { return rejectedFor(t, f.URL(0), "tls") >= before+2 })
}

// rejectedFor is skyfed_rejected_total{reason} of a site.
func rejectedFor(t *testing.T, base, reason string) float64 {
	t.Helper()
	return metricLabeled(t, base, "skyfed_rejected_total", "reason", reason)
}

// waitForLong is waitFor with room for dial backoff.
func waitForLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricLabeled sums a site's series of metric name whose label is value.
func metricLabeled(t *testing.T, base, name, label, value string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics of %s: %v", base, err)
	}
	var sum float64
	for _, m := range families[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
