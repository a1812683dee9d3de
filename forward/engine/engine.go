package engine

import (
	"bytes"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/forward/wire"
)

// Config sets up an engine.
type Config struct {
	Site    string
	Storage Storage
	Timing  Timing
	Limits  Limits
	// Sign signs this site's confirmations.
	Sign func(msg []byte) []byte
	// Verify checks a signature by a site's trusted key: known says
	// whether the site is trusted here at all.
	Verify func(site string, msg, sig []byte) (ok, known bool)
	// Rand supplies query and session IDs.
	Rand io.Reader
	// Inventory is this site's side of reconciliation; nil turns it
	// off: the engine neither starts sessions nor answers a peer's.
	Inventory recon.Local
}

// Engine is one site's forwarding state machine. It is not safe for
// concurrent use: one owner feeds it events and drains its Ready.
type Engine struct {
	cfg   Config
	st    Storage
	now   time.Time
	links map[LinkID]*link
	stats map[LinkID]*LinkStats
	// claims: payloads this site expects from one link right now, so
	// that every other link hears "later" and a payload crosses once.
	claims map[claimKey]*claim
	q      queries
	rc     recons
	bc     beacons
	rd     Ready
	full   bool // this site's disk is below its reserve (SpaceChanged)
}

// LinkStats are the engine's counters of one link; they survive the
// link going down and coming back.
type LinkStats struct {
	Offered, Wanted int64
	// Full disks (space.go): "full" and "room again" messages sent to
	// the peer and heard from it, and the entries offered again at once
	// because the peer said it has room again.
	SpaceSent, PeerFullSignals, PeerRoomSignals, Resumed int64
}

type claimKey struct {
	kind Kind
	id   chunk.ID
}

type claim struct {
	link    LinkID
	lane    wire.Lane
	at      time.Time // last progress
	storing int       // stores under way for this payload; the last one to end ends the claim
}

// link is the engine's state of a link that is up.
type link struct {
	id      LinkID
	mode    Mode
	windows [2]*window // by Kind.Index()
	// repair holds what a reconciliation found the peer lacks, offered
	// after the log's entries; no cursor covers it.
	repair [2]*window
	// repaired holds what repair windows delivered (acked) during this
	// session of the link: a peer that claims to lack it again before
	// the link reconnects is lying or broken, and is not sent it again.
	repaired map[chunk.ID]struct{}
	recv     receiver
	recon    bool // the peer reconciles
	held     bool // the peer takes held queries
	beacon   bool // the peer takes status beacons
	space    spaceState
}

// New returns an engine with no link up.
func New(cfg Config) *Engine {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming()
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	cfg.Timing = cfg.Timing.withReconDefaults()
	return &Engine{cfg: cfg, st: cfg.Storage, links: map[LinkID]*link{}, stats: map[LinkID]*LinkStats{},
		claims: map[claimKey]*claim{}, q: newQueries(), rc: newRecons(), bc: newBeacons()}
}

// Step applies one event.
func (e *Engine) Step(ev Event) {
	if t := ev.at(); t.After(e.now) {
		e.now = t
	}
	all := false   // every link's windows may have moved
	var one LinkID // this link's windows may have moved
	switch ev := ev.(type) {
	case Tick:
		e.tick()
		all = true
	case LinkUp:
		e.linkUp(ev.Link, ev.Mode, ev.Recon)
		e.links[ev.Link].held = ev.Held
		e.links[ev.Link].beacon = ev.Beacon
		e.spaceLinkUp(ev.Link, ev.Space)
		e.beaconLinkUp(e.links[ev.Link])
		one = ev.Link
	case LinkDown:
		e.linkDown(ev.Link)
	case Received:
		e.received(ev.Link, ev.Msg)
		if t := ev.Msg.Type; t == wire.MsgAnswer || t == wire.MsgAck || t == wire.MsgSpace {
			one = ev.Link
		}
	case LogGrew:
		all = true
	case SendBeacon:
		e.sendBeacon(ev)
	case StoreDone:
		e.storeDone(ev)
		all = ev.Result == Stored // the log grew
	case ShipSent:
		if l := e.links[ev.Link]; l != nil {
			if k, ok := KindOfLane(ev.Lane); ok {
				l.windows[k.Index()].sent(ev.ID, e.now)
				l.repair[k.Index()].sent(ev.ID, e.now)
			}
		}
	case ShipFailed:
		e.shipFailed(ev)
		one = ev.Link
	case Ask:
		e.ask(ev)
	case Fetch:
		e.fetch(ev)
	case Cancel:
		e.cancel(ev.Req)
	case Track:
		e.track(ev.ID)
	case Reconcile:
		e.reconcile(ev)
	case SpaceChanged:
		e.spaceChanged(ev.Full)
	}
	switch {
	case all:
		for _, id := range e.Up() {
			e.pumpLink(e.links[id])
		}
	case !one.IsLocal():
		if l := e.links[one]; l != nil {
			e.pumpLink(l)
		}
	}
}

// Ready returns what to do and forgets it.
func (e *Engine) Ready() Ready {
	rd := e.rd
	e.rd = Ready{}
	return rd
}

// HasReady reports whether Ready has anything.
func (e *Engine) HasReady() bool { return !e.rd.Empty() }

// NextWake returns when the engine next needs a Tick (a timeout falls
// due), or the zero time if nothing waits on time.
func (e *Engine) NextWake() time.Time {
	var at time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for _, l := range e.links {
		for _, k := range Kinds {
			if l.space.peerFull {
				break // offers are held: nothing falls due but the hold's end
			}
			w, r := l.windows[k.Index()], l.repair[k.Index()]
			room := e.awaitMax(k) > w.outstanding(e.now)+r.outstanding(e.now)
			earliest(w.wake(room))
			earliest(r.wake(room))
		}
		earliest(l.recv.wake(e.cfg.Timing))
		earliest(e.spaceWake(l))
	}
	earliest(e.reconWake())
	for _, c := range e.claims {
		if c.storing == 0 {
			earliest(c.at.Add(e.claimTTL(c)))
		}
	}
	earliest(e.q.wake(e.cfg.Timing))
	return at
}

func (e *Engine) send(l LinkID, lane wire.Lane, m *wire.Message) {
	e.rd.Messages = append(e.rd.Messages, Send{Link: l, Lane: lane, Msg: m})
}

func (e *Engine) note(warn bool, l LinkID, msg string, id chunk.ID, err error) {
	e.rd.Notes = append(e.rd.Notes, Note{Warn: warn, Link: l, Msg: msg, ID: id, Err: err})
}

func (e *Engine) reject(l LinkID, reason string) {
	e.rd.Rejects = append(e.rd.Rejects, Reject{Link: l, Reason: reason})
}

func (e *Engine) statsOf(l LinkID) *LinkStats {
	s := e.stats[l]
	if s == nil {
		s = &LinkStats{}
		e.stats[l] = s
	}
	return s
}

func (e *Engine) linkUp(id LinkID, mode Mode, canRecon bool) {
	if e.links[id] != nil {
		e.linkDown(id) // a new handshake: what was in flight is lost
	}
	l := &link{id: id, mode: mode, recv: newReceiver(), recon: canRecon && e.cfg.Inventory != nil, repaired: map[chunk.ID]struct{}{}}
	for _, k := range Kinds {
		cur, err := e.st.Cursor(k, id)
		if err != nil {
			e.note(false, id, "read cursor; starting from 0", chunk.ID{}, err)
		}
		w := newWindow(id, cur, e.cfg.Timing)
		// Batch numbers never repeat across sessions of a link, so an
		// answer to an offer of an earlier session, arriving late, can
		// never be taken for an answer to one of this session.
		w.batch = uint64(e.now.UnixNano())
		l.windows[k.Index()] = w
		r := newWindow(id, 0, e.cfg.Timing)
		r.batch = w.batch + repairBatches // never mistaken for the log's batches
		l.repair[k.Index()] = r
	}
	e.links[id] = l
	e.statsOf(id)
	e.reconLinkUp(l)
}

func (e *Engine) linkDown(id LinkID) {
	if e.links[id] == nil {
		return
	}
	delete(e.links, id)
	e.reconLinkDown(id)
	for _, key := range e.sortedClaims() {
		if c := e.claims[key]; c != nil && c.link == id {
			e.releaseClaim(key, id)
		}
	}
	e.q.linkDown(id)
}

// Up reports the links that are up, sorted.
func (e *Engine) Up() []LinkID {
	out := make([]LinkID, 0, len(e.links))
	for id := range e.links {
		out = append(out, id)
	}
	sortLinks(out)
	return out
}

func sortLinks(ls []LinkID) {
	sort.Slice(ls, func(i, j int) bool {
		if ls[i].Peer != ls[j].Peer {
			return ls[i].Peer < ls[j].Peer
		}
		return ls[i].Dir < ls[j].Dir
	})
}

// Stats returns the counters of a link.
func (e *Engine) Stats(id LinkID) LinkStats {
	if s := e.stats[id]; s != nil {
		return *s
	}
	return LinkStats{}
}

// Progress is where a link's sender stands in one log.
type Progress struct {
	Cursor uint64 // confirmed by the peer
	Oldest uint64 // oldest entry loaded and not confirmed (0: none)
}

// Progress returns a link's position in the log of kind k, if it is up.
func (e *Engine) Progress(id LinkID, k Kind) (Progress, bool) {
	l := e.links[id]
	if l == nil {
		return Progress{}, false
	}
	w := l.windows[k.Index()]
	p := Progress{Cursor: w.cursor}
	if s, ok := w.oldest(); ok {
		p.Oldest = s
	}
	return p, true
}

// ClaimView is one claim, for invariant checks.
type ClaimView struct {
	Kind    Kind
	ID      chunk.ID
	Link    LinkID
	At      time.Time
	Storing bool
}

// Claims lists the claims held now.
func (e *Engine) Claims() []ClaimView {
	var out []ClaimView
	for k, c := range e.claims {
		out = append(out, ClaimView{Kind: k.kind, ID: k.id, Link: c.link, At: c.at, Storing: c.storing > 0})
	}
	return out
}

// Confirmed returns the sites other than this one that confirmed
// manifest id, sorted.
func (e *Engine) Confirmed(id chunk.ID) []string {
	var out []string
	for s := range e.q.confirms[id] {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// claimTTL is how long a claim lasts without progress. A pull's claim
// lasts no longer than a lane may stay silent: the fetcher moves on to
// the next holder well before, and a relay must not make the offers of
// other links wait on a pull that was lost.
func (e *Engine) claimTTL(c *claim) time.Duration {
	if c.lane == wire.LaneLookup {
		return min(e.cfg.Timing.ClaimTTL, e.cfg.Timing.AssemblyIdle)
	}
	return e.cfg.Timing.ClaimTTL
}

func (e *Engine) sortedClaims() []claimKey {
	keys := make([]claimKey, 0, len(e.claims))
	for k := range e.claims {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b claimKey) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	return keys
}

func (e *Engine) tick() {
	for _, key := range e.sortedClaims() {
		if c := e.claims[key]; c != nil && c.storing == 0 && e.now.Sub(c.at) >= e.claimTTL(c) {
			e.releaseClaim(key, c.link)
		}
	}
	for _, id := range e.Up() {
		e.expireAssemblies(e.links[id])
	}
	e.q.tick(e)
	e.checkComplete()
	e.reconTick()
	e.spaceTick()
}

// pumpLink loads, offers and advances both logs of a link.
func (e *Engine) pumpLink(l *link) {
	for _, k := range Kinds {
		e.pump(l, k)
	}
}

func (e *Engine) pump(l *link, k Kind) {
	w := l.windows[k.Index()]
	lim := e.cfg.Limits
	if room := lim.MaxLoaded - len(w.entries); room > 0 && w.loaded < e.st.Head(k) {
		as, err := e.st.ReadLog(k, w.loaded, room)
		if err != nil {
			e.note(false, l.id, "read arrival log", chunk.ID{}, err)
		} else {
			w.load(as, e.now)
		}
	}
	// The log's entries go first; what a reconciliation found missing
	// fills the room they leave. Neither offers an ID the other has in
	// flight, so one link never ships a payload twice at once.
	r := l.repair[k.Index()]
	r.drop()
	r.loadRepair(lim.MaxLoaded, e.now)
	e.offerFrom(l, k, w, func(id chunk.ID) bool { return r.inFlight(id) }, r)
	e.offerFrom(l, k, r, func(id chunk.ID) bool { return w.pending(id) }, w)
	if w.advance() {
		e.rd.Cursors = append(e.rd.Cursors, CursorMove{Link: l.id, Kind: k, Seq: w.cursor})
	}
}

// awaitMax bounds the entries of kind k offered or wanted and not yet
// answered or acked, per link.
func (e *Engine) awaitMax(k Kind) int {
	if k == KindManifest {
		return e.cfg.Limits.MaxAwaitingMani
	}
	return e.cfg.Limits.MaxAwaitingChunks
}

// offerFrom offers (or pushes) w's due entries while the link has room,
// leaving those skip names for later.
func (e *Engine) offerFrom(l *link, k Kind, w *window, skip func(chunk.ID) bool, other *window) {
	batchMax, awaitMax := e.cfg.Limits.ChunkOfferBatch, e.awaitMax(k)
	if k == KindManifest {
		batchMax = e.cfg.Limits.ManifestOfferBatch
	}
	if l.space.peerFull {
		return // it would answer "later": wait for it to say it has room
	}
	room := func() int { return awaitMax - w.outstanding(e.now) - other.outstanding(e.now) }
	for n := room(); n > 0; n = room() {
		if l.mode == ModeFlood {
			ids := w.nextPush(n, e.now, skip)
			if len(ids) == 0 {
				break
			}
			for _, id := range ids {
				e.rd.Ships = append(e.rd.Ships, Ship{Link: l.id, Lane: k.Lane(), Kind: k, ID: id, Flood: true})
			}
			continue
		}
		batch, ids := w.nextOffer(min(n, batchMax), e.now, skip)
		if len(ids) == 0 {
			break
		}
		raw := make([][32]byte, len(ids))
		for i, id := range ids {
			raw[i] = id
		}
		e.statsOf(l.id).Offered += int64(len(ids))
		e.send(l.id, wire.LaneControl, &wire.Message{Type: wire.MsgOffer, Offer: &wire.Offer{Lane: k.Lane(), Batch: batch, IDs: raw}})
	}
}

func (e *Engine) received(from LinkID, m *wire.Message) {
	l := e.links[from]
	if l == nil {
		return // not up: the handshake comes first
	}
	switch m.Type {
	case wire.MsgOffer:
		e.onOffer(l, m.Offer)
	case wire.MsgAnswer:
		e.onAnswer(l, m.Answer)
	case wire.MsgData:
		e.onData(l, m.Data)
	case wire.MsgAck:
		e.onAck(l, m.Ack)
	case wire.MsgQuery:
		e.onQuery(l, m.Query)
	case wire.MsgReply:
		e.onReply(l, m.Reply)
	case wire.MsgRecon:
		e.onRecon(l, m.Recon)
	case wire.MsgSpace:
		e.onSpace(l, m.Space)
	case wire.MsgBeacon:
		e.onBeacon(l, m.Beacon)
	}
}

func (e *Engine) onAnswer(l *link, a *wire.AnswerMsg) {
	k, ok := KindOfLane(a.Lane)
	if !ok {
		return
	}
	w := l.windows[k.Index()]
	if _, ok := w.batches[a.Batch]; !ok {
		w = l.repair[k.Index()]
	}
	send := w.onAnswer(a.Batch, a.Answers, e.now)
	e.statsOf(l.id).Wanted += int64(len(send))
	for _, id := range send {
		e.rd.Ships = append(e.rd.Ships, Ship{Link: l.id, Lane: k.Lane(), Kind: k, ID: id})
	}
}

func (e *Engine) onAck(l *link, a *wire.Ack) {
	k, ok := KindOfLane(a.Lane)
	if !ok {
		return
	}
	var done, again []chunk.ID
	for i, id := range a.IDs {
		if a.Status[i] == wire.AckResend {
			again = append(again, id)
		} else {
			done = append(done, id)
		}
	}
	r := l.repair[k.Index()]
	for _, id := range done {
		if r.pending(id) && len(l.repaired) < maxRepaired {
			l.repaired[id] = struct{}{}
		}
	}
	for _, w := range []*window{l.windows[k.Index()], r} {
		w.onAck(done)
		w.requeue(again)
	}
}

func (e *Engine) shipFailed(ev ShipFailed) {
	e.note(false, ev.Link, "cannot ship "+ev.Kind.String()+"; skipping it on this link", ev.ID, nil)
	l := e.links[ev.Link]
	if l == nil {
		return
	}
	if k, ok := KindOfLane(ev.Lane); ok {
		l.windows[k.Index()].skip(ev.ID)
		l.repair[k.Index()].skip(ev.ID)
	}
}
