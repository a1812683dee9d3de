package forward

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// Roles in the proofs.
const (
	RoleDialer   = "dialer"
	RoleAcceptor = "acceptor"
)

// dialLoop keeps a dialed link connected to the peer's NATS server for
// as long as the link runs. nats.go reconnects a connection by itself,
// but gives up on it for good after the server refuses the credentials
// twice in a row (the peer untrusted this site) and closes it: then
// this loop dials again, with backoff, so the link comes back once the
// peer trusts this site again. Each (re)connect starts a new handshake.
func (l *Link) dialLoop() {
	ctx := l.ctx
	var b backoff
	for {
		closed, err := l.connect()
		if err == nil {
			b.reset()
			select {
			case <-ctx.Done():
				return
			case <-closed:
				// nats.go gave up on the connection; its last error
				// (recorded by the handlers) says why.
			}
		} else {
			l.dialFailed(err, true)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.wait()):
		}
	}
}

// dialFailed records why a dial (or nats.go's redial of a lost
// connection, which logs nothing) failed. A TLS failure is counted as a
// refusal (reason "tls"): a certificate that is not the peer's, or a
// peer that does not offer TLS.
func (l *Link) dialFailed(err error, logIt bool) {
	reason := classifyDialError(err)
	var heard *tlsRefusal
	if errors.As(err, &heard) {
		return // the certificate check recorded it (tlsFailed)
	}
	if reason == ReasonTLS && l.node.cfg.OnReject != nil {
		l.node.cfg.OnReject("tls")
	}
	switch {
	case reason == ReasonRefused:
		l.setStateWhy(linkRefused, reason, fmt.Errorf("dial %s: %w", l.url, err))
		if logIt {
			l.log.Warn("peer refused this site; is this site's key trusted there? (skyfed site trust on the peer)", "url", l.url, "err", err)
		}
	case reason == ReasonTLS:
		l.setStateWhy(linkDown, reason, fmt.Errorf("dial %s: %w", l.url, err))
		if logIt {
			l.log.Warn("TLS with the peer failed; its certificate must be bound to the key trusted for it (skyfed site trust), or signed by nats_tls_ca", "url", l.url, "err", err)
		}
	default:
		l.setStateWhy(linkDown, reason, fmt.Errorf("dial %s: %w", l.url, err))
		if logIt {
			l.log.Info("dial failed; retrying", "url", l.url, "err", err)
		}
	}
}

// connect dials the peer's NATS server, subscribes to the link's lanes
// and sends a hello. The channel returned is closed when nats.go closes
// the connection for good.
func (l *Link) connect() (<-chan struct{}, error) {
	auth, err := l.node.nkeyOption()
	if err != nil {
		return nil, err
	}
	secure, verified, err := l.tlsOptions()
	if err != nil {
		return nil, err
	}
	l.tlsVerified.Store(verified)
	closed := make(chan struct{})
	conn, err := nats.Connect(l.url, append(secure, auth,
		nats.Name("skyfed "+l.node.site+" → "+l.id.Peer),
		nats.ReconnectBufSize(-1), // never buffer into a link that is down
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.PingInterval(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				err = fmt.Errorf("connection to %s lost: %w", l.url, err)
			}
			l.setStateWhy(linkDown, ReasonDial, err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { l.sendHello() }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				l.dialFailed(err, false)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if reason := classifyDialError(err); reason == ReasonRefused {
				l.setStateWhy(linkRefused, reason, err)
			}
			l.log.Warn("NATS error on link", "err", err)
		}),
	)...)
	if err != nil {
		return nil, err
	}
	if l.ctx.Err() != nil {
		conn.Close()
		return closed, nil
	}
	if old := l.connP.Swap(conn); old != nil {
		old.Close()
	}
	if err := l.subscribe(conn, l.pair.Down()); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Flush(); err != nil {
		conn.Close()
		return nil, err
	}
	l.sendHello()
	return closed, nil
}

func (l *Link) closeConn() {
	if c := l.connP.Load(); c != nil {
		c.Close()
	}
}

// sendHello starts (or restarts) the handshake of a dialed link.
func (l *Link) sendHello() {
	conn := l.connP.Load()
	if conn == nil {
		return
	}
	l.mu.Lock()
	nonce := newNonce()
	l.nonces = append(l.nonces, nonce)
	l.helloAt = append(l.helloAt, time.Now())
	if len(l.nonces) > maxNonces {
		l.nonces, l.helloAt = l.nonces[1:], l.helloAt[1:]
	}
	l.mu.Unlock()
	h := &wire.Hello{Site: l.node.site, Proto: wire.ProtocolVersion, Caps: l.node.helloCaps(), Nonce: nonce, Key: l.node.cfg.Signer.PublicKey(),
		Mode: byte(l.mode), MaxRate: l.lim.Rate(), Clock: l.clockForPeer()}
	body := (&wire.Message{Type: wire.MsgHello, Hello: h}).Encode()
	if err := conn.Publish(l.pair.Hello(), body); err != nil {
		l.log.Warn("hello not sent", "err", err)
		return
	}
	l.c.sentWire.Add(int64(len(body)))
	l.c.sentMessages.Add(1)
}

// onHello accepts a link dialed to this site. The NATS server admitted
// the dialer only as the nkey user of a trusted key, with permission to
// publish only under its own pair's subjects; the hello must agree.
func (n *Node) onHello(m *nats.Msg) {
	peer, ok := wire.DialerOfHello(m.Subject)
	if !ok {
		return
	}
	msg, err := wire.DecodeMessage(m.Data)
	if err != nil || msg.Type != wire.MsgHello {
		n.refusedHandshake(peer, "malformed hello")
		return
	}
	h := msg.Hello
	key, trusted := n.peerKey(peer)
	switch {
	case h.Site != peer:
		n.refusedHandshake(peer, "hello names site "+h.Site)
		return
	case h.Proto != wire.ProtocolVersion:
		n.refusedHandshake(peer, "protocol version mismatch")
		return
	case !trusted || manifest.PublicKey(h.Key) != key:
		n.refusedHandshake(peer, "key not trusted for this site ID")
		return
	}
	id := engine.LinkID{Peer: peer, Dir: engine.DirIn}
	n.mu.Lock()
	cur := n.links[id]
	n.mu.Unlock()
	if cur != nil && cur.currentState() == linkUp && modeOf(h) == cur.mode && h.MaxRate == cur.lim.Rate() {
		// A hello for a link that is up is either one the dialer sent
		// before it read the hello-ack that brought the link up (hellos
		// have their own subject, so one can be read after the proof
		// that followed it) or a dialer starting a new session. Only
		// the second proves this answer's nonce; until it does, the
		// link stays as it is: replaced at once, it would wait for a
		// proof the dialer, up already, never sends. (A hello asking
		// another mode or rate is no stale one: it replaces the link.)
		nonce := n.issueNonce(peer)
		cur.mu.Lock()
		// The dialer re-sends its hello while unanswered: it may prove
		// the answer to any of the recent ones.
		cur.rehellos = append(cur.rehellos, pendingHello{hello: h, nonce: nonce})
		if len(cur.rehellos) > maxNonces {
			cur.rehellos = cur.rehellos[1:]
		}
		cur.mu.Unlock()
		cur.c.receivedWire.Add(int64(len(m.Data)))
		cur.c.messages.Add(1)
		cur.sendSmall(wire.LaneControl, n.helloAck(cur, h, nonce), 0)
		return
	}
	l := n.acceptLink(peer, key, h)
	if l == nil {
		return
	}
	l.c.receivedWire.Add(int64(len(m.Data))) // the hello is the link's first message
	l.c.messages.Add(1)
	l.sendSmall(wire.LaneControl, n.helloAck(l, h, n.issueNonce(peer)), 0)
}

// pendingHello is a hello answered on a link that was up when it came:
// the link starts a new session only once the dialer proves the
// answer's nonce (onRehelloProof).
type pendingHello struct {
	hello *wire.Hello
	nonce [32]byte
}

// modeOf is the link mode a hello asks for.
func modeOf(h *wire.Hello) engine.Mode {
	if h.Mode == byte(engine.ModeFlood) {
		return engine.ModeFlood
	}
	return engine.ModeOffer
}

// acceptLink replaces the accepted link from peer, if any, by a new one
// made from hello h and starts it; nil if it cannot subscribe.
func (n *Node) acceptLink(peer string, key manifest.PublicKey, h *wire.Hello) *Link {
	mode := modeOf(h)
	id := engine.LinkID{Peer: peer, Dir: engine.DirIn}
	n.mu.Lock()
	old := n.links[id]
	delete(n.links, id)
	n.mu.Unlock()
	if old != nil {
		old.stop()
	}
	l := newLink(n, id, mode, h.MaxRate)
	l.peerKey = key
	l.setPeerCaps(h.Caps)
	if h.Clock != 0 {
		l.measureClock(h.Clock, 0)
	}
	if old != nil {
		l.c = old.c
	}
	l.pair = wire.Pair{Dialer: peer, Acceptor: n.site}
	l.connP.Store(n.local)
	if err := l.subscribe(n.local, l.pair.Up()); err != nil {
		n.log.Error("accept link", "peer", peer, "err", err)
		return nil
	}
	n.mu.Lock()
	n.links[id] = l
	n.mu.Unlock()
	l.start(n.ctx)
	l.lastHeard.Store(time.Now().UnixNano())
	return l
}

// helloAck answers hello h on accepted link l with this site's proof over
// h's nonce and nonce, the one the dialer's proof must sign.
func (n *Node) helloAck(l *Link, h *wire.Hello, nonce [32]byte) *wire.Message {
	ack := &wire.Hello{Site: n.site, Proto: wire.ProtocolVersion, Caps: n.helloCaps(), Nonce: nonce, Key: n.cfg.Signer.PublicKey(),
		Mode: h.Mode, MaxRate: h.MaxRate, Sig: n.cfg.Signer.Sign(ProofMessage(h.Nonce, n.site, l.id.Peer, RoleAcceptor)), Clock: l.clockForPeer()}
	return &wire.Message{Type: wire.MsgHelloAck, Hello: ack}
}

// onHandshake handles a hello-ack (on a dialed link) or a proof (on an
// accepted link): the other side proves it holds its key.
func (n *Node) onHandshake(l *Link, msg *wire.Message) {
	h := msg.Hello
	if l.currentState() == linkUp {
		if msg.Type == wire.MsgProof && l.id.Dir == engine.DirIn {
			n.onRehelloProof(l, h)
		}
		return // an answer to an earlier hello, or a repeated proof
	}
	switch {
	case msg.Type == wire.MsgHelloAck && l.id.Dir == engine.DirOut:
		key, trusted := n.peerKey(l.id.Peer)
		nonces, sentAt := l.recentHellos()
		answered := proves(manifest.PublicKey(h.Key), nonces, l.id.Peer, n.site, RoleAcceptor, h.Sig)
		switch {
		case h.Site != l.id.Peer:
			l.refuse("peer answered as site " + h.Site)
		case h.Proto != wire.ProtocolVersion:
			l.refuse("protocol version mismatch")
		case !trusted:
			l.refuse("no key is trusted for this peer here (skyfed site trust)")
		case manifest.PublicKey(h.Key) != key:
			l.refuse("peer's key differs from the trusted one")
		case answered < 0:
			l.refuse("peer's proof of key failed")
		default:
			l.setPeerCaps(h.Caps)
			if h.Clock != 0 {
				// The hello-ack answers the hello whose nonce it signed:
				// from that hello's sending, the round trip.
				l.measureClock(h.Clock, time.Since(sentAt[answered]))
			}
			proof := &wire.Hello{Site: n.site, Proto: wire.ProtocolVersion, Key: n.cfg.Signer.PublicKey(),
				Sig: n.cfg.Signer.Sign(ProofMessage(h.Nonce, n.site, l.id.Peer, RoleDialer))}
			l.sendSmall(wire.LaneControl, &wire.Message{Type: wire.MsgProof, Hello: proof}, 0)
			l.setState(linkUp)
		}
	case msg.Type == wire.MsgProof && l.id.Dir == engine.DirIn:
		key, _ := n.peerKey(l.id.Peer)
		if !provesAny(key, n.recentNonces(l.id.Peer), l.id.Peer, n.site, RoleDialer, h.Sig) {
			l.refuse("dialer's proof of key failed")
			return
		}
		l.setState(linkUp)
	}
}

// onRehelloProof starts a new session on accepted link l, up, when the
// dialer proves the nonce of the hello-ack to a hello that came while it
// was up: the dialer started a new session.
func (n *Node) onRehelloProof(l *Link, proof *wire.Hello) {
	l.mu.Lock()
	pending := slices.Clone(l.rehellos)
	l.mu.Unlock()
	key, _ := n.peerKey(l.id.Peer)
	nonces := make([][32]byte, len(pending))
	for i, p := range pending {
		nonces[i] = p.nonce
	}
	i := proves(key, nonces, l.id.Peer, n.site, RoleDialer, proof.Sig)
	if i < 0 {
		return
	}
	p := pending[i]
	l.mu.Lock()
	l.rehellos = nil
	l.mu.Unlock()
	// The new session starts on this link, here and now, so that the
	// offers the dialer sends right after its proof (on this lane, read
	// after it) meet the new session: the engine sees the link go down
	// and up, the window and what was queued start afresh. onHello made
	// sure the hello asks this link's mode and rate.
	l.setPeerCaps(p.hello.Caps)
	if p.hello.Clock != 0 {
		l.measureClock(p.hello.Clock, 0)
	}
	l.setState(linkDown)
	l.setState(linkUp)
}

// maxNonces is how many recent hellos a side accepts answers to: hellos
// are re-sent while unanswered, and the answer to an earlier one may come.
const maxNonces = 4

// provesAny reports whether sig proves key's holder signed one of nonces.
func provesAny(key manifest.PublicKey, nonces [][32]byte, signer, other, role string, sig []byte) bool {
	return proves(key, nonces, signer, other, role, sig) >= 0
}

// proves returns the index of the nonce sig proves key's holder signed,
// or -1.
func proves(key manifest.PublicKey, nonces [][32]byte, signer, other, role string, sig []byte) int {
	for i, nonce := range nonces {
		if key.Verify(ProofMessage(nonce, signer, other, role), sig) {
			return i
		}
	}
	return -1
}

// recentHellos returns the nonces of the recent hellos and when each was sent.
func (l *Link) recentHellos() ([][32]byte, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][32]byte(nil), l.nonces...), append([]time.Time(nil), l.helloAt...)
}

// issueNonce returns a fresh nonce for a hello-ack to peer and remembers
// it among the recent ones.
func (n *Node) issueNonce(peer string) [32]byte {
	nonce := newNonce()
	n.mu.Lock()
	defer n.mu.Unlock()
	ns := append(n.nonces[peer], nonce)
	if len(ns) > maxNonces {
		ns = ns[1:]
	}
	n.nonces[peer] = ns
	return nonce
}

func (n *Node) recentNonces(peer string) [][32]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][32]byte(nil), n.nonces[peer]...)
}

func (l *Link) refuse(why string) {
	l.node.refusedHandshake(l.id.Peer, why)
	l.c.rejected.Add(1)
	l.setStateWhy(linkRefused, ReasonAuth, errors.New("handshake: "+why))
}

// Codec agreement. Each side lists in its hello (and hello-ack) the
// codecs it decodes, as bits of Hello.Caps, and a sender never ships a
// payload in a codec the peer did not list: the peer would refuse it as
// corrupt, for good. The bits live in Caps so that the hello's encoding
// is unchanged and old peers, which read Caps as a mask, ignore them.
const (
	// capCodecs says the bits from codecCapShift up list the codecs the
	// sender decodes: bit codecCapShift+c for codec c. A peer without it
	// predates the list: it decodes codecs 0–2 (legacyCodecs).
	capCodecs uint32 = 1 << 15
	// codecCapShift is the first bit of the codec list; codecs above
	// maxListedCodec cannot be listed this way (a new field would be
	// needed, under a new capability).
	codecCapShift  = 16
	maxListedCodec = 15
)

// codecSet is a set of codecs, bit c for codec c.
type codecSet uint16

// legacyCodecs are what a peer that lists no codecs decodes.
const legacyCodecs = codecSet(1<<chunk.CodecRaw | 1<<chunk.CodecZstd | 1<<chunk.CodecZstdShuffle16)

func (s codecSet) has(c chunk.Codec) bool { return c <= maxListedCodec && s&(1<<c) != 0 }

// localCodecs are the codecs this build decodes.
func localCodecs() codecSet {
	var s codecSet
	for c := chunk.Codec(0); c <= maxListedCodec; c++ {
		if c.Valid() {
			s |= 1 << c
		}
	}
	return s
}

// peerCodecs returns the codecs a peer decodes, from the caps of its
// hello. Raw is always among them.
func peerCodecs(caps uint32) codecSet {
	if caps&capCodecs == 0 {
		return legacyCodecs
	}
	return codecSet(caps>>codecCapShift) | 1<<chunk.CodecRaw
}

// helloCaps are the caps this site announces: its capabilities and the
// codecs it decodes.
func (n *Node) helloCaps() uint32 {
	return n.caps() | capCodecs | uint32(localCodecs())<<codecCapShift
}

// shipPayload returns what to ship to this link's peer: the stored
// payload, or, when the peer did not list its codec, the raw bytes it
// decodes to. Decoding is cheap (about 1 GB/s) and re-encoding would
// be a second compression of the chunk in the federation, so the peer
// gets the chunk raw; it stores it raw and relays it raw.
func (l *Link) shipPayload(ctx context.Context, k Kind, id chunk.ID) (chunk.Codec, []byte, uint32, error) {
	c, payload, rawLen, err := l.node.payloadToShip(ctx, k, id)
	if err != nil || c == chunk.CodecRaw {
		return c, payload, rawLen, err
	}
	l.mu.Lock()
	caps := l.health.peerCaps
	l.mu.Unlock()
	if peerCodecs(caps).has(c) {
		return c, payload, rawLen, nil
	}
	raw, err := chunk.Decode(c, payload, nil, int(rawLen))
	if err == nil && len(raw) != int(rawLen) {
		err = fmt.Errorf("decoded %d bytes, stored as %d: %w", len(raw), rawLen, chunk.ErrCorrupt)
	}
	if err != nil {
		return 0, nil, 0, fmt.Errorf("decode chunk %s for a peer without codec %s: %w", id.Short(), c, err)
	}
	l.node.stores.compress.noteDowngraded()
	return chunk.CodecRaw, raw, rawLen, nil
}
