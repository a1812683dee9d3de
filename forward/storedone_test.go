package forward

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// openTestStores opens a real Pebble index, pack dir and arrival log in
// a temp dir.
func openTestStores(t *testing.T) *Stores {
	t.Helper()
	dir := t.TempDir()
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := chunk.Open(db, chunk.Options{FS: vfs.Default, Dir: filepath.Join(dir, "packs")})
	if err != nil {
		t.Fatal(err)
	}
	log, err := OpenLog(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		chunks.Close()
		db.Close()
	})
	return &Stores{Chunks: chunks, Log: log}
}

// A payload that arrives whole on a link that is gone by the time the
// engine hands it out to be stored must still end in a StoreDone: the
// engine's claim on it lasts until then, and a claim that never ends
// answers "later" to every other link's offer of that payload. Found by
// `skyfed bench chaos` (seed 1, schedule 2): after an untrust and a
// config reload, two sites' backlogs toward a third stayed at ~500
// entries for good, every offer answered "later".
func TestStoreOfAGoneLinkReleasesItsClaim(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the stores close

	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	n := NewNode(NodeConfig{Site: "alpha", Signer: key, Stores: openTestStores(t)})
	defer n.Close()

	gone := engine.LinkID{Peer: "beta", Dir: engine.DirIn} // no Link object: it was dropped
	raw := []byte("a chunk whose link went away")
	id := chunk.Sum(raw)
	// Step the engine as the node's loop does, holding its lock so the
	// loop's own ticks cannot take this Ready.
	now := time.Now()
	n.engMu.Lock()
	n.eng.Step(engine.LinkUp{Now: now, Link: gone, Mode: engine.ModeOffer})
	n.eng.Step(engine.Received{Now: now, Link: gone, Msg: &wire.Message{Type: wire.MsgOffer,
		Offer: &wire.Offer{Lane: wire.LaneBulk, Batch: 1, IDs: [][32]byte{id}}}})
	for _, d := range engine.Frames(engine.Ship{Link: gone, Lane: wire.LaneBulk, Kind: engine.KindChunk, ID: id}, chunk.CodecRaw, raw, uint32(len(raw)), wire.FrameSize) {
		n.eng.Step(engine.Received{Now: now, Link: gone, Msg: &wire.Message{Type: wire.MsgData, Data: d}})
	}
	rd := n.eng.Ready()
	n.engMu.Unlock()
	if len(rd.Stores) != 1 {
		t.Fatalf("the engine handed out %d stores, want 1", len(rd.Stores))
	}

	own := n.carryOut(rd, nil)
	n.engMu.Lock()
	for _, ev := range own {
		n.eng.Step(ev)
	}
	claims := n.eng.Claims()
	n.engMu.Unlock()
	if len(claims) != 0 {
		t.Fatalf("the claim on a payload whose link is gone never ends: %+v", claims)
	}
}

// A link's store worker that stopped hands back what was still queued,
// and refuses more: each becomes a failed StoreDone, never a silent drop.
func TestStoppedStoreQueueRefusesAndHandsBack(t *testing.T) {
	q := newWorkQueue[engine.Store]()
	q.push(engine.Store{ID: chunk.ID{1}}, 0)
	left := q.close()
	if len(left) != 1 || left[0].v.ID != (chunk.ID{1}) {
		t.Fatalf("close handed back %+v", left)
	}
	if q.push(engine.Store{ID: chunk.ID{2}}, 0) {
		t.Fatal("a closed queue took a store")
	}
}
