package engine

import (
	"bytes"
	"slices"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// receiver is the receiving side of a link: payloads being assembled and
// what this side wanted, in the order the peer ships it.
type receiver struct {
	asm      map[chunk.ID]*assembly
	asmBytes int
	current  map[wire.Lane]chunk.ID   // per lane, the payload whose frames are arriving
	wanted   map[wire.Lane][]chunk.ID // per lane, wanted and not yet started, in want order
	heard    map[wire.Lane]time.Time  // per lane, when its last frame came
	wantedAt map[wire.Lane]time.Time  // per lane, when this side last wanted something
}

type assembly struct {
	kind   Kind
	lane   wire.Lane
	codec  chunk.Codec
	rawLen uint32
	total  uint32
	// frames are the payloads of the frames received, in order: they
	// alias the received messages, so a frame costs no allocation here
	// (never more than the frame itself, whatever total it announces);
	// the payload is joined at its exact size once whole.
	frames [][]byte
	n      int       // bytes received
	at     time.Time // last frame
	// wanted: the payload this link's lane is shipping because this site
	// wanted it from this link; the only kind of assembly not counted
	// against Limits.MaxAssemblyBytes (at most one per lane, manifest
	// and bulk, each at most chunk.MaxSize).
	wanted bool
}

// bytes returns the payload of a whole assembly.
func (a *assembly) bytes() []byte {
	if len(a.frames) == 1 {
		return a.frames[0]
	}
	b := make([]byte, 0, a.n)
	for _, f := range a.frames {
		b = append(b, f...)
	}
	return b
}

func newReceiver() receiver {
	return receiver{asm: map[chunk.ID]*assembly{}, current: map[wire.Lane]chunk.ID{}, wanted: map[wire.Lane][]chunk.ID{},
		heard: map[wire.Lane]time.Time{}, wantedAt: map[wire.Lane]time.Time{}}
}

func (r *receiver) wake(t Timing) time.Time {
	var at time.Time
	earliest := func(x time.Time) {
		if at.IsZero() || x.Before(at) {
			at = x
		}
	}
	for _, a := range r.asm {
		earliest(a.at.Add(t.AssemblyIdle))
	}
	for lane, ids := range r.wanted {
		if len(ids) > 0 {
			last := r.heard[lane]
			if r.wantedAt[lane].After(last) {
				last = r.wantedAt[lane]
			}
			earliest(last.Add(t.AssemblyIdle))
		}
	}
	return at
}

// decideAnswer is the answer to an offered ID: the site has it; it
// expects it from elsewhere, or is storing it (offer it again later); or
// it wants it. A claim by the same link on the same lane is a payload
// that link lost on the way: it is wanted again.
func decideAnswer(have bool, c *claim, link LinkID, lane wire.Lane) wire.Answer {
	switch {
	case have:
		return wire.AnswerHave
	case c != nil && (c.storing > 0 || c.link != link || c.lane != lane):
		return wire.AnswerLater
	}
	return wire.AnswerWant
}

func (e *Engine) onOffer(l *link, o *wire.Offer) {
	k, ok := KindOfLane(o.Lane)
	if !ok {
		return
	}
	answers := make([]wire.Answer, len(o.IDs))
	for i, raw := range o.IDs {
		id := chunk.ID(raw)
		c := e.claims[claimKey{k, id}]
		have := false
		if c == nil || c.storing == 0 {
			var err error
			if have, err = e.st.Has(k, id); err != nil {
				e.note(false, l.id, "offer: look-up failed; answering later", id, err)
				answers[i] = wire.AnswerLater
				continue
			}
		}
		if have && c != nil {
			// Here by another way (a local put of the same bytes): what
			// waited for the claimed copy has it now.
			delete(e.claims, claimKey{k, id})
			c = nil
			if k == KindChunk {
				e.chunkArrived(id)
			}
		}
		answers[i] = decideAnswer(have, c, l.id, o.Lane)
		if answers[i] == wire.AnswerWant && e.full {
			answers[i] = wire.AnswerLater // no room: offered again (at once once the peer hears there is room)
		}
		if answers[i] == wire.AnswerWant {
			e.claims[claimKey{k, id}] = &claim{link: l.id, lane: o.Lane, at: e.now}
			r := &l.recv
			r.wanted[o.Lane] = append(r.wanted[o.Lane], id)
			r.wantedAt[o.Lane] = e.now
		}
	}
	e.send(l.id, wire.LaneControl, &wire.Message{Type: wire.MsgAnswer, Answer: &wire.AnswerMsg{Lane: o.Lane, Batch: o.Batch, Answers: answers}})
}

// onData assembles frames; a whole payload goes to be verified and
// stored, and is acked when the store is done.
func (e *Engine) onData(l *link, d *wire.Data) {
	k, ok := KindOfLane(d.Lane)
	if d.Lane == wire.LaneLookup {
		k, ok = KindChunk, true // a fetched chunk
	}
	if !ok {
		return
	}
	id := chunk.ID(d.ID)
	a, lost := e.assemble(l, k, id, d)
	e.resend(l, d.Lane, lost)
	if a == nil {
		return
	}
	key := claimKey{k, id}
	c := e.claims[key]
	if c == nil {
		c = &claim{link: l.id, lane: d.Lane}
		e.claims[key] = c
	}
	c.at = e.now
	c.storing++
	e.rd.Stores = append(e.rd.Stores, Store{Link: l.id, Lane: d.Lane, Kind: k, ID: id, Codec: a.codec, Payload: a.bytes(), RawLen: a.rawLen})
}

// assemble adds a frame to its payload and returns the payload once
// whole, with the IDs found lost on the way. A frame costs what it
// carries and no more (its payload is kept, not copied), never the
// announced size; the payload is joined once whole.
func (e *Engine) assemble(l *link, k Kind, id chunk.ID, d *wire.Data) (*assembly, []chunk.ID) {
	r := &l.recv
	lim := e.cfg.Limits
	var lost []chunk.ID
	a := r.asm[id]
	if d.Offset == 0 {
		// A sender ships one payload of a lane at a time (fetches aside):
		// a new one starting while another is unfinished means frames of
		// that one were lost.
		if cur, ok := r.current[d.Lane]; ok && cur != id && d.Lane != wire.LaneLookup && r.asm[cur] != nil {
			r.drop(cur)
			lost = append(lost, cur)
		}
		r.current[d.Lane] = id
		lost = append(lost, e.skipped(l, d.Lane, id)...)
		if a != nil {
			r.drop(id)
		}
		// Wanted: asked of this link (a want, a fetch's pull), or pushed
		// on a flood link's replicated lane. A lane ships one payload
		// at a time, so those are bounded by the lanes, the pulls this
		// site made and chunk.MaxSize; the rest, by the limits.
		c := e.claims[claimKey{k, id}]
		wanted := c != nil && c.link == l.id && c.lane == d.Lane && c.storing == 0 ||
			d.Flood && l.mode == ModeFlood && d.Lane != wire.LaneLookup
		if !wanted && r.unwanted() >= lim.MaxAssemblies {
			e.note(true, l.id, "too many payloads in flight; frame dropped (the sender offers it again)", id, nil)
			return nil, append(lost, id)
		}
		a = &assembly{kind: k, lane: d.Lane, codec: chunk.Codec(d.Codec), rawLen: d.RawLen, total: d.Total, wanted: wanted}
		r.asm[id] = a
	}
	if a == nil || d.Offset != uint32(a.n) || d.Total != a.total || d.Lane != a.lane {
		if a != nil {
			r.drop(id)
		}
		return nil, append(lost, id) // out of order or inconsistent: ask for it again
	}
	if !a.wanted && r.asmBytes+len(d.Payload) > lim.MaxAssemblyBytes {
		r.drop(id)
		e.reject(l.id, "assembly_limit")
		e.note(true, l.id, "peer's unfinished payloads exceed the link's memory bound; payload dropped", id, nil)
		return nil, lost
	}
	if len(d.Payload) > 0 {
		a.frames = append(a.frames, d.Payload)
	}
	a.n += len(d.Payload)
	a.at = e.now
	r.heard[d.Lane] = e.now
	if !a.wanted {
		r.asmBytes += len(d.Payload)
	}
	if c := e.claims[claimKey{k, id}]; c != nil && c.link == l.id {
		c.at = e.now // progress keeps the claim alive
	}
	if a.n < int(a.total) {
		return nil, lost
	}
	r.drop(id)
	return a, lost
}

// unwanted counts the assemblies under way that this site did not want
// from this link (pushed, fetched, or lies).
func (r *receiver) unwanted() int {
	n := 0
	for _, a := range r.asm {
		if !a.wanted {
			n++
		}
	}
	return n
}

func (r *receiver) drop(id chunk.ID) {
	if a := r.asm[id]; a != nil {
		if !a.wanted {
			r.asmBytes -= a.n
		}
		delete(r.asm, id)
	}
}

// skipped returns the payloads wanted on lane before id that never
// started: a sender ships wanted payloads in the order they were wanted,
// so those were lost on the way.
func (e *Engine) skipped(l *link, lane wire.Lane, id chunk.ID) []chunk.ID {
	r := &l.recv
	ids := r.wanted[lane]
	for i, w := range ids {
		if w == id {
			r.wanted[lane] = ids[i+1:]
			return e.notHere(l, lane, ids[:i])
		}
	}
	return nil // pushed unasked, or sent again: not in the order
}

// notHere keeps the IDs neither stored, being stored, nor arriving.
func (e *Engine) notHere(l *link, lane wire.Lane, ids []chunk.ID) []chunk.ID {
	k, _ := KindOfLane(lane)
	var out []chunk.ID
	for _, id := range ids {
		if l.recv.asm[id] != nil {
			continue
		}
		if c := e.claims[claimKey{k, id}]; c != nil && c.storing > 0 {
			continue
		}
		if have, err := e.st.Has(k, id); err == nil && have {
			continue
		}
		out = append(out, id)
	}
	return out
}

// expireAssemblies drops payloads whose frames stopped arriving, and
// wanted payloads that never started while their lane fell silent, and
// asks the sender for them again.
func (e *Engine) expireAssemblies(l *link) {
	r := &l.recv
	idle := e.cfg.Timing.AssemblyIdle
	lost := map[wire.Lane][]chunk.ID{}
	for id, a := range r.asm {
		if e.now.Sub(a.at) >= idle {
			r.drop(id)
			lost[a.lane] = append(lost[a.lane], id)
		}
	}
	for _, lane := range wire.Lanes {
		ids := r.wanted[lane]
		if len(ids) > 0 && e.now.Sub(r.heard[lane]) >= idle && e.now.Sub(r.wantedAt[lane]) >= idle {
			lost[lane] = append(lost[lane], e.notHere(l, lane, ids)...)
			delete(r.wanted, lane)
		}
	}
	for _, lane := range wire.Lanes {
		e.resend(l, lane, sortIDs(lost[lane]))
	}
}

// resend releases this link's claims on payloads it lost and asks the
// peer to offer them again.
func (e *Engine) resend(l *link, lane wire.Lane, ids []chunk.ID) {
	if len(ids) == 0 {
		return
	}
	k, replicated := KindOfLane(lane)
	if !replicated {
		k = KindChunk
	}
	for _, id := range ids {
		if c := e.claims[claimKey{k, id}]; c != nil && c.link == l.id && c.storing == 0 {
			e.releaseClaim(claimKey{k, id}, l.id)
		}
	}
	if !replicated {
		return // a lost fetch: the fetcher moves on to the next holder
	}
	raw := make([][32]byte, len(ids))
	st := make([]wire.AckStatus, len(ids))
	for i, id := range ids {
		raw[i], st[i] = id, wire.AckResend
	}
	e.send(l.id, wire.LaneControl, &wire.Message{Type: wire.MsgAck, Ack: &wire.Ack{Lane: lane, IDs: raw, Status: st}})
}

// storeDone acks a stored payload, releases its claim, and lets
// fetches and confirmations that waited for it go on.
func (e *Engine) storeDone(ev StoreDone) {
	key := claimKey{ev.Kind, ev.ID}
	if c := e.claims[key]; c != nil {
		c.storing--
		if c.storing <= 0 {
			delete(e.claims, key)
			if ev.Result != Stored && ev.Result != Duplicate {
				e.claimReleased(key)
			}
		}
	}
	var status wire.AckStatus
	switch ev.Result {
	case Stored:
		status = wire.AckStored
		if ev.Kind == KindChunk {
			e.chunkArrived(ev.ID)
		} else {
			e.track(ev.ID)
		}
	case Duplicate:
		status = wire.AckDuplicate
		if ev.Kind == KindChunk {
			e.chunkArrived(ev.ID) // a fetch may wait for it all the same
		}
	case Rejected:
		status = wire.AckRejected
		e.reject(ev.Link, ev.Kind.String())
		e.note(true, ev.Link, "payload refused ("+ev.Reason+"); not stored, not relayed", ev.ID, nil)
	default:
		return // a local failure: no ack; the sender offers it again
	}
	if e.links[ev.Link] == nil {
		return
	}
	e.send(ev.Link, wire.LaneControl, &wire.Message{Type: wire.MsgAck, Ack: &wire.Ack{
		Lane: ev.Kind.Lane(), IDs: [][32]byte{ev.ID}, Status: []wire.AckStatus{status}}})
}

// releaseClaim drops link's claim on key, and lets whatever waited for
// that payload go on without it.
func (e *Engine) releaseClaim(key claimKey, link LinkID) {
	c := e.claims[key]
	if c == nil || c.link != link {
		return
	}
	if c.storing > 0 {
		return // the store under way holds it; storeDone ends it
	}
	delete(e.claims, key)
	e.claimReleased(key)
}

func sortIDs(ids []chunk.ID) []chunk.ID {
	slices.SortFunc(ids, func(a, b chunk.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// sortedIDs returns the keys of m in order, so that whatever the engine
// does for each of them happens in the same order on every run.
func sortedIDs[V any](m map[chunk.ID]V) []chunk.ID {
	ids := make([]chunk.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	return sortIDs(ids)
}
