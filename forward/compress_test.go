package forward

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// imageChunk returns n bytes of big-endian 16-bit samples that vary
// slowly, with noise in the low byte: what a telescope frame holds, and
// what the shuffle16 codec compresses best.
func imageChunk(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		v := 1000 + 40*((i/512)%8) + r.IntN(48)
		binary.BigEndian.PutUint16(b[i:], uint16(v))
	}
	return b
}

func noiseChunk(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// putLocal stores raw chunks as a put at this site does: raw, logged as
// arrived from "local".
func putLocal(t *testing.T, s *Stores, raws ...[]byte) []chunk.ID {
	t.Helper()
	b := s.Chunks.NewBatch()
	var ids []chunk.ID
	for _, raw := range raws {
		id := chunk.Sum(raw)
		if _, err := b.Add(id, raw); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	err := b.Commit(func(pb *pebble.Batch, added []chunk.ID) error {
		return s.Stage(pb, naming.Arrived{Chunks: added, ChunkSize: b.RawSize, From: FromLocal})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Committed()
	return ids
}

func storedCodec(t *testing.T, s *Stores, id chunk.ID) chunk.Codec {
	t.Helper()
	c, err := s.Chunks.StoredCodec(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// N links asking at once for the payload of a chunk stored raw cause
// one compression: the others wait for it and ship its result, and the
// result is stored, so later ships compress nothing. The result is
// stored by the shipping link itself, or, while the background pass
// runs, by its keeper.
func TestPayloadClaimCompressesOnce(t *testing.T) {
	t.Run("stored by the ship", func(t *testing.T) {
		s := openTestStores(t)
		raw := imageChunk(1, 1<<20)
		claimOnce(t, s, putLocal(t, s, raw)[0], raw)
	})
	t.Run("stored by the keeper", func(t *testing.T) {
		s := openTestStores(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.RunCompressor(ctx, CompressOptions{Share: 1}) }()
		for !s.keeperRunning() {
			sleepCtx(ctx, time.Millisecond)
		}
		// Stored raw but not logged as put here: the pass leaves it to the ships.
		raw := imageChunk(2, 1<<20)
		id := chunk.Sum(raw)
		b := s.Chunks.NewBatch()
		if _, err := b.Add(id, raw); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(nil); err != nil {
			t.Fatal(err)
		}
		claimOnce(t, s, id, raw)
		cancel()
		<-done
	})
}

func (s *Stores) keeperRunning() bool {
	s.compress.mu.Lock()
	defer s.compress.mu.Unlock()
	return s.compress.keeps != nil
}

func claimOnce(t *testing.T, s *Stores, id chunk.ID, raw []byte) {
	t.Helper()

	const n = 8
	type got struct {
		c       chunk.Codec
		payload []byte
		err     error
	}
	out := make([]got, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			c, p, _, err := s.Payload(KindChunk, id)
			out[i] = got{c, p, err}
		}()
	}
	start.Done()
	wg.Wait()

	for i, g := range out {
		if g.err != nil {
			t.Fatalf("Payload %d: %v", i, g.err)
		}
		if g.c == chunk.CodecRaw || len(g.payload) >= len(raw) {
			t.Fatalf("Payload %d shipped %s, %d bytes; want it compressed", i, g.c, len(g.payload))
		}
		back, err := chunk.Decode(g.c, g.payload, nil, len(raw))
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("Payload %d does not decode to the chunk: %v", i, err)
		}
	}
	if st := s.CompressStats(); runtime.GOOS == "linux" && (st.CPUSeconds <= 0 || st.CPUSeconds > st.Seconds*1.5) {
		t.Errorf("codec CPU %.4fs for %.4fs of wall time: the thread's usage is not read right", st.CPUSeconds, st.Seconds)
	}
	if st := s.CompressStats(); st.Attempts() != 1 || st.Compressed != 1 {
		t.Fatalf("%d concurrent ships made %d compression attempts (%+v), want 1", n, st.Attempts(), st)
	}
	// The keeper may still hold the claim; then a ship gets the result
	// from it, else from the store: either way no second compression.
	for storedCodec(t, s, id) == chunk.CodecRaw {
		if !s.keeperRunning() {
			t.Fatal("the compressed payload was not stored")
		}
		sleepCtx(context.Background(), time.Millisecond)
	}
	if _, _, _, err := s.Payload(KindChunk, id); err != nil {
		t.Fatal(err)
	}
	if st := s.CompressStats(); st.Attempts() != 1 {
		t.Fatalf("a later ship compressed again: %d attempts", st.Attempts())
	}
	back, err := s.Chunks.Get(id, nil)
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("the chunk reads back wrong after recoding: %v", err)
	}
}

// reopen closes the stores' Pebble DB and chunk store and opens them
// again from the same directory, as a restart does.
func reopenTestStores(t *testing.T, dir string, old *Stores) *Stores {
	t.Helper()
	if old != nil {
		closeTestStores(old)
	}
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
	s := &Stores{Chunks: chunks, Log: log}
	t.Cleanup(func() { closeTestStores(s) })
	return s
}

var closedTestStores sync.Map // of *Stores

// closeTestStores closes the chunk store and its DB, once.
func closeTestStores(s *Stores) {
	if _, done := closedTestStores.LoadOrStore(s, true); done {
		return
	}
	s.Chunks.Close()
	s.Log.db.Close()
}

// An incompressible chunk is tried once, marked, and shipped raw from
// then on, also after a restart.
func TestIncompressibleMarkedForGood(t *testing.T) {
	dir := t.TempDir()
	s := reopenTestStores(t, dir, nil)
	raw := noiseChunk(1, 256<<10)
	id := putLocal(t, s, raw)[0]
	for range 2 {
		c, p, _, err := s.Payload(KindChunk, id)
		if err != nil || c != chunk.CodecRaw || !bytes.Equal(p, raw) {
			t.Fatalf("incompressible chunk shipped as %s (%v)", c, err)
		}
	}
	if st := s.CompressStats(); st.Attempts() != 1 || st.Incompressible != 1 {
		t.Fatalf("attempts %+v, want one, incompressible", st)
	}

	s = reopenTestStores(t, dir, s)
	if _, _, _, err := s.Payload(KindChunk, id); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.RunCompressor(ctx, CompressOptions{Share: 1}) }()
	waitBacklog(t, s)
	cancel()
	<-done
	if st := s.CompressStats(); st.Attempts() != 0 {
		t.Fatalf("after a restart the marked chunk was tried again: %+v", st)
	}
}

// waitBacklog waits until the background pass has looked at every
// chunk arrival (no wall-clock bound: the test's own timeout is it).
func waitBacklog(t *testing.T, s *Stores) {
	t.Helper()
	for s.CompressStats().Backlog > 0 {
		sleepCtx(context.Background(), 5*time.Millisecond)
	}
}

// The background pass compresses what is put here, once, stores it
// compressed, and leaves what arrived over links as it came. After a
// restart it goes on from where it stopped.
func TestBackgroundCompression(t *testing.T) {
	dir := t.TempDir()
	s := reopenTestStores(t, dir, nil)
	local := putLocal(t, s, imageChunk(1, 512<<10), imageChunk(2, 512<<10), noiseChunk(3, 64<<10))

	// One arrived raw over a link (its origin found it incompressible).
	arrivedRaw := imageChunk(4, 512<<10)
	arrivedID := chunk.Sum(arrivedRaw)
	if isNew, err := s.Put(KindChunk, arrivedID, chunk.CodecRaw, arrivedRaw, uint32(len(arrivedRaw)), "beta>"); err != nil || !isNew {
		t.Fatalf("store arrival: new %v, %v", isNew, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.RunCompressor(ctx, CompressOptions{Share: 1}) }()
	waitBacklog(t, s)
	cancel()
	<-done

	st := s.CompressStats()
	if st.Attempts() != 3 || st.Compressed != 2 || st.Incompressible != 1 || st.Background != 3 {
		t.Fatalf("background pass: %+v, want 3 attempts (2 compressed, 1 incompressible)", st)
	}
	for _, id := range local[:2] {
		if storedCodec(t, s, id) == chunk.CodecRaw {
			t.Fatalf("chunk %s still stored raw", id.Short())
		}
	}
	if storedCodec(t, s, local[2]) != chunk.CodecRaw || storedCodec(t, s, arrivedID) != chunk.CodecRaw {
		t.Fatal("an incompressible or arrived-raw chunk changed codec")
	}
	// Shipping compresses nothing more: the arrived-raw chunk goes out raw.
	for _, id := range append(local, arrivedID) {
		if _, _, _, err := s.Payload(KindChunk, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.CompressStats().Attempts(); got != 3 {
		t.Fatalf("shipping after the pass made %d more attempts", got-3)
	}

	// After a restart the pass resumes past what it did, and compresses
	// only the new put.
	s = reopenTestStores(t, dir, s)
	more := putLocal(t, s, imageChunk(5, 512<<10))
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { defer close(done); s.RunCompressor(ctx, CompressOptions{Share: 1}) }()
	waitBacklog(t, s)
	cancel()
	<-done
	if st := s.CompressStats(); st.Attempts() != 1 || storedCodec(t, s, more[0]) == chunk.CodecRaw {
		t.Fatalf("after a restart: %+v, want the one new chunk compressed", st)
	}
	for _, id := range append(local, more...) {
		raw, err := s.Chunks.Get(id, nil)
		if err != nil || chunk.Sum(raw) != id {
			t.Fatalf("chunk %s unreadable after recoding and restart: %v", id.Short(), err)
		}
	}
}

// A peer that lists only raw and zstd gets no shuffle16 payload: the
// chunk is decoded and shipped raw. A peer that lists nothing (older
// than the list) decodes codecs 0–2.
func TestShipOnlyCodecsThePeerLists(t *testing.T) {
	s := openTestStores(t)
	raw := imageChunk(7, 1<<20)
	id := putLocal(t, s, raw)[0]
	if c, _, _, err := s.Payload(KindChunk, id); err != nil || c != chunk.CodecZstdShuffle16 {
		t.Fatalf("test chunk compressed as %s (%v); the test needs shuffle16", c, err)
	}
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	n := NewNode(NodeConfig{Site: "alpha", Signer: key, Stores: s})
	defer n.Close()

	zstdOnly := capCodecs | uint32(1<<chunk.CodecRaw|1<<chunk.CodecZstd)<<codecCapShift
	for _, tc := range []struct {
		name string
		caps uint32
		want chunk.Codec
	}{
		{"raw and zstd only", zstdOnly, chunk.CodecRaw},
		{"lists nothing (older site)", wire.CapClock | wire.CapRecon, chunk.CodecZstdShuffle16},
		{"this build's list", n.helloCaps(), chunk.CodecZstdShuffle16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLink(n, engine.LinkID{Peer: "beta", Dir: engine.DirOut}, engine.ModeOffer, 0)
			l.setPeerCaps(tc.caps)
			c, payload, rawLen, err := l.shipPayload(context.Background(), KindChunk, id)
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Fatalf("shipped %s, want %s", c, tc.want)
			}
			back, err := chunk.Decode(c, payload, nil, int(rawLen))
			if err != nil || !bytes.Equal(back, raw) {
				t.Fatalf("shipped payload does not decode to the chunk: %v", err)
			}
		})
	}
	if got := s.CompressStats(); got.Attempts() != 1 || got.DecodedForPeer != 1 {
		t.Fatalf("stats %+v: want 1 compression and 1 chunk decoded for the zstd-only peer", got)
	}
}

// The codec list survives the hello's encoding, and a site lists every
// codec it decodes.
func TestHelloListsCodecs(t *testing.T) {
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	n := NewNode(NodeConfig{Site: "alpha", Signer: key, Stores: openTestStores(t)})
	defer n.Close()
	h := &wire.Hello{Site: "alpha", Proto: wire.ProtocolVersion, Caps: n.helloCaps(), Key: key.PublicKey()}
	msg, err := wire.DecodeMessage((&wire.Message{Type: wire.MsgHello, Hello: h}).Encode())
	if err != nil {
		t.Fatal(err)
	}
	got := peerCodecs(msg.Hello.Caps)
	for c := chunk.Codec(0); c <= maxListedCodec; c++ {
		if got.has(c) != c.Valid() {
			t.Fatalf("codec %s: listed %v, decodable %v", c, got.has(c), c.Valid())
		}
	}
	if peerCodecs(0) != legacyCodecs {
		t.Fatal("a peer listing nothing must be taken to decode codecs 0–2")
	}
}

// FuzzPeerCodecs: whatever caps a hello carries, the codec set read
// from them holds raw, holds only codecs that can be listed, and is the
// legacy set when the list is absent.
func FuzzPeerCodecs(f *testing.F) {
	f.Add(uint32(0))
	f.Add(capCodecs | uint32(1<<chunk.CodecZstd)<<codecCapShift)
	f.Add(^uint32(0))
	f.Fuzz(func(t *testing.T, caps uint32) {
		got := peerCodecs(caps)
		if !got.has(chunk.CodecRaw) {
			t.Fatalf("caps %#x: raw not listed", caps)
		}
		if caps&capCodecs == 0 && got != legacyCodecs {
			t.Fatalf("caps %#x without a list: %b, want the legacy codecs", caps, got)
		}
		for c := maxListedCodec + 1; c < 256; c++ {
			if got.has(chunk.Codec(c)) {
				t.Fatalf("caps %#x: codec %d listed, beyond what caps can list", caps, c)
			}
		}
	})
}

// A malformed raw mark or background position on disk is not misread:
// the chunk stays raw (never compressed on a guess), and the pass
// starts over, skipping what is done.
func TestMalformedCompressKeys(t *testing.T) {
	s := openTestStores(t)
	raw := imageChunk(3, 256<<10)
	id := putLocal(t, s, raw)[0]
	if err := s.Log.db.Set(rawMarkKey(id), []byte{1, 2, 3}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if c, _, _, err := s.Payload(KindChunk, id); err != nil || c != chunk.CodecRaw {
		t.Fatalf("chunk with a malformed mark shipped as %s (%v), want raw", c, err)
	}
	if err := s.Log.db.Set(compressCursorKey, []byte{9}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.loadCompressCursor(); err == nil {
		t.Fatal("a 1-byte position read as valid")
	}
	if st := s.CompressStats(); st.Attempts() != 0 {
		t.Fatalf("%d attempts on a chunk marked (malformed) raw", st.Attempts())
	}
}

// The background pass yields while a put or an arrival is being
// written, unless the chunk has waited longer than MaxDefer.
func TestBackgroundYieldsToWriters(t *testing.T) {
	run := func(s *Stores, opts CompressOptions) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.RunCompressor(ctx, opts) }()
		return func() { cancel(); <-done }
	}
	t.Run("waits for the writers", func(t *testing.T) {
		s := openTestStores(t)
		id := putLocal(t, s, imageChunk(11, 256<<10))[0]
		writer := s.Chunks.NewBatch() // a put in progress
		stop := run(s, CompressOptions{Share: 1, MaxDefer: time.Hour})
		defer stop()
		sleepCtx(context.Background(), 200*time.Millisecond)
		if st := s.CompressStats(); st.Attempts() != 0 || storedCodec(t, s, id) != chunk.CodecRaw {
			t.Fatalf("the pass compressed while a put was being written: %+v", st)
		}
		writer.Abort()
		waitBacklog(t, s)
		if st := s.CompressStats(); st.Attempts() != 1 || storedCodec(t, s, id) == chunk.CodecRaw {
			t.Fatalf("after the put: %+v, want the chunk compressed", st)
		}
	})
	t.Run("not past MaxDefer", func(t *testing.T) {
		s := openTestStores(t)
		id := putLocal(t, s, imageChunk(12, 256<<10))[0]
		writer := s.Chunks.NewBatch()
		defer writer.Abort()
		stop := run(s, CompressOptions{Share: 1, MaxDefer: time.Nanosecond})
		defer stop()
		waitBacklog(t, s)
		if st := s.CompressStats(); st.Attempts() != 1 || storedCodec(t, s, id) == chunk.CodecRaw {
			t.Fatalf("a chunk older than MaxDefer waited on: %+v", st)
		}
	})
}

// The layout the put path reports for a chunk reaches its compression:
// a chunk of 16-bit samples with its layout gets the FITS codec, the
// same bytes without one the generic codecs. The table stays bounded.
func TestLayoutHintsReachTheCodec(t *testing.T) {
	s := openTestStores(t)
	hinted, plain := imageChunk(21, 512<<10), imageChunk(21, 512<<10+2)
	ids := putLocal(t, s, hinted, plain)
	s.NoteLayout(ids[0], chunk.Layout{Bitpix: 16, DataStart: 0, DataEnd: len(hinted), Row: 512})
	c, _, _, err := s.Payload(KindChunk, ids[0])
	if err != nil || c != chunk.CodecFITS {
		t.Fatalf("hinted chunk compressed as %s (%v), want %s", c, err, chunk.CodecFITS)
	}
	if c, _, _, err := s.Payload(KindChunk, ids[1]); err != nil || c == chunk.CodecFITS || c == chunk.CodecRaw {
		t.Fatalf("chunk without a hint compressed as %s (%v), want a generic codec", c, err)
	}
	if got := s.compress.hints.take(ids[0]); got.Known() {
		t.Fatal("a hint outlived its chunk's compression")
	}

	var tbl layoutTable
	for i := range maxLayoutHints + 100 {
		var id chunk.ID
		binary.BigEndian.PutUint32(id[:], uint32(i))
		tbl.put(id, chunk.Layout{Bitpix: 16, DataEnd: 2})
	}
	if n := len(tbl.byID); n > maxLayoutHints {
		t.Fatalf("%d hints held, bound %d", n, maxLayoutHints)
	}
	var first chunk.ID
	if tbl.take(first).Known() {
		t.Fatal("the oldest hint was kept past the bound")
	}
}
