package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/forward/wire"
)

// Reconciliation sessions run inside the engine so that the simulator
// runs them too: the engine hosts forward/recon's pure session state
// machines, carries their bodies in MsgRecon on the control lane, ends
// them on silence or link loss, and feeds what they find into the link's
// repair windows, which offer it like log entries (want/have/later,
// inside the link's rate, after the log's own entries).
//
// Automatic sessions: the dialer of a link starts one ReconDelay after
// the link comes up (so both ends do not start one each), then every
// ReconInterval. A session falls due only while the link's log windows
// are idle (everything up to the head confirmed), because a link still
// catching up on its log would find its whole backlog "missing" and
// offer it twice; a link that never goes idle reconciles anyway once a
// whole interval has passed beyond the due time.

// repairBatches separates the batch numbers of repair windows from those
// of log windows (both start from the link-up time in nanoseconds).
const repairBatches = 1 << 62

// maxRepair bounds the entries of a repair window per kind: a lying peer
// cannot make a site queue more than this many offers per link.
const maxRepair = 200000

// maxResponders bounds the sessions a peer may have open here at once.
const maxResponders = 4

// maxRepaired bounds the IDs a link remembers as delivered by repair.
const maxRepaired = 1 << 20

type reconKey struct {
	link LinkID
	id   uint64
	mine bool
}

type session struct {
	key       reconKey
	req       uint64 // the Reconcile that asked for it; 0 automatic or the peer's
	init      *recon.Initiator
	resp      *recon.Responder
	last      time.Time
	sent, got int64
}

type recons struct {
	sessions map[reconKey]*session
	due      map[LinkID]time.Time // next automatic session of a dialed link
}

func newRecons() recons {
	return recons{sessions: map[reconKey]*session{}, due: map[LinkID]time.Time{}}
}

// reconOptions are the options of sessions this site takes part in.
func reconOptions(names bool) recon.Options {
	return recon.Options{Names: names, MaxItems: maxRepair}
}

func (e *Engine) reconLinkUp(l *link) {
	if l.recon && l.id.Dir == DirOut {
		e.rc.due[l.id] = e.now.Add(e.cfg.Timing.ReconDelay)
	}
}

func (e *Engine) reconLinkDown(id LinkID) {
	delete(e.rc.due, id)
	for _, key := range e.sortedSessions() {
		if key.link == id {
			e.endSession(e.rc.sessions[key], nil, ErrLinkDown)
		}
	}
}

// reconcile starts a session asked for by the shell.
func (e *Engine) reconcile(ev Reconcile) {
	l := e.reconLink(ev.Peer)
	if l == nil {
		err := ErrNoLink
		for _, dir := range []Direction{DirOut, DirIn} {
			if e.links[LinkID{Peer: ev.Peer, Dir: dir}] != nil {
				err = ErrCannotReconcile
			}
		}
		e.rd.Recons = append(e.rd.Recons, ReconEnded{Req: ev.Req, Initiator: true,
			Link: LinkID{Peer: ev.Peer}, Err: fmt.Errorf("reconcile with %s: %w", ev.Peer, err)})
		return
	}
	e.startSession(l, ev.Req, ev.Names)
}

// reconLink picks the up link to peer that reconciles, the dialed one
// first.
func (e *Engine) reconLink(peer string) *link {
	for _, dir := range []Direction{DirOut, DirIn} {
		if l := e.links[LinkID{Peer: peer, Dir: dir}]; l != nil && l.recon {
			return l
		}
	}
	return nil
}

func (e *Engine) startSession(l *link, req uint64, names bool) {
	if l.id.Dir == DirOut {
		e.rc.due[l.id] = e.now.Add(e.cfg.Timing.ReconInterval)
	}
	var b [8]byte
	if _, err := e.cfg.Rand.Read(b[:]); err != nil {
		e.rd.Recons = append(e.rd.Recons, ReconEnded{Link: l.id, Req: req, Initiator: true, Err: fmt.Errorf("reconcile: session ID: %w", err)})
		return
	}
	init, open := recon.NewInitiator(e.cfg.Inventory, reconOptions(names))
	s := &session{key: reconKey{link: l.id, id: binary.BigEndian.Uint64(b[:]), mine: true}, req: req, init: init, last: e.now}
	e.rc.sessions[s.key] = s
	e.sendRecon(s, [][]byte{open})
}

func (e *Engine) sendRecon(s *session, bodies [][]byte) {
	for _, body := range bodies {
		s.sent += reconWireSize(body)
		e.send(s.key.link, wire.LaneControl, &wire.Message{Type: wire.MsgRecon, Recon: &wire.Recon{Session: s.key.id, Body: body}})
	}
}

// reconWireSize is the encoded size of a MsgRecon with body.
func reconWireSize(body []byte) int64 {
	return int64(1 + 8 + len(binary.AppendUvarint(nil, uint64(len(body)))) + len(body))
}

// onRecon steps the session a message belongs to; an unknown session
// from the peer is a new one it asks this site to answer.
func (e *Engine) onRecon(l *link, m *wire.Recon) {
	if !l.recon {
		e.reject(l.id, "recon")
		return
	}
	fresh := false
	s := e.rc.sessions[reconKey{link: l.id, id: m.Session, mine: true}]
	if s == nil {
		key := reconKey{link: l.id, id: m.Session}
		if s = e.rc.sessions[key]; s == nil {
			if e.responders(l.id) >= maxResponders {
				e.reject(l.id, "recon")
				return
			}
			s = &session{key: key, resp: recon.NewResponder(e.cfg.Inventory, reconOptions(false)), last: e.now}
			e.rc.sessions[key] = s
			fresh = true
		}
	}
	s.last = e.now
	s.got += reconWireSize(m.Body)
	var out [][]byte
	var res *recon.Result
	var err error
	if s.init != nil {
		out, res, err = s.init.Step(m.Body)
	} else {
		out, res, err = s.resp.Step(m.Body)
	}
	if err != nil && fresh {
		// Not the start of a session: a late step of one that ended here
		// (or garbage). Answering it, even with an abort, could start an
		// exchange of aborts between two sites that both forgot it.
		delete(e.rc.sessions, s.key)
		e.reject(l.id, "recon")
		return
	}
	e.sendRecon(s, out)
	if err != nil {
		e.reject(l.id, "recon")
	}
	if res != nil || err != nil {
		e.endSession(s, res, err)
	}
}

func (e *Engine) responders(id LinkID) int {
	n := 0
	for key := range e.rc.sessions {
		if key.link == id && !key.mine {
			n++
		}
	}
	return n
}

// endSession reports a session's end and queues what the peer lacks.
func (e *Engine) endSession(s *session, res *recon.Result, err error) {
	delete(e.rc.sessions, s.key)
	if err != nil {
		err = fmt.Errorf("reconcile with %s: %w", s.key.link.Peer, err)
	}
	e.rd.Recons = append(e.rd.Recons, ReconEnded{Link: s.key.link, Req: s.req, Initiator: s.key.mine,
		Result: res, Err: err, SentBytes: s.sent, ReceivedBytes: s.got})
	if res == nil {
		return
	}
	l := e.links[s.key.link]
	if l == nil || len(res.Send) == 0 {
		return
	}
	var byKind [2][]chunk.ID
	again := 0
	for _, it := range res.Send {
		k := Kind(it.Kind)
		if k != KindManifest && k != KindChunk {
			continue
		}
		if _, ok := l.repaired[chunk.ID(it.ID)]; ok {
			again++
			continue
		}
		byKind[k.Index()] = append(byKind[k.Index()], chunk.ID(it.ID))
	}
	if again > 0 {
		e.note(true, l.id, fmt.Sprintf("reconciliation: the peer says it lacks %d items it acknowledged on this link already; not sending them again until the link reconnects", again), chunk.ID{}, nil)
	}
	for _, k := range Kinds {
		if n := l.repair[k.Index()].addRepair(byKind[k.Index()], maxRepair); n < len(byKind[k.Index()]) {
			e.note(true, l.id, fmt.Sprintf("reconciliation: %d %ss the peer lacks are already queued or over the limit of %d", len(byKind[k.Index()])-n, k, maxRepair), chunk.ID{}, nil)
		}
	}
	e.pumpLink(l)
}

// reconTick ends silent sessions and starts the automatic ones due.
func (e *Engine) reconTick() {
	for _, key := range e.sortedSessions() {
		if s := e.rc.sessions[key]; e.now.Sub(s.last) >= e.cfg.Timing.ReconIdle {
			e.endSession(s, nil, ErrReconTimeout)
		}
	}
	for _, id := range e.Up() {
		due, ok := e.rc.due[id]
		if !ok || e.now.Before(due) || e.running(id) {
			continue
		}
		l := e.links[id]
		if !e.logIdle(l) && e.now.Sub(due) < e.cfg.Timing.ReconInterval {
			continue
		}
		e.startSession(l, 0, false)
	}
}

// running reports whether this site has a session of its own open on id.
func (e *Engine) running(id LinkID) bool {
	for key := range e.rc.sessions {
		if key.link == id && key.mine {
			return true
		}
	}
	return false
}

// logIdle reports whether a link's log windows have confirmed everything
// up to the heads.
func (e *Engine) logIdle(l *link) bool {
	for _, k := range Kinds {
		if !l.windows[k.Index()].idle(e.st.Head(k)) {
			return false
		}
	}
	return true
}

// reconWake is when the next session times out or falls due.
func (e *Engine) reconWake() time.Time {
	var at time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for _, s := range e.rc.sessions {
		earliest(s.last.Add(e.cfg.Timing.ReconIdle))
	}
	for id, due := range e.rc.due {
		if e.running(id) {
			continue
		}
		if l := e.links[id]; l != nil && !e.logIdle(l) && !e.now.Before(due) {
			// Waiting for the log to drain: look again at the interval's
			// end (log progress steps the engine anyway).
			due = due.Add(e.cfg.Timing.ReconInterval)
		}
		earliest(due)
	}
	return at
}

func (e *Engine) sortedSessions() []reconKey {
	keys := make([]reconKey, 0, len(e.rc.sessions))
	for k := range e.rc.sessions {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reconKey) int {
		switch {
		case a.link.Peer != b.link.Peer:
			if a.link.Peer < b.link.Peer {
				return -1
			}
			return 1
		case a.link.Dir != b.link.Dir:
			return int(a.link.Dir) - int(b.link.Dir)
		case a.id != b.id:
			if a.id < b.id {
				return -1
			}
			return 1
		case a.mine != b.mine:
			if a.mine {
				return -1
			}
			return 1
		}
		return 0
	})
	return keys
}

// Repairs returns how many entries of each kind a link's repair windows
// still hold (offered or not yet), for status.
func (e *Engine) Repairs(id LinkID) (manifests, chunks int) {
	l := e.links[id]
	if l == nil {
		return 0, 0
	}
	return l.repair[KindManifest.Index()].held(), l.repair[KindChunk.Index()].held()
}
