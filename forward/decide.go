package forward

import (
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// The forwarding decisions, apart from any I/O: which answer a receiver
// gives to an offered ID, what it does with a payload that arrives, and
// the sender's window over its arrival log (what to offer, what to send,
// when the cursor may advance). The link loop feeds them events and
// carries out what they return.

// wire.Answer decides how a receiver answers an offered ID: it has it, it is
// receiving it on another link right now (offer again later), or it
// wants it.
func AnswerFor(have bool, claimedBy, link string) wire.Answer {
	switch {
	case have:
		return wire.AnswerHave
	case claimedBy != "" && claimedBy != link:
		return wire.AnswerLater
	default:
		return wire.AnswerWant
	}
}

// Outcome is what a receiver does with a complete payload.
type Outcome int

// Outcomes of an arrival.
const (
	OutcomeStore     Outcome = iota // new here: verify, store, log (which relays it)
	OutcomeDuplicate                // already here: drop and count
)

// ArrivalOutcome applies the map-free rule: drop what is already known.
func ArrivalOutcome(have bool) Outcome {
	if have {
		return OutcomeDuplicate
	}
	return OutcomeStore
}

// Relays reports whether an arrival is passed on over link: everything
// is, except over the link it came in on.
func Relays(a Arrival, link string) bool { return a.From != link }

type entryState int

const (
	stateQueued  entryState = iota // loaded, not yet offered
	stateOffered                   // offered, waiting for the answer
	stateWanted                    // wanted (or pushed), waiting for the durable ack
	stateLater                     // the neighbour is receiving it elsewhere; offer again later
	stateDone                      // confirmed: have, or acked
)

type entry struct {
	seq   uint64
	id    chunk.ID
	state entryState
	batch uint64
	since time.Time // when the state was entered
}

// Timing of a window.
type Timing struct {
	LaterDelay    time.Duration // how long a "later" waits before it is offered again
	AnswerTimeout time.Duration // an offer unanswered this long is offered again
	AckTimeout    time.Duration // a wanted payload unacked this long is offered again
}

// DefaultTiming suits WAN links.
var DefaultTiming = Timing{LaterDelay: 300 * time.Millisecond, AnswerTimeout: 30 * time.Second, AckTimeout: 120 * time.Second}

// Window is a sender's view of one log (one kind) on one link: the
// entries past the cursor that it has loaded, and their state. It only
// decides; it performs no I/O.
type Window struct {
	link    string
	timing  Timing
	cursor  uint64 // every entry ≤ cursor is confirmed
	loaded  uint64 // highest sequence loaded
	entries []*entry
	batches map[uint64][]*entry
	byID    map[chunk.ID][]*entry
	batch   uint64
}

// NewWindow starts a window after cursor.
func NewWindow(link string, cursor uint64, t Timing) *Window {
	w := &Window{link: link, timing: t}
	w.Reset(cursor)
	return w
}

// Reset forgets everything loaded and restarts after cursor, as when the
// link went down: what was in flight is offered again.
func (w *Window) Reset(cursor uint64) {
	w.cursor, w.loaded = cursor, cursor
	w.entries = nil
	w.batches = map[uint64][]*entry{}
	w.byID = map[chunk.ID][]*entry{}
}

// Cursor returns the confirmed position.
func (w *Window) Cursor() uint64 { return w.cursor }

// Loaded returns the highest sequence loaded.
func (w *Window) Loaded() uint64 { return w.loaded }

// Len returns how many entries are loaded and not yet passed by the cursor.
func (w *Window) Len() int { return len(w.entries) }

// Load adds arrivals read from the log (in sequence order, after Loaded).
// Those that arrived on this very link are confirmed at once: the
// neighbour sent them.
func (w *Window) Load(as []Arrival, now time.Time) {
	for _, a := range as {
		if a.Seq <= w.loaded {
			continue
		}
		w.loaded = a.Seq
		e := &entry{seq: a.Seq, id: a.ID, since: now}
		if !Relays(a, w.link) {
			e.state = stateDone
		} else {
			w.byID[a.ID] = append(w.byID[a.ID], e)
		}
		w.entries = append(w.entries, e)
	}
}

// NextOffer picks up to max IDs to offer now: queued ones, "later" ones
// whose delay passed, and offers or sends that timed out. It returns the
// batch number to match the answer with, or no IDs.
func (w *Window) NextOffer(max int, now time.Time) (uint64, []chunk.ID) {
	var pick []*entry
	for _, e := range w.entries {
		if len(pick) == max {
			break
		}
		if w.due(e, now) {
			pick = append(pick, e)
		}
	}
	if len(pick) == 0 {
		return 0, nil
	}
	w.batch++
	ids := make([]chunk.ID, len(pick))
	for i, e := range pick {
		e.state, e.batch, e.since = stateOffered, w.batch, now
		ids[i] = e.id
	}
	w.batches[w.batch] = pick
	return w.batch, ids
}

// NextPush picks up to max IDs to push unasked (flood mode).
func (w *Window) NextPush(max int, now time.Time) []chunk.ID {
	var ids []chunk.ID
	for _, e := range w.entries {
		if len(ids) == max {
			break
		}
		if w.due(e, now) {
			e.state, e.since = stateWanted, now
			ids = append(ids, e.id)
		}
	}
	return ids
}

func (w *Window) due(e *entry, now time.Time) bool {
	switch e.state {
	case stateQueued:
		return true
	case stateLater:
		return now.Sub(e.since) >= w.timing.LaterDelay
	case stateOffered:
		return now.Sub(e.since) >= w.timing.AnswerTimeout
	case stateWanted:
		return now.Sub(e.since) >= w.timing.AckTimeout
	}
	return false
}

// OnAnswer applies the neighbour's answers to a batch and returns the IDs
// to send. Answers to an unknown or stale batch are ignored.
func (w *Window) OnAnswer(batch uint64, answers []wire.Answer, now time.Time) []chunk.ID {
	es, ok := w.batches[batch]
	delete(w.batches, batch)
	if !ok || len(answers) != len(es) {
		return nil
	}
	var send []chunk.ID
	for i, e := range es {
		if e.state != stateOffered || e.batch != batch {
			continue
		}
		e.since = now
		switch answers[i] {
		case wire.AnswerWant:
			e.state = stateWanted
			send = append(send, e.id)
		case wire.AnswerHave:
			e.state = stateDone
		case wire.AnswerLater:
			e.state = stateLater
		}
	}
	return send
}

// OnAck confirms IDs the neighbour stored durably (or refused: a refused
// payload will not become acceptable by sending it again).
func (w *Window) OnAck(ids []chunk.ID) {
	for _, id := range ids {
		for _, e := range w.byID[id] {
			if e.state == stateWanted || e.state == stateOffered || e.state == stateLater {
				e.state = stateDone
			}
		}
	}
}

// Requeue puts IDs whose payload the peer lost back to be offered again.
func (w *Window) Requeue(ids []chunk.ID) {
	for _, id := range ids {
		for _, e := range w.byID[id] {
			if e.state == stateWanted {
				e.state = stateQueued
			}
		}
	}
}

// Advance moves the cursor over the confirmed prefix and reports whether
// it moved.
func (w *Window) Advance() bool {
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

func (w *Window) dropID(e *entry) {
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

// Awaiting counts the entries sent or pushed and not yet acked: the
// payload in flight.
func (w *Window) Awaiting() int {
	n := 0
	for _, e := range w.entries {
		if e.state == stateWanted {
			n++
		}
	}
	return n
}

// Outstanding counts the entries offered or sent and not yet answered
// or acked.
func (w *Window) Outstanding() int {
	n := 0
	for _, e := range w.entries {
		if e.state == stateWanted || e.state == stateOffered {
			n++
		}
	}
	return n
}

// Oldest returns the sequence of the oldest unconfirmed entry loaded.
func (w *Window) Oldest() (uint64, bool) {
	for _, e := range w.entries {
		if e.state != stateDone {
			return e.seq, true
		}
	}
	return 0, false
}
