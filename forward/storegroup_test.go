package forward

import (
	"context"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
)

// A group of chunks from one link is stored in one commit, each ending
// as it would alone: new ones stored and logged as arrived on that
// link, a second copy a duplicate, a corrupt one refused without
// failing the others, one stored before a duplicate.
func TestStoreGroupEndsEachAsAlone(t *testing.T) {
	s := openTestStores(t)
	from := engine.LinkID{Peer: "beta", Dir: engine.DirIn}
	payload := func(text string) engine.Store { return rawPayload(from, text) }
	before := payload("stored before the group")
	if res := s.storeGroup([]engine.Store{before}); res[0].res != engine.Stored {
		t.Fatalf("a lone chunk: %+v", res)
	}
	a, b := payload("chunk a"), payload("chunk b")
	bad := payload("a chunk that does not hash to its ID")
	bad.ID = chunk.Sum([]byte("something else"))
	group := []engine.Store{a, bad, b, a, before}
	want := []engine.StoreResult{engine.Stored, engine.Rejected, engine.Stored, engine.Duplicate, engine.Duplicate}
	head := s.Log.Head(KindChunk)
	res := s.storeGroup(group)
	for i, r := range res {
		if r.res != want[i] {
			t.Errorf("store %d: %v (%v), want %v", i, r.res, r.err, want[i])
		}
	}
	as, err := s.Log.Read(KindChunk, head, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || as[0].ID != a.ID || as[1].ID != b.ID || as[0].From != from.String() {
		t.Errorf("logged %+v, want a then b from %s", as, from)
	}
	for _, st := range []engine.Store{a, b} {
		if has, err := s.HasChunk(st.ID); !has || err != nil {
			t.Errorf("chunk %s not stored: %v", st.ID.Short(), err)
		}
	}
	// Arrived raw: marked so, as a lone store marks it, so that no site
	// tries to compress it again.
	for _, st := range []engine.Store{a, b} {
		if why, err := s.rawMark(st.ID); err != nil || why != rawArrived {
			t.Errorf("chunk %s: raw mark %d (%v), want arrived raw", st.ID.Short(), why, err)
		}
	}
	if has, _ := s.HasChunk(bad.ID); has {
		t.Error("the corrupt chunk was stored")
	}
}

// rawPayload is a chunk of text's bytes as it arrives on link from.
func rawPayload(from engine.LinkID, text string) engine.Store {
	raw := []byte(text)
	return engine.Store{Link: from, Lane: wire.LaneBulk, Kind: engine.KindChunk, ID: chunk.Sum(raw),
		Codec: chunk.CodecRaw, Payload: raw, RawLen: uint32(len(raw))}
}

// drain hands out what is queued, in order, up to its bound, and waits
// for more when nothing is.
func TestWorkQueueDrain(t *testing.T) {
	q := newWorkQueue[int]()
	for i := range 5 {
		q.push(i, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, ok := q.drain(ctx, 3)
	if !ok || len(got) != 3 || got[0].v != 0 || got[2].v != 2 {
		t.Fatalf("first drain %+v %v", got, ok)
	}
	if got, ok = q.drain(ctx, 3); !ok || len(got) != 2 || got[1].v != 4 {
		t.Fatalf("second drain %+v %v", got, ok)
	}
	go q.push(7, 0)
	if got, ok = q.drain(ctx, 3); !ok || len(got) != 1 || got[0].v != 7 {
		t.Fatalf("drain after a wait %+v %v", got, ok)
	}
	if w := engine.DefaultLimits().MaxAwaitingChunks; maxStoreGroup > w/4 {
		t.Errorf("a group of %d holds back the acks of more than a quarter of the sender's window of %d", maxStoreGroup, w)
	}
	cancel()
	if _, ok := q.drain(ctx, 3); ok {
		t.Fatal("drain returned items after its context ended")
	}
}

// A link stages its next group while the last one commits: a chunk in
// both is stored by the first and a duplicate in the second, each
// chunk is logged once, in order, and nothing is visible before its
// commit.
func TestStagedGroupsOverlap(t *testing.T) {
	s := openTestStores(t)
	from := engine.LinkID{Peer: "beta", Dir: engine.DirIn}
	payload := func(text string) engine.Store { return rawPayload(from, text) }
	a, b, c := payload("chunk a"), payload("chunk b"), payload("chunk c")
	head := s.Log.Head(KindChunk)
	first := s.stageGroup([]engine.Store{a, b})
	second := s.stageGroup([]engine.Store{b, c})
	if has, _ := s.HasChunk(a.ID); has {
		t.Fatal("a staged chunk is visible before its commit")
	}
	res := s.commitGroup(first)
	for i, want := range []engine.StoreResult{engine.Stored, engine.Stored} {
		if r := res[i]; r.res != want {
			t.Errorf("first group, store %d: %v (%v), want %v", i, r.res, r.err, want)
		}
	}
	res = s.commitGroup(second)
	for i, want := range []engine.StoreResult{engine.Duplicate, engine.Stored} {
		if r := res[i]; r.res != want {
			t.Errorf("second group, store %d: %v (%v), want %v", i, r.res, r.err, want)
		}
	}
	as, err := s.Log.Read(KindChunk, head, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 3 || as[0].ID != a.ID || as[1].ID != b.ID || as[2].ID != c.ID {
		t.Errorf("logged %+v, want a, b, c once each", as)
	}
}
