package forward

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
)

// maxStoreGroup bounds the payloads one group commit takes. A group's
// acks all wait for its one commit, and the sender has at most
// Limits.MaxAwaitingChunks (32) chunks unacked per link: a group as
// large as that window would stop the sender until the whole group is
// verified and committed (stop-and-wait), so a group takes a quarter
// of it and the rest of the window keeps the link busy meanwhile.
const maxStoreGroup = 8

// storeResult is how one payload of a group ended.
type storeResult struct {
	res engine.StoreResult
	err error
}

// storeGroup verifies and stores payloads that arrived on one link, in
// their order, and logs them as arrived there. Consecutive chunks share
// one commit: one sync of the pack and one of the index for all of
// them, where storing them one by one costs two syncs each, which on a
// disk syncing in 3–10 ms bounded a link's receiving to 50–150 chunks a
// second, far below the wire. A chunk is still stored and logged (and
// so acked and relayed) only once durable. A chunk that fails
// verification is refused alone; a commit that fails fails its group.
// Manifests are stored one by one, in their place.
func (s *Stores) storeGroup(sts []engine.Store) []storeResult {
	out := make([]storeResult, len(sts))
	for i := 0; i < len(sts); {
		if sts[i].Kind != engine.KindChunk {
			res, err := s.store(sts[i])
			out[i] = storeResult{res, err}
			i++
			continue
		}
		j := i
		for j < len(sts) && sts[j].Kind == engine.KindChunk && sts[j].Link == sts[i].Link {
			j++
		}
		s.storeChunks(sts[i:j], out[i:j])
		i = j
	}
	return out
}

// storeChunks stores chunks that arrived on one link in one commit.
func (s *Stores) storeChunks(sts []engine.Store, out []storeResult) {
	b := s.Chunks.NewBatch()
	staged := make([]bool, len(sts))
	staging := false
	for i, st := range sts {
		isNew, err := b.AddStored(st.ID, st.Codec, st.Payload, st.RawLen)
		switch {
		case errors.Is(err, chunk.ErrCorrupt) || errors.Is(err, chunk.ErrTooLarge):
			out[i] = storeResult{engine.Rejected, fmt.Errorf("%w: %w", ErrRejected, err)}
		case err != nil:
			out[i] = storeResult{engine.Failed, err}
		case !isNew:
			out[i] = storeResult{engine.Duplicate, nil} // stored before, or earlier in this group
		default:
			staged[i], staging = true, true
		}
	}
	if !staging {
		b.Abort()
		return
	}
	var added map[chunk.ID]bool
	var tracked func()
	err := b.Commit(func(pb *pebble.Batch, ids []chunk.ID) error {
		added = make(map[chunk.ID]bool, len(ids))
		for _, id := range ids {
			added[id] = true
		}
		apply, err := s.Objects.StageChunksArrived(pb, ids)
		if err != nil {
			return err
		}
		tracked = apply
		// Those stored as they came were never compressed here: marked
		// as Stores.Put marks them (compress.go).
		var raw []chunk.ID
		for i, st := range sts {
			if staged[i] && st.Codec == chunk.CodecRaw && added[st.ID] {
				raw = append(raw, st.ID)
			}
		}
		if err := stageArrivedRaw(pb, raw); err != nil {
			return err
		}
		return s.Log.Stage(pb, KindChunk, ids, sts[0].Link.String(), time.Now())
	})
	for i, st := range sts {
		switch {
		case !staged[i]:
		case err != nil:
			out[i] = storeResult{engine.Failed, err}
		case added[st.ID]:
			out[i] = storeResult{engine.Stored, nil}
		default:
			out[i] = storeResult{engine.Duplicate, nil} // another link's commit came first
		}
	}
	if err == nil {
		tracked()
		s.Log.Committed()
	}
}

// drain waits for at least one item, then takes up to max of those
// queued; false once ctx ends.
func (q *workQueue[T]) drain(ctx context.Context, max int) ([]queued[T], bool) {
	for {
		q.mu.Lock()
		if n := min(len(q.items), max); n > 0 {
			out := make([]queued[T], n)
			copy(out, q.items)
			clear(q.items[:n])
			q.items = q.items[n:]
			q.mu.Unlock()
			return out, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}
