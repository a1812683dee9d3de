package forward

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// LinkConfig is one link this site dials.
type LinkConfig struct {
	Peer    string
	URL     string
	MaxRate uint64 // bytes/s, 0 unlimited
	Mode    engine.Mode
}

// NodeConfig wires a Node to its site.
type NodeConfig struct {
	Site   string
	Signer interface {
		manifest.Signer
		Seed() []byte
	}
	Stores *Stores
	// PeerKey returns the trusted key of a peer site.
	PeerKey func(peer string) (manifest.PublicKey, bool)
	Logger  *slog.Logger
	// Timing of the engine; zero means engine.DefaultTiming().
	Timing engine.Timing
	// OnReject, if set, hears of every input refused after the NATS
	// server admitted it (bad handshakes, malformed messages, payloads
	// that fail verification), by reason.
	OnReject func(reason string)
	// Now is the site's wall clock (stamps, expiry, the skew check): the
	// node sends it to peers and measures their clocks against it; nil
	// means time.Now. Timeouts and liveness use the real clock.
	Now func() time.Time
	// MaxSkew is how far ahead of this site's clock a peer's stamps may
	// be (naming's Config.MaxSkew); 0 means DefaultMaxSkew. Links whose
	// peer's clock is off by more show ReasonClockSkew.
	MaxSkew time.Duration
	// Inventory is the site's reconciliation table (OpenInventory); nil
	// turns reconciliation off.
	Inventory *Inventory
	// OnNoSpace, if set, hears of every store from a link that failed
	// with ENOSPC, so the site looks at its disk at once (SetFull).
	OnNoSpace func()
	// DialTLS, if set, says how a dialed link to peer at url secures
	// its connection (linktls.go); nil dials in plain text.
	DialTLS func(peer, url string) (DialTLS, error)
	// AcceptedTLS, if set, returns the TLS state of the connection peer
	// dialed this site with (nil in plain text), for status.
	AcceptedTLS func(peer string) *tls.ConnectionState
	// BeaconBody, if set, makes this site's status beacon body
	// (beacon.go): sent every BeaconEvery and soon after a link changes
	// state. nil sends no beacons (others are still passed on).
	BeaconBody func() []byte
	// BeaconEvery is how often a beacon goes out; 0 means DefaultBeaconEvery.
	BeaconEvery time.Duration
}

// ErrIncomplete means a query ended (deadline) before every reached site answered.
var ErrIncomplete = engine.ErrIncomplete

// tickEvery is how often the engine hears the time.
const tickEvery = 100 * time.Millisecond

// maxBatch bounds the events stepped before a Ready is carried out.
const maxBatch = 64

// Node runs a site's forwarding engine over NATS and Pebble: it owns the
// links (dialed and accepted), feeds the engine their events from one
// loop, and carries out what the engine decides.
type Node struct {
	site    string
	cfg     NodeConfig
	stores  *Stores
	log     *slog.Logger
	peerKey func(string) (manifest.PublicKey, bool)

	ctx     context.Context
	cancel  context.CancelFunc
	local   *nats.Conn
	hello   *nats.Subscription
	helloMu sync.RWMutex // held (read) by the hello callback; Close waits for it
	closed  bool
	events  chan engine.Event
	wg      sync.WaitGroup

	engMu sync.Mutex // the engine is single-threaded: the loop steps it, status reads it
	eng   *engine.Engine

	mu        sync.Mutex
	links     map[engine.LinkID]*Link
	dialed    map[string]LinkConfig
	refusals  map[string]int64      // in-link refusals by claimed peer
	refusedAt map[string]refusal    // per claimed peer, the last refusal
	rejects   map[string]int64      // refused inputs by kind
	nonces    map[string][][32]byte // per dialing peer, the nonces of recent hello-acks
	nextReq   uint64
	waiting   map[uint64]chan any // local asks and fetches: their answers
	cwait     map[chunk.ID][]chan struct{}

	warnings *noteLimiter // rate-limits the engine's repeated notes and counts them all

	inv      *Inventory
	recons   map[string]*reconStats // by peer
	syncedAt time.Time              // when the loop last folded the log into the table

	beaconNudge chan struct{} // a link changed state: send a beacon soon (beacon.go)
}

// refusal is the last time a dialer was refused here, and why.
type refusal struct {
	at  time.Time
	why string
}

// NewNode returns a node; Serve starts accepting links and the engine's
// loop, SetLinks dials.
func NewNode(cfg NodeConfig) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		site: cfg.Site, cfg: cfg, stores: cfg.Stores, log: cfg.Logger, peerKey: cfg.PeerKey,
		ctx: ctx, cancel: cancel, events: make(chan engine.Event, 4096),
		links: map[engine.LinkID]*Link{}, dialed: map[string]LinkConfig{}, refusals: map[string]int64{}, refusedAt: map[string]refusal{}, rejects: map[string]int64{},
		warnings: newNoteLimiter(warnEvery),
		nonces:   map[string][][32]byte{}, waiting: map[uint64]chan any{}, cwait: map[chunk.ID][]chan struct{}{}, beaconNudge: make(chan struct{}, 1),
		inv: cfg.Inventory, recons: map[string]*reconStats{},
	}
	ecfg := engine.Config{
		Site: cfg.Site, Storage: storage{cfg.Stores}, Timing: cfg.Timing,
		Sign: cfg.Signer.Sign, Verify: n.verify, Rand: rand.Reader,
	}
	if n.inv != nil {
		ecfg.Storage = reconStorage{storage{cfg.Stores}, n.inv}
		ecfg.Inventory = n.inv
	}
	n.eng = engine.New(ecfg)
	return n
}

func (n *Node) verify(site string, msg, sig []byte) (ok, known bool) {
	key, known := n.peerKey(site)
	if !known {
		return false, false
	}
	return key.Verify(msg, sig), true
}

// Serve accepts links dialed to this site, over local, a connection to
// the site's own NATS server, and starts the engine's loop.
func (n *Node) Serve(local *nats.Conn) error {
	n.local = local
	sub, err := local.Subscribe(wire.HelloWildcard(n.site), func(m *nats.Msg) {
		n.helloMu.RLock()
		defer n.helloMu.RUnlock()
		if !n.closed {
			n.onHello(m)
		}
	})
	if err != nil {
		return fmt.Errorf("accept links: %w", err)
	}
	n.hello = sub
	n.wg.Add(4)
	go func() { defer n.wg.Done(); n.loop() }()
	go func() { defer n.wg.Done(); n.tickLoop() }()
	go func() { defer n.wg.Done(); n.logLoop() }()
	go func() { defer n.wg.Done(); n.beaconLoop() }()
	return nil
}

// Close stops every link and the engine's loop.
func (n *Node) Close() {
	if n.hello != nil {
		n.hello.Unsubscribe()
	}
	n.helloMu.Lock() // waits for a hello under way
	n.closed = true
	n.helloMu.Unlock()
	n.mu.Lock()
	links := n.links
	n.links = map[engine.LinkID]*Link{}
	n.mu.Unlock()
	for _, l := range links {
		l.stop()
		if l.id.Dir == engine.DirOut {
			l.closeConn()
		}
	}
	n.cancel()
	n.wg.Wait()
	if n.inv != nil {
		if err := n.inv.Sync(true); err != nil {
			n.log.Warn("reconciliation: persist table at close", "err", err)
		}
	}
}

// post hands an event to the engine's loop.
func (n *Node) post(ev engine.Event) { n.postCtx(n.ctx, ev) }

// postCtx hands an event to the loop unless ctx (or the node) ends first.
func (n *Node) postCtx(ctx context.Context, ev engine.Event) {
	select {
	case n.events <- ev:
	case <-ctx.Done():
	case <-n.ctx.Done():
	}
}

// loop is the engine's one owner: it steps it with every event and
// carries out its Ready, never blocking on a link.
func (n *Node) loop() {
	var own []engine.Event // events carryOut made, stepped before the next wait
	for {
		var ev engine.Event
		if len(own) == 0 {
			select {
			case <-n.ctx.Done():
				return
			case ev = <-n.events:
			}
		}
		n.engMu.Lock()
		for _, e := range own {
			n.eng.Step(e)
		}
		own = own[:0]
		if ev != nil {
			n.eng.Step(ev)
		}
		// Take what else is waiting, up to a bound, so a busy link's
		// frames cannot hold back what the engine decided.
		for more := maxBatch; more > 0; more-- {
			select {
			case ev = <-n.events:
				n.eng.Step(ev)
			default:
				more = 0
			}
		}
		rd := n.eng.Ready()
		n.engMu.Unlock()
		own = n.carryOut(rd, own)
		n.syncInventory()
	}
}

func (n *Node) tickLoop() {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.post(engine.Tick{Now: now})
		}
	}
}

// logLoop tells the engine of entries a local put appended.
func (n *Node) logLoop() {
	for {
		changed := n.stores.Log.Changed()
		select {
		case <-n.ctx.Done():
			return
		case <-changed:
			n.post(engine.LogGrew{Now: time.Now()})
		}
	}
}

// carryOut does what the engine decided. A store whose link is gone is
// answered at once as failed (appended to own): the engine holds a claim
// on that payload until it hears how its store ended, and a claim that
// never ends answers "later" to every other link's offer forever.
func (n *Node) carryOut(rd engine.Ready, own []engine.Event) []engine.Event {
	for _, c := range rd.Cursors {
		if err := n.stores.Log.SetCursor(c.Kind, c.Link.String(), c.Seq); err != nil {
			n.log.Error("persist cursor", "link", c.Link, "err", err)
		}
	}
	for _, s := range rd.Stores {
		if l := n.link(s.Link); l != nil && l.stores.push(s, 0) {
			continue
		}
		own = append(own, abandoned(s, time.Now()))
	}
	for _, m := range rd.Messages {
		if l := n.link(m.Link); l != nil {
			l.sendSmall(m.Lane, m.Msg, l.currentSession())
		}
	}
	for _, s := range rd.Ships {
		if l := n.link(s.Link); l != nil && l.ships[s.Lane] != nil {
			l.ships[s.Lane].push(s, l.currentSession())
		}
	}
	for _, q := range rd.Queries {
		n.answer(q.Req, q)
	}
	for _, f := range rd.Fetches {
		n.answer(f.Req, f)
	}
	for _, c := range rd.Confirmed {
		n.mu.Lock()
		ws := n.cwait[c.ID]
		n.mu.Unlock()
		for _, w := range ws {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
	for _, r := range rd.Rejects {
		if l := n.link(r.Link); l != nil {
			l.c.rejected.Add(1)
		}
		n.rejected(r.Reason)
	}
	for _, note := range rd.Notes {
		n.logNote(note)
	}
	for _, x := range rd.Recons {
		n.reconEnded(x)
	}
	return own
}

// abandoned is how a store ends that was never tried: as a local
// failure, so the engine acks nothing and the sender offers it again.
func abandoned(s engine.Store, now time.Time) engine.StoreDone {
	return engine.StoreDone{Now: now, Link: s.Link, Lane: s.Lane, Kind: s.Kind, ID: s.ID, Result: engine.Failed,
		Reason: "the link closed before the payload was stored"}
}

func (n *Node) link(id engine.LinkID) *Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[id]
}

// request registers a local ask or fetch and returns its number and
// the channel its answer comes on.
func (n *Node) request() (uint64, chan any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nextReq++
	ch := make(chan any, 1)
	n.waiting[n.nextReq] = ch
	return n.nextReq, ch
}

func (n *Node) answer(req uint64, v any) {
	n.mu.Lock()
	ch := n.waiting[req]
	delete(n.waiting, req)
	n.mu.Unlock()
	if ch != nil {
		ch <- v
	}
}

func (n *Node) forget(req uint64) {
	n.mu.Lock()
	delete(n.waiting, req)
	n.mu.Unlock()
	n.post(engine.Cancel{Now: time.Now(), Req: req})
}

// engineDeadline ends the engine's side of a request a little before
// ctx does, so that what came by then is returned.
func engineDeadline(ctx context.Context) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	if early := dl.Add(-2 * tickEvery); early.After(time.Now()) {
		return early
	}
	return dl
}

// Track notes a manifest that became known here from elsewhere (a
// lookup), to confirm it to the federation once all its chunks are here.
func (n *Node) Track(id chunk.ID) { n.post(engine.Track{Now: time.Now(), ID: id}) }

// SetFull tells the engine whether this site's disk is full (below its
// reserve). While it is, offers of what the site lacks are answered
// "later", and peers that take wire.MsgSpace hold their offers until
// they hear it has room again, then offer at once.
func (n *Node) SetFull(full bool) { n.post(engine.SpaceChanged{Now: time.Now(), Full: full}) }

// Confirmed returns the sites other than this one that confirmed id.
func (n *Node) Confirmed(id chunk.ID) []string {
	n.engMu.Lock()
	defer n.engMu.Unlock()
	return n.eng.Confirmed(id)
}

// WaitConfirmed waits until want sites, this one included, hold manifest
// id durably, or ctx ends; it returns how many did.
func (n *Node) WaitConfirmed(ctx context.Context, id chunk.ID, want int) (int, error) {
	wake := make(chan struct{}, 1)
	n.mu.Lock()
	n.cwait[id] = append(n.cwait[id], wake)
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		ws := n.cwait[id]
		for i, w := range ws {
			if w == wake {
				n.cwait[id] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(n.cwait[id]) == 0 {
			delete(n.cwait, id)
		}
		n.mu.Unlock()
	}()
	for {
		got := 1 + len(n.Confirmed(id))
		if got >= want {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-wake:
		}
	}
}

// SetLinks makes the dialed links match cfgs: new ones start, removed
// ones stop, changed ones restart.
func (n *Node) SetLinks(cfgs []LinkConfig) {
	want := map[string]LinkConfig{}
	for _, c := range cfgs {
		want[c.Peer] = c
	}
	n.mu.Lock()
	var stop []*Link
	var start []LinkConfig
	for peer, old := range n.dialed {
		if c, ok := want[peer]; !ok || c != old {
			id := engine.LinkID{Peer: peer, Dir: engine.DirOut}
			stop = append(stop, n.links[id])
			delete(n.links, id)
			delete(n.dialed, peer)
		}
	}
	for peer, c := range want {
		if _, ok := n.dialed[peer]; !ok {
			n.dialed[peer] = c
			start = append(start, c)
		}
	}
	n.mu.Unlock()
	for _, l := range stop {
		if l != nil {
			l.stop()
			l.closeConn()
		}
	}
	for _, c := range start {
		l := newLink(n, engine.LinkID{Peer: c.Peer, Dir: engine.DirOut}, c.Mode, c.MaxRate)
		l.pair = wire.Pair{Dialer: n.site, Acceptor: c.Peer}
		l.url = c.URL
		n.mu.Lock()
		n.links[l.id] = l
		n.mu.Unlock()
		l.start(n.ctx)
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.dialLoop() }()
	}
}

func (n *Node) rejected(kind string) {
	n.mu.Lock()
	n.rejects[kind]++
	n.mu.Unlock()
	if n.cfg.OnReject != nil {
		n.cfg.OnReject(kind)
	}
}

// refusedHandshake records a handshake refused after the NATS server
// admitted the client.
func (n *Node) refusedHandshake(peer, why string) {
	n.Refused(peer, why)
	n.rejected("handshake")
}

// DropUntrusted stops accepted links whose peer is no longer trusted, or
// is trusted under another key than the one it proved (the trust store
// was edited while the site runs).
func (n *Node) DropUntrusted() {
	n.mu.Lock()
	var drop []*Link
	for id, l := range n.links {
		if id.Dir != engine.DirIn {
			continue
		}
		if key, ok := n.peerKey(id.Peer); !ok || key != l.peerKey {
			drop = append(drop, l)
			delete(n.links, id)
		}
	}
	n.mu.Unlock()
	for _, l := range drop {
		n.log.Warn("peer no longer trusted; link dropped", "peer", l.id.Peer)
		l.stop()
	}
}

// Refused counts a dialer refused before it became a link (untrusted
// key, anonymous, bad handshake), for status and metrics.
func (n *Node) Refused(peer, why string) {
	if peer == "" {
		peer = "unknown"
	}
	n.mu.Lock()
	n.refusals[peer]++
	n.refusedAt[peer] = refusal{at: time.Now(), why: why}
	n.mu.Unlock()
	n.log.Warn("link refused", "peer", peer, "why", why)
}

// Rejected returns refused inputs by kind.
func (n *Node) Rejected() map[string]int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]int64, len(n.rejects))
	for k, v := range n.rejects {
		out[k] = v
	}
	return out
}

func newNonce() [32]byte {
	var b [32]byte
	rand.Read(b[:])
	return b
}

// ProofMessage is what each side signs: the other's nonce bound to both
// site IDs and the signer's role, so a proof cannot be replayed elsewhere.
func ProofMessage(nonce [32]byte, signer, other, role string) []byte {
	return []byte("skyfed-link-v1\x00" + role + "\x00" + signer + "\x00" + other + "\x00" + string(nonce[:]))
}

// nkeyOption authenticates to a NATS server as this site's nkey user.
func (n *Node) nkeyOption() (nats.Option, error) {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, n.cfg.Signer.Seed())
	if err != nil {
		return nil, fmt.Errorf("site key as nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, kp.Sign), nil
}

func isAuthError(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization"))
}
