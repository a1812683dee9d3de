package forward

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// Link states as status shows them.
const (
	StateDown    = "down"
	StateUp      = "up"
	StateRefused = "refused"
)

// Modes of a link.
const (
	ModeOffer = "offer"
	ModeFlood = "flood"
)

// Directions of a link, as seen from this site.
const (
	DirOut = "out" // this site dialed
	DirIn  = "in"  // the peer dialed
)

// wire.Lane subjects under a link's prefix.
var laneSubject = map[wire.Lane]string{wire.LaneControl: "ctl", wire.LaneManifest: "man", wire.LaneLookup: "look", wire.LaneBulk: "bulk"}

const (
	chunkOfferBatch    = 16
	manifestOfferBatch = 256
	maxLoaded          = 4096 // entries loaded into one window at a time
	maxAwaitingChunks  = 32   // chunk payloads sent and not yet acked (fills the bandwidth-delay product)
	maxAwaitingMani    = 512
	pingEvery          = 2 * time.Second
	deadAfter          = 10 * time.Second
	maxAssemblies      = 64
)

// counters of one link; exported through Status and metrics.
type counters struct {
	sentChunks, receivedChunks         atomic.Int64
	sentManifests, receivedManifests   atomic.Int64
	sentRaw, sentWire                  atomic.Int64
	receivedRaw, receivedWire          atomic.Int64
	offered, wanted, duplicates        atomic.Int64
	duplicateBytes, rejected, messages atomic.Int64
	duplicateChunks                    atomic.Int64
	sentMessages                       atomic.Int64
	sentPayload                        atomic.Int64 // bytes of wire.Data payloads sent (the rest of sentWire is control)
	sendRate, receiveRate              atomic.Int64 // wire bytes/s over the last sampling interval
}

// Link is one end of a link: the pumps that send this site's arrivals to
// the peer and the receiver of what the peer sends.
type Link struct {
	node    *Node
	name    string // "out:<peer>" or "in:<peer>", the From of what arrives on it
	peer    string
	dir     string
	mode    string
	url     string // dialed links: the peer's NATS URL
	connP   atomic.Pointer[nats.Conn]
	tx, rx  string             // subject prefixes to publish on and to receive on
	nonces  [][32]byte         // dialed links: nonces of the recent hellos, for the peer's proof
	peerKey manifest.PublicKey // accepted links: the key the peer was admitted with
	lim     *Limiter
	log     *slog.Logger
	c       *counters // shared by the in-links that replace each other, so counters never go back

	state     atomic.Value // string
	upSince   atomic.Int64
	lastHeard atomic.Int64 // unix nanos of the last message from the peer

	queues  [4]chan outMsg
	wake    [2]chan struct{} // the manifest and chunk pumps: something changed
	mu      sync.Mutex
	windows map[Kind]*Window
	toSend  map[Kind][]chunk.ID
	subs    []*nats.Subscription
	// cbMu is held (read) by every subscription callback; stop takes it
	// to wait for callbacks under way, so none touches the stores after.
	cbMu     sync.RWMutex
	closed   bool
	asmMu    sync.Mutex
	asm      map[chunk.ID]*assembly
	asmBytes int
	current  map[wire.Lane]chunk.ID   // per lane, the payload whose frames are arriving
	wanted   map[wire.Lane][]chunk.ID // per lane, what this side wanted, in the order the peer ships it
	heard    map[wire.Lane]time.Time  // per lane, when its last frame came
	wantedAt map[wire.Lane]time.Time  // per lane, when this side last wanted something

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type outMsg struct {
	lane    wire.Lane
	body    []byte
	raw     int64 // raw payload bytes this message completes (for counters)
	payload int   // payload bytes in this message
	kind    Kind
	last    bool // last frame of a payload
}

type assembly struct {
	kind   Kind
	codec  chunk.Codec
	rawLen uint32
	total  uint32
	buf    []byte
	flood  bool
	at     time.Time // last frame
}

func newLink(n *Node, name, peer, dir, mode string, rate uint64) *Link {
	l := &Link{
		node: n, name: name, peer: peer, dir: dir, mode: mode,
		lim:  NewLimiter(rate, nil),
		log:  n.log.With("link", name),
		wake: [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)},
		c:    &counters{},
	}
	l.state.Store(StateDown)
	for i := range l.queues {
		l.queues[i] = make(chan outMsg, 256)
	}
	l.queues[wire.LaneBulk] = make(chan outMsg, bulkQueueFrames(rate))
	l.resetWindows()
	return l
}

// bulkQueueFrames bounds bulk queued on a link to about one second of its rate.
func bulkQueueFrames(rate uint64) int {
	if rate == 0 {
		return 64
	}
	return max(2, min(256, int(rate/wire.FrameSize)))
}

func (l *Link) resetWindows() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.windows = map[Kind]*Window{}
	for _, k := range []Kind{KindManifest, KindChunk} {
		cur, err := l.node.stores.Log.Cursor(k, l.name)
		if err != nil {
			l.log.Error("read cursor; starting from 0", "kind", k, "err", err)
		}
		l.windows[k] = NewWindow(l.name, cur, l.node.timing)
	}
	l.toSend = map[Kind][]chunk.ID{}
	l.mu.Unlock()
	l.asmMu.Lock()
	l.asm = map[chunk.ID]*assembly{}
	l.asmBytes = 0
	l.current = map[wire.Lane]chunk.ID{}
	l.wanted = map[wire.Lane][]chunk.ID{}
	l.heard = map[wire.Lane]time.Time{}
	l.wantedAt = map[wire.Lane]time.Time{}
	l.asmMu.Unlock()
	l.mu.Lock()
}

// State returns up, down or refused.
func (l *Link) State() string { return l.state.Load().(string) }

func (l *Link) setState(s string) {
	if old := l.state.Swap(s); old != s {
		l.log.Info("link "+s, "peer", l.peer)
		if s == StateUp {
			l.upSince.Store(time.Now().UnixNano())
		} else {
			l.node.releaseClaims(l.name)
		}
		l.poke()
	}
}

// poke wakes both pumps.
func (l *Link) poke() {
	for _, k := range kinds {
		l.pokeKind(k)
	}
}

func (l *Link) wakeOf(k Kind) chan struct{} {
	if k == KindManifest {
		return l.wake[0]
	}
	return l.wake[1]
}

func (l *Link) pokeKind(k Kind) {
	select {
	case l.wakeOf(k) <- struct{}{}:
	default:
	}
}

// start runs the link's sender, pump and liveness goroutines.
func (l *Link) start(ctx context.Context) {
	l.ctx, l.cancel = context.WithCancel(ctx)
	ctx = l.ctx
	l.wg.Add(4)
	go func() { defer l.wg.Done(); l.sendLoop(ctx) }()
	go func() { defer l.wg.Done(); l.pumpLoop(ctx, KindManifest) }()
	go func() { defer l.wg.Done(); l.pumpLoop(ctx, KindChunk) }()
	go func() { defer l.wg.Done(); l.pingLoop(ctx) }()
}

// stop ends the link's goroutines and subscriptions.
func (l *Link) stop() {
	if l.cancel != nil {
		l.cancel()
	}
	l.mu.Lock()
	subs := l.subs
	l.subs = nil
	l.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
	l.cbMu.Lock() // waits for callbacks under way
	l.closed = true
	l.cbMu.Unlock()
	l.wg.Wait()
	l.setState(StateDown)
}

// subscribe listens on the link's receive lanes.
func (l *Link) subscribe() error {
	for lane, name := range laneSubject {
		sub, err := l.connP.Load().Subscribe(l.rx+"."+name, func(m *nats.Msg) {
			l.cbMu.RLock()
			defer l.cbMu.RUnlock()
			if !l.closed {
				l.onMessage(lane, m.Data)
			}
		})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", l.rx, err)
		}
		sub.SetPendingLimits(1<<16, 512<<20)
		l.mu.Lock()
		l.subs = append(l.subs, sub)
		l.mu.Unlock()
	}
	return nil
}

// send queues a message on its lane; bulk blocks while its lane is full.
func (l *Link) send(ctx context.Context, m outMsg) error {
	select {
	case l.queues[m.lane] <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendControl queues a small control message without blocking the
// receiver; if the control lane is full, the message is dropped and the
// peer's timeouts recover.
func (l *Link) sendControl(msg *wire.Message) {
	select {
	case l.queues[wire.LaneControl] <- outMsg{lane: wire.LaneControl, body: msg.Encode()}:
	default:
		l.log.Warn("control lane full; message dropped", "type", msg.Type)
	}
}

// sendLoop publishes queued messages, control first, then manifests,
// lookups, bulk, within the link's rate. Nothing is published while the
// link is down: such messages are dropped and offered again later.
func (l *Link) sendLoop(ctx context.Context) {
	for {
		m, ok := l.nextOut(ctx)
		if !ok {
			return
		}
		if err := l.lim.Wait(ctx, len(m.body)); err != nil {
			return
		}
		conn := l.connP.Load()
		if conn == nil || !conn.IsConnected() || (m.lane != wire.LaneControl && l.State() != StateUp) {
			continue
		}
		if err := conn.Publish(l.tx+"."+laneSubject[m.lane], m.body); err != nil {
			l.log.Warn("publish failed", "err", err)
			continue
		}
		l.c.sentWire.Add(int64(len(m.body)))
		l.c.sentMessages.Add(1)
		l.c.sentPayload.Add(int64(m.payload))
		if m.last {
			l.c.sentRaw.Add(m.raw)
			if m.kind == KindChunk {
				l.c.sentChunks.Add(1)
			} else {
				l.c.sentManifests.Add(1)
			}
		}
	}
}

func (l *Link) nextOut(ctx context.Context) (outMsg, bool) {
	for _, q := range l.queues {
		select {
		case m := <-q:
			return m, true
		default:
		}
	}
	select {
	case m := <-l.queues[wire.LaneControl]:
		return m, true
	case m := <-l.queues[wire.LaneManifest]:
		return m, true
	case m := <-l.queues[wire.LaneLookup]:
		return m, true
	case m := <-l.queues[wire.LaneBulk]:
		return m, true
	case <-ctx.Done():
		return outMsg{}, false
	}
}

func (l *Link) pingLoop(ctx context.Context) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	var seq uint64
	lastT, lastSent, lastRecv := time.Now(), l.c.sentWire.Load(), l.c.receivedWire.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sent, recv := l.c.sentWire.Load(), l.c.receivedWire.Load()
			dt := now.Sub(lastT).Seconds()
			l.c.sendRate.Store(int64(float64(sent-lastSent) / dt))
			l.c.receiveRate.Store(int64(float64(recv-lastRecv) / dt))
			lastT, lastSent, lastRecv = now, sent, recv
		}
		seq++
		l.expireAssemblies()
		if st := l.State(); l.dir == DirOut && (st == StateDown || st == StateRefused && seq%5 == 0) {
			// A hello can be lost (the peer's server took the connection
			// before its site listened for hellos): say it again.
			if c := l.connP.Load(); c != nil && c.IsConnected() {
				l.sendHello()
			}
		}
		if l.State() == StateUp {
			l.sendControl(&wire.Message{Type: wire.MsgPing, Ping: &wire.Ping{Seq: seq}})
			if time.Since(time.Unix(0, l.lastHeard.Load())) > deadAfter {
				l.log.Warn("peer silent; link down until it speaks again", "after", deadAfter)
				l.setState(StateDown)
				if l.dir == DirOut {
					l.redial()
				}
			}
		}
	}
}
