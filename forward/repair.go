package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/chunk"
)

// prefixUnrepairable keys the chunks this site lost and could not get
// back from any reachable site: 'u' + chunk ID → JSON (since, names).
const prefixUnrepairable = 'u'

// ErrUnrepairable marks a chunk that is damaged or lost here and that no
// reachable site could send again. It wraps chunk.ErrCorrupt.
var ErrUnrepairable = fmt.Errorf("no reachable site has a good copy: %w", chunk.ErrCorrupt)

// Timing of repairs.
const (
	repairTimeout = 30 * time.Second // one fetch of a chunk to repair
	// retryAfter is how long a chunk found unrepairable is answered as
	// such without asking the federation again (reads of it fail at
	// once); the background retry asks again after it.
	retryAfter = time.Minute
	maxNames   = 8 // objects named per unrepairable chunk
)

// Unrepairable is a chunk lost here that no reachable site could send.
type Unrepairable struct {
	ID      chunk.ID  `json:"-"`
	Chunk   string    `json:"chunk"`
	Since   time.Time `json:"since"`
	Names   []string  `json:"names"` // objects (name@version) that use it, when known
	Tried   time.Time `json:"-"`     // the last attempt
	Attempt int       `json:"attempts"`
}

// Repairer heals chunks this site holds damaged (they fail their hash)
// or has lost, by fetching good copies from the other sites through the
// links, and remembers those it could not heal, for status, metrics and
// a later try. It serves reads, relays (a chunk a link should ship) and
// scrub alike. Safe for concurrent use.
type Repairer struct {
	stores *Stores
	fetch  func(context.Context, chunk.ID) error
	inv    *Inventory // nil without reconciliation
	db     *pebble.DB
	log    *slog.Logger

	// base bounds every repair: Close cancels it and waits for them, so
	// none touches the stores after the site closed them.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	inflight map[chunk.ID]*repairCall
	bad      map[chunk.ID]*Unrepairable
	closed   bool

	repaired, failed, quarantined atomic.Int64
}

type repairCall struct {
	done chan struct{}
	err  error
}

// NewRepairer loads the chunks remembered as unrepairable. fetch brings
// a chunk that is not stored here from another site (Node.Fetch). It
// always returns a usable Repairer; an error says the list could not be
// read in full.
func NewRepairer(db *pebble.DB, stores *Stores, inv *Inventory, fetch func(context.Context, chunk.ID) error, log *slog.Logger) (*Repairer, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Repairer{stores: stores, fetch: fetch, inv: inv, db: db, log: log,
		inflight: map[chunk.ID]*repairCall{}, bad: map[chunk.ID]*Unrepairable{}}
	r.base, r.cancel = context.WithCancel(context.Background())
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixUnrepairable}, UpperBound: []byte{prefixUnrepairable + 1}})
	if err != nil {
		return r, fmt.Errorf("load unrepairable chunks: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		u, err := decodeUnrepairable(it.Key(), it.Value())
		if err != nil {
			log.Warn("repair: skipping a malformed unrepairable record", "err", err)
			continue
		}
		r.bad[u.ID] = u
	}
	return r, it.Error()
}

// decodeUnrepairable reads one 'u' record.
func decodeUnrepairable(k, v []byte) (*Unrepairable, error) {
	if len(k) != 1+len(chunk.ID{}) || k[0] != prefixUnrepairable {
		return nil, fmt.Errorf("key %x is not an unrepairable chunk", k)
	}
	u := &Unrepairable{}
	if err := json.Unmarshal(v, u); err != nil {
		return nil, fmt.Errorf("unrepairable chunk %x: %w", k[1:], err)
	}
	copy(u.ID[:], k[1:])
	u.Chunk = u.ID.String()
	if len(u.Names) > maxNames {
		u.Names = u.Names[:maxNames]
	}
	return u, nil
}

// Repair makes chunk id good here: if it is stored and verifies, nothing
// is done; if it is stored damaged it is taken out of the index
// (quarantined) and fetched again; if it is missing it is fetched. names
// are the objects the caller knows use it (for the report, if it cannot
// be healed). Concurrent repairs of one chunk share one attempt. A chunk
// that failed within the last minute fails at once with ErrUnrepairable.
func (r *Repairer) Repair(ctx context.Context, id chunk.ID, names ...string) error {
	r.mu.Lock()
	if u := r.bad[id]; u != nil {
		addNames(u, names)
		if time.Since(u.Tried) < retryAfter {
			r.mu.Unlock()
			return fmt.Errorf("chunk %s: %w", id.Short(), ErrUnrepairable)
		}
	}
	if c := r.inflight[id]; c != nil {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("repair chunk %s: %w", id.Short(), errRepairerClosed)
	}
	c := &repairCall{done: make(chan struct{})}
	r.inflight[id] = c
	r.wg.Add(1)
	r.mu.Unlock()
	// The repair outlives a caller that gives up (a reader whose client
	// went away): it is bounded by repairTimeout and by Close, and the
	// next reader finds it done or joins it.
	go func() {
		defer r.wg.Done()
		rctx, cancel := context.WithTimeout(r.base, repairTimeout)
		defer cancel()
		c.err = r.repair(rctx, id, names)
		r.mu.Lock()
		delete(r.inflight, id)
		r.mu.Unlock()
		close(c.done)
	}()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errRepairerClosed ends repairs asked for while the site shuts down.
var errRepairerClosed = errors.New("repairs stopped: the site is shutting down")

// Close stops the repairs under way (they are not recorded as failed)
// and waits for them; later ones fail at once.
func (r *Repairer) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// Quarantine takes a chunk whose stored bytes fail verification out of
// the index and out of the reconciliation table, so it can be fetched
// again; it reports whether it did (a chunk that verifies, or was
// replaced by a good copy meanwhile, stays).
func (r *Repairer) Quarantine(id chunk.ID) (bool, error) {
	removed, err := r.stores.Chunks.Quarantine(id)
	if err != nil || !removed {
		return removed, err
	}
	r.quarantined.Add(1)
	if r.inv != nil {
		r.inv.Forget(KindChunk, []chunk.ID{id})
	}
	return true, nil
}

func (r *Repairer) repair(ctx context.Context, id chunk.ID, names []string) error {
	_, _, err := r.stores.Chunks.Verify(id, nil)
	switch {
	case err == nil:
		r.healed(id)
		return nil
	case errors.Is(err, chunk.ErrCorrupt):
		removed, err := r.Quarantine(id)
		if err != nil {
			return err
		}
		if !removed {
			r.healed(id) // a good copy arrived since it failed
			return nil
		}
	case !errors.Is(err, chunk.ErrNotFound):
		return err
	}
	ferr := r.fetch(ctx, id)
	if ferr == nil {
		if _, _, ferr = r.stores.Chunks.Verify(id, nil); ferr == nil {
			r.repaired.Add(1)
			r.healed(id)
			r.log.Info("repair: chunk fetched again from another site", "chunk", id.String())
			return nil
		}
	}
	if r.base.Err() != nil {
		return fmt.Errorf("repair chunk %s: %w", id.Short(), errRepairerClosed) // says nothing of the chunk
	}
	r.failed.Add(1)
	r.remember(id, names)
	r.log.Error("repair: no reachable site could send a good copy of a chunk lost here; skyfed stat lists it with the objects it belongs to",
		"chunk", id.String(), "names", names, "err", ferr)
	return fmt.Errorf("chunk %s: %w (%v)", id.Short(), ErrUnrepairable, ferr)
}

func addNames(u *Unrepairable, names []string) bool {
	changed := false
	for _, n := range names {
		if n != "" && len(u.Names) < maxNames && !slices.Contains(u.Names, n) {
			u.Names = append(u.Names, n)
			changed = true
		}
	}
	return changed
}

// remember records a chunk as unrepairable (or one more failed attempt).
func (r *Repairer) remember(id chunk.ID, names []string) {
	r.mu.Lock()
	u := r.bad[id]
	if u == nil {
		u = &Unrepairable{ID: id, Chunk: id.String(), Since: time.Now().UTC()}
		r.bad[id] = u
	}
	addNames(u, names)
	u.Tried = time.Now()
	u.Attempt++
	v, _ := json.Marshal(u)
	r.mu.Unlock()
	if err := r.db.Set(append([]byte{prefixUnrepairable}, id[:]...), v, pebble.NoSync); err != nil {
		r.log.Warn("repair: cannot record an unrepairable chunk", "chunk", id.Short(), "err", err)
	}
}

// healed forgets a chunk that is good here again.
func (r *Repairer) healed(id chunk.ID) {
	r.mu.Lock()
	_, was := r.bad[id]
	delete(r.bad, id)
	r.mu.Unlock()
	if was {
		if err := r.db.Delete(append([]byte{prefixUnrepairable}, id[:]...), pebble.NoSync); err != nil {
			r.log.Warn("repair: cannot clear an unrepairable chunk", "chunk", id.Short(), "err", err)
		}
	}
}

// NoteNames adds object names to a chunk known unrepairable; it reports
// whether the chunk is one.
func (r *Repairer) NoteNames(id chunk.ID, names ...string) bool {
	r.mu.Lock()
	u := r.bad[id]
	if u == nil {
		r.mu.Unlock()
		return false
	}
	changed := addNames(u, names)
	v, _ := json.Marshal(u)
	r.mu.Unlock()
	if changed {
		_ = r.db.Set(append([]byte{prefixUnrepairable}, id[:]...), v, pebble.NoSync)
	}
	return true
}

// IsUnrepairable reports whether id is known lost here for good (so far).
func (r *Repairer) IsUnrepairable(id chunk.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad[id] != nil
}

// Troubled reports whether id is known unrepairable or being repaired
// now: a reader asks Repair first (and waits for it) instead of
// streaming up to it.
func (r *Repairer) Troubled(id chunk.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad[id] != nil || r.inflight[id] != nil
}

// Unrepairable lists the chunks lost here that no site could send, the
// oldest first.
func (r *Repairer) Unrepairable() []Unrepairable {
	r.mu.Lock()
	out := make([]Unrepairable, 0, len(r.bad))
	for _, u := range r.bad {
		c := *u
		c.Names = slices.Clone(u.Names)
		out = append(out, c)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Unrepairable) int { return a.Since.Compare(b.Since) })
	return out
}

// Counts returns chunks repaired and repairs that failed since start,
// and how many are unrepairable now.
func (r *Repairer) Counts() (repaired, failed, unrepairable int64) {
	r.mu.Lock()
	n := int64(len(r.bad))
	r.mu.Unlock()
	return r.repaired.Load(), r.failed.Load(), n
}

// Retry tries again every unrepairable chunk not tried in the last
// minute (a site that held it may be reachable now, or it arrived by
// replication meanwhile); it returns how many are good now.
func (r *Repairer) Retry(ctx context.Context) int {
	var due []chunk.ID
	r.mu.Lock()
	for id, u := range r.bad {
		if time.Since(u.Tried) >= retryAfter {
			due = append(due, id)
		}
	}
	r.mu.Unlock()
	healed := 0
	for _, id := range due {
		if ctx.Err() != nil {
			break
		}
		if r.Repair(ctx, id) == nil {
			healed++
		}
	}
	return healed
}

var (
	descRepaired     = prometheus.NewDesc("skyfed_repaired_chunks_total", "Chunks found damaged or lost here and fetched again from another site.", nil, nil)
	descRepairFailed = prometheus.NewDesc("skyfed_repair_failures_total", "Repairs that found no reachable site with a good copy.", nil, nil)
	descQuarantined  = prometheus.NewDesc("skyfed_quarantined_chunks_total", "Chunks taken out of the index because their stored bytes failed verification.", nil, nil)
	descUnrepairable = prometheus.NewDesc("skyfed_unrepairable_chunks", "Chunks lost here that no reachable site could send yet (skyfed stat names their objects).", nil, nil)
)

// Describe implements prometheus.Collector.
func (r *Repairer) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRepaired, descRepairFailed, descQuarantined, descUnrepairable} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (r *Repairer) Collect(ch chan<- prometheus.Metric) {
	repaired, failed, bad := r.Counts()
	ch <- prometheus.MustNewConstMetric(descRepaired, prometheus.CounterValue, float64(repaired))
	ch <- prometheus.MustNewConstMetric(descRepairFailed, prometheus.CounterValue, float64(failed))
	ch <- prometheus.MustNewConstMetric(descQuarantined, prometheus.CounterValue, float64(r.quarantined.Load()))
	ch <- prometheus.MustNewConstMetric(descUnrepairable, prometheus.GaugeValue, float64(bad))
}

// payloadToShip returns what to ship for an object. A chunk stored here
// damaged is repaired from the other sites first, so a relay never
// starves the sites behind it; one that cannot be repaired is reported
// (Repairer.Unrepairable) and skipped on this link.
func (n *Node) payloadToShip(ctx context.Context, k Kind, id chunk.ID) (chunk.Codec, []byte, uint32, error) {
	c, payload, rawLen, err := n.stores.Payload(k, id)
	rep := n.stores.repairer.Load()
	if k != KindChunk || rep == nil || !errors.Is(err, chunk.ErrCorrupt) {
		if errors.Is(err, chunk.ErrNotFound) {
			n.log.Info("cannot ship a chunk no longer stored here (collected, or lost and left to reconciliation); skipping", "id", id.Short())
		}
		return c, payload, rawLen, err
	}
	n.log.Warn("a chunk to ship is damaged here; repairing it from another site first", "id", id.Short())
	if rerr := rep.Repair(ctx, id); rerr != nil {
		return 0, nil, 0, rerr
	}
	return n.stores.Payload(k, id)
}
