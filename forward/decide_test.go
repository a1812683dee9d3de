package forward

import (
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

func TestAnswerFor(t *testing.T) {
	cases := []struct {
		have      bool
		claimedBy string
		want      wire.Answer
	}{
		{true, "", wire.AnswerHave},
		{true, "out:b", wire.AnswerHave},
		{false, "", wire.AnswerWant},
		{false, "in:a", wire.AnswerWant}, // our own claim: asked again after a timeout
		{false, "out:b", wire.AnswerLater},
	}
	for _, tc := range cases {
		if got := AnswerFor(tc.have, tc.claimedBy, "in:a"); got != tc.want {
			t.Errorf("AnswerFor(have=%v, claimed=%q) = %v, want %v", tc.have, tc.claimedBy, got, tc.want)
		}
	}
	if ArrivalOutcome(true) != OutcomeDuplicate || ArrivalOutcome(false) != OutcomeStore {
		t.Error("the map-free rule: drop what is known, store what is new")
	}
	if Relays(Arrival{From: "in:a"}, "in:a") || !Relays(Arrival{From: "in:a"}, "out:b") || !Relays(Arrival{From: FromLocal}, "out:b") {
		t.Error("an arrival is relayed over every link but the one it came in on")
	}
}

func ids(n ...byte) []chunk.ID {
	out := make([]chunk.ID, len(n))
	for i, b := range n {
		out[i] = chunk.ID{b}
	}
	return out
}

func arrivals(from string, first uint64, n ...byte) []Arrival {
	var as []Arrival
	for i, b := range n {
		as = append(as, Arrival{Seq: first + uint64(i), ID: chunk.ID{b}, From: from})
	}
	return as
}

var t0 = time.Unix(1763700000, 0)

// windowStep is one event fed to a Window and what must come out.
type windowStep struct {
	name       string
	do         func(w *Window) []chunk.ID
	wantIDs    []chunk.ID
	wantCursor uint64
}

func runWindow(t *testing.T, w *Window, steps []windowStep) {
	t.Helper()
	for _, st := range steps {
		got := st.do(w)
		w.Advance()
		if len(got) != len(st.wantIDs) {
			t.Fatalf("%s: got IDs %v, want %v", st.name, got, st.wantIDs)
		}
		for i := range got {
			if got[i] != st.wantIDs[i] {
				t.Fatalf("%s: got IDs %v, want %v", st.name, got, st.wantIDs)
			}
		}
		if w.Cursor() != st.wantCursor {
			t.Fatalf("%s: cursor %d, want %d", st.name, w.Cursor(), st.wantCursor)
		}
	}
}

func TestWindowOfferWantHaveLater(t *testing.T) {
	w := NewWindow("out:b", 10, DefaultTiming)
	var batch uint64
	runWindow(t, w, []windowStep{
		{"load skips what came on this link", func(w *Window) []chunk.ID {
			w.Load(arrivals("local", 11, 1, 2), t0)
			w.Load(arrivals("out:b", 13, 3), t0)
			w.Load(arrivals("in:c", 14, 4), t0)
			return nil
		}, nil, 10},
		{"offer all but the echo", func(w *Window) []chunk.ID {
			var got []chunk.ID
			batch, got = w.NextOffer(10, t0)
			return got
		}, ids(1, 2, 4), 10},
		{"nothing more to offer", func(w *Window) []chunk.ID { _, got := w.NextOffer(10, t0); return got }, nil, 10},
		{"answers: want, have, later", func(w *Window) []chunk.ID {
			return w.OnAnswer(batch, []wire.Answer{wire.AnswerWant, wire.AnswerHave, wire.AnswerLater}, t0)
		}, ids(1), 10},
		{"ack of 1 passes 1, 2 (have) and 3 (echo)", func(w *Window) []chunk.ID { w.OnAck(ids(1)); return nil }, nil, 13},
		{"later waits its delay", func(w *Window) []chunk.ID {
			_, got := w.NextOffer(10, t0.Add(DefaultTiming.LaterDelay-time.Millisecond))
			return got
		}, nil, 13},
		{"later offered again", func(w *Window) []chunk.ID {
			var got []chunk.ID
			batch, got = w.NextOffer(10, t0.Add(DefaultTiming.LaterDelay))
			return got
		}, ids(4), 13},
		{"stale answer ignored", func(w *Window) []chunk.ID { return w.OnAnswer(batch-1, []wire.Answer{wire.AnswerWant}, t0) }, nil, 13},
		{"have passes the cursor to the end", func(w *Window) []chunk.ID {
			return w.OnAnswer(batch, []wire.Answer{wire.AnswerHave}, t0)
		}, nil, 14},
	})
}

func TestWindowTimeoutsAndReset(t *testing.T) {
	w := NewWindow("out:b", 0, DefaultTiming)
	w.Load(arrivals("local", 1, 1, 2), t0)
	batch, got := w.NextOffer(1, t0)
	if len(got) != 1 || got[0] != ids(1)[0] {
		t.Fatalf("offer %v", got)
	}
	if _, again := w.NextOffer(5, t0.Add(time.Second)); len(again) != 1 || again[0] != ids(2)[0] {
		t.Fatalf("second offer %v", again)
	}
	if _, again := w.NextOffer(5, t0.Add(DefaultTiming.AnswerTimeout)); len(again) != 1 || again[0] != ids(1)[0] {
		t.Fatalf("an unanswered offer must be offered again after the timeout, got %v", again)
	}
	if send := w.OnAnswer(batch, []wire.Answer{wire.AnswerWant}, t0); len(send) != 0 {
		t.Fatalf("answer to a superseded batch must be ignored, got %v", send)
	}
	if w.Outstanding() != 2 {
		t.Fatalf("outstanding %d", w.Outstanding())
	}
	w.Reset(0)
	if w.Len() != 0 || w.Loaded() != 0 {
		t.Fatal("reset keeps entries")
	}
	w.Load(arrivals("local", 1, 1, 2), t0)
	if pushed := w.NextPush(5, t0); len(pushed) != 2 || w.Awaiting() != 2 {
		t.Fatalf("flood push %v", pushed)
	}
	w.OnAck(ids(2))
	w.Advance()
	if w.Cursor() != 0 {
		t.Fatal("cursor passed an unacked entry")
	}
	w.OnAck(ids(1))
	w.Advance()
	if w.Cursor() != 2 {
		t.Fatalf("cursor %d after all acked", w.Cursor())
	}
}

func TestWindowDuplicateIDsInLog(t *testing.T) {
	w := NewWindow("out:b", 0, DefaultTiming)
	w.Load(arrivals("local", 1, 7, 7), t0) // two commits raced on one chunk
	b, got := w.NextOffer(5, t0)
	if len(got) != 2 {
		t.Fatalf("offer %v", got)
	}
	w.OnAnswer(b, []wire.Answer{wire.AnswerWant, wire.AnswerWant}, t0)
	w.OnAck(ids(7))
	w.Advance()
	if w.Cursor() != 2 || w.Len() != 0 {
		t.Fatalf("cursor %d len %d", w.Cursor(), w.Len())
	}
}
