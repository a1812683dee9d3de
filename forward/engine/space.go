package engine

import (
	"time"

	"github.com/skyfed/skyfed/forward/wire"
)

// Full disks. A site whose disk is below its reserve cannot take
// payloads: it answers "later" to offers of what it lacks (what it has
// is still answered "have", so cursors move), and tells the peers that
// announced wire.CapSpace with MsgSpace. Such a peer holds its offers on
// that link (they would only be answered "later") and shows the link as
// "peer full"; when the site has room again it says so, and the peer at
// once offers again everything that waited: what was answered "later"
// and what was sent and never acked (its store may have failed for
// want of space), rather than after LaterDelay or AckTimeout.
//
// Messages can be lost: a full site repeats "full" every SpaceRepeat,
// and a sender holds only SpaceHolds × SpaceRepeat past the last "full"
// it heard; a link that comes up again starts with the peer not full.

// spaceState is a link's side of the exchange.
type spaceState struct {
	takes    bool      // the peer takes MsgSpace
	toldAt   time.Time // when this site last told the peer "full" (zero: not told)
	peerFull bool      // the peer said it is full: hold offers
	heardAt  time.Time // when the peer last said "full"
}

// spaceChanged records this site's own state and tells the peers.
func (e *Engine) spaceChanged(full bool) {
	if full == e.full {
		return
	}
	e.full = full
	for _, id := range e.Up() {
		l := e.links[id]
		if full {
			e.tellSpace(l, true)
		} else if !l.space.toldAt.IsZero() {
			e.tellSpace(l, false)
		}
	}
}

// tellSpace sends this site's state on l, if its peer takes it.
func (e *Engine) tellSpace(l *link, full bool) {
	if !l.space.takes {
		return
	}
	l.space.toldAt = time.Time{}
	if full {
		l.space.toldAt = e.now
	}
	e.statsOf(l.id).SpaceSent++
	e.send(l.id, wire.LaneControl, &wire.Message{Type: wire.MsgSpace, Space: &wire.Space{Full: full}})
}

// onSpace applies a peer's state: hold offers while it is full, offer
// at once what waited when it has room again.
func (e *Engine) onSpace(l *link, m *wire.Space) {
	st := e.statsOf(l.id)
	if m.Full {
		st.PeerFullSignals++
		l.space.peerFull, l.space.heardAt = true, e.now
		return
	}
	st.PeerRoomSignals++
	l.space.peerFull = false
	st.Resumed += int64(e.resume(l))
}

// resume puts back to be offered now every entry of l's windows that
// waits on a timeout (later, or sent and unacked) and returns how many.
func (e *Engine) resume(l *link) int {
	n := 0
	for _, k := range Kinds {
		n += l.windows[k.Index()].resume()
		n += l.repair[k.Index()].resume()
	}
	return n
}

// spaceTick repeats "full" to peers and ends holds whose peer fell
// silent about its disk.
func (e *Engine) spaceTick() {
	every := e.cfg.Timing.SpaceRepeat
	for _, id := range e.Up() {
		l := e.links[id]
		if e.full && l.space.takes && e.now.Sub(l.space.toldAt) >= every {
			e.tellSpace(l, true)
		}
		if l.space.peerFull && e.now.Sub(l.space.heardAt) >= SpaceHolds*every {
			l.space.peerFull = false
			e.note(true, l.id, "peer said its disk is full and has not repeated it; offering again", [32]byte{}, nil)
		}
	}
}

// spaceWake is when spaceTick next has something to do on l.
func (e *Engine) spaceWake(l *link) time.Time {
	every := e.cfg.Timing.SpaceRepeat
	var at time.Time
	if e.full && l.space.takes {
		at = l.space.toldAt.Add(every)
	}
	if l.space.peerFull {
		if t := l.space.heardAt.Add(SpaceHolds * every); at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at
}

// PeerFull reports whether the peer of link id said its disk is full
// (and this site holds its offers to it).
func (e *Engine) PeerFull(id LinkID) bool {
	l := e.links[id]
	return l != nil && l.space.peerFull
}

// Full reports whether this site's disk is full, as last told.
func (e *Engine) Full() bool { return e.full }

// spaceLinkUp starts a link's side of the exchange: the peer is not
// known to be full, and hears at once if this site is.
func (e *Engine) spaceLinkUp(id LinkID, takes bool) {
	l := e.links[id]
	if l == nil {
		return
	}
	l.space = spaceState{takes: takes}
	if e.full {
		e.tellSpace(l, true)
	}
}
