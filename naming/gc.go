package naming

// Garbage collection of hidden versions, and what the chunk sweep and
// scrub need from the version index.
//
// A version is hidden once the name was deleted after it: by a newer
// tombstone (at the tombstone's stamp time), or by an expiry (at the
// expiry time, of the version itself, and of every older version when
// the expiring version was the newest then). CollectHidden removes the
// versions hidden for longer than a grace period, every key naming keeps
// for them in one synced batch, and records their manifest IDs under
// 'g' in that same batch, so that a peer (or a site back from a long
// absence) can never bring one back:
//
//	'g' + manifest ID → nothing
//
// Tombstones are kept: they are small and keep saying "deleted" to
// peers that still hold older versions.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// Collected is what CollectHidden removed.
type Collected struct {
	Manifests []chunk.ID // IDs of the manifests removed
	Chunks    []chunk.ID // distinct chunk IDs those manifests referenced (candidates for the chunk sweep)
	Versions  int64
	Bytes     int64 // sum of the removed versions' sizes
	// Skipped counts names left alone because one of their manifests
	// could not be read (CheckManifest says why); a pass goes on without
	// them rather than stop reclaiming everywhere.
	Skipped int64
}

// CollectJournal is an optional part of a Journal: a journal that keeps
// state per stored manifest (an inventory for reconciliation) drops the
// collected ones in the batch that removes them.
type CollectJournal interface {
	StageCollected(pb *pebble.Batch, manifests []chunk.ID) error
}

// gcLimits are the sizes of a pass's steps (tests make them small).
type gcLimits struct {
	// groupKeys bounds the keys one removal batch touches (and so how
	// long it holds the commit mutex that puts and arrivals wait for).
	groupKeys int
	// scanPage is how many keys a scan reads before it reopens its
	// iterator, so a long pass does not pin old tables all along.
	scanPage int
}

var defaultGCLimits = gcLimits{groupKeys: 4096, scanPage: 4096}

// versionEntry is one key of a name's version index as a scan saw it.
type versionEntry struct {
	key []byte
	id  chunk.ID
}

// versionInfo is what deciding collectibility needs of one version.
type versionInfo struct {
	wallMS    int64 // stamp time
	expires   int64 // unix ms; 0 never
	tombstone bool
}

// namePlan is what a pass will remove of one name, and the name's
// version index as seen when deciding, to re-check under the mutex.
type namePlan struct {
	hash     Hash
	seen     []versionEntry
	doomed   []*manifest.Manifest
	ids      []chunk.ID // of doomed
	dropName bool       // no version remains: the listing key goes too
}

// collectible reports which of a name's versions (oldest first) are
// hidden since before cutoff (unix ms). Tombstones are never collectible.
func collectible(vs []versionInfo, cutoff int64) []bool {
	out := make([]bool, len(vs))
	hidden := false // some newer version deleted the name before cutoff
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if v.tombstone {
			hidden = hidden || v.wallMS < cutoff
			continue
		}
		expired := v.expires != 0 && v.expires < cutoff
		out[i] = hidden || expired
		// An expired version that was still the newest when it expired
		// deleted the name then: removing it alone would bring an older
		// version back as the latest.
		if expired && (i == len(vs)-1 || vs[i+1].wallMS > v.expires) {
			hidden = true
		}
	}
	return out
}

// CollectHidden removes the versions hidden by a tombstone or by expiry
// since more than grace before now, and records their IDs so that they
// are refused if offered again. It walks the version index a name at a
// time and commits in bounded groups, each under the commit mutex that
// puts and arrivals take, so it runs beside them. On error (or ctx
// cancelled) what was committed so far is reported with it.
func (s *Store) CollectHidden(ctx context.Context, now time.Time, grace time.Duration) (Collected, error) {
	if grace < 0 {
		return Collected{}, fmt.Errorf("collect hidden versions: negative grace period %s", grace)
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	g := gcPass{s: s, cutoff: now.Add(-grace).UnixMilli(), chunks: map[chunk.ID]bool{}}
	err := s.walkNames(ctx, g.plan)
	if err == nil {
		err = g.flush()
	}
	if err != nil {
		return g.out, fmt.Errorf("collect hidden versions: %w", err)
	}
	return g.out, nil
}

// gcPass is the state of one CollectHidden.
type gcPass struct {
	s       *Store
	cutoff  int64
	pending []namePlan
	cost    int // keys the pending plans touch, about
	out     Collected
	chunks  map[chunk.ID]bool // in out.Chunks
}

// plan decides what to remove of one name and commits a group once
// enough is pending.
func (g *gcPass) plan(h Hash, seen []versionEntry) error {
	infos := make([]versionInfo, len(seen))
	for i, e := range seen {
		m, err := g.s.Manifest(e.id)
		if err != nil {
			return g.skip(err)
		}
		infos[i] = versionInfo{wallMS: m.Stamp.WallMS, expires: m.Expires, tombstone: m.Tombstone}
	}
	p := namePlan{hash: h, seen: seen}
	cost := 0
	for i, doomed := range collectible(infos, g.cutoff) {
		if !doomed {
			continue
		}
		m, err := g.s.Manifest(seen[i].id) // again: only the doomed are held
		if err != nil {
			return g.skip(err)
		}
		p.doomed = append(p.doomed, m)
		p.ids = append(p.ids, seen[i].id)
		cost += 6 + len(m.Chunks) // keys removed, about
	}
	if len(p.doomed) == 0 {
		return nil
	}
	cost += len(seen) // re-read under the mutex
	p.dropName = len(p.doomed) == len(seen)
	g.pending = append(g.pending, p)
	if g.cost += cost; g.cost < g.s.gcLimits.groupKeys {
		return nil
	}
	return g.flush()
}

// skip leaves a name whose manifest cannot be read to scrub; other
// errors end the pass.
func (g *gcPass) skip(err error) error {
	if errors.Is(err, manifest.ErrMalformed) || errors.Is(err, ErrNotFound) {
		g.out.Skipped++
		return nil
	}
	return err
}

// flush removes the pending plans in one commit.
func (g *gcPass) flush() error {
	if len(g.pending) == 0 {
		return nil
	}
	plans := g.pending
	g.pending, g.cost = nil, 0
	var d delta
	var done []namePlan
	err := g.s.chunks.NewBatch().Commit(func(pb *pebble.Batch, _ []chunk.ID) error {
		d = g.s.track.begin()
		var err error
		done, err = g.s.stageCollect(pb, plans, &d)
		return err
	})
	if err != nil {
		return err
	}
	g.s.track.apply(d)
	if sink := g.s.cfg.Manifests; sink != nil {
		var ids []chunk.ID
		for _, p := range done {
			ids = append(ids, p.ids...)
		}
		if len(ids) > 0 {
			// After the commit: a crash before this leaves collected
			// manifests that a rebuild brings back as hidden versions,
			// which collection removes again; never the reverse.
			if err := sink.Collected(ids); err != nil {
				return fmt.Errorf("record %d collected manifests: %w", len(ids), err)
			}
		}
	}
	for _, p := range done {
		for i, m := range p.doomed {
			g.out.Manifests = append(g.out.Manifests, p.ids[i])
			g.out.Versions++
			g.out.Bytes += m.Size
			for _, c := range m.Chunks {
				if !g.chunks[c] {
					g.chunks[c] = true
					g.out.Chunks = append(g.out.Chunks, c)
				}
			}
		}
		g.s.versions.Add(-int64(len(p.doomed)))
		g.s.collected.Add(int64(len(p.doomed)))
	}
	return nil
}

// stageCollect stages into pb the removal of the plans whose names'
// versions are still what the scan saw (a name changed since is left to
// the next pass), and returns those. It runs under the commit mutex, so
// what it reads is every commit's result.
func (s *Store) stageCollect(pb *pebble.Batch, plans []namePlan, d *delta) ([]namePlan, error) {
	var done []namePlan
	var ids []chunk.ID
	for _, p := range plans {
		same, err := s.versionsAre(p.hash, p.seen)
		if err != nil {
			return nil, err
		}
		if !same {
			continue
		}
		for i, m := range p.doomed {
			if err := s.stageRemove(pb, p.hash, p.ids[i], m, d); err != nil {
				return nil, err
			}
		}
		if p.dropName {
			if err := pb.Delete(nameKey(p.doomed[0].Name), nil); err != nil {
				return nil, err
			}
		}
		done = append(done, p)
		ids = append(ids, p.ids...)
	}
	if j, ok := s.cfg.Journal.(CollectJournal); ok && len(ids) > 0 {
		if err := j.StageCollected(pb, ids); err != nil {
			return nil, err
		}
	}
	return done, nil
}

// versionsAre reports whether the committed version index of h holds
// exactly the entries seen.
func (s *Store) versionsAre(h Hash, seen []versionEntry) (bool, error) {
	p := versionPrefix(h)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return false, err
	}
	i := 0
	same := true
	for it.First(); it.Valid() && same; it.Next() {
		same = i < len(seen) && bytes.Equal(it.Key(), seen[i].key) && bytes.Equal(it.Value(), seen[i].id[:])
		i++
	}
	return same && i == len(seen), it.Close()
}

// stageRemove stages the deletion of every key naming keeps for version
// m (ID id) of the name hashed h, and the record that it was collected.
func (s *Store) stageRemove(pb *pebble.Batch, h Hash, id chunk.ID, m *manifest.Manifest, d *delta) error {
	for _, k := range [][]byte{manifestKey(id), versionKey(h, m.Stamp), append(contentPrefix(m.SHA256), id[:]...)} {
		if err := pb.Delete(k, nil); err != nil {
			return err
		}
	}
	if err := pb.Set(collectedKey(id), nil, nil); err != nil {
		return err
	}
	if err := unstageFind(pb, m, id); err != nil {
		return err
	}
	v, ok, err := getValue(s.db, incompleteKey(id))
	if err != nil || !ok {
		return err
	}
	cur, err := decodeMissing(v)
	if err != nil {
		return err
	}
	// The 'w' keys of chunks that arrived are gone already; deleting
	// the rest blindly costs less than looking each one up.
	seen := make(map[chunk.ID]bool, len(m.Chunks))
	for _, c := range m.Chunks {
		if seen[c] {
			continue
		}
		seen[c] = true
		if err := pb.Delete(waitingKey(c, id), nil); err != nil {
			return err
		}
	}
	d.versions--
	d.completed++
	d.bytes -= cur.bytes
	return pb.Delete(incompleteKey(id), nil)
}

// walkNames calls fn with each name hash in the version index and its
// entries, oldest first.
func (s *Store) walkNames(ctx context.Context, fn func(Hash, []versionEntry) error) error {
	var cur []versionEntry
	var curHash Hash
	err := s.scanPrefix(ctx, prefixVersion, func(k, v []byte) error {
		if len(k) < 1+len(Hash{})+10 {
			return fmt.Errorf("%w: version index key %x", chunk.ErrCorrupt, k)
		}
		id, err := manifestIDFrom(v)
		if err != nil {
			return err
		}
		h := Hash(k[1 : 1+len(Hash{})])
		if len(cur) > 0 && h != curHash {
			if err := fn(curHash, cur); err != nil {
				return err
			}
			cur = nil
		}
		curHash = h
		cur = append(cur, versionEntry{key: bytes.Clone(k), id: id})
		return nil
	})
	if err != nil || len(cur) == 0 {
		return err
	}
	return fn(curHash, cur)
}

// scanPrefix calls fn with every committed key and value under the
// one-byte prefix p (valid only during the call), reopening its
// iterator every gcLimits.scanPage keys and stopping when ctx is done.
// Keys committed during the scan may or may not be seen.
func (s *Store) scanPrefix(ctx context.Context, p byte, fn func(k, v []byte) error) error {
	lower, upper := []byte{p}, []byte{p + 1}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		more := false
		n := 0
		for it.First(); it.Valid(); it.Next() {
			if n == s.gcLimits.scanPage {
				lower, more = bytes.Clone(it.Key()), true
				break
			}
			if err := fn(it.Key(), it.Value()); err != nil {
				_ = it.Close()
				return err
			}
			n++
		}
		if err := it.Close(); err != nil || !more {
			return err
		}
	}
}

// IsCollected reports whether the manifest with the given ID was
// garbage-collected here.
func (s *Store) IsCollected(id chunk.ID) (bool, error) {
	_, ok, err := getValue(s.db, collectedKey(id))
	return ok, err
}

// checkCollected refuses a manifest collected here.
func (s *Store) checkCollected(id chunk.ID) error {
	gone, err := s.IsCollected(id)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", id.Short(), err)
	}
	if gone {
		return fmt.Errorf("manifest %s: %w: its version was deleted here and garbage-collected", id.Short(), ErrCollected)
	}
	return nil
}

// CollectedByPrefix reports whether the ID of some manifest collected
// here starts with prefix (reconciliation names manifests by their
// first ID bytes).
func (s *Store) CollectedByPrefix(prefix []byte) (bool, error) {
	p := append([]byte{prefixCollected}, prefix...)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return false, err
	}
	found := it.First()
	return found, it.Close()
}

// CollectedCount returns how many manifests were garbage-collected here.
func (s *Store) CollectedCount() (int64, error) { return s.collected.Load(), nil }

// ForEachReferencedChunk calls fn with every chunk ID referenced by a
// manifest stored here or by a part of an upload in progress
// (duplicates possible). Manifests committed while
// it runs may or may not be seen: a sweep must not collect a chunk that
// became unreferenced only recently (the chunk grace period covers it).
func (s *Store) ForEachReferencedChunk(ctx context.Context, fn func(chunk.ID) error) error {
	if err := s.forEachPartChunk(ctx, fn); err != nil { // parts of uploads in progress
		return err
	}
	return s.scanPrefix(ctx, prefixManifest, func(k, v []byte) error {
		m, err := manifest.Decode(v)
		if err != nil {
			return fmt.Errorf("load manifest %x: %w", k[1:], err)
		}
		for _, c := range m.Chunks {
			if err := fn(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// IsIncomplete reports whether the manifest is tracked as lacking chunks
// here (an 'i' entry exists): its missing chunks are still expected by
// replication.
func (s *Store) IsIncomplete(m chunk.ID) (bool, error) {
	_, ok, err := getValue(s.db, incompleteKey(m))
	return ok, err
}

// CheckManifest re-reads a stored manifest and checks that its bytes
// hash to its ID and decode, that the version index points at it, its
// signature, and that its signer may write its name today; it returns
// the manifest. Errors wrap ErrNotFound, chunk.ErrCorrupt,
// manifest.ErrMalformed, manifest.ErrBadSignature, ErrUntrusted (with
// ErrRevoked) or ErrForbidden.
func (s *Store) CheckManifest(id chunk.ID) (*manifest.Manifest, error) {
	enc, err := s.ManifestBytes(id)
	if err != nil {
		return nil, err
	}
	if got := chunk.ID(sha256.Sum256(enc)); got != id {
		return nil, fmt.Errorf("check manifest %s: %w: %w: stored bytes hash to %s", id.Short(), chunk.ErrCorrupt, manifest.ErrMalformed, got.Short())
	}
	m, err := manifest.Decode(enc)
	if err != nil {
		return nil, fmt.Errorf("check manifest %s: %w", id.Short(), err)
	}
	if err := s.Verify(m); err != nil {
		return nil, fmt.Errorf("check manifest %s: %w", id.Short(), err)
	}
	name, _ := ParseName(m.Name) // Verify parsed it
	v, ok, err := getValue(s.db, versionKey(name.Hash(), m.Stamp))
	if err != nil {
		return nil, fmt.Errorf("check manifest %s: %w", id.Short(), err)
	}
	if !ok || !bytes.Equal(v, id[:]) {
		return nil, fmt.Errorf("check manifest %s: %w: the version index does not point at it (%s version %s)", id.Short(), chunk.ErrCorrupt, m.Name, m.Stamp)
	}
	return m, nil
}
