package engine

import (
	"testing"

	"github.com/skyfed/skyfed/chunk"

	"github.com/skyfed/skyfed/forward/wire"
)

// TestSpaceCounters checks what status and metrics show of the full-disk
// exchange on both ends of a link: signals sent and heard, and the
// entries the "room again" signal put back to be offered at once.
func TestSpaceCounters(t *testing.T) {
	s := &scriptState{st: &scriptStorage{has: map[chunk.ID]bool{}}, now: t0, offered: map[LinkID]*wire.Offer{}}
	s.e = New(Config{Site: "a", Storage: s.st})
	for _, line := range [][]string{
		{"put", "01", "02", "03"}, {"up", "b", "out", "space"}, {"answer", "b", "out", "want", "later", "later"},
		{"sent", "b", "out", "01"}, {"peer-space", "b", "out", "full"},
	} {
		if err := s.do(line); err != nil {
			t.Fatal(err)
		}
		for _, m := range s.e.Ready().Messages {
			if m.Msg.Type == wire.MsgOffer {
				s.offered[m.Link] = m.Msg.Offer
			}
		}
	}
	ab := LinkID{Peer: "b", Dir: DirOut}
	if !s.e.PeerFull(ab) {
		t.Fatal("PeerFull = false after the peer said full")
	}
	if err := s.do([]string{"peer-space", "b", "out", "room"}); err != nil {
		t.Fatal(err)
	}
	got := s.e.Stats(ab)
	want := LinkStats{Offered: 6, Wanted: 1, PeerFullSignals: 1, PeerRoomSignals: 1, Resumed: 3}
	if got != want || s.e.PeerFull(ab) {
		t.Fatalf("stats %+v, peer full %v; want %+v, false", got, s.e.PeerFull(ab), want)
	}

	// The other end: a full site tells a peer that takes it, once per
	// change and again every SpaceRepeat.
	s.e.Step(SpaceChanged{Now: s.now, Full: true})
	s.e.Step(SpaceChanged{Now: s.now, Full: true}) // no change: nothing sent
	s.now = s.now.Add(DefaultTiming().SpaceRepeat)
	s.e.Step(Tick{Now: s.now})
	s.e.Step(SpaceChanged{Now: s.now, Full: false})
	if n := s.e.Stats(ab).SpaceSent; n != 3 || s.e.Full() {
		t.Fatalf("space messages sent %d, full %v; want 3, false", n, s.e.Full())
	}
}
