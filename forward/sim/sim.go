// Package sim runs many real forwarding engines (package
// forward/engine) in one goroutine over a simulated network, disk and
// clock, every choice drawn from one seed, the way TigerBeetle's VOPR and
// FoundationDB's simulation run their real code. It injects what NATS
// and machines really do to links (connections that die with messages
// in flight, whole messages lost on a link that stays up, sites that
// crash and restart with only their durable state), checks the
// invariants of forwarding, and replays any run exactly from its seed.
package sim

import (
	"bytes"
	"container/heap"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
)

// Options of one run. Zero values are drawn from the seed.
type Options struct {
	Seed  uint64
	Sites int       // 2..16; 0: drawn from the seed
	Trace io.Writer // if set, every event and Ready, one line each
	// Scenario, if set, replaces the random workload and fault plan (for
	// directed tests).
	Scenario func(w *World)
	// Edges, if set, is the topology: (dialer, acceptor) site indexes.
	Edges [][2]int
	// Bandwidth (bytes/s) and Delay of every link, if set.
	Bandwidth float64
	Delay     time.Duration
	// FrameSize is the payload bytes of a data frame (default 1 KiB,
	// small so that payloads span several).
	FrameSize int
	// HealAt is when every fault ends (default 30 s); convergence is
	// measured from then.
	HealAt time.Duration
	// Until, if set, keeps the world running to that simulated time even
	// after it converged (for periodic work such as reconciliation); it
	// must still hold everything everywhere then.
	Until time.Duration
}

// Result describes a finished run.
type Result struct {
	Seed                     uint64
	Sites, Links             int
	Clean                    bool // no message lost, no crash, offer mode: nothing may cross twice
	Lossy, Crashes, Cuts     bool
	Losses                   bool // sites lose part of their stored payloads (only reconciliation heals that)
	Full                     bool // sites' disks fill up for a while (space.go)
	Stalls                   bool // links given up for silence while their connection lived on
	Flood                    bool // some links flood: duplicates are expected
	Puts, Lookups, Fetches   int
	FetchesOK, LookupsExact  int
	Converged                time.Duration // simulated time from the heal to convergence (0: converged by then)
	Messages, PayloadEntries int
	// Reconciliation sessions the initiators finished, by outcome, and
	// their bytes on the wire (both ways, counted at the initiator).
	ReconInSync, ReconDiffer, ReconFailed int
	ReconBytes                            int64
	// Bytes of every message sent, and of the status beacons among them.
	WireBytes, BeaconBytes int64
	BeaconMessages         int
	// DataBytes is the bytes of the data frames among them (headers
	// included); PayloadBytes the chunk and manifest bytes those carry.
	// Everything else on the wire is control traffic.
	DataBytes, PayloadBytes int64
}

// ErrInvariant marks a broken invariant; the error names the seed.
var ErrInvariant = errors.New("invariant broken")

// ErrStopped is what a directed request of a site that is down ends with.
var ErrStopped = errors.New("site is down")

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Timeouts of the simulated world (the engine's own are DefaultTiming).
const (
	workload     = 30 * time.Second
	convergeMax  = 10 * time.Minute
	frameSize    = 1024 // default Options.FrameSize
	storeLatency = time.Millisecond
)

// World is one simulated federation.
type World struct {
	opts   Options
	rng    *rand.Rand
	now    time.Time
	queue  eventQueue
	seq    uint64
	sites  []*site
	links  []*simLink
	timing engine.Timing
	res    Result
	err    error
	// what exists anywhere: every ID ever stored at some site
	all      map[chunk.ID]engine.Kind
	names    [][32]byte
	stamp    uint64
	nextReq  uint64
	faulty   bool // some fault is in effect right now
	healedAt time.Time
}

type site struct {
	w       *World
	idx     int
	name    string
	eng     *engine.Engine
	st      *store
	up      bool
	gen     int // incremented at each crash: pending stores of an earlier life are lost
	links   map[engine.LinkID]*simLink
	downAt  map[engine.LinkID]time.Time
	wakeAt  time.Time
	entered map[chunk.ID]int // payloads that crossed into the site
	asks    map[uint64]*pendingAsk
	fetches map[uint64]chunk.ID
	pending map[uint64]pendingReq // asks and fetches not answered yet
	seenCf  map[[2]string]bool
	onAsk   map[uint64]func(engine.QueryDone) // directed asks (AskHeld): who hears their end
	storeAt map[engine.LinkID]time.Time       // per link, when its last store finishes
	lost    map[chunk.ID]bool                 // payloads it lost (loseState): a peer may have confirmed them before
	full    bool                              // its disk is full: stores fail (space.go)
}

type pendingReq struct {
	deadline time.Time
	gen      int // the site's life it was asked in
}

type pendingAsk struct {
	name     [32]byte
	deadline time.Time
	best     uint64 // the highest stamp any site held at the ask
	clean    bool   // no fault during the whole lookup so far
	local    uint64
}

type simLink struct {
	a, b    *site // a dials b
	space   bool  // both ends take wire.MsgSpace (else the receiver's "later" answers alone pause it)
	delay   time.Duration
	bw      float64 // bytes per second
	up      bool
	mode    engine.Mode
	cut     bool // held down by a fault
	loss    float64
	gen     int // the session: incremented at each link-up and link-down
	conn    int // the connection: incremented when it dies, and what is in flight with it
	stalled bool
	held    [2][][]byte // by pipe: messages of an earlier session, delivered into the next one
	pipes   [2]*pipe    // a→b, b→a
	idOf    [2]engine.LinkID
}

type pipe struct {
	l        *simLink
	from, to *site
	side     int
	lanes    [4][]frame
	busy     bool
}

type frame struct {
	body []byte
	ship *engine.Ship // the last frame of a ship
}

// Run runs one seed and checks its invariants.
func Run(opts Options) (Result, error) {
	w := newWorld(opts)
	w.run()
	if w.err != nil {
		return w.res, fmt.Errorf("seed %d: %w", opts.Seed, w.err)
	}
	return w.res, nil
}

func newWorld(opts Options) *World {
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed5eed))
	w := &World{opts: opts, rng: rng, now: epoch, timing: engine.DefaultTiming(),
		all: map[chunk.ID]engine.Kind{}}
	n := opts.Sites
	if n == 0 {
		n = 2 + rng.IntN(15)
	}
	w.res = Result{Seed: opts.Seed, Sites: n}
	for i := range n {
		s := &site{w: w, idx: i, name: fmt.Sprintf("s%d", i), st: newStore(), links: map[engine.LinkID]*simLink{},
			downAt: map[engine.LinkID]time.Time{}, entered: map[chunk.ID]int{}, asks: map[uint64]*pendingAsk{},
			fetches: map[uint64]chunk.ID{}, pending: map[uint64]pendingReq{}, seenCf: map[[2]string]bool{}, onAsk: map[uint64]func(engine.QueryDone){}, storeAt: map[engine.LinkID]time.Time{},
			lost: map[chunk.ID]bool{}}
		w.sites = append(w.sites, s)
	}
	w.topology()
	for range 5 {
		var h [32]byte
		w.fill(h[:])
		w.names = append(w.names, h)
	}
	return w
}

// topology joins the sites by a random spanning tree plus chords, so
// that most graphs have loops.
func (w *World) topology() {
	n := len(w.sites)
	edges := map[[2]int]bool{}
	for i := 1; i < n; i++ {
		edges[[2]int{w.rng.IntN(i), i}] = true
	}
	for range w.rng.IntN(n/2 + 2) {
		a, b := w.rng.IntN(n), w.rng.IntN(n)
		if a != b && !edges[[2]int{a, b}] && !edges[[2]int{b, a}] {
			edges[[2]int{a, b}] = true
		}
	}
	var list [][2]int
	for e := range edges {
		list = append(list, e)
	}
	if w.opts.Edges != nil {
		list = append([][2]int(nil), w.opts.Edges...)
	}
	slices.SortFunc(list, func(x, y [2]int) int {
		if x[0] != y[0] {
			return x[0] - y[0]
		}
		return x[1] - y[1]
	})
	for _, e := range list {
		a, b := w.sites[e[0]], w.sites[e[1]]
		l := &simLink{a: a, b: b, delay: time.Duration(1+w.rng.IntN(50)) * time.Millisecond,
			bw: float64(50_000 + w.rng.IntN(5_000_000))}
		if w.opts.Bandwidth > 0 {
			l.bw = w.opts.Bandwidth
		}
		if w.opts.Delay > 0 {
			l.delay = w.opts.Delay
		}
		// One link in four joins a site from before MsgSpace: drawn
		// without the seed's generator, so every other draw stays as it was.
		l.space = (w.opts.Seed+uint64(len(w.links)))%4 != 0
		l.idOf[0] = engine.LinkID{Peer: b.name, Dir: engine.DirOut} // as a sees it
		l.idOf[1] = engine.LinkID{Peer: a.name, Dir: engine.DirIn}  // as b sees it
		l.pipes[0] = &pipe{l: l, from: a, to: b, side: 0}
		l.pipes[1] = &pipe{l: l, from: b, to: a, side: 1}
		a.links[l.idOf[0]] = l
		b.links[l.idOf[1]] = l
		w.links = append(w.links, l)
	}
	w.res.Links = len(w.links)
}

func (w *World) fill(b []byte) {
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
}

// rngReader feeds an engine its query IDs from the world's seed.
type rngReader struct{ r *rand.Rand }

func (r rngReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(r.r.Uint32())
	}
	return len(b), nil
}

func (w *World) failf(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("%w at t=%s: %s", ErrInvariant, w.now.Sub(epoch), fmt.Sprintf(format, args...))
	}
}

func (w *World) trace(format string, args ...any) {
	if w.opts.Trace != nil {
		fmt.Fprintf(w.opts.Trace, "%9.3f ", w.now.Sub(epoch).Seconds())
		fmt.Fprintf(w.opts.Trace, format, args...)
		io.WriteString(w.opts.Trace, "\n")
	}
}

// at schedules fn at time t (never before now).
func (w *World) at(t time.Time, fn func()) {
	if t.Before(w.now) {
		t = w.now
	}
	w.seq++
	heap.Push(&w.queue, &item{at: t, seq: w.seq, fn: fn})
}

func (w *World) frameSize() int {
	if w.opts.FrameSize > 0 {
		return w.opts.FrameSize
	}
	return frameSize
}

func (w *World) after(d time.Duration, fn func()) { w.at(w.now.Add(d), fn) }

// run: start every site and link, play the workload and faults, heal
// everything, and wait for convergence.
func (w *World) run() {
	for _, s := range w.sites {
		s.start()
	}
	if w.opts.Scenario != nil {
		w.opts.Scenario(w)
	} else {
		w.plan()
	}
	for _, l := range w.links {
		w.linkUp(l)
	}
	w.heartbeat()
	healAt := epoch.Add(workload)
	if w.opts.HealAt > 0 {
		healAt = epoch.Add(w.opts.HealAt)
	}
	done := false
	for w.queue.Len() > 0 && w.err == nil {
		it := heap.Pop(&w.queue).(*item)
		w.now = it.at
		if !done && !w.healedAt.IsZero() && w.now.Sub(w.healedAt) > convergeMax {
			break
		}
		it.fn()
		if w.healedAt.IsZero() && !w.now.Before(healAt) {
			w.heal()
		}
		if !w.healedAt.IsZero() && !done && w.converged() {
			w.res.Converged = w.now.Sub(w.healedAt)
			done = true
		}
		if done && !w.now.Before(epoch.Add(w.opts.Until)) {
			break
		}
	}
	if w.err != nil {
		return
	}
	if done && w.res.Converged > healBound() {
		w.failf("converged only %s after the heal, want within %s", w.res.Converged, healBound())
		return
	}
	if !done {
		w.failf("not converged %s after the heal: %s", convergeMax, w.missing())
		return
	}
	if !w.converged() {
		w.failf("converged, then lost it by %s: %s", w.now.Sub(epoch), w.missing())
		return
	}
	w.finalChecks()
}

// heartbeat ticks every site once a simulated second, so that nothing
// depends on NextWake alone.
func (w *World) heartbeat() {
	w.after(time.Second, func() {
		for _, s := range w.sites {
			if s.up {
				s.step(engine.Tick{Now: w.now})
			}
		}
		w.heartbeat()
	})
}

// heal ends every fault: crashed sites restart, cut links come back,
// lossy links stop losing.
func (w *World) heal() {
	w.healedAt = w.now
	w.faulty = false
	w.trace("heal")
	for _, s := range w.sites {
		s.setFull(false)
		if !s.up {
			s.restart()
		}
	}
	for _, l := range w.links {
		l.loss = 0
		l.cut = false
		if !l.up && l.a.up && l.b.up {
			w.linkUp(l)
		}
	}
}

func (w *World) converged() bool {
	for _, s := range w.sites {
		if !s.up {
			return false
		}
		for id, k := range w.all {
			if !s.st.has(k, id) {
				return false
			}
		}
	}
	return true
}

func (w *World) missing() string {
	for _, s := range w.sites {
		n := 0
		var one chunk.ID
		for id, k := range w.all {
			if !s.st.has(k, id) {
				n++
				one = id
			}
		}
		if n > 0 {
			return fmt.Sprintf("%s lacks %d of %d (e.g. %s)", s.name, n, len(w.all), one.Short())
		}
	}
	return "nothing missing"
}

func (w *World) finalChecks() {
	for _, s := range w.sites {
		for req, p := range s.pending {
			if p.gen == s.gen && w.now.After(p.deadline) {
				w.failf("%s: request #%d never ended (deadline %s)", s.name, req, p.deadline.Sub(epoch))
				return
			}
		}
	}
	if !w.res.Clean {
		return
	}
	for _, s := range w.sites {
		for id, n := range s.entered {
			if n > 1 {
				w.failf("%s: payload %s crossed into the site %d times in a run with no loss and no crash", s.name, id.Short(), n)
				return
			}
		}
	}
}

// ---- sites ----

func (s *site) start() {
	s.up = true
	s.eng = engine.New(engine.Config{Site: s.name, Storage: s.st, Timing: s.w.timing,
		Limits: simLimits(s.w.frameSize()), Sign: s.sign, Verify: s.w.verify, Rand: rngReader{rand.New(rand.NewPCG(s.w.rng.Uint64(), uint64(s.idx)))},
		Inventory: s.st})
	s.wakeAt = time.Time{}
	if s.full {
		s.step(engine.SpaceChanged{Now: s.w.now, Full: true}) // the disk is still full after a restart
	}
}

func simLimits(frame int) engine.Limits {
	l := engine.DefaultLimits()
	l.FrameSize = frame
	return l
}

// The simulation signs confirmations with a keyed hash instead of
// ed25519, whose verification would take most of a run's time; the
// engine sees only Sign and Verify.
func (s *site) sign(msg []byte) []byte {
	h := sha512.New()
	h.Write([]byte(s.name))
	h.Write(msg)
	return h.Sum(nil) // 64 bytes, the size of an ed25519 signature
}

func (w *World) verify(name string, msg, sig []byte) (ok, known bool) {
	s := w.siteNamed(name)
	if s == nil {
		return false, false
	}
	return bytes.Equal(s.sign(msg), sig), true
}

func (s *site) crash() {
	if !s.up {
		return
	}
	s.w.trace("%s crash", s.name)
	s.up = false
	s.gen++
	s.eng = nil
	// The confirmations it heard were volatile: after the restart a held
	// query may have every holder confirm again.
	clear(s.seenCf)
	for _, l := range s.sortedLinks() {
		if l.up {
			s.w.linkDown(l)
		}
	}
}

func (s *site) restart() {
	s.w.trace("%s restart", s.name)
	s.start()
	for _, l := range s.sortedLinks() {
		if !l.cut && l.a.up && l.b.up && !l.up {
			s.w.linkUp(l)
		}
	}
}

func (s *site) sortedLinks() []*simLink {
	var out []*simLink
	for _, l := range s.w.links {
		if l.a == s || l.b == s {
			out = append(out, l)
		}
	}
	return out
}

// step feeds one event to the site's engine and carries out its Ready.
func (s *site) step(ev engine.Event) {
	if !s.up || s.w.err != nil {
		return
	}
	s.w.trace("%s %s", s.name, ev)
	s.eng.Step(ev)
	s.checkClaims()
	rd := s.eng.Ready()
	if s.w.opts.Trace != nil && !rd.Empty() {
		io.WriteString(s.w.opts.Trace, rd.String())
	}
	s.carryOut(rd)
	wake := s.eng.NextWake()
	if _, tick := ev.(engine.Tick); tick && !wake.IsZero() && !wake.After(s.w.now) {
		s.w.failf("%s: the engine wants a tick at %s right after one: a timeout it cannot act on", s.name, wake.Sub(epoch))
		return
	}
	if !wake.IsZero() && (s.wakeAt.IsZero() || wake.Before(s.wakeAt) || !s.wakeAt.After(s.w.now)) {
		s.wakeAt = wake
		gen := s.gen
		s.w.at(wake, func() {
			if s.gen == gen && s.up {
				s.wakeAt = time.Time{}
				s.step(engine.Tick{Now: s.w.now})
			}
		})
	}
}

func (s *site) carryOut(rd engine.Ready) {
	w := s.w
	for _, c := range rd.Cursors {
		s.checkCursor(c)
		s.st.cursors[cursorKey{c.Kind, c.Link}] = c.Seq
	}
	for _, st := range rd.Stores {
		s.store(st)
	}
	for _, m := range rd.Messages {
		s.checkFullAnswer(m.Msg)
		s.send(m.Link, m.Lane, m.Msg, nil)
	}
	for _, sh := range rd.Ships {
		s.ship(sh)
	}
	for _, q := range rd.Queries {
		delete(s.pending, q.Req)
		s.queryDone(q)
	}
	for _, f := range rd.Fetches {
		delete(s.pending, f.Req)
		id := s.fetches[f.Req]
		delete(s.fetches, f.Req)
		if f.Err != nil && w.res.Clean && w.opts.Scenario == nil {
			w.failf("%s: fetch of %s failed in a run without faults: %v", s.name, id.Short(), f.Err)
		}
		if f.Err == nil {
			if !s.st.has(engine.KindChunk, id) {
				w.failf("%s: fetch of %s said done, chunk not here", s.name, id.Short())
			}
			w.res.FetchesOK++
		}
	}
	for _, x := range rd.Recons {
		if !x.Initiator {
			continue
		}
		w.res.ReconBytes += x.SentBytes + x.ReceivedBytes
		switch {
		case x.Err != nil:
			w.res.ReconFailed++
		case x.Result.InSync:
			w.res.ReconInSync++
		default:
			w.res.ReconDiffer++
		}
	}
	for _, c := range rd.Confirmed {
		key := [2]string{c.ID.String(), c.Site}
		if by := w.siteNamed(c.Site); by != nil && len(by.lost) > 0 {
			// It held the version when it confirmed, then lost part of
			// it, and may confirm it again once reconciliation restored it.
			continue
		}
		if s.seenCf[key] {
			w.failf("%s: %s confirmed %s twice", s.name, c.Site, c.ID.Short())
		}
		s.seenCf[key] = true
		if by := w.siteNamed(c.Site); by == nil || !by.st.holdsWhole(c.ID) {
			w.failf("%s: %s confirmed %s without holding all of it", s.name, c.Site, c.ID.Short())
		}
	}
}

func (w *World) siteNamed(name string) *site {
	for _, s := range w.sites {
		if s.name == name {
			return s
		}
	}
	return nil
}

// checkCursor: a cursor never passes an entry its peer has not got.
func (s *site) checkCursor(c engine.CursorMove) {
	l := s.links[c.Link]
	peer := l.a
	if peer == s {
		peer = l.b
	}
	old := s.st.cursors[cursorKey{c.Kind, c.Link}]
	log := s.st.logs[c.Kind.Index()]
	for seq := old + 1; seq <= c.Seq && seq <= uint64(len(log)); seq++ {
		a := log[seq-1]
		if a.From != c.Link && !peer.st.has(c.Kind, a.ID) && !peer.lost[a.ID] && !s.lost[a.ID] {
			s.w.failf("%s: cursor of %s %s moved to %d past %s (seq %d), which %s lacks", s.name, c.Link, c.Kind, c.Seq, a.ID.Short(), seq, peer.name)
			return
		}
	}
}

// checkClaims: no claim outlives its link by more than the claim timeout.
func (s *site) checkClaims() {
	up := map[engine.LinkID]bool{}
	for _, id := range s.eng.Up() {
		up[id] = true
	}
	for _, c := range s.eng.Claims() {
		if c.Storing || up[c.Link] {
			continue
		}
		if down, ok := s.downAt[c.Link]; ok && s.w.now.Sub(down) > s.w.timing.ClaimTTL {
			s.w.failf("%s: claim on %s by %s outlived its link by %s", s.name, c.ID.Short(), c.Link, s.w.now.Sub(down))
		}
	}
}

func (s *site) store(st engine.Store) {
	w := s.w
	s.entered[st.ID]++
	w.res.PayloadEntries++
	done := s.storeAt[st.Link]
	if done.Before(w.now) {
		done = w.now
	}
	done = done.Add(storeLatency)
	s.storeAt[st.Link] = done
	gen := s.gen
	w.at(done, func() {
		if s.gen != gen || !s.up {
			return // lost with the crash
		}
		res, why := engine.Failed, "disk full"
		if !s.full {
			res, why = s.st.put(st, w.now)
		}
		if res == engine.Stored {
			if _, ok := w.all[st.ID]; !ok {
				w.failf("%s stored %s, which nobody put", s.name, st.ID.Short())
			}
		}
		s.step(engine.StoreDone{Now: w.now, Link: st.Link, Lane: st.Lane, Kind: st.Kind, ID: st.ID, Result: res, Reason: why})
	})
}

func (s *site) send(id engine.LinkID, lane wire.Lane, m *wire.Message, last *engine.Ship) {
	w := s.w
	if err := m.Validate(); err != nil {
		w.failf("%s: invalid message to %s: %v", s.name, id, err)
		return
	}
	body := m.Encode()
	if len(body) > wire.MaxMessage {
		w.failf("%s: message of %d bytes exceeds the limit %d", s.name, len(body), wire.MaxMessage)
		return
	}
	if m.Type == wire.MsgData && len(m.Data.Payload) > w.frameSize() {
		w.failf("%s: frame of %d payload bytes exceeds the frame size %d", s.name, len(m.Data.Payload), w.frameSize())
		return
	}
	l := s.links[id]
	if l == nil || !l.up {
		return // nothing is published into a link that is down
	}
	w.res.Messages++
	w.res.WireBytes += int64(len(body))
	switch m.Type {
	case wire.MsgBeacon:
		w.res.BeaconBytes += int64(len(body))
		w.res.BeaconMessages++
	case wire.MsgData:
		w.res.DataBytes += int64(len(body))
		w.res.PayloadBytes += int64(len(m.Data.Payload))
	}
	p := l.pipes[0]
	if l.b == s {
		p = l.pipes[1]
	}
	p.lanes[lane] = append(p.lanes[lane], frame{body: body, ship: last})
	if !p.busy {
		p.transmit()
	}
}

func (s *site) ship(sh engine.Ship) {
	codec, payload, rawLen, ok := s.st.payload(sh.Kind, sh.ID)
	if !ok {
		s.w.after(0, func() {
			s.step(engine.ShipFailed{Now: s.w.now, Link: sh.Link, Lane: sh.Lane, Kind: sh.Kind, ID: sh.ID})
		})
		return
	}
	frames := engine.Frames(sh, codec, payload, rawLen, s.w.frameSize())
	for i, d := range frames {
		var last *engine.Ship
		if i == len(frames)-1 {
			last = &sh
		}
		s.send(sh.Link, sh.Lane, &wire.Message{Type: wire.MsgData, Data: d}, last)
	}
}

// transmit serializes the highest-priority queued frame onto the wire;
// it arrives after the link's delay.
func (p *pipe) transmit() {
	l, w := p.l, p.from.w
	var f frame
	found := false
	for lane := range p.lanes {
		if len(p.lanes[lane]) > 0 {
			f = p.lanes[lane][0]
			p.lanes[lane] = p.lanes[lane][1:]
			found = true
			break
		}
	}
	if !found {
		p.busy = false
		return
	}
	p.busy = true
	conn := l.conn
	ser := time.Duration(float64(len(f.body)) / l.bw * float64(time.Second))
	w.after(ser, func() {
		if l.conn != conn {
			return
		}
		if f.ship != nil {
			sh := *f.ship
			p.from.step(engine.ShipSent{Now: w.now, Link: sh.Link, Lane: sh.Lane, Kind: sh.Kind, ID: sh.ID})
		}
		lost := l.loss > 0 && w.rng.Float64() < l.loss
		w.after(l.delay, func() {
			if l.conn != conn || lost {
				return
			}
			if !l.up {
				if l.stalled {
					l.held[p.side] = append(l.held[p.side], f.body)
				}
				return
			}
			p.deliver(f.body)
		})
		p.transmit()
	})
}

func (p *pipe) deliver(body []byte) {
	msg, err := wire.DecodeMessage(body)
	if err != nil {
		p.from.w.failf("a message did not decode: %v", err)
		return
	}
	p.to.step(engine.Received{Now: p.from.w.now, Link: p.l.idOf[1-p.side], Msg: msg})
}

// ---- links ----

func (w *World) linkUp(l *simLink) {
	if l.up || !l.a.up || !l.b.up {
		return
	}
	l.up = true
	l.gen++
	gen := l.gen
	if !l.stalled {
		l.held = [2][][]byte{}
	}
	l.stalled = false
	w.trace("link %s-%s up", l.a.name, l.b.name)
	// The dialer is up when the acceptor's proof arrives; the acceptor
	// one link delay later, when the dialer's proof does.
	l.a.step(engine.LinkUp{Now: w.now, Link: l.idOf[0], Mode: l.mode, Recon: true, Space: l.space, Held: true, Beacon: true})
	w.after(l.delay, func() {
		if l.gen == gen && l.up {
			l.b.step(engine.LinkUp{Now: w.now, Link: l.idOf[1], Mode: l.mode, Recon: true, Space: l.space, Held: true, Beacon: true})
			// What a stalled link still carried arrives now, into the
			// new session.
			for side, p := range l.pipes {
				held := l.held[side]
				l.held[side] = nil
				for _, body := range held {
					if l.up && l.gen == gen {
						p.deliver(body)
					}
				}
			}
		}
	})
}

// stall takes a link down at both ends as a silent peer does (the
// liveness check gives up on it) while its connection lives on: what is
// in flight is delivered when the link comes back, into a new session.
func (w *World) stall(l *simLink) {
	if !l.up {
		return
	}
	l.stalled = true
	w.takeDown(l)
}

func (w *World) linkDown(l *simLink) {
	if !l.up {
		return
	}
	l.conn++ // the connection died: what is in flight is lost
	l.stalled = false
	l.held = [2][][]byte{}
	for _, p := range l.pipes {
		p.busy = false
	}
	w.takeDown(l)
}

func (w *World) takeDown(l *simLink) {
	l.up = false
	l.gen++
	for _, p := range l.pipes {
		p.lanes = [4][]frame{} // nothing queued is published into a link that is down
	}
	w.trace("link %s-%s down", l.a.name, l.b.name)
	for side, s := range []*site{l.a, l.b} {
		s.downAt[l.idOf[side]] = w.now
		s.step(engine.LinkDown{Now: w.now, Link: l.idOf[side]})
	}
}

// ---- workload ----

// plan draws the workload and the faults of a run.
func (w *World) plan() {
	r := w.rng
	w.res.Lossy = r.IntN(10) < 3
	w.res.Crashes = r.IntN(10) < 3
	w.res.Cuts = r.IntN(10) < 4
	w.res.Stalls = r.IntN(10) < 3
	if r.IntN(10) < 2 {
		// Flood on some links: the seed's literal rule, duplicates
		// dropped on arrival.
		for _, l := range w.links {
			if r.IntN(2) == 0 {
				l.mode = engine.ModeFlood
				w.res.Flood = true
			}
		}
	}
	w.res.Losses = r.IntN(10) < 3
	w.planFull()
	w.res.Clean = !w.res.Lossy && !w.res.Crashes && !w.res.Cuts && !w.res.Stalls && !w.res.Flood && !w.res.Losses && !w.res.Full
	if w.res.Stalls {
		w.faults(1+r.IntN(4), workload, func() time.Duration { return time.Duration(r.IntN(3000)) * time.Millisecond },
			func() (begin, end func()) {
				l := w.links[r.IntN(len(w.links))]
				return func() { w.stall(l) }, func() { w.linkUp(l) }
			})
	}
	puts := 5 + r.IntN(20)
	for range puts {
		w.after(time.Duration(r.Int64N(int64(workload*9/10))), w.put)
	}
	for range r.IntN(8) {
		w.after(time.Duration(r.Int64N(int64(workload))), w.lookup)
	}
	for range r.IntN(8) {
		w.after(time.Duration(r.Int64N(int64(workload))), w.fetch)
	}
	if w.res.Lossy {
		w.faults(1+r.IntN(3), workload/2, func() time.Duration { return time.Duration(1+r.IntN(10)) * time.Second },
			func() (begin, end func()) {
				l := w.links[r.IntN(len(w.links))]
				return func() {
					l.loss = 0.01 + r.Float64()*0.2
					w.trace("link %s-%s loses %.0f%%", l.a.name, l.b.name, l.loss*100)
				}, func() { l.loss = 0 }
			})
	}
	if w.res.Cuts {
		w.faults(1+r.IntN(4), workload, func() time.Duration { return time.Duration(1+r.IntN(10)) * time.Second },
			func() (begin, end func()) {
				l := w.links[r.IntN(len(w.links))]
				return func() { l.cut = true; w.linkDown(l) }, func() { l.cut = false; w.linkUp(l) }
			})
	}
	if w.res.Losses {
		w.faults(1+r.IntN(3), workload, func() time.Duration { return time.Duration(1+r.IntN(8)) * time.Second },
			func() (begin, end func()) {
				s := w.sites[r.IntN(len(w.sites))]
				return func() { s.crash(); w.loseState(s) }, func() {
					if !s.up {
						s.restart()
					}
				}
			})
	}
	if w.res.Crashes {
		w.faults(1+r.IntN(3), workload, func() time.Duration { return time.Duration(1+r.IntN(8)) * time.Second },
			func() (begin, end func()) {
				s := w.sites[r.IntN(len(w.sites))]
				return s.crash, func() {
					if !s.up {
						s.restart()
					}
				}
			})
	}
}

// loseState makes a crashed site lose about a third of its stored
// payloads, as a pack file lost with a disk or a restore from an older
// backup does. Only payloads another site holds are lost (the rest
// would be gone for good, which no protocol can heal). Its log and
// cursors still say it had them, so its peers will not offer them
// again from their logs: only reconciliation brings them back.
func (w *World) loseState(s *site) {
	var lost int
	for _, k := range engine.Kinds {
		var ids []chunk.ID
		for id, kind := range w.all {
			if kind == k && s.st.has(k, id) {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, func(a, b chunk.ID) int { return bytes.Compare(a[:], b[:]) })
		for _, id := range ids {
			if w.rng.IntN(3) != 0 || !w.heldElsewhere(s, k, id) {
				continue
			}
			s.st.lose(k, id)
			s.lost[id] = true
			lost++
		}
	}
	w.trace("%s lost %d payloads", s.name, lost)
}

func (w *World) heldElsewhere(s *site, k engine.Kind, id chunk.ID) bool {
	for _, o := range w.sites {
		if o != s && o.st.has(k, id) {
			return true
		}
	}
	return false
}

// faults schedules n faults: pick chooses where each strikes, it begins
// at a random moment before within and ends after length. The draws
// happen in this order, so a seed replays exactly.
func (w *World) faults(n int, within time.Duration, length func() time.Duration, pick func() (begin, end func())) {
	for range n {
		begin, end := pick()
		start := time.Duration(w.rng.Int64N(int64(within)))
		w.after(start, func() {
			w.faulty = true
			begin()
		})
		w.after(start+length(), end)
	}
}

// put stores a new version at a random live site: a few chunks (some
// shared with earlier puts) and its manifest, logged as local arrivals.
func (w *World) put() {
	s := w.sites[w.rng.IntN(len(w.sites))]
	if !s.up {
		return
	}
	w.putAt(s.idx, 1+w.rng.IntN(4), w.rng.IntN(10) == 0, 0)
}

// PutSized puts a version of a random name at site i with n chunks of
// size bytes each (for directed scenarios); it returns the manifest ID.
func (w *World) PutSized(i, n, size int) chunk.ID { return w.putAt(i, n, false, size) }

// putAt puts a version at site i: n chunks of size bytes (random sizes,
// some shared with earlier puts, when size is 0), or a tombstone.
func (w *World) putAt(i, n int, tomb bool, size int) chunk.ID {
	s := w.sites[i]
	w.res.Puts++
	w.stamp++
	m := simManifest{name: w.names[w.rng.IntN(len(w.names))], stamp: uint64(w.now.Sub(epoch).Milliseconds())<<16 | w.stamp, site: byte(i), tomb: tomb}
	var chunks []simPayload
	if !tomb {
		for range n {
			var raw []byte
			if size == 0 && w.rng.IntN(10) == 0 && len(w.all) > 0 {
				raw = w.anyChunk()
			}
			if raw == nil {
				if size == 0 {
					size = 1 + w.rng.IntN(3000)
				}
				raw = make([]byte, size)
				w.fill(raw)
			}
			id := chunk.Sum(raw)
			m.chunks = append(m.chunks, id)
			chunks = append(chunks, simPayload{id, raw})
		}
	}
	enc := m.encode()
	mid := chunk.ID(sha256.Sum256(enc))
	for _, c := range chunks {
		w.all[c.id] = engine.KindChunk
	}
	w.all[mid] = engine.KindManifest
	s.st.putLocal(chunks, mid, enc, w.now)
	w.trace("%s put %s (%d chunks)", s.name, mid.Short(), len(chunks))
	s.step(engine.LogGrew{Now: w.now})
	return mid
}

func (w *World) anyChunk() []byte {
	for _, s := range w.sites {
		for _, id := range s.st.chunkOrder {
			if w.rng.IntN(4) == 0 {
				return s.st.chunks[id]
			}
		}
	}
	return nil
}

func (w *World) lookup() {
	s := w.sites[w.rng.IntN(len(w.sites))]
	if !s.up {
		return
	}
	name := w.names[w.rng.IntN(len(w.names))]
	w.nextReq++
	req := w.nextReq
	a := &pendingAsk{name: name, deadline: w.now.Add(time.Duration(1+w.rng.IntN(5)) * time.Second), clean: !w.faulty && !w.res.Lossy}
	for _, o := range w.sites {
		a.best = max(a.best, o.st.latest(name))
	}
	a.local = s.st.latest(name)
	s.asks[req] = a
	s.pending[req] = pendingReq{a.deadline, s.gen}
	w.res.Lookups++
	s.step(engine.Ask{Now: w.now, Req: req, Kind: wire.QueryLatest, Key: name, Deadline: a.deadline})
}

func (s *site) queryDone(q engine.QueryDone) {
	w := s.w
	if done := s.onAsk[q.Req]; done != nil {
		delete(s.onAsk, q.Req)
		done(q)
		return
	}
	a := s.asks[q.Req]
	delete(s.asks, q.Req)
	if a == nil {
		return
	}
	if w.now.After(a.deadline) {
		w.failf("%s: lookup #%d ended at %s, after its deadline %s", s.name, q.Req, w.now.Sub(epoch), a.deadline.Sub(epoch))
		return
	}
	if q.Err != nil || !a.clean || w.faulty || w.res.Lossy {
		return
	}
	got := a.local
	for _, r := range q.Replies {
		for _, enc := range r.Manifests {
			m, ok := decodeSimManifest(enc)
			if ok && m.name == a.name {
				got = max(got, m.stampKey())
			}
		}
	}
	if got < a.best {
		w.failf("%s: lookup #%d returned stamp %x, but a site held %x", s.name, q.Req, got, a.best)
		return
	}
	w.res.LookupsExact++
}

// AskHeld has site i ask, within d, which sites hold manifest id with
// all its chunks (wire.QueryHeld); done gets the sites that answered
// found, and the error the query ended with. Site i's engine counts the
// holders' signed confirmations (engine.Confirmed) as they arrive.
func (w *World) AskHeld(i int, id chunk.ID, d time.Duration, done func(found []string, err error)) {
	s := w.sites[i]
	if !s.up {
		done(nil, ErrStopped)
		return
	}
	w.nextReq++
	req, deadline := w.nextReq, w.now.Add(d)
	s.pending[req] = pendingReq{deadline, s.gen}
	s.onAsk[req] = func(q engine.QueryDone) {
		var found []string
		for _, r := range q.Replies {
			if r.Found {
				found = append(found, r.Site)
			}
		}
		slices.Sort(found)
		done(found, q.Err)
	}
	s.step(engine.Ask{Now: w.now, Req: req, Kind: wire.QueryHeld, Key: id, Deadline: deadline})
}

// Confirmed returns the sites whose confirmation of manifest id site i
// holds (nil while site i is down).
func (w *World) Confirmed(i int, id chunk.ID) []string {
	if s := w.sites[i]; s.up {
		return s.eng.Confirmed(id)
	}
	return nil
}

// Crash crashes site i at simulated time t (from the start) and restarts
// it with only its durable state after d.
func (w *World) Crash(i int, t, d time.Duration) {
	s := w.sites[i]
	w.After(t, s.crash)
	w.After(t+d, s.restart)
}

func (w *World) fetch() {
	s := w.sites[w.rng.IntN(len(w.sites))]
	if !s.up {
		return
	}
	for _, o := range w.sites {
		for _, id := range o.st.chunkOrder {
			if !s.st.has(engine.KindChunk, id) {
				w.nextReq++
				s.fetches[w.nextReq] = id
				s.pending[w.nextReq] = pendingReq{w.now.Add(10 * time.Second), s.gen}
				w.res.Fetches++
				s.step(engine.Fetch{Now: w.now, Req: w.nextReq, ID: id, Deadline: w.now.Add(10 * time.Second)})
				return
			}
		}
	}
}

// Blackhole makes link i lose every message while it stays up, from
// start for d.
func (w *World) Blackhole(i int, start, d time.Duration) {
	l := w.links[i]
	w.after(start, func() { w.faulty = true; w.res.Lossy = true; l.loss = 1 })
	w.after(start+d, func() { l.loss = 0 })
}

// After runs fn at simulated time t after the start.
func (w *World) After(t time.Duration, fn func()) { w.at(epoch.Add(t), fn) }

// ---- the event queue ----

type item struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventQueue []*item

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*item)) }
func (q *eventQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// healBound is how soon after every fault ends the federation must
// hold everything: lost frames are found within AssemblyIdle, an offer
// or ack lost for good is repeated within AnswerTimeout or AckTimeout.
func healBound() time.Duration {
	t := engine.DefaultTiming()
	return 2*t.AssemblyIdle + max(t.AnswerTimeout, t.AckTimeout)
}
