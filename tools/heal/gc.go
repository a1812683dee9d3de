package heal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
)

// prefixOrphan keys the chunks a collection found unreferenced, with
// when it first did: 'o' + chunk ID → unix ms (8 bytes, big-endian).
// A chunk may arrive long before the manifest that uses it; it is
// collected only once it has been unreferenced for the grace period.
const prefixOrphan = 'o'

// GCOptions tune a garbage collection.
type GCOptions struct {
	// Grace is how long a hidden version, and a chunk no kept manifest
	// references, are kept.
	Grace time.Duration
	// Rate bounds the bytes compaction copies per second (0: no bound).
	Rate uint64
	// MinDead is the share of dead bytes past which a pack is rewritten
	// (0: chunk.DefaultMinDead).
	MinDead float64
	// UploadExpiry is how long a multipart upload may stay unfinished
	// before the collection aborts it (0: DefaultUploadExpiry).
	UploadExpiry time.Duration
	// Now is the collection's clock (nil: time.Now).
	Now func() time.Time
	// Progress, if set, is called as the collection goes and at the end.
	Progress func(GCReport)
}

// DefaultUploadExpiry is how long an S3 multipart upload may stay
// unfinished before garbage collection takes it as abandoned.
const DefaultUploadExpiry = 7 * 24 * time.Hour

// GCReport is what a collection reclaimed. Its JSON is the last line of
// POST /api/gc and of skyfed tools gc --json.
type GCReport struct {
	Phase             string `json:"phase"` // versions, chunks, packs, done
	VersionsCollected int64  `json:"versions_collected"`
	VersionBytes      int64  `json:"version_bytes"`     // their sizes as objects
	UploadsCollected  int    `json:"uploads_collected"` // multipart uploads abandoned past UploadExpiry
	ChunksCollected   int64  `json:"chunks_collected"`
	ChunkBytes        int64  `json:"chunk_bytes"` // stored bytes of the chunks collected
	// OrphansWaiting are chunks no manifest references that are still in
	// their grace period (they may be waiting for their manifest).
	OrphansWaiting int64 `json:"orphans_waiting"`
	// Kept are chunks unreferenced and past grace that a reader or a put
	// was using; the next collection takes them.
	Kept           int64     `json:"kept_in_use"`
	PacksRemoved   int       `json:"packs_removed"`
	PacksRewritten int       `json:"packs_rewritten"`
	ChunksMoved    int64     `json:"chunks_moved"`
	PackBytes      int64     `json:"pack_bytes_before"`
	PackBytesAfter int64     `json:"pack_bytes_after"`
	Reclaimed      int64     `json:"reclaimed_bytes"`
	Repaired       int64     `json:"repaired"` // damaged chunks met while compacting, fetched again
	Unrepairable   int64     `json:"unrepairable"`
	Started        time.Time `json:"started"`
	Seconds        float64   `json:"seconds"`
	Done           bool      `json:"done"`
	Error          string    `json:"error,omitempty"`
}

// GC collects garbage: versions hidden by a tombstone or expiry for
// longer than the grace period (their manifests are remembered compactly
// so they can never come back), then the chunks no kept manifest
// references (at once for those the collected versions used, after the
// grace period for any other), then compacts pack files, reclaiming the
// bytes of those chunks and of uploads that were aborted or cut by a
// crash. Puts, reads and replication go on meanwhile.
func (s *Site) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	start := time.Now()
	rep := GCReport{Phase: "versions", Started: start.UTC()}
	progress := func() {
		rep.Seconds = seconds(time.Since(start))
		if opts.Progress != nil {
			opts.Progress(rep)
		}
	}
	fail := func(err error) (GCReport, error) {
		rep.Done, rep.Error = true, err.Error()
		progress()
		return rep, fmt.Errorf("gc: %w", err)
	}
	progress()
	// Reuse of chunks by puts is guarded from here: the reference scan
	// below may miss a put that commits while it runs.
	stopGuard := s.Chunks.GuardReuse()
	defer stopGuard()
	manifestHead := s.Arrivals.Head(forward.KindManifest)
	expiry := opts.UploadExpiry
	if expiry <= 0 {
		expiry = DefaultUploadExpiry
	}
	uploads, err := s.Objects.CollectUploads(ctx, opts.Now().Add(-expiry))
	if err != nil {
		return fail(err)
	}
	rep.UploadsCollected = uploads
	collected, err := s.Objects.CollectHidden(ctx, opts.Now(), opts.Grace)
	if s.Inventory != nil {
		s.Inventory.Forget(forward.KindManifest, collected.Manifests)
	}
	rep.VersionsCollected, rep.VersionBytes = collected.Versions, collected.Bytes
	if err != nil {
		return fail(err)
	}
	rep.Phase = "chunks"
	progress()
	swept, err := s.sweepChunks(ctx, collected.Chunks, opts, &rep)
	if err != nil {
		return fail(err)
	}
	// A version that arrived from a peer during the sweep may use a
	// chunk the reference scan saw unused: fetch such chunks back.
	if err := s.recheckArrived(ctx, manifestHead, swept, &rep); err != nil {
		return fail(err)
	}
	stopGuard()
	rep.Phase = "packs"
	progress()
	cr, err := s.Chunks.Compact(ctx, chunk.CompactOptions{
		MinDead: opts.MinDead, Pace: pacer(opts.Rate), Quarantine: s.Repairer.Quarantine,
		Progress: func(c chunk.CompactReport) {
			rep.PacksRemoved, rep.PacksRewritten, rep.ChunksMoved = c.PacksRemoved, c.PacksRewritten, c.ChunksMoved
			progress()
		},
	})
	rep.PacksRemoved, rep.PacksRewritten, rep.ChunksMoved = cr.PacksRemoved, cr.PacksRewritten, cr.ChunksMoved
	rep.PackBytes, rep.PackBytesAfter, rep.Reclaimed = cr.BytesBefore, cr.BytesAfter, cr.Reclaimed()
	for _, id := range cr.Corrupt {
		if s.Repairer.Repair(ctx, id) == nil {
			rep.Repaired++
		} else {
			rep.Unrepairable++
		}
	}
	if err != nil {
		return fail(err)
	}
	rep.Phase, rep.Done = "done", true
	progress()
	s.log().Info("garbage collection done", "versions", rep.VersionsCollected, "chunks", rep.ChunksCollected,
		"orphans_waiting", rep.OrphansWaiting, "packs_removed", rep.PacksRemoved, "packs_rewritten", rep.PacksRewritten,
		"reclaimed_bytes", rep.Reclaimed, "took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

// sweepChunks takes out of the index every chunk no manifest references:
// at once those only collected versions used, after the grace period
// any other (orphans, marked the first time they are seen).
func (s *Site) sweepChunks(ctx context.Context, ofCollected []chunk.ID, opts GCOptions, rep *GCReport) (map[chunk.ID]bool, error) {
	refs, err := s.references(ctx)
	if err != nil {
		return nil, err
	}
	referenced := func(id chunk.ID) bool {
		_, ok := slices.BinarySearch(refs, binary.BigEndian.Uint64(id[:8]))
		return ok
	}
	freed := make(map[chunk.ID]bool, len(ofCollected))
	for _, id := range ofCollected {
		freed[id] = true
	}
	now := opts.Now()
	var sweep []chunk.ID
	marks := s.DB.NewBatch()
	defer marks.Close()
	err = s.Chunks.ForEach(func(id chunk.ID) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if referenced(id) {
			return nil
		}
		var since time.Time
		var marked bool
		if !freed[id] {
			var err error
			if since, marked, err = s.orphanSince(id); err != nil {
				return err
			}
		}
		switch chunkFate(freed[id], marked, since, now, opts.Grace) {
		case collectNow:
			sweep = append(sweep, id)
		case markOrphan:
			rep.OrphansWaiting++
			return marks.Set(orphanKey(id), binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli())), nil)
		case waitGrace:
			rep.OrphansWaiting++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Marks of chunks referenced again, or gone, are dropped.
	if err := s.forEachOrphanMark(func(id chunk.ID) error {
		has, err := s.Chunks.Has(id)
		if err != nil {
			return err
		}
		if !has || referenced(id) {
			return marks.Delete(orphanKey(id), nil)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := marks.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("record unreferenced chunks: %w", err)
	}
	removed, err := s.Chunks.Sweep(sweep)
	if s.Inventory != nil {
		s.Inventory.Forget(forward.KindChunk, removed.IDs)
	}
	unmark := s.DB.NewBatch()
	defer unmark.Close()
	swept := make(map[chunk.ID]bool, len(removed.IDs))
	for _, id := range removed.IDs {
		swept[id] = true
		if derr := unmark.Delete(orphanKey(id), nil); derr != nil {
			return swept, derr
		}
	}
	if cerr := unmark.Commit(pebble.NoSync); cerr != nil && err == nil {
		err = cerr
	}
	rep.ChunksCollected, rep.ChunkBytes, rep.Kept = removed.Chunks, removed.StoredBytes, removed.Pinned
	return swept, err
}

// fate is what a collection does with a chunk no kept manifest references.
type fate int

const (
	collectNow fate = iota // unreferenced past the grace period
	markOrphan             // seen unreferenced for the first time: the grace period starts now
	waitGrace              // unreferenced, still within the grace period
)

// chunkFate decides for a chunk no kept manifest references. freed: the
// versions that used it were collected in this pass, so it has been
// unused since they were hidden, longer than the grace period. Any other
// (a chunk whose manifest has not arrived yet, or was never committed)
// is marked the first time and collected once the grace period has
// passed since.
func chunkFate(freed, marked bool, since, now time.Time, grace time.Duration) fate {
	switch {
	case freed:
		return collectNow
	case !marked:
		return markOrphan
	case now.Sub(since) < grace:
		return waitGrace
	}
	return collectNow
}

// references returns the first 8 bytes of every chunk ID a stored
// manifest references, sorted and distinct: 8 bytes per chunk instead
// of 32, and a prefix shared by chunk that is not referenced only keeps
// that chunk a while longer.
func (s *Site) references(ctx context.Context) ([]uint64, error) {
	var refs []uint64
	err := s.Objects.ForEachReferencedChunk(ctx, func(id chunk.ID) error {
		refs = append(refs, binary.BigEndian.Uint64(id[:8]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(refs)
	return slices.Compact(refs), nil
}

func orphanKey(id chunk.ID) []byte { return append([]byte{prefixOrphan}, id[:]...) }

// orphanSince returns when a chunk was first found unreferenced.
func (s *Site) orphanSince(id chunk.ID) (time.Time, bool, error) {
	v, closer, err := s.DB.Get(orphanKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return time.Time{}, false, nil // malformed: marked again now
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(v))), true, nil
}

func (s *Site) forEachOrphanMark(fn func(chunk.ID) error) error {
	it, err := s.DB.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOrphan}, UpperBound: []byte{prefixOrphan + 1}})
	if err != nil {
		return err
	}
	var ids []chunk.ID
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) == 1+len(chunk.ID{}) {
			ids = append(ids, chunk.ID(it.Key()[1:]))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// recheckArrived fetches back any chunk this pass swept that a version
// arrived since head uses.
func (s *Site) recheckArrived(ctx context.Context, head uint64, swept map[chunk.ID]bool, rep *GCReport) error {
	if len(swept) == 0 {
		return nil
	}
	for {
		as, err := s.Arrivals.Read(forward.KindManifest, head, 1024)
		if err != nil || len(as) == 0 {
			return err
		}
		for _, a := range as {
			head = a.Seq
			m, err := s.Objects.Manifest(a.ID)
			if err != nil {
				continue // collected or refused: nothing to keep
			}
			for _, c := range m.Chunks {
				if !swept[c] {
					continue
				}
				has, err := s.Chunks.Has(c)
				if err != nil {
					return err
				}
				if has {
					continue
				}
				if s.Repairer.Repair(ctx, c, m.Name+"@"+m.Version()) == nil {
					rep.Repaired++
				} else {
					rep.Unrepairable++
				}
			}
		}
	}
}
