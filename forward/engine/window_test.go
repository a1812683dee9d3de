package engine

import (
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

var (
	t0     = time.Unix(1763700000, 0)
	timing = DefaultTiming()
	linkB  = LinkID{Peer: "b", Dir: DirOut}
	linkC  = LinkID{Peer: "c", Dir: DirIn}
)

func ids(n ...byte) []chunk.ID {
	out := make([]chunk.ID, len(n))
	for i, b := range n {
		out[i] = chunk.ID{b}
	}
	return out
}

func arrivals(from LinkID, first uint64, n ...byte) []Arrival {
	var as []Arrival
	for i, b := range n {
		as = append(as, Arrival{Seq: first + uint64(i), ID: chunk.ID{b}, From: from})
	}
	return as
}

// windowStep is one event fed to a window and what must come out.
type windowStep struct {
	name       string
	do         func(w *window) []chunk.ID
	wantIDs    []chunk.ID
	wantCursor uint64
}

func runWindow(t *testing.T, w *window, steps []windowStep) {
	t.Helper()
	for _, st := range steps {
		got := st.do(w)
		w.advance()
		if len(got) != len(st.wantIDs) {
			t.Fatalf("%s: got IDs %v, want %v", st.name, got, st.wantIDs)
		}
		for i := range got {
			if got[i] != st.wantIDs[i] {
				t.Fatalf("%s: got IDs %v, want %v", st.name, got, st.wantIDs)
			}
		}
		if w.cursor != st.wantCursor {
			t.Fatalf("%s: cursor %d, want %d", st.name, w.cursor, st.wantCursor)
		}
	}
}

func TestWindowOfferWantHaveLater(t *testing.T) {
	w := newWindow(linkB, 10, timing)
	var batch uint64
	runWindow(t, w, []windowStep{
		{"load skips what came on this link", func(w *window) []chunk.ID {
			w.load(arrivals(Local, 11, 1, 2), t0)
			w.load(arrivals(linkB, 13, 3), t0)
			w.load(arrivals(linkC, 14, 4), t0)
			return nil
		}, nil, 10},
		{"offer all but the echo", func(w *window) []chunk.ID {
			var got []chunk.ID
			batch, got = w.nextOffer(10, t0, nil)
			return got
		}, ids(1, 2, 4), 10},
		{"nothing more to offer", func(w *window) []chunk.ID { _, got := w.nextOffer(10, t0, nil); return got }, nil, 10},
		{"answers: want, have, later", func(w *window) []chunk.ID {
			return w.onAnswer(batch, []wire.Answer{wire.AnswerWant, wire.AnswerHave, wire.AnswerLater}, t0)
		}, ids(1), 10},
		{"ack of 1 passes 1, 2 (have) and 3 (echo)", func(w *window) []chunk.ID { w.onAck(ids(1)); return nil }, nil, 13},
		{"later waits its delay", func(w *window) []chunk.ID {
			_, got := w.nextOffer(10, t0.Add(timing.LaterDelay-time.Millisecond), nil)
			return got
		}, nil, 13},
		{"later offered again", func(w *window) []chunk.ID {
			var got []chunk.ID
			batch, got = w.nextOffer(10, t0.Add(timing.LaterDelay), nil)
			return got
		}, ids(4), 13},
		{"stale answer ignored", func(w *window) []chunk.ID { return w.onAnswer(batch-1, []wire.Answer{wire.AnswerWant}, t0) }, nil, 13},
		{"have passes the cursor to the end", func(w *window) []chunk.ID {
			return w.onAnswer(batch, []wire.Answer{wire.AnswerHave}, t0)
		}, nil, 14},
	})
}

func TestWindowTimeouts(t *testing.T) {
	w := newWindow(linkB, 0, timing)
	w.load(arrivals(Local, 1, 1, 2), t0)
	_, got := w.nextOffer(1, t0, nil)
	if len(got) != 1 || got[0] != ids(1)[0] {
		t.Fatalf("offer %v", got)
	}
	if _, again := w.nextOffer(5, t0.Add(time.Second), nil); len(again) != 1 || again[0] != ids(2)[0] {
		t.Fatalf("second offer %v", again)
	}
	if n := w.outstanding(t0.Add(time.Second)); n != 2 {
		t.Fatalf("outstanding %d, want 2", n)
	}
	if n := w.outstanding(t0.Add(timing.AnswerTimeout)); n != 1 {
		t.Fatalf("an offer past its timeout still holds a place in flight: outstanding %d, want 1", n)
	}
	if _, again := w.nextOffer(5, t0.Add(timing.AnswerTimeout), nil); len(again) != 1 || again[0] != ids(1)[0] {
		t.Fatalf("an unanswered offer must be offered again after the timeout, got %v", again)
	}
	if wake := w.wake(true); !wake.Equal(t0.Add(time.Second + timing.AnswerTimeout)) {
		t.Fatalf("wake %v", wake.Sub(t0))
	}
}

func TestWindowWantedWaitsForItsLastFrame(t *testing.T) {
	w := newWindow(linkB, 0, timing)
	w.load(arrivals(Local, 1, 1), t0)
	b, _ := w.nextOffer(5, t0, nil)
	w.onAnswer(b, []wire.Answer{wire.AnswerWant}, t0)
	late := t0.Add(10 * timing.AckTimeout)
	if _, got := w.nextOffer(5, late, nil); len(got) != 0 {
		t.Fatalf("a payload still queued on a slow link was offered again: %v", got)
	}
	w.sent(ids(1)[0], late)
	if _, got := w.nextOffer(5, late.Add(timing.AckTimeout-time.Millisecond), nil); len(got) != 0 {
		t.Fatalf("offered again before the ack timeout: %v", got)
	}
	if _, got := w.nextOffer(5, late.Add(timing.AckTimeout), nil); len(got) != 1 {
		t.Fatalf("a payload sent and never acked must be offered again, got %v", got)
	}
}

// The control lane keeps order: an answer to a later batch means an
// earlier unanswered one was lost; an ack of a later payload means an
// earlier one sent in full was lost (or its ack was).
func TestWindowFindsLostMessagesByOrder(t *testing.T) {
	w := newWindow(linkB, 0, timing)
	w.load(arrivals(Local, 1, 1, 2, 3), t0)
	b1, _ := w.nextOffer(1, t0, nil)
	b2, _ := w.nextOffer(2, t0, nil)
	if send := w.onAnswer(b2, []wire.Answer{wire.AnswerWant, wire.AnswerWant}, t0); len(send) != 2 {
		t.Fatalf("send %v", send)
	}
	if _, got := w.nextOffer(5, t0, nil); len(got) != 1 || got[0] != ids(1)[0] {
		t.Fatalf("batch %d was answered after batch %d's loss: 1 must be offered again at once, got %v", b2, b1, got)
	}
	w.sent(ids(2)[0], t0)
	w.sent(ids(3)[0], t0)
	w.onAck(ids(3))
	if _, got := w.nextOffer(5, t0, nil); len(got) != 1 || got[0] != ids(2)[0] {
		t.Fatalf("2 was shipped before 3 and 3 was acked: 2 must be offered again, got %v", got)
	}
}

func TestWindowFlood(t *testing.T) {
	w := newWindow(linkB, 0, timing)
	w.load(arrivals(Local, 1, 1, 2), t0)
	if pushed := w.nextPush(5, t0, nil); len(pushed) != 2 {
		t.Fatalf("flood push %v", pushed)
	}
	w.onAck(ids(2))
	w.advance()
	if w.cursor != 0 {
		t.Fatal("cursor passed an unacked entry")
	}
	w.onAck(ids(1))
	w.advance()
	if w.cursor != 2 {
		t.Fatalf("cursor %d after all acked", w.cursor)
	}
}

func TestWindowDuplicateIDsInLog(t *testing.T) {
	w := newWindow(linkB, 0, timing)
	w.load(arrivals(Local, 1, 7, 7), t0) // two commits raced on one chunk
	b, got := w.nextOffer(5, t0, nil)
	if len(got) != 2 {
		t.Fatalf("offer %v", got)
	}
	w.onAnswer(b, []wire.Answer{wire.AnswerWant, wire.AnswerWant}, t0)
	w.onAck(ids(7))
	w.advance()
	if w.cursor != 2 || len(w.entries) != 0 {
		t.Fatalf("cursor %d len %d", w.cursor, len(w.entries))
	}
}

func TestDecideAnswer(t *testing.T) {
	mine := &claim{link: linkC, lane: wire.LaneBulk}
	for _, tc := range []struct {
		name string
		have bool
		c    *claim
		lane wire.Lane
		want wire.Answer
	}{
		{"stored here", true, nil, wire.LaneBulk, wire.AnswerHave},
		{"stored here, claimed", true, &claim{link: linkB, lane: wire.LaneBulk}, wire.LaneBulk, wire.AnswerHave},
		{"new", false, nil, wire.LaneBulk, wire.AnswerWant},
		{"our own claim: lost, asked again", false, mine, wire.LaneBulk, wire.AnswerWant},
		{"our claim, but being stored", false, &claim{link: linkC, lane: wire.LaneBulk, storing: 1}, wire.LaneBulk, wire.AnswerLater},
		{"another link's", false, &claim{link: linkB, lane: wire.LaneBulk}, wire.LaneBulk, wire.AnswerLater},
		{"a pull on this link", false, &claim{link: linkC, lane: wire.LaneLookup}, wire.LaneBulk, wire.AnswerLater},
	} {
		if got := decideAnswer(tc.have, tc.c, linkC, tc.lane); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLinkIDs(t *testing.T) {
	for _, s := range []string{"out:alpha", "in:b-2", "local"} {
		l, err := ParseLinkID(s)
		if err != nil || l.String() != s {
			t.Errorf("ParseLinkID(%q) = %v, %v", s, l, err)
		}
	}
	for _, s := range []string{"", "lookup:alpha", "out:", "out:Alpha", "sideways:a"} {
		if _, err := ParseLinkID(s); err == nil {
			t.Errorf("ParseLinkID(%q) accepted", s)
		}
	}
	for _, s := range []string{"", "offer", "flood"} {
		if _, err := ParseMode(s); err != nil {
			t.Errorf("ParseMode(%q): %v", s, err)
		}
	}
	if _, err := ParseMode("push"); err == nil {
		t.Error("ParseMode(push) accepted")
	}
}

// FuzzParseLinkID: link names come from the arrival log on disk.
func FuzzParseLinkID(f *testing.F) {
	for _, s := range []string{"out:alpha", "in:b", "local", "lookup:x", ":", "out:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLinkID(s)
		if err == nil && l.String() != s {
			t.Fatalf("ParseLinkID(%q) = %v, which prints as %q", s, l, l.String())
		}
	})
}

// An answer from an earlier session of a link must not be taken for an
// answer of this one: batch numbers never repeat across link-ups.
func TestStaleAnswerAfterReconnect(t *testing.T) {
	st := &scriptStorage{has: map[chunk.ID]bool{}}
	st.log = arrivals(Local, 1, 1, 2)
	for i := range st.log {
		st.log[i].Kind = KindChunk
	}
	e := New(Config{Site: "a", Storage: st})
	e.Step(LinkUp{Now: t0, Link: linkB})
	first := e.Ready().Messages[0].Msg.Offer
	e.Step(LinkDown{Now: t0.Add(time.Second), Link: linkB})
	e.Step(LinkUp{Now: t0.Add(2 * time.Second), Link: linkB})
	second := e.Ready().Messages[0].Msg.Offer
	if first.Batch == second.Batch {
		t.Fatalf("batch %d offered in both sessions", first.Batch)
	}
	e.Step(Received{Now: t0.Add(3 * time.Second), Link: linkB, Msg: &wire.Message{Type: wire.MsgAnswer,
		Answer: &wire.AnswerMsg{Lane: wire.LaneBulk, Batch: first.Batch, Answers: []wire.Answer{wire.AnswerHave, wire.AnswerHave}}}})
	if rd := e.Ready(); len(rd.Cursors) != 0 {
		t.Fatalf("a stale answer moved the cursor: %+v", rd.Cursors)
	}
}
