package engine

import (
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

type entryState int

const (
	stateQueued  entryState = iota // loaded, not yet offered
	stateOffered                   // offered, waiting for the answer
	stateWanted                    // wanted (or pushed), waiting for the durable ack
	stateLater                     // the neighbour is receiving it elsewhere; offer again later
	stateDone                      // confirmed: have, or acked
)

var entryStateNames = [...]string{"queued", "offered", "wanted", "later", "done"}

func (s entryState) String() string { return entryStateNames[s] }

type entry struct {
	seq     uint64
	id      chunk.ID
	state   entryState
	batch   uint64
	since   time.Time // when the state was entered
	sentAt  time.Time // wanted: when its last frame left (zero until then)
	shipSeq uint64    // wanted: order in which it was handed out to be shipped
}

// window is a sender's view of one log (one kind) on one link: the
// entries past the cursor that it has loaded, and their state.
type window struct {
	link    LinkID
	timing  Timing
	cursor  uint64 // every entry ≤ cursor is confirmed
	loaded  uint64 // highest sequence loaded
	entries []*entry
	batches map[uint64][]*entry
	byID    map[chunk.ID][]*entry
	batch   uint64
	shipSeq uint64
	// A repair window's IDs not loaded yet, in order, and their set:
	// only MaxLoaded of them are entries at a time, as only MaxLoaded of
	// the log are, so the work per pump stays bounded however much a
	// reconciliation found.
	queue   []chunk.ID
	inQueue map[chunk.ID]struct{}
}

func newWindow(link LinkID, cursor uint64, t Timing) *window {
	return &window{link: link, timing: t, cursor: cursor, loaded: cursor,
		batches: map[uint64][]*entry{}, byID: map[chunk.ID][]*entry{}}
}

// load adds arrivals read from the log (in sequence order, after loaded).
// Those that arrived on this very link are confirmed at once: the
// neighbour sent them.
func (w *window) load(as []Arrival, now time.Time) {
	for _, a := range as {
		if a.Seq <= w.loaded {
			continue
		}
		w.loaded = a.Seq
		e := &entry{seq: a.Seq, id: a.ID, since: now}
		if a.From == w.link {
			e.state = stateDone
		} else {
			w.byID[a.ID] = append(w.byID[a.ID], e)
		}
		w.entries = append(w.entries, e)
	}
}

// nextOffer picks up to max IDs to offer now and returns the batch
// number the answer will carry, or no IDs.
func (w *window) nextOffer(max int, now time.Time, skip func(chunk.ID) bool) (uint64, []chunk.ID) {
	var pick []*entry
	for _, e := range w.entries {
		if len(pick) == max {
			break
		}
		if w.due(e, now) && (skip == nil || !skip(e.id)) {
			pick = append(pick, e)
		}
	}
	if len(pick) == 0 {
		return 0, nil
	}
	w.batch++
	ids := make([]chunk.ID, len(pick))
	for i, e := range pick {
		e.state, e.batch, e.since, e.sentAt = stateOffered, w.batch, now, time.Time{}
		ids[i] = e.id
	}
	w.batches[w.batch] = pick
	return w.batch, ids
}

// nextPush picks up to max IDs to push unasked (flood mode).
func (w *window) nextPush(max int, now time.Time, skip func(chunk.ID) bool) []chunk.ID {
	var ids []chunk.ID
	for _, e := range w.entries {
		if len(ids) == max {
			break
		}
		if w.due(e, now) && (skip == nil || !skip(e.id)) {
			w.want(e, now)
			ids = append(ids, e.id)
		}
	}
	return ids
}

func (w *window) want(e *entry, now time.Time) {
	w.shipSeq++
	e.state, e.since, e.sentAt, e.shipSeq = stateWanted, now, time.Time{}, w.shipSeq
}

// due reports whether e is to be offered (or pushed) now. A wanted entry
// is due again only once it was sent in full and its ack is overdue:
// while it waits in a slow link's queue, nothing is lost.
func (w *window) due(e *entry, now time.Time) bool {
	switch e.state {
	case stateQueued:
		return true
	case stateLater:
		return now.Sub(e.since) >= w.timing.LaterDelay
	case stateOffered:
		return now.Sub(e.since) >= w.timing.AnswerTimeout
	case stateWanted:
		return !e.sentAt.IsZero() && now.Sub(e.sentAt) >= w.timing.AckTimeout
	}
	return false
}

// wake returns when the earliest timeout of the window falls due, or the
// zero time. Without room in flight, a "later" falling due changes
// nothing (it waits for room, which an answer, an ack or another
// timeout makes): with room false only those count.
func (w *window) wake(room bool) time.Time {
	var at time.Time
	for _, e := range w.entries {
		var t time.Time
		switch e.state {
		case stateLater:
			if room {
				t = e.since.Add(w.timing.LaterDelay)
			}
		case stateOffered:
			t = e.since.Add(w.timing.AnswerTimeout)
		case stateWanted:
			if !e.sentAt.IsZero() {
				t = e.sentAt.Add(w.timing.AckTimeout)
			}
		}
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	return at
}

// onAnswer applies the neighbour's answers to a batch and returns the
// IDs to send. Answers come back in the order the offers went out (both
// travel on the in-order control lane), so a batch still unanswered
// when a later one's answer arrives was lost on the way, or its answer
// was: it is offered again at once.
func (w *window) onAnswer(batch uint64, answers []wire.Answer, now time.Time) []chunk.ID {
	es, ok := w.batches[batch]
	if !ok || len(answers) != len(es) {
		return nil
	}
	for b, lost := range w.batches {
		if b < batch {
			for _, e := range lost {
				if e.state == stateOffered && e.batch == b {
					e.state = stateQueued
				}
			}
			delete(w.batches, b)
		}
	}
	delete(w.batches, batch)
	var send []chunk.ID
	for i, e := range es {
		if e.state != stateOffered || e.batch != batch {
			continue
		}
		e.since = now
		switch answers[i] {
		case wire.AnswerWant:
			w.want(e, now)
			send = append(send, e.id)
		case wire.AnswerHave:
			e.state = stateDone
		case wire.AnswerLater:
			e.state = stateLater
		}
	}
	return send
}

// sent records that id's last frame left.
func (w *window) sent(id chunk.ID, now time.Time) {
	for _, e := range w.byID[id] {
		if e.state == stateWanted && e.sentAt.IsZero() {
			e.sentAt = now
		}
	}
}

// onAck confirms IDs the neighbour stored durably (or refused: a refused
// payload will not become acceptable by sending it again). The receiver
// stores and acks a link's payloads in the order they were shipped, so
// a payload shipped in full before an acked one and still unacked was
// lost, or its ack was: it is offered again (the neighbour answers
// "have" if it was only the ack).
func (w *window) onAck(ids []chunk.ID) {
	var upTo uint64
	for _, id := range ids {
		for _, e := range w.byID[id] {
			if e.state == stateWanted {
				upTo = max(upTo, e.shipSeq)
			}
			if e.state == stateWanted || e.state == stateOffered || e.state == stateLater || e.state == stateQueued {
				e.state = stateDone
			}
		}
	}
	if upTo == 0 {
		return
	}
	for _, e := range w.entries {
		if e.state == stateWanted && e.shipSeq < upTo && !e.sentAt.IsZero() {
			e.state = stateQueued
		}
	}
}

// requeue puts IDs whose payload the peer lost back to be offered again.
func (w *window) requeue(ids []chunk.ID) {
	for _, id := range ids {
		for _, e := range w.byID[id] {
			if e.state == stateWanted {
				e.state = stateQueued
			}
		}
	}
}

// resume puts back to be offered now the entries that wait on a
// timeout because the peer had no room: answered "later", or sent in
// full and unacked (the peer's store may have failed). It returns how
// many. An entry still being shipped keeps its place: its ack comes.
func (w *window) resume() int {
	n := 0
	for _, e := range w.entries {
		if e.state == stateLater || e.state == stateWanted && !e.sentAt.IsZero() {
			e.state = stateQueued
			n++
		}
	}
	return n
}

// skip confirms IDs that cannot be shipped (gone from this site), so the
// cursor can pass them.
func (w *window) skip(id chunk.ID) {
	for _, e := range w.byID[id] {
		e.state = stateDone
	}
}

// advance moves the cursor over the confirmed prefix and reports whether
// it moved.
func (w *window) advance() bool {
	n := 0
	for n < len(w.entries) && w.entries[n].state == stateDone {
		e := w.entries[n]
		w.cursor = e.seq
		w.dropID(e)
		n++
	}
	w.entries = w.entries[n:]
	if len(w.entries) == 0 && w.loaded > w.cursor {
		w.cursor = w.loaded
		n++
	}
	return n > 0
}

func (w *window) dropID(e *entry) {
	list := w.byID[e.id]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.byID, e.id)
	} else {
		w.byID[e.id] = list
	}
}

// outstanding counts the entries offered or wanted whose answer or ack
// is still awaited: one that timed out is due again and no longer holds
// a place in flight (else lost ones could fill every place and never be
// offered again).
func (w *window) outstanding(now time.Time) int {
	n := 0
	for _, e := range w.entries {
		if (e.state == stateWanted || e.state == stateOffered) && !w.due(e, now) {
			n++
		}
	}
	return n
}

// inFlight reports whether id is offered, wanted or waiting out a
// "later" here.
func (w *window) inFlight(id chunk.ID) bool {
	for _, e := range w.byID[id] {
		if e.state == stateOffered || e.state == stateWanted || e.state == stateLater {
			return true
		}
	}
	return false
}

// pending reports whether id is loaded here and not yet confirmed.
func (w *window) pending(id chunk.ID) bool {
	for _, e := range w.byID[id] {
		if e.state != stateDone {
			return true
		}
	}
	return false
}

// addRepair queues IDs a reconciliation found the peer lacks (a repair
// window: no log, no cursor), each at most once, up to limit queued.
func (w *window) addRepair(ids []chunk.ID, limit int) (added int) {
	if w.inQueue == nil {
		w.inQueue = map[chunk.ID]struct{}{}
	}
	for _, id := range ids {
		if len(w.entries)+len(w.queue) >= limit {
			break
		}
		if _, ok := w.inQueue[id]; ok || w.pending(id) {
			continue
		}
		w.queue = append(w.queue, id)
		w.inQueue[id] = struct{}{}
		added++
	}
	return added
}

// loadRepair moves queued IDs into entries, up to max entries.
func (w *window) loadRepair(max int, now time.Time) {
	n := 0
	for n < len(w.queue) && len(w.entries) < max {
		id := w.queue[n]
		delete(w.inQueue, id)
		e := &entry{id: id, since: now}
		w.byID[id] = append(w.byID[id], e)
		w.entries = append(w.entries, e)
		n++
	}
	if n > 0 {
		clear(w.queue[:n])
		w.queue = w.queue[n:]
	}
}

// held counts a repair window's entries and queued IDs.
func (w *window) held() int { return len(w.entries) + len(w.queue) }

// drop forgets the confirmed entries of a repair window.
func (w *window) drop() {
	kept := w.entries[:0]
	for _, e := range w.entries {
		if e.state == stateDone {
			w.dropID(e)
			continue
		}
		kept = append(kept, e)
	}
	clear(w.entries[len(kept):])
	w.entries = kept
}

// idle reports whether the window has loaded the log up to head and
// everything loaded is confirmed.
func (w *window) idle(head uint64) bool {
	return w.loaded >= head && len(w.entries) == 0
}

// oldest returns the sequence of the oldest unconfirmed entry loaded.
func (w *window) oldest() (uint64, bool) {
	for _, e := range w.entries {
		if e.state != stateDone {
			return e.seq, true
		}
	}
	return 0, false
}
