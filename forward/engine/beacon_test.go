package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// A beacon is kept and passed on only when its origin's key signed it
// and it is newer than what is held; older, repeated and forged ones
// stop here (forged ones counted), and links whose peer did not
// announce beacons never get one. A new link gets every beacon held.
func TestBeaconRules(t *testing.T) {
	e := New(Config{Site: "a", Storage: &scriptStorage{has: map[chunk.ID]bool{}},
		Sign: func(msg []byte) []byte { return bytes.Repeat([]byte{1}, 64) },
		Verify: func(site string, msg, s []byte) (bool, bool) {
			if site == "stranger" {
				return false, false
			}
			return bytes.Equal(s, bytes.Repeat([]byte{2}, 64)), true
		}})
	now := t0
	up := func(peer string, beacons bool) LinkID {
		id := LinkID{Peer: peer, Dir: DirOut}
		e.Step(LinkUp{Now: now, Link: id, Beacon: beacons})
		return id
	}
	b, c := up("b", true), up("c", true)
	up("old", false)
	e.Ready()
	good := func(seq uint64, body string) *wire.Beacon {
		return &wire.Beacon{Origin: "z", Seq: seq, At: now.UnixMilli(), Body: []byte(body), Sig: bytes.Repeat([]byte{2}, 64)}
	}
	sentOn := func() (links []LinkID, rejects int) {
		rd := e.Ready()
		for _, m := range rd.Messages {
			if m.Msg.Type == wire.MsgBeacon {
				links = append(links, m.Link)
			}
		}
		return links, len(rd.Rejects)
	}
	recv := func(from LinkID, bc *wire.Beacon) {
		e.Step(Received{Now: now, Link: from, Msg: &wire.Message{Type: wire.MsgBeacon, Beacon: bc}})
	}

	recv(b, good(5, "five"))
	if links, rej := sentOn(); len(links) != 1 || links[0] != c || rej != 0 {
		t.Fatalf("a new beacon from b went to %v (%d refused); want c only (old did not announce beacons)", links, rej)
	}
	recv(c, good(5, "five")) // the same, by another path
	recv(c, good(4, "four")) // older
	if links, _ := sentOn(); len(links) != 0 {
		t.Fatalf("a repeated or older beacon was passed on to %v", links)
	}
	forged := good(6, "six")
	forged.Sig = bytes.Repeat([]byte{3}, 64)
	recv(b, forged)
	recv(b, &wire.Beacon{Origin: "stranger", Seq: 1, Body: []byte("?"), Sig: bytes.Repeat([]byte{2}, 64)})
	if links, rej := sentOn(); len(links) != 0 || rej != 2 {
		t.Fatalf("forged and unknown beacons: passed on to %v, %d refused; want none passed, 2 refused", links, rej)
	}
	// This site's own: its body once, then (unchanged) only a reference.
	e.Step(SendBeacon{Now: now, Body: []byte("mine")})
	now = now.Add(10 * time.Second)
	e.Step(SendBeacon{Now: now, Body: []byte("mine")})
	var own []wire.Beacon
	for _, h := range e.Beacons() {
		if h.Latest.Origin == "a" {
			own = append(own, h.Latest, h.Full)
		}
	}
	if len(own) != 2 || own[0].Same != own[1].Seq || len(own[0].Body) != 0 || string(own[1].Body) != "mine" {
		t.Fatalf("own beacons %+v; want the second to repeat the first's body by reference", own)
	}
	sentOn()
	// A link that comes up gets every beacon held: z's, and a's full
	// one and its latest.
	up("d", true)
	if links, _ := sentOn(); len(links) != 3 {
		t.Fatalf("a new link got %d beacons, want 3", len(links))
	}
}
