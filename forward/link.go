package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// Link states as status shows them (LinkStatus.State).
const (
	StateDown    = "down"
	StateUp      = "up"
	StateRefused = "refused"
)

// linkState is a link's state in the shell; String gives the status form.
type linkState byte

const (
	linkDown linkState = iota
	linkUp
	linkRefused
)

func (s linkState) String() string {
	return [...]string{linkDown: StateDown, linkUp: StateUp, linkRefused: StateRefused}[s]
}

const (
	pingEvery = 2 * time.Second
	deadAfter = 10 * time.Second
)

// counters of one link; exported through status and metrics.
type counters struct {
	sentChunks, receivedChunks         atomic.Int64
	sentManifests, receivedManifests   atomic.Int64
	sentRaw, sentWire                  atomic.Int64
	receivedRaw, receivedWire          atomic.Int64
	duplicates                         atomic.Int64
	duplicateBytes, rejected, messages atomic.Int64
	duplicateChunks                    atomic.Int64
	sentMessages                       atomic.Int64
	sentPayload                        atomic.Int64 // bytes of Data payloads sent (the rest of sentWire is control)
	sendRate, receiveRate              atomic.Int64 // wire bytes/s over the last sampling interval
	// frameTimeouts counts payloads given up for silence on this link:
	// sent whole here and offered again for want of an ack, or whose
	// frames stopped arriving here (this site asked for them again).
	frameTimeouts atomic.Int64
}

// Link is one end of a link in the shell: its NATS connection and
// subscriptions, the lanes it publishes within its rate, the shippers
// that read and frame payloads, and the store worker that verifies and
// stores what arrives. Every decision is the engine's.
type Link struct {
	node *Node
	// lookupRun counts lookup-lane messages sent in a row while bulk
	// frames waited (nextOut, the send loop's own).
	lookupRun int

	id    engine.LinkID
	mode  engine.Mode
	url   string // dialed links: the peer's NATS URL
	connP atomic.Pointer[nats.Conn]
	// tlsVerified is how the dialed connection checked the peer's
	// certificate (TLSPinned, TLSCA), for status.
	tlsVerified atomic.Value // string
	pair        wire.Pair
	nonces      [][32]byte         // dialed links: nonces of the recent hellos, for the peer's proof
	helloAt     []time.Time        // dialed links: when each of nonces was sent, for the round trip
	peerKey     manifest.PublicKey // accepted links: the key the peer was admitted with
	rehellos    []pendingHello     // accepted links: recent hellos answered while up (guarded by mu)
	lim         *Limiter
	win         *bulkWindow // when the next bulk frame may go (window.go)
	log         *slog.Logger
	c           *counters // shared by the in-links that replace each other, so counters never go back

	mu        sync.Mutex
	state     linkState
	health    linkHealth
	session   uint64       // incremented at each link-up; what was queued for an earlier one is dropped
	lastHeard atomic.Int64 // unix nanos of the last message from the peer

	// countDropped's state: the subscriptions' drops already counted.
	dropMu    sync.Mutex
	dropFirst *nats.Subscription
	dropSubs  int
	dropSeen  int64

	queues [4]chan outMsg
	ships  [4]*workQueue[engine.Ship] // by lane
	stores *workQueue[engine.Store]
	subs   []*nats.Subscription
	cbMu   sync.RWMutex // held (read) by subscription callbacks; stop waits for them
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type outMsg struct {
	session uint64
	lane    wire.Lane
	body    []byte
	id      chunk.ID     // the payload a Data frame carries
	payload int          // payload bytes in this message
	last    *engine.Ship // set on the last frame of a payload
	raw     int64
}

func newLink(n *Node, id engine.LinkID, mode engine.Mode, rate uint64) *Link {
	l := &Link{
		node: n, id: id, mode: mode, state: linkDown, health: linkHealth{since: time.Now()},
		lim: NewLimiter(rate, nil),
		win: newBulkWindow(),
		log: n.log.With("link", id.String()),
		c:   &counters{},
	}
	for i := range l.queues {
		l.queues[i] = make(chan outMsg, 256)
	}
	// Control carries an ack per stored payload and an answer per offer:
	// a receiver storing a window of 512 manifests at once (log and
	// repair windows together) must not drop its acks, which would cost
	// re-offers and, racing them, duplicates (seen in a 10,000-version
	// join). Its messages are small; a reconciliation's symbols, the
	// largest, are bounded per session.
	l.queues[wire.LaneControl] = make(chan outMsg, controlQueue)
	l.queues[wire.LaneBulk] = make(chan outMsg, bulkQueueFrames(rate))
	for _, lane := range []wire.Lane{wire.LaneManifest, wire.LaneLookup, wire.LaneBulk} {
		l.ships[lane] = newWorkQueue[engine.Ship]()
	}
	l.stores = newWorkQueue[engine.Store]()
	return l
}

// bulkQueueFrames bounds bulk queued on a link to about one second of its rate.
func bulkQueueFrames(rate uint64) int {
	if rate == 0 {
		return 64
	}
	return max(2, min(256, int(rate/wire.FrameSize)))
}

func (l *Link) currentState() linkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

func (l *Link) currentSession() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.session
}

// setState records a new state and tells the engine of a link going up
// or down.
func (l *Link) setState(s linkState) { l.setStateWhy(s, "", nil) }

// setStateWhy records a new state, and for a link not up the reason
// (one of the Reason constants; "" keeps the earlier one) and the error
// behind it (nil keeps the earlier one), then tells the engine of a link
// going up or down.
func (l *Link) setStateWhy(s linkState, reason string, err error) {
	l.mu.Lock()
	old := l.state
	l.state = s
	if s == linkUp && old != linkUp {
		l.session++
		l.win.reset()
	}
	if s != old {
		l.health.since = time.Now()
	}
	switch {
	case s == linkUp:
		l.health.reason = ""
	case reason != "":
		l.health.reason = reason
	}
	if err != nil {
		l.health.lastErr = redactURL(err.Error(), l.url)
	}
	l.mu.Unlock()
	if old == s {
		return
	}
	if s == linkUp {
		l.log.Info("link up", "peer", l.id.Peer)
	} else {
		l.log.Info("link "+s.String(), "peer", l.id.Peer, "reason", reason, "err", err)
	}
	l.node.nudgeBeacon()
	now := time.Now()
	switch {
	case s == linkUp:
		l.lastHeard.Store(now.UnixNano())
		l.mu.Lock()
		caps := l.health.peerCaps
		l.mu.Unlock()
		l.node.post(engine.LinkUp{Now: now, Link: l.id, Mode: l.mode,
			Recon: caps&wire.CapRecon != 0, Space: caps&wire.CapSpace != 0, Held: caps&wire.CapHeld != 0, Beacon: caps&wire.CapBeacon != 0})
	case old == linkUp:
		for _, q := range l.ships {
			if q != nil {
				q.clear()
			}
		}
		l.node.post(engine.LinkDown{Now: now, Link: l.id})
	}
}

// start runs the link's sender, shippers, store worker and liveness.
func (l *Link) start(ctx context.Context) {
	l.ctx, l.cancel = context.WithCancel(ctx)
	ctx = l.ctx
	l.wg.Add(6)
	go func() { defer l.wg.Done(); l.sendLoop(ctx) }()
	for _, lane := range []wire.Lane{wire.LaneManifest, wire.LaneLookup, wire.LaneBulk} {
		go func() { defer l.wg.Done(); l.shipLoop(ctx, lane) }()
	}
	go func() { defer l.wg.Done(); l.storeLoop(ctx) }()
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
	l.setState(linkDown)
}

// subscribe listens on the link's receive lanes.
func (l *Link) subscribe(conn *nats.Conn, prefix string) error {
	for _, lane := range wire.Lanes {
		sub, err := conn.Subscribe(prefix+"."+lane.Subject(), func(m *nats.Msg) {
			l.cbMu.RLock()
			defer l.cbMu.RUnlock()
			if !l.closed {
				l.onMessage(lane, m.Data)
			}
		})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", prefix, err)
		}
		msgs, bytes := pendingLimits(lane)
		if err := sub.SetPendingLimits(msgs, bytes); err != nil {
			sub.Unsubscribe()
			return fmt.Errorf("subscribe %s: pending limits: %w", prefix, err)
		}
		l.mu.Lock()
		l.subs = append(l.subs, sub)
		l.mu.Unlock()
	}
	return nil
}

// pendingLimits bounds what a link's subscription on lane holds while
// its callback is busy (the engine's loop is behind): beyond it nats.go
// drops messages (counted as slow_consumer, dropped). A peer flooding a
// lane cannot make the site buffer more than this per lane, and what is
// dropped is recovered by the protocol: a frame missing from a payload is
// found by order and the payload offered again, a lost offer or answer
// or ack by its timeout. Honest traffic reaches it only when the loop
// stalls for longer than the limit takes to arrive at the link's rate
// (at 100 MB/s, 40 ms of bulk): bulk gets the most, as a window of
// chunk payloads (32 unacked) arrives in bursts of whole payloads.
func pendingLimits(lane wire.Lane) (msgs, bytes int) {
	switch lane {
	case wire.LaneBulk:
		return 1 << 12, 8 << 20
	case wire.LaneControl:
		return 1 << 14, 2 << 20 // many small messages: acks, answers, pings
	}
	return 1 << 12, 2 << 20
}

// countDropped counts the messages the link's subscriptions dropped
// since the last call (their callback fell behind by more than
// pendingLimits) as rejected, reason slow_consumer.
func (l *Link) countDropped() {
	l.mu.Lock()
	subs := l.subs
	l.mu.Unlock()
	var total int64
	for _, s := range subs {
		if n, err := s.Dropped(); err == nil {
			total += int64(n)
		}
	}
	l.dropMu.Lock()
	defer l.dropMu.Unlock()
	if l.dropSubs != len(subs) || len(subs) > 0 && l.dropFirst != subs[0] {
		// New subscriptions (a reconnect): their counts start at zero.
		l.dropSubs, l.dropSeen = len(subs), 0
		if len(subs) > 0 {
			l.dropFirst = subs[0]
		}
	}
	n := total - l.dropSeen
	if n <= 0 {
		return
	}
	l.dropSeen = total
	l.c.rejected.Add(n)
	for range n {
		l.node.rejected("slow_consumer")
	}
	l.log.Warn("peer's messages dropped: the site fell behind reading them (the protocol offers lost payloads again)", "dropped", n)
}

// onMessage decodes one message from the peer; the handshake is the
// shell's, everything else goes to the engine.
func (l *Link) onMessage(lane wire.Lane, data []byte) {
	now := time.Now()
	l.lastHeard.Store(now.UnixNano())
	l.c.receivedWire.Add(int64(len(data)))
	l.c.messages.Add(1)
	msg, err := wire.DecodeMessage(data)
	if err != nil {
		l.c.rejected.Add(1)
		l.node.rejected("malformed_message")
		l.log.Warn("malformed message refused", "lane", lane, "err", err)
		return
	}
	switch msg.Type {
	case wire.MsgHelloAck, wire.MsgProof:
		l.node.onHandshake(l, msg)
		return
	case wire.MsgPing:
		if msg.Ping.Clock != 0 {
			l.measureClock(msg.Ping.Clock, 0)
		}
		return
	case wire.MsgHello:
		return
	}
	if l.currentState() != linkUp {
		return
	}
	l.measure(msg, now)
	if msg.Type == wire.MsgData {
		l.awaitEngine()
	}
	l.node.postCtx(l.ctx, engine.Received{Now: now, Link: l.id, Msg: msg})
}

// engineBacklog is how many events may wait for the engine's loop before
// a link holds back its data frames: each pins its received message (up
// to a frame, 128 KiB) until the loop steps it, so this bounds the bytes
// of frames queued to the engine (with the lanes and links posting at
// once) to a few MiB instead of the event queue's 4096 frames, 512 MiB.
// While a lane's callback waits, its subscription holds what arrives
// (pendingLimits) and drops what exceeds it.
const engineBacklog = 256

// awaitEngine waits until the engine's loop has fewer than engineBacklog
// events waiting, or the link stops.
func (l *Link) awaitEngine() {
	if len(l.node.events) < engineBacklog {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for len(l.node.events) >= engineBacklog {
		select {
		case <-t.C:
		case <-l.ctx.Done():
			return
		case <-l.node.ctx.Done():
			return
		}
	}
}

// sendSmall queues a small message on the control or lookup lane
// without blocking; when the lane is full it is dropped and the engine's
// timeouts recover.
// controlQueue is the capacity of a link's control lane queue.
const controlQueue = 4096

func (l *Link) sendSmall(lane wire.Lane, msg *wire.Message, session uint64) {
	l.watchOut(msg)
	select {
	case l.queues[lane] <- outMsg{session: session, lane: lane, body: msg.Encode()}:
	default:
		l.log.Warn("lane full; message dropped", "lane", lane, "type", msg.Type)
	}
}

// sendLoop publishes queued messages, control first, then manifests,
// lookups, bulk, within the link's rate. Nothing is published while the
// link is down or for an earlier session.
func (l *Link) sendLoop(ctx context.Context) {
	for {
		m, ok := l.nextOut(ctx)
		if !ok {
			return
		}
		if m.session != 0 && m.session != l.currentSession() {
			continue
		}
		if err := l.lim.Wait(ctx, len(m.body)); err != nil {
			return
		}
		conn := l.connP.Load()
		up := l.currentState() == linkUp
		if conn == nil || !conn.IsConnected() || (m.lane != wire.LaneControl && !up) {
			continue
		}
		subject := l.pair.UpLane(m.lane)
		if l.id.Dir == engine.DirIn {
			subject = l.pair.DownLane(m.lane)
		}
		if err := conn.Publish(subject, m.body); err != nil {
			l.log.Warn("publish failed", "err", err)
		} else {
			if m.lane == wire.LaneBulk && m.payload > 0 {
				l.win.sent(m.id, m.payload, m.last != nil, time.Now())
			}
			l.c.sentWire.Add(int64(len(m.body)))
			l.c.sentMessages.Add(1)
			l.c.sentPayload.Add(int64(m.payload))
		}
		if m.last != nil {
			l.c.sentRaw.Add(m.raw)
			if m.last.Kind == engine.KindChunk {
				l.c.sentChunks.Add(1)
			} else {
				l.c.sentManifests.Add(1)
			}
			s := *m.last
			l.node.postCtx(ctx, engine.ShipSent{Now: time.Now(), Link: s.Link, Lane: s.Lane, Kind: s.Kind, ID: s.ID})
		}
	}
}

// lookupBurst is how many lookup-lane messages go in a row while bulk
// frames wait and the bulk window lets them go: lookups and held
// queries come first, but a flood of them (a watcher asking for the
// holders of every frame) must not starve replication.
const lookupBurst = 8

// nextOut takes the next message to send: control first, then
// manifests, lookups, and bulk when the bulk window lets it go (and
// after lookupBurst lookups in a row, before the next lookup).
func (l *Link) nextOut(ctx context.Context) (outMsg, bool) {
	m, ok := l.pickOut(ctx)
	switch {
	case !ok:
	case m.lane == wire.LaneLookup && len(l.queues[wire.LaneBulk]) > 0:
		l.lookupRun++
	case m.lane == wire.LaneBulk || m.lane == wire.LaneLookup:
		l.lookupRun = 0
	}
	return m, ok
}

func (l *Link) pickOut(ctx context.Context) (outMsg, bool) {
	var pace *time.Timer
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	for {
		bulk := l.queues[wire.LaneBulk]
		var paced <-chan time.Time
		if ok, wait := l.win.gate(time.Now()); !ok {
			bulk = nil
			if wait > 0 {
				if pace == nil {
					pace = time.NewTimer(wait)
				} else {
					pace.Reset(wait)
				}
				paced = pace.C
			}
		}
		order := []chan outMsg{l.queues[wire.LaneControl], l.queues[wire.LaneManifest], l.queues[wire.LaneLookup], bulk}
		if bulk != nil && l.lookupRun >= lookupBurst {
			order[2], order[3] = bulk, l.queues[wire.LaneLookup]
		}
		for _, q := range order {
			select {
			case m := <-q:
				return m, true
			default:
			}
		}
		if bulk != nil {
			l.win.idle() // room to send bulk, and none queued
		}
		select {
		case m := <-l.queues[wire.LaneControl]:
			return m, true
		case m := <-l.queues[wire.LaneManifest]:
			return m, true
		case m := <-l.queues[wire.LaneLookup]:
			return m, true
		case m := <-bulk:
			return m, true
		case <-paced:
		case <-l.win.wake:
		case <-ctx.Done():
			return outMsg{}, false
		}
	}
}

// shipLoop reads, frames and queues the payloads the engine ships on
// one lane, in order.
func (l *Link) shipLoop(ctx context.Context, lane wire.Lane) {
	q := l.ships[lane]
	for {
		s, session, ok := q.next(ctx)
		if !ok {
			return
		}
		if session != l.currentSession() {
			continue
		}
		if err := l.shipOne(ctx, s, session); err != nil && ctx.Err() == nil {
			l.log.Warn("ship failed", "id", s.ID.Short(), "err", err)
		}
	}
}

func (l *Link) shipOne(ctx context.Context, s engine.Ship, session uint64) error {
	codec, payload, rawLen, err := l.shipPayload(ctx, s.Kind, s.ID)
	if errors.Is(err, chunk.ErrNotFound) || errors.Is(err, naming.ErrNotFound) || errors.Is(err, chunk.ErrCorrupt) {
		l.node.postCtx(ctx, engine.ShipFailed{Now: time.Now(), Link: s.Link, Lane: s.Lane, Kind: s.Kind, ID: s.ID})
		return nil
	}
	if err != nil {
		l.node.postCtx(ctx, engine.ShipFailed{Now: time.Now(), Link: s.Link, Lane: s.Lane, Kind: s.Kind, ID: s.ID})
		return err
	}
	frames := engine.Frames(s, codec, payload, rawLen, wire.FrameSize)
	for i, d := range frames {
		m := outMsg{session: session, lane: s.Lane, body: (&wire.Message{Type: wire.MsgData, Data: d}).Encode(), id: s.ID, payload: len(d.Payload)}
		if i == len(frames)-1 {
			m.last, m.raw = &s, int64(rawLen)
		}
		select {
		case l.queues[s.Lane] <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
		if l.currentSession() != session {
			return nil // the link went down: the engine offers it again
		}
	}
	return nil
}

// storeLoop verifies and stores what arrived whole, in arrival order,
// and tells the engine.
//
// Every store the engine handed out ends in a StoreDone, posted with the
// node's context rather than the link's: the engine's claim on the
// payload lasts until it hears, so one lost here would make the site
// answer "later" to that payload's every offer for as long as it runs.
func (l *Link) storeLoop(ctx context.Context) {
	defer func() {
		for _, it := range l.stores.close() {
			l.node.post(abandoned(it.v, time.Now()))
		}
	}()
	// Two stages: this goroutine verifies and writes a group while the
	// committer syncs the one before (stagedGroup); one group waits
	// between them at most.
	staged := make(chan *stagedGroup, 1)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for g := range staged {
			for i, r := range l.node.stores.commitGroup(g) {
				l.stored(g.sts[i], r.res, r.err)
			}
		}
	}()
	defer func() {
		close(staged)
		<-committed // a group staged is committed and told, as it always was
	}()
	for {
		// What queued while the last group was staged goes in one commit
		// (stageGroup), each payload still ending, in order, as alone.
		group, ok := l.stores.drain(ctx, maxStoreGroup)
		if !ok {
			return
		}
		sts := make([]engine.Store, len(group))
		for i, it := range group {
			sts[i] = it.v
		}
		staged <- l.node.stores.stageGroup(sts)
	}
}

// stored counts how the store of s ended and tells the engine.
func (l *Link) stored(s engine.Store, res engine.StoreResult, err error) {
	why := ""
	if err != nil {
		why = err.Error()
	}
	switch res {
	case engine.Stored:
		l.c.receivedRaw.Add(int64(s.RawLen))
		if s.Kind == engine.KindChunk {
			l.c.receivedChunks.Add(1)
		} else {
			l.c.receivedManifests.Add(1)
		}
	case engine.Rejected:
		l.node.noteRefused(s, err)
	case engine.Duplicate:
		l.c.duplicates.Add(1)
		l.c.duplicateBytes.Add(int64(s.RawLen))
		if s.Kind == engine.KindChunk {
			l.c.duplicateChunks.Add(1)
		}
	case engine.Failed:
		if errors.Is(err, syscall.ENOSPC) && l.node.cfg.OnNoSpace != nil {
			l.node.cfg.OnNoSpace() // the site checks its disk now, not at its next look
		}
		if !Deferred(err) {
			l.log.Error("store failed", "kind", s.Kind, "id", s.ID.Short(), "err", why)
			break
		}
		if errors.Is(err, naming.ErrFuture) {
			l.refusedFuture(err)
		}
		// Refused all the same, this time: counted and logged as such.
		l.c.rejected.Add(1)
		l.node.rejected(s.Kind.String())
		l.node.logNote(engine.Note{Warn: true, Link: s.Link, ID: s.ID,
			Msg: "payload refused for now (" + deferReason(err) + "); not stored, not relayed, not acked: the sender offers it again", Err: err})
	}
	l.node.post(engine.StoreDone{Now: time.Now(), Link: s.Link, Lane: s.Lane, Kind: s.Kind, ID: s.ID, Result: res, Reason: why})
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
			l.countDropped()
		}
		seq++
		if st := l.currentState(); l.id.Dir == engine.DirOut && (st == linkDown || st == linkRefused && seq%5 == 0) {
			// A hello can be lost (the peer's server took the connection
			// before its site listened for hellos): say it again.
			if c := l.connP.Load(); c != nil && c.IsConnected() {
				l.sendHello()
				l.noteUnanswered()
			}
		}
		if l.currentState() == linkUp {
			l.sendSmall(wire.LaneControl, &wire.Message{Type: wire.MsgPing, Ping: &wire.Ping{Seq: seq, Clock: l.clockForPeer()}}, 0)
			if time.Since(time.Unix(0, l.lastHeard.Load())) > deadAfter {
				l.log.Warn("peer silent; link down until it speaks again", "after", deadAfter)
				l.setStateWhy(linkDown, ReasonSilent, fmt.Errorf("nothing heard from the peer for %s", deadAfter))
				if l.id.Dir == engine.DirOut {
					l.sendHello()
				}
			}
		}
	}
}

// noteUnanswered marks a dialed link that is connected but down for
// longer than deadAfter as ReasonSilent: its hellos go unanswered.
func (l *Link) noteUnanswered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == linkDown && time.Since(l.health.since) > deadAfter && l.health.reason != ReasonSilent {
		l.health.reason = ReasonSilent
		l.health.lastErr = fmt.Sprintf("connected to %s, but no answer to this site's hellos for %s (is the peer site running?)", redactURL(l.url, l.url), deadAfter)
	}
}

// workQueue is an unbounded FIFO one goroutine drains; the engine bounds
// what it puts in flight, so the queue never grows without bound, and
// the engine's loop never blocks on it.
type workQueue[T any] struct {
	mu     sync.Mutex
	items  []queued[T]
	closed bool // its worker has stopped: push refuses
	wake   chan struct{}
}

type queued[T any] struct {
	v       T
	session uint64
}

func newWorkQueue[T any]() *workQueue[T] { return &workQueue[T]{wake: make(chan struct{}, 1)} }

// push queues v for the worker; false if the worker has stopped.
func (q *workQueue[T]) push(v T, session uint64) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, queued[T]{v, session})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// close refuses further pushes and returns what was still queued.
func (q *workQueue[T]) close() []queued[T] {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	left := q.items
	q.items = nil
	return left
}

func (q *workQueue[T]) clear() {
	q.mu.Lock()
	q.items = nil
	q.mu.Unlock()
}

func (q *workQueue[T]) next(ctx context.Context) (T, uint64, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return it.v, it.session, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			var zero T
			return zero, 0, false
		}
	}
}

// deferReason names why a manifest was deferred, in few words (the note
// limiter keys on the message).
func deferReason(err error) string {
	if errors.Is(err, naming.ErrFuture) {
		return "stamped beyond this site's clock: clock skew"
	}
	return "signer taken out of this site's trust store"
}
