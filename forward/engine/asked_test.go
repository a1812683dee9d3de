package engine

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// A reply heard by the asker: from which link, which site, its fan-out,
// and whether it is "seen".
type heard struct {
	via    string
	site   string
	fanout uint16
	seen   bool
}

// TestAskCountsSites: a query's answer says how many sites answered and
// how many it was sent towards (every answer plus every send unanswered
// at the deadline), so the asker can tell a complete answer from one
// that may lack a newer version.
func TestAskCountsSites(t *testing.T) {
	cases := []struct {
		name                 string
		replies              []heard
		complete             bool
		answered, unanswered int
	}{
		// a–b, a–c, b–c: both answer, and each says "seen" to the other's copy.
		{"loop, all answer", []heard{{"b", "b", 1, false}, {"c", "c", 1, false}, {"b", "c", 0, true}, {"c", "b", 0, true}}, true, 2, 0},
		// b passes it on to d and e; d answers, e and c stay silent.
		{"two silent", []heard{{"b", "b", 2, false}, {"b", "d", 0, false}}, false, 2, 2},
		{"none answer", nil, false, 0, 2},
		// c's copy from b is answered "seen"; the direct send to c is lost.
		{"seen is not an answer", []heard{{"b", "b", 1, false}, {"b", "c", 0, true}}, false, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Config{Site: "a", Storage: &scriptStorage{has: map[chunk.ID]bool{}}, Rand: bytes.NewReader(make([]byte, 1<<10))})
			for _, p := range []string{"b", "c"} {
				e.Step(LinkUp{Now: t0, Link: LinkID{Peer: p, Dir: DirOut}, Mode: ModeOffer})
			}
			e.Ready()
			e.Step(Ask{Now: t0, Req: 1, Kind: wire.QueryLatest, Deadline: t0.Add(5 * time.Second)})
			var qid [16]byte
			for _, m := range e.Ready().Messages {
				if m.Msg.Type == wire.MsgQuery {
					qid = m.Msg.Query.ID
				}
			}
			var done []QueryDone
			for _, h := range tc.replies {
				e.Step(Received{Now: t0, Link: LinkID{Peer: h.via, Dir: DirOut}, Msg: &wire.Message{Type: wire.MsgReply,
					Reply: &wire.Reply{ID: qid, Site: h.site, Fanout: h.fanout, Seen: h.seen}}})
				done = append(done, e.Ready().Queries...)
			}
			e.Step(Tick{Now: t0.Add(5 * time.Second)})
			done = append(done, e.Ready().Queries...)
			if len(done) != 1 {
				t.Fatalf("%d answers to the ask, want 1: %+v", len(done), done)
			}
			d := done[0]
			if len(d.Replies) != tc.answered {
				t.Errorf("%d replies, want %d", len(d.Replies), tc.answered)
			}
			if tc.complete {
				if d.Err != nil {
					t.Errorf("err = %v, want a complete answer", d.Err)
				}
				return
			}
			var ie *IncompleteError
			if !errors.As(d.Err, &ie) || !errors.Is(d.Err, ErrIncomplete) {
				t.Fatalf("err = %v, want *IncompleteError wrapping ErrIncomplete", d.Err)
			}
			if ie.Answered != tc.answered || ie.Unanswered != tc.unanswered || ie.Asked() != tc.answered+tc.unanswered {
				t.Errorf("answered %d, unanswered %d, asked %d; want %d, %d", ie.Answered, ie.Unanswered, ie.Asked(), tc.answered, tc.unanswered)
			}
		})
	}
}
