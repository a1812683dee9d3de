package engine

import (
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/forward/wire"
)

// reconSite is a site's chunks in memory with their reconciliation table.
type reconSite struct {
	scriptStorage
	table *recon.Table
	keys  map[recon.Key]chunk.ID
}

func newReconSite(ids ...chunk.ID) *reconSite {
	s := &reconSite{scriptStorage: scriptStorage{has: map[chunk.ID]bool{}}, table: recon.NewTable(), keys: map[recon.Key]chunk.ID{}}
	for _, id := range ids {
		s.add(id)
	}
	return s
}

func (s *reconSite) add(id chunk.ID) {
	s.has[id] = true
	s.table.Toggle(byte(KindChunk), id, true)
	s.keys[recon.KeyOf(byte(KindChunk), id)] = id
}

func (s *reconSite) Table() *recon.Table { return s.table }
func (s *reconSite) Resolve(k recon.Key) (recon.Item, recon.Info, bool) {
	id, ok := s.keys[k]
	return recon.Item{Kind: byte(KindChunk), ID: id}, recon.Info{Bytes: 1000}, ok
}
func (s *reconSite) Refuses(recon.Key) bool { return false }

func reconID(i int) chunk.ID { return chunk.ID(sha256.Sum256([]byte{byte(i), byte(i >> 8)})) }

func newReconEngine(name string, st *reconSite, seed uint64) *Engine {
	return New(Config{Site: name, Storage: st, Inventory: st, Limits: DefaultLimits(),
		Rand: rngReader{rand.New(rand.NewPCG(seed, 1))}})
}

type rngReader struct{ r *rand.Rand }

func (r rngReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(r.r.Uint32())
	}
	return len(b), nil
}

// linkedPair makes engines for sites a and b with a link up between
// them, a the dialer.
func linkedPair(sa, sb *reconSite) (a, b *Engine, ab, ba LinkID, now time.Time) {
	a, b = newReconEngine("a", sa, 1), newReconEngine("b", sb, 2)
	ab, ba = LinkID{Peer: "b", Dir: DirOut}, LinkID{Peer: "a", Dir: DirIn}
	now = time.Unix(1_800_000_000, 0)
	a.Step(LinkUp{Now: now, Link: ab, Recon: true})
	b.Step(LinkUp{Now: now, Link: ba, Recon: true})
	return a, b, ab, ba, now
}

// exchange carries the recon messages between two engines until both
// are quiet, and returns every ReconEnded and the IDs each offered.
func exchange(t *testing.T, a, b *Engine, ab, ba LinkID, now time.Time) (ended []ReconEnded, offered [2][]chunk.ID) {
	ended, offers := exchangeOffers(t, a, b, ab, ba, now)
	for side := range offers {
		for _, o := range offers[side] {
			for _, id := range o.IDs {
				offered[side] = append(offered[side], chunk.ID(id))
			}
		}
	}
	return ended, offered
}

// exchangeOffers is exchange returning the offers themselves.
func exchangeOffers(t *testing.T, a, b *Engine, ab, ba LinkID, now time.Time) (ended []ReconEnded, offers [2][]*wire.Offer) {
	t.Helper()
	pending := [2]Ready{a.Ready(), b.Ready()}
	for round := 0; round < 100; round++ {
		moved := false
		for side, rd := range pending {
			ended = append(ended, rd.Recons...)
			to, via := b, ba // a's messages arrive at b on b's link to a
			if side == 1 {
				to, via = a, ab
			}
			for _, m := range rd.Messages {
				if m.Msg.Type == wire.MsgOffer {
					offers[side] = append(offers[side], m.Msg.Offer)
					continue
				}
				if m.Msg.Type != wire.MsgRecon {
					continue
				}
				dec, err := wire.DecodeMessage(m.Msg.Encode())
				if err != nil {
					t.Fatalf("recon message does not survive the wire: %v", err)
				}
				to.Step(Received{Now: now, Link: via, Msg: dec})
				moved = true
			}
		}
		pending = [2]Ready{a.Ready(), b.Ready()}
		if !moved && pending[0].Empty() && pending[1].Empty() {
			return ended, offers
		}
	}
	t.Fatal("the two engines kept talking")
	return nil, offers
}

func TestReconcileFindsAndOffersTheDifference(t *testing.T) {
	var common []chunk.ID
	for i := range 50 {
		common = append(common, reconID(i))
	}
	onlyA, onlyB := reconID(1000), reconID(1001)
	sa, sb := newReconSite(append(common, onlyA)...), newReconSite(append(common, onlyB)...)
	a, b, ab, ba, now := linkedPair(sa, sb)
	a.Step(Reconcile{Now: now, Req: 7, Peer: "b"})
	ended, offered := exchange(t, a, b, ab, ba, now)
	if len(ended) != 2 {
		t.Fatalf("ended = %+v, want one per side", ended)
	}
	for _, x := range ended {
		if x.Err != nil {
			t.Fatalf("%s: %v", x.Link, x.Err)
		}
		r := x.Result
		if r.InSync || r.PeerLacks.Chunks != 1 || r.LocalLacks.Chunks != 1 {
			t.Errorf("%s (initiator %v): in sync %v, peer lacks %+v, local lacks %+v; want 1 and 1", x.Link, x.Initiator, r.InSync, r.PeerLacks, r.LocalLacks)
		}
		if x.Initiator && x.Req != 7 {
			t.Errorf("the initiator's result answers #%d, want #7", x.Req)
		}
		if x.SentBytes == 0 || x.ReceivedBytes == 0 {
			t.Errorf("%s: %d bytes sent, %d received", x.Link, x.SentBytes, x.ReceivedBytes)
		}
	}
	if len(offered[0]) != 1 || offered[0][0] != onlyA || len(offered[1]) != 1 || offered[1][0] != onlyB {
		t.Errorf("offered %v and %v, want only what each lacks", offered[0], offered[1])
	}
	if m, c := a.Repairs(ab); m != 0 || c != 1 {
		t.Errorf("a's repair window holds %d manifests, %d chunks; want 0, 1", m, c)
	}
}

func TestReconcileInSyncInOneRoundTrip(t *testing.T) {
	ids := []chunk.ID{reconID(1), reconID(2), reconID(3)}
	a, b, ab, ba, now := linkedPair(newReconSite(ids...), newReconSite(ids...))
	a.Step(Reconcile{Now: now, Req: 1, Peer: "b"})
	ended, offered := exchange(t, a, b, ab, ba, now)
	for _, x := range ended {
		if x.Err != nil || !x.Result.InSync {
			t.Errorf("%s: %+v", x.Link, x)
		}
		if x.Initiator && x.SentBytes+x.ReceivedBytes > 1024 {
			t.Errorf("in sync cost %d bytes, want ≤ 1 KB", x.SentBytes+x.ReceivedBytes)
		}
	}
	if len(offered[0])+len(offered[1]) != 0 {
		t.Errorf("offered %v, %v with nothing missing", offered[0], offered[1])
	}
}

func TestReconcileWithoutALink(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e := newReconEngine("a", newReconSite(), 1)
	e.Step(Reconcile{Now: now, Req: 1, Peer: "b"})
	if rd := e.Ready(); len(rd.Recons) != 1 || !errors.Is(rd.Recons[0].Err, ErrNoLink) {
		t.Errorf("no link: %+v, want ErrNoLink", rd.Recons)
	}
	e.Step(LinkUp{Now: now, Link: LinkID{Peer: "b", Dir: DirOut}}) // a peer from before reconciliation
	e.Ready()
	e.Step(Reconcile{Now: now, Req: 2, Peer: "b"})
	if rd := e.Ready(); len(rd.Recons) != 1 || !errors.Is(rd.Recons[0].Err, ErrCannotReconcile) {
		t.Errorf("old peer: %+v, want ErrCannotReconcile", rd.Recons)
	}
}

func TestReconcileTimesOut(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e := newReconEngine("a", newReconSite(reconID(1)), 1)
	l := LinkID{Peer: "b", Dir: DirOut}
	e.Step(LinkUp{Now: now, Link: l, Recon: true})
	e.Step(Reconcile{Now: now, Req: 3, Peer: "b"})
	e.Ready()
	if wake := e.NextWake(); wake.IsZero() || wake.After(now.Add(DefaultTiming().ReconIdle)) {
		t.Errorf("next wake %v, want by the session's idle timeout", wake)
	}
	e.Step(Tick{Now: now.Add(DefaultTiming().ReconIdle)})
	rd := e.Ready()
	if len(rd.Recons) != 1 || rd.Recons[0].Req != 3 || !errors.Is(rd.Recons[0].Err, ErrReconTimeout) {
		t.Errorf("after the idle timeout: %+v, want #3 ErrReconTimeout", rd.Recons)
	}
}

// TestReconcileGarbageFromAPeer: bodies that are not a session's start
// are refused and counted, answered with nothing, and leave no session.
func TestReconcileGarbageFromAPeer(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e := newReconEngine("a", newReconSite(reconID(1)), 1)
	l := LinkID{Peer: "b", Dir: DirIn}
	e.Step(LinkUp{Now: now, Link: l, Recon: true})
	e.Ready()
	r := rand.New(rand.NewPCG(9, 9))
	rejects := 0
	for i := range 500 {
		body := make([]byte, 1+r.IntN(200))
		for j := range body {
			body[j] = byte(r.Uint32())
		}
		if i%2 == 0 {
			body[0] = byte(i % 8) // near the real op codes
		}
		e.Step(Received{Now: now, Link: l, Msg: &wire.Message{Type: wire.MsgRecon, Recon: &wire.Recon{Session: uint64(i), Body: body}}})
		rd := e.Ready()
		rejects += len(rd.Rejects)
		answered := 0
		for _, m := range rd.Messages {
			if m.Msg.Type == wire.MsgRecon {
				answered++
			}
		}
		if answered > 0 && len(rd.Rejects) > 0 {
			t.Fatalf("garbage #%d was refused and answered", i)
		}
	}
	if rejects < 490 {
		t.Errorf("%d of 500 garbage bodies refused", rejects)
	}
	if n := e.responders(l); n > maxResponders {
		t.Errorf("%d sessions open for one peer, want at most %d", n, maxResponders)
	}
}

// TestReconcileDoesNotResendWhatThePeerAcked: a peer that acknowledged a
// repaired payload and then claims to lack it again (lying, or broken)
// is not sent it again on this link session.
func TestReconcileDoesNotResendWhatThePeerAcked(t *testing.T) {
	only := reconID(500)
	sa, sb := newReconSite(reconID(1), only), newReconSite(reconID(1))
	a, b, ab, ba, now := linkedPair(sa, sb)
	a.Step(Reconcile{Now: now, Req: 1, Peer: "b"})
	_, offers := exchangeOffers(t, a, b, ab, ba, now)
	if len(offers[0]) != 1 {
		t.Fatalf("a offered %d batches, want 1", len(offers[0]))
	}
	o := offers[0][0]
	a.Step(Received{Now: now, Link: ab, Msg: &wire.Message{Type: wire.MsgAnswer, Answer: &wire.AnswerMsg{Lane: o.Lane, Batch: o.Batch, Answers: []wire.Answer{wire.AnswerWant}}}})
	a.Step(Received{Now: now, Link: ab, Msg: &wire.Message{Type: wire.MsgAck, Ack: &wire.Ack{Lane: o.Lane, IDs: [][32]byte{only}, Status: []wire.AckStatus{wire.AckStored}}}})
	a.Ready()
	// b "lost" it again (never stored it here): the next session finds it missing.
	a.Step(Reconcile{Now: now, Req: 2, Peer: "b"})
	ended, offers := exchangeOffers(t, a, b, ab, ba, now)
	var found bool
	for _, x := range ended {
		found = found || x.Initiator && x.Result != nil && x.Result.PeerLacks.Chunks == 1
	}
	if !found {
		t.Fatalf("second session did not find b lacking it: %+v", ended)
	}
	if len(offers[0]) != 0 {
		t.Errorf("a offered %v again after b acknowledged it", offers[0][0].IDs)
	}
}
