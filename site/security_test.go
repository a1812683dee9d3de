package site

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/testlab/liar"
)

// logBuffer collects a site's log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// startLoggedSite is startPeerSite with the site's log kept for assertions.
func startLoggedSite(t *testing.T, id string) (*testSite, *logBuffer) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, Config{ID: id, Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: freeAddr(t), ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	return openSite(t, dir, logs), logs
}

// openSite opens and starts the site in dir, logging to w, and stops it
// when the test ends.
func openSite(t *testing.T, dir string, w io.Writer) *testSite {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(w, nil)), HTTPListener: ln, ReloadEvery: 50 * time.Millisecond})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop %s: %v", dir, err)
		}
	})
	return &testSite{Site: s, dir: dir, base: "http://" + s.HTTPAddr()}
}

// eventually polls cond until it returns nil, failing the test with the
// last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiStatus fetches /api/status over HTTP, as a dashboard would.
func apiStatus(t *testing.T, s *testSite) Status {
	t.Helper()
	resp, body := s.do(t, "GET", "/api/status", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/status: %d %s", resp.StatusCode, body)
	}
	return decode[Status](t, body)
}

func linkRow(links []forward.LinkStatus, peer, dir string) *forward.LinkStatus {
	for i := range links {
		if links[i].Peer == peer && links[i].Direction == dir {
			return &links[i]
		}
	}
	return nil
}

func trustKey(t *testing.T, s *testSite, id string, key manifest.PublicKey, domains ...string) {
	t.Helper()
	if err := Trust(s.dir, Peer{ID: id, Key: key.String(), Domains: domains}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s.Config().ID+" trusting "+id, func() bool { k, ok := s.trust.keyOf(id); return ok && k == key })
}

func newKey(t *testing.T) *manifest.KeyPair {
	t.Helper()
	k, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func natsURL(s *testSite) string { return "nats://" + s.Config().NATS }

func waitLinkUp(t *testing.T, s *testSite, peer, dir string) {
	t.Helper()
	eventually(t, 10*time.Second, s.Config().ID+" link "+dir+":"+peer+" up", func() error {
		if r := linkRow(s.Links(), peer, dir); r == nil || r.State != forward.StateUp {
			return fmt.Errorf("links %+v", s.Links())
		}
		return nil
	})
}

// 1(a): a site whose key the acceptor does not trust is refused by the
// acceptor's NATS server; both sides say so, and trusting it heals the link.
func TestUntrustedSiteIsRefused(t *testing.T) {
	a, aLog := startLoggedSite(t, "alpha")
	b, bLog := startLoggedSite(t, "beta")
	trustKey(t, a, "beta", b.Key(), "gloria.eu")
	before := metric(t, b, "skyfed_rejected_total", "reason", "nats_auth")
	linkSites(t, a, b, "", "")
	eventually(t, 10*time.Second, "the refusal seen, counted and logged on both sides", func() error {
		if r := linkRow(a.Links(), "beta", forward.DirOut); r == nil || r.State != forward.StateRefused {
			return fmt.Errorf("alpha's link to beta: %+v, want state refused", r)
		}
		if r := linkRow(apiStatus(t, b).Links, "unknown", forward.DirIn); r == nil || r.State != forward.StateRefused || r.Refused == 0 {
			return fmt.Errorf("beta's status row for the unknown dialer: %+v, want refused", r)
		}
		if n := metric(t, b, "skyfed_rejected_total", "reason", "nats_auth"); n <= before {
			return fmt.Errorf("beta's skyfed_rejected_total{reason=nats_auth} = %v, was %v", n, before)
		}
		if len(bLog.lines("refused", a.Key().String())) == 0 {
			return errors.New("beta's log names no refused key " + a.Key().String())
		}
		if len(aLog.lines("refused", "trust")) == 0 {
			return errors.New("alpha's log does not tell the operator to get its key trusted")
		}
		return nil
	})
	trustKey(t, b, "alpha", a.Key(), "gloria.eu")
	eventually(t, 15*time.Second, "the link up once beta trusts alpha", func() error {
		if r := linkRow(a.Links(), "beta", forward.DirOut); r == nil || r.State != forward.StateUp {
			return fmt.Errorf("alpha's link to beta: %+v", r)
		}
		return nil
	})
}

// 1(b): clients that do not prove a trusted key are refused.
func TestUnauthenticatedClientsAreRefused(t *testing.T) {
	b, bLog := startLoggedSite(t, "beta")
	alpha, other := newKey(t), newKey(t)
	trustKey(t, b, "alpha", alpha.PublicKey(), "gloria.eu")
	impostor := func() nats.Option {
		key := alpha.PublicKey()
		pub, _ := nkeys.Encode(nkeys.PrefixByteUser, key[:])
		kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, other.Seed())
		if err != nil {
			t.Fatal(err)
		}
		return nats.Nkey(string(pub), kp.Sign)
	}
	untrusted := func() nats.Option {
		kp, _ := nkeys.FromRawSeed(nkeys.PrefixByteUser, other.Seed())
		pub, _ := kp.PublicKey()
		return nats.Nkey(pub, kp.Sign)
	}
	cases := []struct {
		name string
		opt  nats.Option
		peer string // the status row the refusal is counted under
	}{
		{"anonymous", nats.Name("anon"), "anonymous"},
		{"user and password", nats.UserInfo("alpha", "secret"), "anonymous"},
		{"token", nats.Token("secret"), "anonymous"},
		{"untrusted nkey", untrusted(), "unknown"},
		{"trusted nkey signed by another key", impostor(), "alpha"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var refusedBefore int64
			if r := linkRow(b.Links(), tc.peer, forward.DirIn); r != nil {
				refusedBefore = r.Refused
			}
			authBefore := metric(t, b, "skyfed_rejected_total", "reason", "nats_auth")
			logBefore := len(bLog.lines("refused", "peer="+tc.peer))
			conn, err := nats.Connect(natsURL(b), tc.opt, nats.NoReconnect())
			if err == nil {
				conn.Close()
				t.Fatal("beta's NATS server admitted the client")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect error %v, want an authorization violation", err)
			}
			eventually(t, 10*time.Second, "the refusal counted and logged", func() error {
				r := linkRow(apiStatus(t, b).Links, tc.peer, forward.DirIn)
				if r == nil || r.State != forward.StateRefused || r.Refused != refusedBefore+1 {
					return fmt.Errorf("status row %q: %+v, want refused with %d refusals", tc.peer, r, refusedBefore+1)
				}
				if n := metric(t, b, "skyfed_rejected_total", "reason", "nats_auth"); n != authBefore+1 {
					return fmt.Errorf("skyfed_rejected_total{reason=nats_auth} = %v, want %v", n, authBefore+1)
				}
				if n := metric(t, b, "skyfed_link_refused_total", "peer", tc.peer, "direction", "in"); n != float64(refusedBefore+1) {
					return fmt.Errorf("skyfed_link_refused_total{peer=%q} = %v, want %d", tc.peer, n, refusedBefore+1)
				}
				if len(bLog.lines("refused", "peer="+tc.peer)) <= logBefore {
					return errors.New("no log line for the refusal")
				}
				return nil
			})
		})
	}
}

// 1(c): a trusted site may use only its own pair's link subjects: the
// server refuses, the site counts, and nothing reaches the other pair.
func TestPeerConfinedToItsOwnLinkSubjects(t *testing.T) {
	b, _ := startLoggedSite(t, "beta")
	g := startPeerSite(t, "gamma")
	trustEachOther(t, g, b)
	linkSites(t, g, b, "", "")
	waitLinkUp(t, b, "gamma", forward.DirIn)
	xkey := newKey(t)
	trustKey(t, b, "xray", xkey.PublicKey(), "liar.net")
	x, err := liar.Dial(liar.Config{URL: natsURL(b), Site: "xray", Acceptor: "beta", Key: xkey})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()

	smuggled := seeded(31, 10<<10)
	smuggledID := chunk.Sum(smuggled)
	data := liar.Chunk(smuggled)
	dataMsg := (&wire.Message{Type: wire.MsgData, Data: &wire.Data{Lane: wire.LaneBulk, ID: smuggledID,
		RawLen: data.RawLen, Total: data.RawLen, Flood: true, Payload: smuggled}}).Encode()
	hello := (&wire.Message{Type: wire.MsgHello, Hello: &wire.Hello{Site: "gamma", Proto: wire.ProtocolVersion,
		Key: xkey.PublicKey()}}).Encode()
	ping := (&wire.Message{Type: wire.MsgPing, Ping: &wire.Ping{Seq: 1}}).Encode()
	var eavesdrop []*nats.Subscription
	cases := []struct {
		name, subject string
		body          []byte // nil: subscribe instead of publish
	}{
		{"data on another dialer's bulk lane", "sf.gamma.beta.up.bulk", dataMsg},
		{"hello as another dialer", "sf.gamma.beta.up.hello", hello},
		{"control on another dialer's lane", "sf.gamma.beta.up.ctl", ping},
		{"as the acceptor towards another dialer", "sf.gamma.beta.dn.ctl", ping},
		{"as the acceptor towards itself", "sf.xray.beta.dn.ctl", ping},
		{"towards another acceptor", "sf.xray.gamma.up.ctl", ping},
		{"outside the link subjects", "anything", ping},
		{"eavesdrop on another pair", "sf.gamma.beta.dn.>", nil},
		{"eavesdrop on everything", ">", nil},
		{"read its own up subjects", "sf.xray.beta.up.>", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := metric(t, b, "skyfed_rejected_total", "reason", "nats_permission")
			errsBefore := len(x.Errors())
			if tc.body != nil {
				err = x.Publish(tc.subject, tc.body)
			} else {
				var sub *nats.Subscription
				sub, err = x.Conn().SubscribeSync(tc.subject)
				eavesdrop = append(eavesdrop, sub)
			}
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "the server's refusal", func() error {
				errs := x.Errors()[errsBefore:]
				if len(errs) != 1 || !errors.Is(errs[0], nats.ErrPermissionViolation) || !strings.Contains(errs[0].Error(), tc.subject) {
					return fmt.Errorf("errors sent to xray: %v, want one permissions violation for %s", errs, tc.subject)
				}
				if n := metric(t, b, "skyfed_rejected_total", "reason", "nats_permission"); n != before+1 {
					return fmt.Errorf("skyfed_rejected_total{reason=nats_permission} = %v, want %v", n, before+1)
				}
				return nil
			})
		})
	}

	// Traffic from beta to gamma flows while xray's subscriptions stand.
	obj := seeded(32, 100<<10)
	if resp, body := b.do(t, "PUT", "/o/gloria.eu/confined.fits", bytes.NewReader(obj)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, g, "gloria.eu/confined.fits", obj)
	for _, sub := range eavesdrop {
		if n, _ := sub.Delivered(); n != 0 {
			t.Errorf("xray's subscription to %s received %d messages", sub.Subject, n)
		}
	}
	if has, err := b.Chunks().Has(smuggledID); err != nil || has {
		t.Errorf("beta stored the chunk xray published as gamma (has %v, err %v)", has, err)
	}
	r := linkRow(b.Links(), "gamma", forward.DirIn)
	if r == nil || r.State != forward.StateUp || r.Rejected != 0 || r.ReceivedChunks != 0 {
		t.Errorf("beta's link from gamma after xray's attempts: %+v, want up with nothing received or rejected", r)
	}
}

// handshakeLie is one way a dialer lies in the handshake; proof nil means
// the hello itself is refused.
type handshakeLie struct {
	name  string
	hello func(h *wire.Hello)
	proof func(ack, hello *wire.Hello) (manifest.Signer, []byte)
	why   string // in the acceptor's log line
}

// 1(d): a trusted dialer that lies in the handshake is refused.
func TestHandshakeLiesAreRefused(t *testing.T) {
	b, bLog := startLoggedSite(t, "beta")
	xkey, wrong := newKey(t), newKey(t)
	trustKey(t, b, "xray", xkey.PublicKey(), "liar.net")
	honest := func(h *wire.Hello) {}
	signs := func(k *manifest.KeyPair, signer, other, role string, ours bool) func(ack, hello *wire.Hello) (manifest.Signer, []byte) {
		return func(ack, hello *wire.Hello) (manifest.Signer, []byte) {
			nonce := ack.Nonce
			if ours {
				nonce = hello.Nonce
			}
			return k, liar.ProofMessage(nonce, signer, other, role)
		}
	}
	lies := []handshakeLie{
		{"hello names another site", func(h *wire.Hello) { h.Site = "yank" }, nil, "yank"},
		{"hello carries an untrusted key", func(h *wire.Hello) { h.Key = wrong.PublicKey() }, nil, "key not trusted"},
		{"hello of another protocol version", func(h *wire.Hello) { h.Proto++ }, nil, "protocol"},
		{"proof signed by another key", honest, signs(wrong, "xray", "beta", liar.RoleDialer, false), "proof"},
		{"proof over the dialer's own nonce", honest, signs(xkey, "xray", "beta", liar.RoleDialer, true), "proof"},
		{"proof in the acceptor's role", honest, signs(xkey, "xray", "beta", liar.RoleAcceptor, false), "proof"},
		{"proof bound to another acceptor", honest, signs(xkey, "xray", "gamma", liar.RoleDialer, false), "proof"},
	}
	for _, lie := range lies {
		t.Run(lie.name, func(t *testing.T) {
			var before int64
			if r := linkRow(b.Links(), "xray", forward.DirIn); r != nil {
				before = r.Refused
			}
			logBefore := len(bLog.lines("link refused", "peer=xray", "why="))
			p, err := liar.Dial(liar.Config{URL: natsURL(b), Site: "xray", Acceptor: "beta", Key: xkey})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			h := p.Honest()
			lie.hello(h)
			if err := p.SendHello(h); err != nil {
				t.Fatal(err)
			}
			if lie.proof != nil {
				ack, err := p.AwaitHelloAck(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Proof(lie.proof(ack, h)); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 10*time.Second, "the refusal", func() error {
				r := linkRow(apiStatus(t, b).Links, "xray", forward.DirIn)
				if r == nil || r.State != forward.StateRefused || r.Refused != before+1 {
					return fmt.Errorf("beta's row for xray: %+v, want refused with %d refusals", r, before+1)
				}
				if n := metric(t, b, "skyfed_link_refused_total", "peer", "xray", "direction", "in"); n != float64(before+1) {
					return fmt.Errorf("skyfed_link_refused_total{peer=xray} = %v, want %d", n, before+1)
				}
				lines := bLog.lines("link refused", "peer=xray", "why=")
				if len(lines) <= logBefore || !strings.Contains(lines[len(lines)-1], lie.why) {
					return fmt.Errorf("beta's refusal log lines %q, want a new one saying %q", lines[logBefore:], lie.why)
				}
				return nil
			})
		})
	}
	// The same liar, honest, gets its link up: the refusals above were
	// for the lies, not for the liar's plumbing.
	p, err := liar.Dial(liar.Config{URL: natsURL(b), Site: "xray", Acceptor: "beta", Key: xkey, AcceptorKey: b.Key()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Handshake(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitLinkUp(t, b, "xray", forward.DirIn)
	if n := metric(t, b, "skyfed_rejected_total", "reason", "handshake"); n != float64(len(lies)) {
		t.Errorf("skyfed_rejected_total{reason=handshake} = %v, want %d (one per refused handshake)", n, len(lies))
	}
}

// A peer whose trust is revoked while its link is up is cut off.
func TestRevokedPeerIsCutOff(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	waitLinkUp(t, a, "beta", forward.DirOut)
	if err := Untrust(b.dir, "alpha"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alpha cut off by beta", func() error {
		for _, c := range connz(t, b) {
			if c.Name == "skyfed alpha → beta" {
				return fmt.Errorf("beta's NATS server still serves alpha's link connection (user %s)", c.AuthorizedUser)
			}
		}
		if r := linkRow(a.Links(), "beta", forward.DirOut); r == nil || r.State != forward.StateRefused {
			return fmt.Errorf("alpha's link to beta: %+v, want refused", r)
		}
		if r := linkRow(b.Links(), "alpha", forward.DirIn); r != nil && r.State == forward.StateUp {
			return fmt.Errorf("beta's link from alpha still up: %+v", r)
		}
		return nil
	})
}

// lie is one payload a lying peer pushes; the acceptor must refuse it.
type lie struct {
	name  string
	pl    liar.Payload
	never []chunk.ID // IDs that must never be stored or logged anywhere
	obj   string     // for manifests: the name that must not appear
	// deferred: refused for now, not for good (a stamp in this site's
	// future): counted and logged as refused, but not acked, so an honest
	// sender offers it again once the clock is right (forward.Deferred).
	deferred bool
}

func chunkLies(t *testing.T) []lie {
	t.Helper()
	flip := func(b []byte) []byte {
		c := bytes.Clone(b)
		c[len(c)/3] ^= 0x01
		return c
	}
	compress := func(raw []byte) (chunk.Codec, []byte) {
		c, p, err := chunk.Compress(raw)
		if err != nil || c == chunk.CodecRaw {
			t.Fatalf("compress: codec %v, err %v", c, err)
		}
		return c, p
	}
	good1, good2 := seeded(61, 20<<10), bytes.Repeat([]byte("good image row "), 3000)
	evil := bytes.Repeat([]byte("evil image row "), 3000)
	evilCodec, evilZ := compress(evil)
	good3 := bytes.Repeat([]byte("fine image row "), 3000)
	good3Codec, good3Z := compress(good3)
	junk, good5 := seeded(62, 5000), seeded(63, 30<<10)
	return []lie{
		{name: "raw bytes that do not hash to the offered ID",
			pl:    liar.Payload{Lane: wire.LaneBulk, ID: chunk.Sum(good1), RawLen: uint32(len(good1)), Bytes: flip(good1)},
			never: []chunk.ID{chunk.Sum(good1), chunk.Sum(flip(good1))}},
		{name: "zstd payload of other bytes",
			pl:    liar.Payload{Lane: wire.LaneBulk, ID: chunk.Sum(good2), Codec: evilCodec, RawLen: uint32(len(evil)), Bytes: evilZ},
			never: []chunk.ID{chunk.Sum(good2), chunk.Sum(evil)}},
		{name: "zstd payload with a lying raw length",
			pl:    liar.Payload{Lane: wire.LaneBulk, ID: chunk.Sum(good3), Codec: good3Codec, RawLen: uint32(len(good3) + 1), Bytes: good3Z},
			never: []chunk.ID{chunk.Sum(good3)}},
		{name: "bytes that are not zstd",
			pl:    liar.Payload{Lane: wire.LaneBulk, ID: chunk.Sum(junk), Codec: chunk.CodecZstd, RawLen: uint32(len(junk)), Bytes: junk},
			never: []chunk.ID{chunk.Sum(junk)}},
		{name: "corrupt bytes pushed unasked",
			pl:    liar.Payload{Lane: wire.LaneBulk, ID: chunk.Sum(good5), RawLen: uint32(len(good5)), Bytes: flip(good5), Flood: true, NoOffer: true},
			never: []chunk.ID{chunk.Sum(good5), chunk.Sum(flip(good5))}},
	}
}

func manifestLies(t *testing.T, key, stranger *manifest.KeyPair) []lie {
	t.Helper()
	now := time.Now()
	object := func(name string, at time.Time, signer manifest.Signer) *manifest.Manifest {
		o, err := liar.NewObject(name, seeded(uint64(len(name)), 70<<10), 64<<10, liar.StampAt(at, "liar"), signer)
		if err != nil {
			t.Fatal(err)
		}
		return o.Manifest
	}
	manifestLie := func(name string, m *manifest.Manifest) lie {
		return lie{name: name, pl: liar.ManifestPayload(m), never: []chunk.ID{m.ID()}, obj: m.Name}
	}
	deferredLie := func(name string, m *manifest.Manifest) lie {
		l := manifestLie(name, m)
		l.deferred = true
		return l
	}
	misfiled := object("liar.net/misfiled.fits", now, key)
	wrongID := liar.ManifestPayload(misfiled)
	wrongID.ID = chunk.Sum([]byte("another manifest"))
	notManifest := []byte("this is not a manifest")
	return []lie{
		manifestLie("bad signature", liar.BadSignature(object("liar.net/bad-signature.fits", now, key))),
		manifestLie("domain the liar may not write", object("gloria.eu/forged.fits", now, key)),
		deferredLie("stamp an hour ahead", object("liar.net/future.fits", now.Add(time.Hour), key)),
		manifestLie("signed by an untrusted key", object("liar.net/stranger.fits", now, stranger)),
		{name: "manifest under another ID", pl: wrongID, never: []chunk.ID{wrongID.ID, misfiled.ID()}, obj: misfiled.Name},
		{name: "bytes that are not a manifest", pl: liar.Payload{Lane: wire.LaneManifest, ID: chunk.Sum(notManifest),
			RawLen: uint32(len(notManifest)), Bytes: notManifest}, never: []chunk.ID{chunk.Sum(notManifest)}},
	}
}

// 2: a trusted peer that lies is refused payload by payload; nothing it
// lied about is stored or relayed, while its honest object gets through.
func TestLyingPeerIsRejectedAndNotRelayed(t *testing.T) {
	b, bLog := startLoggedSite(t, "bravo")
	c := startPeerSite(t, "charlie")
	trustEachOther(t, b, c)
	linkSites(t, b, c, "", "")
	waitLinkUp(t, b, "charlie", forward.DirOut)
	lkey, stranger := newKey(t), newKey(t)
	trustKey(t, b, "liar", lkey.PublicKey(), "liar.net")
	trustKey(t, c, "liar", lkey.PublicKey(), "liar.net") // charlie accepts the liar's honest versions
	l, err := liar.Dial(liar.Config{URL: natsURL(b), Site: "liar", Acceptor: "bravo", Key: lkey, AcceptorKey: b.Key()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	rejected := func() int64 {
		if r := linkRow(b.Links(), "liar", forward.DirIn); r != nil {
			return r.Rejected
		}
		return 0
	}
	cl, ml := chunkLies(t), manifestLies(t, lkey, stranger)
	lies := append(append([]lie{}, cl...), ml...)
	for _, lie := range lies {
		t.Run(lie.name, func(t *testing.T) {
			before := rejected()
			status, err := l.Push(ctx, lie.pl)
			switch {
			case lie.deferred:
				if !errors.Is(err, liar.ErrNoAnswer) {
					t.Errorf("bravo answered %v %v, want no ack (deferred)", status, err)
				}
			case err != nil:
				t.Fatal(err)
			case status != wire.AckRejected:
				t.Errorf("bravo acked %s, want rejected", status)
			}
			eventually(t, 10*time.Second, "the rejection counted", func() error {
				if n := rejected(); n != before+1 {
					return fmt.Errorf("bravo's link from liar: rejected %d, want %d", n, before+1)
				}
				return nil
			})
			assertNowhere(t, b, lie)
		})
	}
	before := rejected()
	if err := l.Publish(l.Subject("ctl"), []byte{0xff, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a malformed message counted", func() error {
		if n := rejected(); n != before+1 {
			return fmt.Errorf("rejected %d, want %d", n, before+1)
		}
		return nil
	})

	data := seeded(71, 150<<10)
	honest, err := liar.NewObject("liar.net/honest.fits", data, 64<<10, liar.StampAt(time.Now(), "liar"), lkey)
	if err != nil {
		t.Fatal(err)
	}
	payloads := []liar.Payload{liar.ManifestPayload(honest.Manifest)}
	for _, raw := range honest.Chunks {
		payloads = append(payloads, liar.Chunk(raw))
	}
	for _, pl := range payloads {
		if status, err := l.Push(ctx, pl); err != nil || status != wire.AckStored {
			t.Fatalf("honest payload %s: %v %v, want stored", pl.ID.Short(), status, err)
		}
	}
	waitObject(t, c, honest.Manifest.Name, data)
	waitBacklogs(t, c)
	for _, lie := range lies {
		assertNowhere(t, b, lie)
		assertNowhere(t, c, lie)
	}
	checkLiarCounters(t, b, c, len(cl), len(ml), len(honest.Chunks))
	if got := len(bLog.lines("refused", "not relayed")); got != len(lies) {
		t.Errorf("bravo logged %d refused payloads, want %d", got, len(lies))
	}
}

// assertNowhere checks that nothing of lie is stored or in the arrival log at s.
func assertNowhere(t *testing.T, s *testSite, lie lie) {
	t.Helper()
	for _, id := range lie.never {
		hasChunk, err1 := s.Chunks().Has(id)
		hasMan, err2 := s.Objects().HasManifest(id)
		if hasChunk || hasMan || err1 != nil || err2 != nil {
			t.Errorf("%s: %s holds %s (chunk %v, manifest %v, errs %v %v)", lie.name, s.Config().ID, id.Short(), hasChunk, hasMan, err1, err2)
		}
		for _, k := range []forward.Kind{forward.KindChunk, forward.KindManifest} {
			as, err := s.arrivals.Read(k, 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range as {
				if a.ID == id {
					t.Errorf("%s: %s's arrival log holds %s (from %s): it would be relayed", lie.name, s.Config().ID, id.Short(), a.From)
				}
			}
		}
	}
	if lie.obj != "" {
		if m, err := s.Objects().Latest(naming.MustParseName(lie.obj)); err == nil {
			t.Errorf("%s: %s serves %s version %s", lie.name, s.Config().ID, lie.obj, m.Version())
		}
	}
}

func checkLiarCounters(t *testing.T, b, c *testSite, chunkLies, manifestLies, honestChunks int) {
	t.Helper()
	in := linkRow(b.Links(), "liar", forward.DirIn)
	if in == nil || in.State != forward.StateUp {
		t.Fatalf("bravo's link from liar: %+v", in)
	}
	lies := int64(chunkLies + manifestLies + 1)
	if in.Rejected != lies || in.ReceivedChunks != int64(honestChunks) || in.ReceivedManifests != 1 {
		t.Errorf("bravo's link from liar: rejected %d received %d chunks %d manifests, want %d, %d, 1",
			in.Rejected, in.ReceivedChunks, in.ReceivedManifests, lies, honestChunks)
	}
	if n := metric(t, b, "skyfed_link_rejected_total", "peer", "liar", "direction", "in"); n != float64(lies) {
		t.Errorf("skyfed_link_rejected_total{peer=liar} = %v, want %d", n, lies)
	}
	for reason, want := range map[string]int{"chunk": chunkLies, "manifest": manifestLies, "malformed_message": 1} {
		if n := metric(t, b, "skyfed_rejected_total", "reason", reason); n != float64(want) {
			t.Errorf("bravo's skyfed_rejected_total{reason=%q} = %v, want %d", reason, n, want)
		}
	}
	if r := linkRow(c.Links(), "bravo", forward.DirIn); r == nil || r.Rejected != 0 || r.ReceivedManifests != 1 || r.ReceivedChunks != int64(honestChunks) {
		t.Errorf("charlie's link from bravo: %+v, want exactly the honest object and nothing rejected", r)
	}
}

// Editing the trust store while links run keeps the peers that stay
// trusted connected: only revoked keys are cut off.
func TestTrustEditKeepsTrustedPeersConnected(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	waitLinkUp(t, b, "alpha", forward.DirIn)
	before, err := connNamed(t, b, "skyfed alpha → beta")
	if err != nil {
		t.Fatal(err)
	}
	// Reloads run one after the other: once the second edit is in force,
	// the first reload (and whatever it cut) is done.
	trustKey(t, b, "zulu", newKey(t).PublicKey(), "zulu.org")
	trustKey(t, b, "yankee", newKey(t).PublicKey(), "yankee.org")
	after, err := connNamed(t, b, "skyfed alpha → beta")
	if err != nil {
		t.Fatal(err)
	}
	if after.Cid != before.Cid {
		t.Errorf("alpha's link connection was cut by a trust edit that kept alpha trusted (client %d, now %d)", before.Cid, after.Cid)
	}
}

// A lying peer cannot make the receiver reserve memory for payload it
// never sends: first frames announcing the largest chunks cost about
// what they carry, not what they announce.
func TestLyingPeerCannotPinMemory(t *testing.T) {
	b, _ := startLoggedSite(t, "bravo")
	lkey := newKey(t)
	trustKey(t, b, "liar", lkey.PublicKey(), "liar.net")
	l, err := liar.Dial(liar.Config{URL: natsURL(b), Site: "liar", Acceptor: "bravo", Key: lkey, AcceptorKey: b.Key()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	const frames = 8
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range frames {
		d := &wire.Data{Lane: wire.LaneBulk, ID: chunk.Sum([]byte{byte(i)}), RawLen: chunk.MaxSize, Total: chunk.MaxSize, Payload: []byte{1}}
		if err := l.Send(wire.LaneBulk, &wire.Message{Type: wire.MsgData, Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	// Frames of a lane are read in order: once this chunk is acked,
	// bravo has read the announcing frames.
	if status, err := l.Push(ctx, liar.Chunk(seeded(91, 1000))); err != nil || status != wire.AckStored {
		t.Fatalf("honest chunk after the frames: %v %v", status, err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Errorf("%d one-byte frames announcing %d MiB chunks grew bravo's live heap by %d MiB", frames, chunk.MaxSize>>20, grew>>20)
	}
}
