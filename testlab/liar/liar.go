// Package liar is a lying skyfed peer for tests: a NATS client that
// authenticates as the nkey user of a site key and speaks the link
// protocol of package forward by hand, so that a test can send what an
// honest site never would: payloads that do not hash to the ID they are
// offered under, forged or badly signed manifests, hellos and proofs that
// lie, messages on subjects that belong to another pair of sites.
//
// It owns no storage and makes no forwarding decisions; it answers every
// offer the acceptor makes with "have", so the acceptor never ships it
// anything, and it keeps the link alive with pings.
package liar

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// Sentinel errors callers branch on.
var (
	// ErrNoAnswer reports that the acceptor did not answer in time: it
	// refused the handshake, or the link is not up.
	ErrNoAnswer = errors.New("no answer from the acceptor")
	// ErrNotWanted reports that the acceptor answered an offer with
	// have or later instead of want.
	ErrNotWanted = errors.New("offer not wanted")
)

// Roles in handshake proofs.
const (
	RoleDialer   = forward.RoleDialer
	RoleAcceptor = forward.RoleAcceptor
)

// pingEvery keeps the acceptor from declaring the link dead (it does so
// after 10 s of silence).
const pingEvery = time.Second

// ProofMessage is what each side of a link signs in the handshake.
var ProofMessage = forward.ProofMessage

// Connect opens a NATS connection to url authenticated as the nkey user
// of key (the way skyfed sites authenticate), without reconnecting.
func Connect(url string, key *manifest.KeyPair, opts ...nats.Option) (*nats.Conn, error) {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, key.Seed())
	if err != nil {
		return nil, fmt.Errorf("liar key as nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("liar nkey: %w", err)
	}
	// A liar does not care whom it talks to: it takes any certificate
	// when the site's server requires TLS.
	anyCert := func(o *nats.Options) error { o.TLSConfig = &tls.Config{InsecureSkipVerify: true}; return nil }
	all := append([]nats.Option{nats.Name("skyfed liar"), nats.Nkey(pub, kp.Sign), nats.NoReconnect(), anyCert}, opts...)
	conn, err := nats.Connect(url, all...)
	if err != nil {
		return nil, fmt.Errorf("liar connect to %s: %w", url, err)
	}
	return conn, nil
}

// Config says whom the liar dials and as whom.
type Config struct {
	URL      string            // the acceptor's NATS URL
	Site     string            // the site ID the link subjects are named with
	Acceptor string            // the acceptor's site ID
	Key      *manifest.KeyPair // the liar authenticates as this key's nkey user and signs honest proofs with it
	// AcceptorKey, if set, is checked against the acceptor's hello-ack
	// and proof in Handshake.
	AcceptorKey manifest.PublicKey
	// Timeout bounds each wait for an answer, an ack or a hello-ack; 0 → 10 s.
	Timeout time.Duration
}

// Peer is one lying dialer, connected to the acceptor's NATS server.
type Peer struct {
	cfg  Config
	conn *nats.Conn
	sub  *nats.Subscription

	mu       sync.Mutex
	batch    uint64
	answers  map[uint64]chan []wire.Answer
	acks     map[chunk.ID]chan wire.AckStatus
	helloAck chan *wire.Hello
	errs     []error
	nonce    [32]byte

	stop chan struct{}
	wg   sync.WaitGroup
}

// Dial connects to the acceptor's server as cfg.Key's nkey user and
// listens on the pair's acceptor-to-dialer subjects. It sends nothing on
// the link yet: call Handshake, or SendHello and Proof to lie in it.
func Dial(cfg Config) (*Peer, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	p := &Peer{
		cfg:      cfg,
		answers:  map[uint64]chan []wire.Answer{},
		acks:     map[chunk.ID]chan wire.AckStatus{},
		helloAck: make(chan *wire.Hello, 4),
		stop:     make(chan struct{}),
	}
	conn, err := Connect(cfg.URL, cfg.Key, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		p.mu.Lock()
		p.errs = append(p.errs, err)
		p.mu.Unlock()
	}))
	if err != nil {
		return nil, err
	}
	p.conn = conn
	p.sub, err = conn.Subscribe(p.pair().Down()+".>", p.onMessage)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("liar subscribe: %w", err)
	}
	if err := conn.Flush(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("liar flush: %w", err)
	}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.pingLoop() }()
	return p, nil
}

// Close stops the pings and closes the connection.
func (p *Peer) Close() {
	close(p.stop)
	p.wg.Wait()
	p.conn.Close()
}

// Conn returns the liar's NATS connection, for raw publishes.
func (p *Peer) Conn() *nats.Conn { return p.conn }

// Errors returns the asynchronous errors the server sent so far
// (permission violations, for example).
func (p *Peer) Errors() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.errs...)
}

func (p *Peer) pair() wire.Pair { return wire.Pair{Dialer: p.cfg.Site, Acceptor: p.cfg.Acceptor} }

// Subject returns the dialer-to-acceptor subject of a lane suffix
// ("hello", "ctl", "man", "look", "bulk").
func (p *Peer) Subject(suffix string) string { return p.pair().Up() + "." + suffix }

// Send validates and publishes one message on its lane's subject.
func (p *Peer) Send(lane wire.Lane, m *wire.Message) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("liar send: %w", err)
	}
	return p.Publish(p.pair().UpLane(lane), m.Encode())
}

// Publish publishes raw bytes on any subject (which the server may refuse).
func (p *Peer) Publish(subject string, body []byte) error {
	if err := p.conn.Publish(subject, body); err != nil {
		return fmt.Errorf("liar publish %s: %w", subject, err)
	}
	return nil
}

// Honest returns the hello an honest dialer with the liar's config sends.
func (p *Peer) Honest() *wire.Hello {
	return &wire.Hello{Site: p.cfg.Site, Proto: wire.ProtocolVersion, Nonce: newNonce(), Key: p.cfg.Key.PublicKey()}
}

// SendHello publishes h (honest or not) on the pair's hello subject and
// remembers its nonce, which the acceptor's proof must sign.
func (p *Peer) SendHello(h *wire.Hello) error {
	p.mu.Lock()
	p.nonce = h.Nonce
	p.mu.Unlock()
	m := &wire.Message{Type: wire.MsgHello, Hello: h}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("liar hello: %w", err)
	}
	return p.Publish(p.pair().Hello(), m.Encode())
}

// AwaitHelloAck waits for the acceptor's hello-ack.
func (p *Peer) AwaitHelloAck(ctx context.Context) (*wire.Hello, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	select {
	case h := <-p.helloAck:
		return h, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("liar: hello-ack: %w", ErrNoAnswer)
	}
}

// Proof publishes a proof signed by signer over msg.
func (p *Peer) Proof(signer manifest.Signer, msg []byte) error {
	return p.Send(wire.LaneControl, &wire.Message{Type: wire.MsgProof, Hello: &wire.Hello{Sig: signer.Sign(msg)}})
}

// Handshake runs an honest handshake: hello, the acceptor's hello-ack
// (checked against cfg.AcceptorKey when set), proof. The acceptor's link
// is up once it has read the proof; messages sent on the control lane
// after it are read after it.
func (p *Peer) Handshake(ctx context.Context) error {
	h := p.Honest()
	if err := p.SendHello(h); err != nil {
		return err
	}
	ack, err := p.AwaitHelloAck(ctx)
	if err != nil {
		return err
	}
	if ack.Site != p.cfg.Acceptor {
		return fmt.Errorf("liar: acceptor answered as %q, want %q", ack.Site, p.cfg.Acceptor)
	}
	key := manifest.PublicKey(ack.Key)
	if p.cfg.AcceptorKey != (manifest.PublicKey{}) && key != p.cfg.AcceptorKey {
		return fmt.Errorf("liar: acceptor key %s, want %s", key, p.cfg.AcceptorKey)
	}
	if !key.Verify(ProofMessage(h.Nonce, p.cfg.Acceptor, p.cfg.Site, RoleAcceptor), ack.Sig) {
		return fmt.Errorf("liar: acceptor's proof of key does not verify")
	}
	return p.Proof(p.cfg.Key, ProofMessage(ack.Nonce, p.cfg.Site, p.cfg.Acceptor, RoleDialer))
}

func (p *Peer) pingLoop() {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		seq++
		if p.conn.IsConnected() {
			p.Send(wire.LaneControl, &wire.Message{Type: wire.MsgPing, Ping: &wire.Ping{Seq: seq}})
		}
	}
}

// onMessage reads what the acceptor sends: hello-acks, answers and acks
// are handed to their waiters; offers are answered "have".
func (p *Peer) onMessage(m *nats.Msg) {
	msg, err := wire.DecodeMessage(m.Data)
	if err != nil {
		p.mu.Lock()
		p.errs = append(p.errs, fmt.Errorf("liar: acceptor sent a malformed message on %s: %w", m.Subject, err))
		p.mu.Unlock()
		return
	}
	switch msg.Type {
	case wire.MsgHelloAck:
		select {
		case p.helloAck <- msg.Hello:
		default:
		}
	case wire.MsgAnswer:
		p.mu.Lock()
		ch := p.answers[msg.Answer.Batch]
		delete(p.answers, msg.Answer.Batch)
		p.mu.Unlock()
		if ch != nil {
			ch <- msg.Answer.Answers
		}
	case wire.MsgAck:
		p.mu.Lock()
		for i, id := range msg.Ack.IDs {
			if ch := p.acks[id]; ch != nil {
				delete(p.acks, id)
				ch <- msg.Ack.Status[i]
			}
		}
		p.mu.Unlock()
	case wire.MsgOffer:
		have := make([]wire.Answer, len(msg.Offer.IDs))
		for i := range have {
			have[i] = wire.AnswerHave
		}
		p.Send(wire.LaneControl, &wire.Message{Type: wire.MsgAnswer,
			Answer: &wire.AnswerMsg{Lane: msg.Offer.Lane, Batch: msg.Offer.Batch, Answers: have}})
	}
}

// Offer offers ids on lane (LaneManifest or LaneBulk) and returns the
// acceptor's answers.
func (p *Peer) Offer(ctx context.Context, lane wire.Lane, ids []chunk.ID) ([]wire.Answer, error) {
	raw := make([][32]byte, len(ids))
	for i, id := range ids {
		raw[i] = id
	}
	ch := make(chan []wire.Answer, 1)
	p.mu.Lock()
	p.batch++
	batch := p.batch
	p.answers[batch] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.answers, batch)
		p.mu.Unlock()
	}()
	if err := p.Send(wire.LaneControl, &wire.Message{Type: wire.MsgOffer,
		Offer: &wire.Offer{Lane: lane, Batch: batch, IDs: raw}}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	select {
	case a := <-ch:
		return a, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("liar: answer to offer %d: %w", batch, ErrNoAnswer)
	}
}

// Payload is one payload as the liar ships it: any bytes under any ID.
type Payload struct {
	Lane    wire.Lane   // LaneBulk for chunks, LaneManifest for manifests
	ID      chunk.ID    // the ID claimed
	Codec   chunk.Codec // as claimed
	RawLen  uint32      // as claimed (the wire codec requires RawLen == len(Bytes) for CodecRaw)
	Bytes   []byte      // what is actually sent
	Flood   bool        // marked as pushed unasked
	NoOffer bool        // Push sends it without offering it first (as flood mode does)
}

// Chunk returns the honest payload of a raw chunk.
func Chunk(raw []byte) Payload {
	return Payload{Lane: wire.LaneBulk, ID: chunk.Sum(raw), Codec: chunk.CodecRaw, RawLen: uint32(len(raw)), Bytes: raw}
}

// ManifestPayload returns the honest payload of a manifest.
func ManifestPayload(m *manifest.Manifest) Payload {
	enc := m.Encode()
	return Payload{Lane: wire.LaneManifest, ID: m.ID(), Codec: chunk.CodecRaw, RawLen: uint32(len(enc)), Bytes: enc}
}

// SendFrames publishes pl framed to wire.FrameSize.
func (p *Peer) SendFrames(pl Payload) error {
	total := len(pl.Bytes)
	for off := 0; off < total || off == 0; off += wire.FrameSize {
		end := min(off+wire.FrameSize, total)
		d := &wire.Data{Lane: pl.Lane, ID: pl.ID, Codec: byte(pl.Codec), RawLen: pl.RawLen, Total: uint32(total),
			Offset: uint32(off), Flood: pl.Flood, Payload: pl.Bytes[off:end]}
		if err := p.Send(pl.Lane, &wire.Message{Type: wire.MsgData, Data: d}); err != nil {
			return err
		}
		if total == 0 {
			break
		}
	}
	return nil
}

// Push offers pl (unless pl.NoOffer), sends it when wanted, and returns
// the acceptor's ack status: stored, duplicate or rejected.
func (p *Peer) Push(ctx context.Context, pl Payload) (wire.AckStatus, error) {
	if !pl.NoOffer {
		a, err := p.Offer(ctx, pl.Lane, []chunk.ID{pl.ID})
		if err != nil {
			return 0, err
		}
		if len(a) != 1 || a[0] != wire.AnswerWant {
			return 0, fmt.Errorf("liar: offer of %s answered %v: %w", pl.ID.Short(), a, ErrNotWanted)
		}
	}
	ch := make(chan wire.AckStatus, 1)
	p.mu.Lock()
	p.acks[pl.ID] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.acks[pl.ID] == ch {
			delete(p.acks, pl.ID)
		}
		p.mu.Unlock()
	}()
	if err := p.SendFrames(pl); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	select {
	case s := <-ch:
		return s, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("liar: ack of %s: %w", pl.ID.Short(), ErrNoAnswer)
	}
}

func newNonce() [32]byte {
	var b [32]byte
	rand.Read(b[:])
	return b
}
