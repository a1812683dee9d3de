package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// Key prefixes of the reconciliation state, owned by forward.
const (
	prefixRecon   = 'r' // 'r' 'h' → table head and fold point; 'r' 'b' + block(2) → block of symbols
	prefixRefused = 'f' // 'f' + manifest ID → its encoding: refused here for good (kept so reconciliation says "refused", not "missing")
)

// maxRefused bounds the refused manifests remembered: a peer cannot fill
// the disk with manifests signed by keys this site does not trust.
const maxRefused = 100000

// persistEvery is how many folded arrivals, or how long, the table may
// run ahead of its persisted copy. Losing that much in a crash costs a
// re-fold of the log's tail at the next open, nothing else.
const (
	persistEvery      = 20000
	persistEveryAfter = time.Minute
)

// Inventory is this site's side of reconciliation: the rateless IBLT
// table of every manifest and chunk ID it holds (forward/recon), kept
// up to date by folding the arrival log (every ID stored here is logged
// once, in the commit that stores it), persisted with its fold point in
// one Pebble batch, so a reconciliation never scans the inventory. It
// implements recon.Local.
type Inventory struct {
	db     *pebble.DB
	stores *Stores
	log    *slog.Logger

	mu          sync.Mutex
	t           *recon.Table
	folded      [2]uint64 // by engine.Kind.Index(): log sequences folded in
	unpersisted int
	persistedAt time.Time
	refused     int

	// gone are IDs taken out of the stores (a corrupt chunk quarantined,
	// garbage collected), toggled out of the table at the next fold,
	// before the log's tail: an ID that comes back is logged again
	// after it was queued here (goneMu).
	goneMu sync.Mutex
	gone   []recon.Item
}

var _ recon.Local = (*Inventory)(nil)

// OpenInventory loads the table, folds the log's tail into it, and
// checks its counts against the stores'. A table that is missing or
// does not match (a data dir from before reconciliation, index entries
// of lost packs dropped at open, a manifest logged twice) is rebuilt
// from one scan of the index.
func OpenInventory(db *pebble.DB, stores *Stores, log *slog.Logger) (*Inventory, error) {
	if log == nil {
		log = slog.Default()
	}
	inv := &Inventory{db: db, stores: stores, log: log, t: recon.NewTable(), persistedAt: time.Now()}
	loaded, err := inv.load()
	if err != nil {
		log.Warn("reconciliation table unreadable; rebuilding it from the index", "err", err)
		loaded = false
	}
	if loaded {
		if err := inv.fold(); err != nil {
			return nil, fmt.Errorf("open inventory: %w", err)
		}
	}
	m, c := inv.t.Counts()
	wantM, wantC := stores.Objects.Versions(), stores.Chunks.Stats().Chunks
	if !loaded || m != wantM || c != wantC {
		if loaded {
			log.Warn("reconciliation table does not match the index; rebuilding it",
				"table_manifests", m, "index_manifests", wantM, "table_chunks", c, "index_chunks", wantC)
		}
		if err := inv.rebuild(); err != nil {
			return nil, fmt.Errorf("open inventory: %w", err)
		}
	}
	if err := inv.countRefused(); err != nil {
		return nil, fmt.Errorf("open inventory: %w", err)
	}
	return inv, nil
}

var headKey = []byte{prefixRecon, 'h'}

func blockKey(i int) []byte {
	return binary.BigEndian.AppendUint16([]byte{prefixRecon, 'b'}, uint16(i))
}

// load reads the persisted table; false if there is none.
func (inv *Inventory) load() (bool, error) {
	v, closer, err := inv.db.Get(headKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	head := append([]byte(nil), v...)
	closer.Close()
	if len(head) < 16 {
		return false, fmt.Errorf("reconciliation head of %d bytes", len(head))
	}
	inv.folded[0] = binary.BigEndian.Uint64(head[0:8])
	inv.folded[1] = binary.BigEndian.Uint64(head[8:16])
	if err := inv.t.LoadHead(head[16:]); err != nil {
		return false, err
	}
	it, err := inv.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRecon, 'b'}, UpperBound: []byte{prefixRecon, 'c'}})
	if err != nil {
		return false, err
	}
	defer it.Close()
	seen := 0
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 4 {
			return false, fmt.Errorf("reconciliation block key %x", k)
		}
		i := int(binary.BigEndian.Uint16(k[2:]))
		if i >= recon.Blocks {
			return false, fmt.Errorf("reconciliation block %d of %d", i, recon.Blocks)
		}
		if err := inv.t.LoadBlock(i, it.Value()); err != nil {
			return false, fmt.Errorf("reconciliation block %d: %w", i, err)
		}
		seen++
	}
	if err := it.Error(); err != nil {
		return false, err
	}
	if seen != recon.Blocks {
		return false, fmt.Errorf("%d of %d reconciliation blocks", seen, recon.Blocks)
	}
	inv.t.ClearDirty()
	return true, nil
}

// rebuild makes the table from the index and persists it in full.
func (inv *Inventory) rebuild() error {
	start := time.Now()
	inv.t = recon.NewTable()
	// Heads first: whatever commits during the scan is in the log past
	// them and folds in later; an ID both scanned and folded is toggled
	// twice, which the count check at the next open catches.
	folded := [2]uint64{inv.stores.Log.Head(KindManifest), inv.stores.Log.Head(KindChunk)}
	err := inv.stores.Objects.ForEachManifest(func(id chunk.ID) error {
		inv.t.Toggle(byte(KindManifest), id, true)
		return nil
	})
	if err == nil {
		err = inv.stores.Chunks.ForEach(func(id chunk.ID) error {
			inv.t.Toggle(byte(KindChunk), id, true)
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("rebuild reconciliation table: %w", err)
	}
	inv.folded = folded
	if err := inv.persistAll(); err != nil {
		return err
	}
	m, c := inv.t.Counts()
	level := slog.LevelInfo
	if m == 0 && c == 0 {
		level = slog.LevelDebug // a new site: nothing to say
	}
	inv.log.Log(context.Background(), level, "reconciliation table rebuilt from the index", "manifests", m, "chunks", c, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (inv *Inventory) persistAll() error {
	all := make([]int, recon.Blocks)
	for i := range all {
		all[i] = i
	}
	return inv.persist(all)
}

// persist writes the given blocks and the head with the fold point in
// one batch.
func (inv *Inventory) persist(blocks []int) error {
	b := inv.db.NewBatch()
	defer b.Close()
	var buf []byte
	for _, i := range blocks {
		buf = inv.t.AppendBlock(buf[:0], i)
		if err := b.Set(blockKey(i), buf, nil); err != nil {
			return err
		}
	}
	head := binary.BigEndian.AppendUint64(nil, inv.folded[0])
	head = binary.BigEndian.AppendUint64(head, inv.folded[1])
	head = inv.t.AppendHead(head)
	if err := b.Set(headKey, head, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("persist reconciliation table: %w", err)
	}
	inv.t.ClearDirty()
	inv.unpersisted = 0
	inv.persistedAt = time.Now()
	return nil
}

// Forget queues IDs the stores no longer hold, to be toggled out of the
// table. The caller has committed their removal first. Should the site
// stop before the table is persisted, its counts no longer match the
// index's at the next open, and it is rebuilt.
func (inv *Inventory) Forget(k Kind, ids []chunk.ID) {
	if len(ids) == 0 {
		return
	}
	inv.goneMu.Lock()
	for _, id := range ids {
		inv.gone = append(inv.gone, recon.Item{Kind: byte(k), ID: id})
	}
	inv.goneMu.Unlock()
}

// fold applies the removals queued by Forget, then the log entries past
// the fold point.
func (inv *Inventory) fold() error {
	inv.goneMu.Lock()
	gone := inv.gone
	inv.gone = nil
	inv.goneMu.Unlock()
	for _, it := range gone {
		inv.t.Toggle(it.Kind, it.ID, false)
	}
	inv.unpersisted += len(gone)
	for _, k := range []Kind{KindManifest, KindChunk} {
		for {
			as, err := inv.stores.Log.Read(k, inv.folded[k.Index()], 4096)
			if err != nil {
				return fmt.Errorf("fold arrival log: %w", err)
			}
			if len(as) == 0 {
				break
			}
			for _, a := range as {
				inv.t.Toggle(byte(k), a.ID, true)
				inv.folded[k.Index()] = a.Seq
			}
			inv.unpersisted += len(as)
		}
	}
	return nil
}

// Sync folds the log's tail and persists the table when enough has
// changed (or force); the node calls it now and then and at close.
func (inv *Inventory) Sync(force bool) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if err := inv.fold(); err != nil {
		return err
	}
	if inv.unpersisted == 0 || (!force && inv.unpersisted < persistEvery && time.Since(inv.persistedAt) < persistEveryAfter) {
		return nil
	}
	return inv.persist(inv.t.Dirty())
}

// Table implements recon.Local: the table with every arrival folded in.
// Sessions copy what they need from it at once. Only the engine's loop
// may call it, and Sync only from that loop too (or after it ended):
// the table it returns is changed by the next fold.
func (inv *Inventory) Table() *recon.Table {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if err := inv.fold(); err != nil {
		inv.log.Warn("reconciliation: cannot fold the arrival log; the table is behind", "err", err)
	}
	return inv.t
}

// Counts returns the manifests and chunks the table holds.
func (inv *Inventory) Counts() (manifests, chunks int64) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.t.Counts()
}

// Resolve implements recon.Local: the item with key k held here.
func (inv *Inventory) Resolve(k recon.Key) (recon.Item, recon.Info, bool) {
	p := recon.Prefix(byte(KindChunk), k)
	if id, rawLen, ok, err := inv.stores.Chunks.FindPrefix(p[:]); err == nil && ok && recon.KeyOf(byte(KindChunk), id) == k {
		return recon.Item{Kind: byte(KindChunk), ID: id}, recon.Info{Bytes: int64(rawLen)}, true
	}
	p = recon.Prefix(byte(KindManifest), k)
	m, err := inv.stores.Objects.ManifestByPrefix(p[:])
	if err != nil || recon.KeyOf(byte(KindManifest), m.ID()) != k {
		return recon.Item{}, recon.Info{}, false
	}
	return recon.Item{Kind: byte(KindManifest), ID: m.ID()},
		recon.Info{Bytes: int64(len(m.Encode())), Name: m.Name, Version: m.Stamp.String()}, true
}

// Refuses implements recon.Local: whether this site refuses the
// manifest with key k for good, as its trust store stands now.
func (inv *Inventory) Refuses(k recon.Key) bool {
	p := recon.Prefix(byte(KindManifest), k)
	if collected, err := inv.stores.Objects.CollectedByPrefix(p[:]); err == nil && collected {
		return true // deleted here and garbage-collected: it must not come back
	}
	if !inv.anyRefused() {
		return false
	}
	lo := append([]byte{prefixRefused}, p[:]...)
	it, err := inv.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixUpperBound(lo)})
	if err != nil {
		return false
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		m, err := manifest.Decode(it.Value())
		if err != nil || recon.KeyOf(byte(KindManifest), m.ID()) != k {
			continue
		}
		return inv.stores.Objects.Refusal(m) != nil
	}
	return false
}

// Refused reports whether manifest id was refused here for good and
// still would be.
func (inv *Inventory) Refused(id chunk.ID) bool {
	if !inv.anyRefused() {
		return false // the common case, on the offer path: no read at all
	}
	v, closer, err := inv.db.Get(append([]byte{prefixRefused}, id[:]...))
	if err != nil {
		return false
	}
	m, err := manifest.Decode(v)
	closer.Close()
	return err == nil && inv.stores.Objects.Refusal(m) != nil
}

// NoteRefused remembers a manifest refused for good (its signer is not
// trusted here for its domain), so reconciliation reports it as refused
// instead of missing, and offers of it are answered "have".
func (inv *Inventory) NoteRefused(m *manifest.Manifest, why error) {
	if !errors.Is(why, naming.ErrUntrusted) && !errors.Is(why, naming.ErrForbidden) || errors.Is(why, naming.ErrRevoked) {
		return
	}
	inv.mu.Lock()
	full := inv.refused >= maxRefused
	if !full {
		inv.refused++
	}
	inv.mu.Unlock()
	if full {
		return
	}
	id := m.ID()
	if err := inv.db.Set(append([]byte{prefixRefused}, id[:]...), m.Encode(), pebble.NoSync); err != nil {
		inv.log.Warn("reconciliation: cannot remember a refused manifest", "id", id.Short(), "err", err)
	}
}

func (inv *Inventory) anyRefused() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.refused > 0
}

// prefixUpperBound returns the least key above every key starting with p.
func prefixUpperBound(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // every key
}

func (inv *Inventory) countRefused() error {
	it, err := inv.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRefused}, UpperBound: []byte{prefixRefused + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		inv.refused++
	}
	return errors.Join(it.Error(), it.Close())
}
