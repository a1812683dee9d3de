package forward

import (
	"errors"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// onMessage handles one message from the peer, on the subscription
// goroutine of its lane.
func (l *Link) onMessage(lane wire.Lane, data []byte) {
	l.lastHeard.Store(time.Now().UnixNano())
	l.c.receivedWire.Add(int64(len(data)))
	l.c.messages.Add(1)
	msg, err := wire.DecodeMessage(data)
	if err != nil {
		l.c.rejected.Add(1)
		l.node.rejected("malformed_message")
		l.log.Warn("malformed message refused", "lane", laneSubject[lane], "err", err)
		return
	}
	switch msg.Type {
	case wire.MsgHelloAck, wire.MsgProof:
		l.node.onHandshake(l, msg)
		return
	case wire.MsgPing:
		return
	}
	if l.State() != StateUp {
		return
	}
	switch msg.Type {
	case wire.MsgQuery:
		l.node.onQuery(l, msg.Query)
	case wire.MsgReply:
		l.node.onReply(l, msg.Reply)
	case wire.MsgOffer:
		l.onOffer(msg.Offer)
	case wire.MsgAnswer:
		l.onAnswer(msg.Answer)
	case wire.MsgData:
		l.onData(msg.Data)
	case wire.MsgAck:
		l.onAck(msg.Ack)
	}
}

// onOffer answers each offered ID: want, have, or later.
func (l *Link) onOffer(o *wire.Offer) {
	k, ok := kindOf(o.Lane)
	if !ok {
		return
	}
	answers := make([]wire.Answer, len(o.IDs))
	for i, raw := range o.IDs {
		id := chunk.ID(raw)
		a, err := l.node.answer(k, id, l.name)
		if err != nil {
			l.log.Error("offer: look-up failed; answering later", "id", id.Short(), "err", err)
		}
		answers[i] = a
		if a == wire.AnswerWant {
			l.asmMu.Lock()
			l.wanted[o.Lane] = append(l.wanted[o.Lane], id)
			l.wantedAt[o.Lane] = time.Now()
			l.asmMu.Unlock()
		}
	}
	l.sendControl(&wire.Message{Type: wire.MsgAnswer, Answer: &wire.AnswerMsg{Lane: o.Lane, Batch: o.Batch, Answers: answers}})
}

// onData assembles frames; a complete payload is verified and stored
// (which logs and so relays it), or dropped as a duplicate, then acked.
func (l *Link) onData(d *wire.Data) {
	k, ok := kindOf(d.Lane)
	if d.Lane == wire.LaneLookup {
		k, ok = KindChunk, true // a fetched chunk
	}
	if !ok {
		return
	}
	id := chunk.ID(d.ID)
	a, done := l.assemble(k, id, d)
	if !done {
		return
	}
	l.complete(k, id, a)
}

func (l *Link) complete(k Kind, id chunk.ID, a *assembly) {
	defer l.node.release(id, l.name)
	status := l.store(k, id, a)
	if status == 0 {
		return // a local failure: no ack, the sender offers it again
	}
	l.sendControl(&wire.Message{Type: wire.MsgAck, Ack: &wire.Ack{Lane: laneOf(k), IDs: [][32]byte{id}, Status: []wire.AckStatus{status}}})
}

func (l *Link) store(k Kind, id chunk.ID, a *assembly) wire.AckStatus {
	have, err := l.node.stores.Has(k, id)
	if err != nil {
		l.log.Error("look-up failed", "id", id.Short(), "err", err)
		return 0
	}
	if ArrivalOutcome(have) == OutcomeDuplicate {
		l.countDuplicate(a)
		return wire.AckDuplicate
	}
	isNew, err := l.node.stores.Put(k, id, a.codec, a.buf, a.rawLen, l.name)
	switch {
	case errors.Is(err, ErrRejected):
		l.c.rejected.Add(1)
		l.node.rejected(k.String())
		l.log.Warn("payload refused; not stored, not relayed", "kind", k, "id", id.Short(), "err", err)
		return wire.AckRejected
	case err != nil:
		l.log.Error("store failed", "kind", k, "id", id.Short(), "err", err)
		return 0
	case !isNew:
		l.countDuplicate(a)
		return wire.AckDuplicate
	}
	l.c.receivedRaw.Add(int64(a.rawLen))
	if k == KindChunk {
		l.c.receivedChunks.Add(1)
		l.node.chunkArrived(id)
	} else {
		l.c.receivedManifests.Add(1)
		l.node.trackManifest(id)
	}
	return wire.AckStored
}

func (l *Link) countDuplicate(a *assembly) {
	l.c.duplicates.Add(1)
	if a.kind == KindChunk {
		l.c.duplicateChunks.Add(1)
	}
	l.c.duplicateBytes.Add(int64(a.rawLen))
}

// maxAssemblyBytes bounds the bytes a link holds in unfinished payloads,
// so a lying or broken peer cannot pin memory with announced sizes.
const maxAssemblyBytes = 64 << 20

// assemblyIdle drops a payload whose frames stopped arriving (lost on
// the way); the sender is told to offer it again.
const assemblyIdle = 10 * time.Second

// assemble adds a frame to its payload and returns the payload once
// complete. Buffers grow as bytes arrive, never to the announced size.
func (l *Link) assemble(k Kind, id chunk.ID, d *wire.Data) (*assembly, bool) {
	var lost []chunk.ID
	defer func() { l.resend(d.Lane, lost) }()
	l.asmMu.Lock()
	defer l.asmMu.Unlock()
	now := time.Now()
	a := l.asm[id]
	if d.Offset == 0 {
		// A sender ships one payload of a lane at a time (fetches aside):
		// a new one starting while another is unfinished means frames of
		// that one were lost.
		if cur, ok := l.current[d.Lane]; ok && cur != id && d.Lane != wire.LaneLookup && l.asm[cur] != nil {
			l.dropAssemblyLocked(cur)
			lost = append(lost, cur)
		}
		l.current[d.Lane] = id
		lost = append(lost, l.skippedLocked(d.Lane, id)...)
		if a != nil {
			l.dropAssemblyLocked(id)
		}
		if len(l.asm) >= maxAssemblies {
			l.log.Warn("too many payloads in flight; frame dropped (the sender offers it again)", "id", id.Short())
			lost = append(lost, id)
			return nil, false
		}
		a = &assembly{kind: k, codec: chunk.Codec(d.Codec), rawLen: d.RawLen, total: d.Total,
			buf: make([]byte, 0, min(int(d.Total), wire.FrameSize)), flood: d.Flood}
		l.asm[id] = a
	}
	if a == nil || d.Offset != uint32(len(a.buf)) || d.Total != a.total {
		if a != nil {
			l.dropAssemblyLocked(id)
		}
		lost = append(lost, id) // out of order or inconsistent: ask for it again
		return nil, false
	}
	if l.asmBytes+len(d.Payload) > maxAssemblyBytes {
		l.dropAssemblyLocked(id)
		l.c.rejected.Add(1)
		l.node.rejected("assembly_limit")
		l.log.Warn("peer's unfinished payloads exceed the link's memory bound; payload dropped", "id", id.Short())
		return nil, false
	}
	a.buf = append(a.buf, d.Payload...)
	a.at = now
	l.heard[d.Lane] = now
	l.asmBytes += len(d.Payload)
	l.node.touchClaim(id, l.name)
	if len(a.buf) < int(a.total) {
		return nil, false
	}
	l.asmBytes -= len(a.buf)
	delete(l.asm, id)
	return a, true
}

func (l *Link) dropAssemblyLocked(id chunk.ID) {
	if a := l.asm[id]; a != nil {
		l.asmBytes -= len(a.buf)
		delete(l.asm, id)
	}
}

// expireAssemblies drops payloads whose frames stopped arriving and asks
// the sender for them again.
func (l *Link) expireAssemblies() {
	lost := map[wire.Lane][]chunk.ID{}
	l.asmMu.Lock()
	now := time.Now()
	for id, a := range l.asm {
		if now.Sub(a.at) > assemblyIdle {
			l.dropAssemblyLocked(id)
			lost[laneOf(a.kind)] = append(lost[laneOf(a.kind)], id)
		}
	}
	for lane, ids := range l.wanted {
		// Wanted payloads, and nothing arrived on their lane for a while:
		// the messages were lost on the way.
		if len(ids) > 0 && now.Sub(l.heard[lane]) > assemblyIdle && now.Sub(l.wantedAt[lane]) > assemblyIdle {
			lost[lane] = append(lost[lane], l.notHereLocked(lane, ids)...)
			delete(l.wanted, lane)
		}
	}
	l.asmMu.Unlock()
	for lane, ids := range lost {
		l.resend(lane, ids)
	}
}

// resend releases this link's claims on payloads it lost and asks the
// peer to offer them again.
func (l *Link) resend(lane wire.Lane, ids []chunk.ID) {
	if len(ids) == 0 || lane == wire.LaneLookup {
		for _, id := range ids {
			l.node.release(id, l.name)
		}
		return
	}
	raw := make([][32]byte, len(ids))
	st := make([]wire.AckStatus, len(ids))
	for i, id := range ids {
		l.node.release(id, l.name)
		raw[i], st[i] = id, wire.AckResend
	}
	l.sendControl(&wire.Message{Type: wire.MsgAck, Ack: &wire.Ack{Lane: lane, IDs: raw, Status: st}})
}

// skippedLocked returns the payloads wanted on lane before id that never
// started: a sender ships wanted payloads in the order they were wanted,
// so those were lost on the way.
func (l *Link) skippedLocked(lane wire.Lane, id chunk.ID) []chunk.ID {
	ids := l.wanted[lane]
	for i, w := range ids {
		if w == id {
			l.wanted[lane] = ids[i+1:]
			return l.notHereLocked(lane, ids[:i])
		}
	}
	return nil // pushed unasked, or sent again: not in the order
}

// notHereLocked keeps the IDs of lane's kind neither stored nor arriving.
func (l *Link) notHereLocked(lane wire.Lane, ids []chunk.ID) []chunk.ID {
	k, _ := kindOf(lane)
	var out []chunk.ID
	for _, id := range ids {
		if l.asm[id] != nil {
			continue
		}
		if have, err := l.node.stores.Has(k, id); err == nil && have {
			continue
		}
		out = append(out, id)
	}
	return out
}
