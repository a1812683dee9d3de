package forward

import (
	"sync"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/naming"
)

// maxLayoutHints bounds the layout hints kept for chunks not compressed
// yet: 16384 hints cover 16 GiB of 1 MiB chunks in about 1.5 MiB. Past
// it the oldest are dropped; their chunks are compressed without a hint
// (the generic codecs), which costs bytes, never correctness.
const maxLayoutHints = 16384

// layoutTable holds what the put path learnt of each new chunk's samples
// (naming's layout sink) until the chunk is compressed. It lives in
// memory only: after a restart the chunks still waiting are compressed
// without hints. Its zero value is ready.
type layoutTable struct {
	mu    sync.Mutex
	byID  map[chunk.ID]chunk.Layout
	order []chunk.ID // insertion order, for dropping the oldest
}

// put records the layout of a chunk.
func (t *layoutTable) put(id chunk.ID, l chunk.Layout) {
	if !l.Known() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID = map[chunk.ID]chunk.Layout{}
	}
	if _, ok := t.byID[id]; !ok {
		t.order = append(t.order, id)
	}
	t.byID[id] = l
	for len(t.byID) > maxLayoutHints && len(t.order) > 0 {
		delete(t.byID, t.order[0])
		t.order = t.order[1:]
	}
	if len(t.order) > 2*maxLayoutHints { // ids taken already linger in order: compact it
		live := t.order[:0]
		for _, id := range t.order {
			if _, ok := t.byID[id]; ok {
				live = append(live, id)
			}
		}
		t.order = append([]chunk.ID(nil), live...)
	}
}

// take returns and forgets the layout of a chunk (zero if unknown).
func (t *layoutTable) take(id chunk.ID) chunk.Layout {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.byID[id]
	if ok {
		delete(t.byID, id)
	}
	return l
}

// NoteLayout records what the put path found a new chunk's bytes to
// hold, for the compression of that chunk: Stores is the put path's
// naming.LayoutSink.
func (s *Stores) NoteLayout(id chunk.ID, l chunk.Layout) { s.compress.hints.put(id, l) }

// compressLayout compresses raw with the codecs that fit its layout
// (the generic ones when it is unknown).
func compressLayout(raw []byte, l chunk.Layout) (chunk.Codec, []byte, error) {
	return chunk.CompressLayout(raw, l)
}

var _ naming.LayoutSink = (*Stores)(nil)
