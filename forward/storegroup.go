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

// stagedGroup is a group whose chunks are verified and written to the
// packs (stageGroup), waiting for their commit (commitGroup). A link's
// store loop stages the next group while this one commits, so that its
// verifying (hashing, decoding) runs while the disk syncs the last
// one, where one after the other left the CPU idle during every sync
// and the disk idle during every verify.
type stagedGroup struct {
	sts  []engine.Store
	out  []storeResult
	runs []stagedRun // the group's runs of chunks, in order
}

// stagedRun is a run of consecutive chunks of a group, staged in one
// batch: sts[i:j] of the group.
type stagedRun struct {
	i, j    int
	b       *chunk.Batch
	staged  []bool // written to the batch, to be committed
	staging bool   // any of them
}

// storeGroup verifies and stores payloads that arrived on one link, in
// their order, and logs them as arrived there: stageGroup, then
// commitGroup.
func (s *Stores) storeGroup(sts []engine.Store) []storeResult {
	return s.commitGroup(s.stageGroup(sts))
}

// stageGroup verifies a group's chunks and writes them to the packs,
// unsynced and invisible; its manifests wait for commitGroup.
// Consecutive chunks share one commit: one sync of the pack and one of
// the index for all of them, where storing them one by one costs two
// syncs each, which on a disk syncing in 3–10 ms bounded a link's
// receiving to 50–150 chunks a second, far below the wire. A chunk is
// still stored and logged (and so acked and relayed) only once
// durable. A chunk that fails verification is refused alone.
func (s *Stores) stageGroup(sts []engine.Store) *stagedGroup {
	g := &stagedGroup{sts: sts, out: make([]storeResult, len(sts))}
	for i := 0; i < len(sts); {
		if sts[i].Kind != engine.KindChunk {
			i++
			continue
		}
		j := i
		for j < len(sts) && sts[j].Kind == engine.KindChunk && sts[j].Link == sts[i].Link {
			j++
		}
		g.runs = append(g.runs, s.stageChunks(sts[i:j], g.out[i:j], i))
		i = j
	}
	return g
}

// commitGroup commits a staged group: each run of chunks in one commit
// (a commit that fails fails its run), manifests one by one in their
// place.
func (s *Stores) commitGroup(g *stagedGroup) []storeResult {
	runs := g.runs
	for i := 0; i < len(g.sts); {
		if len(runs) > 0 && runs[0].i == i {
			s.commitChunks(g.sts[i:runs[0].j], g.out[i:runs[0].j], runs[0])
			i = runs[0].j
			runs = runs[1:]
			continue
		}
		res, err := s.store(g.sts[i])
		g.out[i] = storeResult{res, err}
		i++
	}
	return g.out
}

// stageChunks verifies chunks that arrived on one link and writes them
// to one batch; at is where they start in their group.
func (s *Stores) stageChunks(sts []engine.Store, out []storeResult, at int) stagedRun {
	run := stagedRun{i: at, j: at + len(sts), b: s.Chunks.NewBatch(), staged: make([]bool, len(sts))}
	for i, st := range sts {
		isNew, err := run.b.AddStored(st.ID, st.Codec, st.Payload, st.RawLen)
		switch {
		case errors.Is(err, chunk.ErrCorrupt) || errors.Is(err, chunk.ErrTooLarge):
			out[i] = storeResult{engine.Rejected, fmt.Errorf("%w: %w", ErrRejected, err)}
		case err != nil:
			out[i] = storeResult{engine.Failed, err}
		case !isNew:
			out[i] = storeResult{engine.Duplicate, nil} // stored before, or earlier in this group
		default:
			run.staged[i], run.staging = true, true
		}
	}
	return run
}

// commitChunks makes a staged run durable and visible in one commit and
// logs its new chunks as arrived.
func (s *Stores) commitChunks(sts []engine.Store, out []storeResult, run stagedRun) {
	if !run.staging {
		run.b.Abort()
		return
	}
	var added map[chunk.ID]bool
	var tracked func()
	err := run.b.Commit(func(pb *pebble.Batch, ids []chunk.ID) error {
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
			if run.staged[i] && st.Codec == chunk.CodecRaw && added[st.ID] {
				raw = append(raw, st.ID)
			}
		}
		if err := stageArrivedRaw(pb, raw); err != nil {
			return err
		}
		return s.Log.Stage(pb, KindChunk, ids, run.b.RawSize, sts[0].Link.String(), time.Now())
	})
	for i, st := range sts {
		switch {
		case !run.staged[i]:
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
