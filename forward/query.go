package forward

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// DefaultHops is the hop limit of queries this site asks.
const DefaultHops = 16

// queryTTL is how long a query ID is remembered (dedupe, reply routes).
const queryTTL = 2 * time.Minute

// ErrIncomplete means a query ended (deadline) before every reached site answered.
var ErrIncomplete = errors.New("not every site answered in time")

// queries is a node's state for queries: which it has seen, where to
// route replies, what its own askers wait for.
type queries struct {
	mu       sync.Mutex
	seen     map[[16]byte]time.Time
	routes   map[[16]byte]string          // query → link it came in on
	pulls    map[pullKey]string           // (fetch query, holder) → link its Found reply came in on
	askers   map[[16]byte]*asker          // queries this site asked
	fetchers map[chunk.ID]map[string]bool // chunk → links that asked this site for it
	waiters  map[chunk.ID][]chan struct{} // chunk → local fetches waiting
	confirms map[chunk.ID]map[string]time.Time
	cwait    map[chunk.ID][]chan struct{}
	swept    time.Time
	via      map[*wire.Reply]string
}

type pullKey struct {
	query  [16]byte
	holder string
}

type asker struct {
	replies chan *wire.Reply
}

func newQueries() *queries {
	return &queries{
		seen: map[[16]byte]time.Time{}, routes: map[[16]byte]string{}, askers: map[[16]byte]*asker{}, pulls: map[pullKey]string{},
		fetchers: map[chunk.ID]map[string]bool{}, waiters: map[chunk.ID][]chan struct{}{},
		confirms: map[chunk.ID]map[string]time.Time{}, cwait: map[chunk.ID][]chan struct{}{}, via: map[*wire.Reply]string{},
	}
}

// sweepLocked forgets what is older than queryTTL.
func (q *queries) sweepLocked(now time.Time) {
	if now.Sub(q.swept) < queryTTL/4 {
		return
	}
	q.swept = now
	for id, at := range q.seen {
		if now.Sub(at) > queryTTL {
			delete(q.seen, id)
			delete(q.routes, id)
		}
	}
	for k := range q.pulls {
		if _, ok := q.seen[k.query]; !ok {
			delete(q.pulls, k)
		}
	}
	for id, sites := range q.confirms {
		for s, at := range sites {
			if now.Sub(at) > time.Hour {
				delete(sites, s)
			}
		}
		if len(sites) == 0 {
			delete(q.confirms, id)
		}
	}
}

// upLinks returns the links that are up, except the one named skip.
func (n *Node) upLinks(skip string) []*Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*Link
	for name, l := range n.links {
		if name != skip && l.State() == StateUp {
			out = append(out, l)
		}
	}
	return out
}

// sendQuery passes q on over every up link but skip; it returns how many.
func (n *Node) sendQuery(q *wire.Query, skip string) int {
	links := n.upLinks(skip)
	for _, l := range links {
		l.sendLookup(&wire.Message{Type: wire.MsgQuery, Query: q})
	}
	return len(links)
}

// Ask floods a query and collects the replies until every reached site
// has answered (or, for fetches, one found it), or ctx ends: then it
// returns what came with ErrIncomplete.
func (n *Node) Ask(ctx context.Context, kind wire.QueryKind, key [32]byte) ([]*wire.Reply, error) {
	var out []*wire.Reply
	err := n.ask(ctx, n.newQuery(kind, key), func(r *wire.Reply) bool {
		out = append(out, r)
		return r.Found && kind == wire.QueryFetchManifest
	})
	return out, err
}

func (n *Node) newQuery(kind wire.QueryKind, key [32]byte) *wire.Query {
	q := &wire.Query{Hops: DefaultHops, Kind: kind, Key: key, Origin: n.site}
	rand.Read(q.ID[:])
	return q
}

// ask floods q and hands each reply (but "seen" ones) to each until
// every reached site answered, each says stop, or ctx ends.
func (n *Node) ask(ctx context.Context, q *wire.Query, each func(*wire.Reply) (stop bool)) error {
	a := &asker{replies: make(chan *wire.Reply, 64)}
	n.q.mu.Lock()
	n.q.seen[q.ID] = time.Now()
	n.q.askers[q.ID] = a
	n.q.mu.Unlock()
	defer func() {
		n.q.mu.Lock()
		delete(n.q.askers, q.ID)
		n.q.mu.Unlock()
	}()
	expected := n.sendQuery(q, "")
	for expected > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s query: %w", kindName(q.Kind), ErrIncomplete)
		case r := <-a.replies:
			expected += int(r.Fanout) - 1
			if !r.Seen && each(r) {
				return nil
			}
		}
	}
	return nil
}

func kindName(k wire.QueryKind) string {
	switch k {
	case wire.QueryLatest:
		return "latest"
	case wire.QueryVersions:
		return "versions"
	case wire.QueryContent:
		return "content"
	case wire.QueryFetchChunk:
		return "fetch chunk"
	case wire.QueryFetchManifest:
		return "fetch manifest"
	case wire.QueryPull:
		return "pull"
	}
	return "confirm"
}

// Fetch makes a chunk local: if it is not stored here it asks the
// federation who holds it and pulls it from the nearest holder (the first
// to answer); every site it passes through keeps it. A holder that does
// not deliver within a few round trips is passed over for the next.
func (n *Node) Fetch(ctx context.Context, id chunk.ID) error {
	if have, err := n.stores.HasChunk(id); err != nil || have {
		return err
	}
	done := make(chan struct{})
	n.q.mu.Lock()
	n.q.waiters[id] = append(n.q.waiters[id], done)
	n.q.mu.Unlock()
	defer n.dropWaiter(id, done)
	if have, err := n.stores.HasChunk(id); err != nil || have {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := n.newQuery(wire.QueryFetchChunk, id)
	holders := make(chan *wire.Reply, 32)
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(holders)
		n.ask(ctx, q, func(r *wire.Reply) bool {
			if r.Found {
				select {
				case holders <- r:
				default:
				}
			}
			return false
		})
	}()
	var queue []*wire.Reply // holders heard of, not yet pulled from
	pulled := 0
	var wait <-chan time.Time // the pull under way: how long it may take
	pull := func() {
		h := queue[0]
		queue = queue[1:]
		n.q.mu.Lock()
		hv := n.q.via[h]
		n.q.mu.Unlock()
		if l := n.link(hv); l != nil {
			l.sendLookup(&wire.Message{Type: wire.MsgQuery, Query: &wire.Query{ID: pullID(q.ID), Hops: DefaultHops, Kind: wire.QueryPull, Key: id, Origin: h.Site}})
			pulled++
			wait = time.After(max(2*time.Second, 4*time.Since(start)))
		}
	}
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("fetch chunk %s: %w", id.Short(), ctx.Err())
		case <-wait:
			wait = nil // that holder did not deliver in time: the next one
		case h, ok := <-holders:
			if !ok {
				holders = nil
			} else {
				queue = append(queue, h)
			}
		}
		if wait == nil && len(queue) > 0 {
			pull()
		}
		if wait == nil && len(queue) == 0 && holders == nil && pulled == 0 {
			return fmt.Errorf("fetch chunk %s: no reachable site holds it: %w", id.Short(), chunk.ErrNotFound)
		}
	}
}

// pullID maps a fetch query's ID to the ID of its pulls and back, so
// that nothing said about a pull can count as an answer to the query.
func pullID(id [16]byte) [16]byte {
	id[15] ^= 0x80
	return id
}

func (n *Node) dropWaiter(id chunk.ID, done chan struct{}) {
	n.q.mu.Lock()
	defer n.q.mu.Unlock()
	ws := n.q.waiters[id]
	for i, w := range ws {
		if w == done {
			n.q.waiters[id] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(n.q.waiters[id]) == 0 {
		delete(n.q.waiters, id)
	}
}

// chunkArrived wakes local fetches of id and relays it to the links that
// asked this site for it.
func (n *Node) chunkArrived(id chunk.ID) {
	n.q.mu.Lock()
	waiters := n.q.waiters[id]
	delete(n.q.waiters, id)
	askers := n.q.fetchers[id]
	delete(n.q.fetchers, id)
	n.q.mu.Unlock()
	for _, w := range waiters {
		close(w)
	}
	for name := range askers {
		if l := n.link(name); l != nil {
			l.goShipFetched(id)
		}
	}
}

func (n *Node) link(name string) *Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[name]
}

// onQuery answers a query that came in on link from and passes it on.
func (n *Node) onQuery(from *Link, q *wire.Query) {
	if q.Kind == wire.QueryPull {
		n.onPull(from, q)
		return
	}
	now := time.Now()
	n.q.mu.Lock()
	n.q.sweepLocked(now)
	_, seen := n.q.seen[q.ID]
	n.q.seen[q.ID] = now
	if !seen {
		n.q.routes[q.ID] = from.name
	}
	n.q.mu.Unlock()
	if q.Kind == wire.QueryConfirm {
		if !seen && n.checkConfirm(q) && q.Hops > 1 {
			n.sendQuery(&wire.Query{ID: q.ID, Hops: q.Hops - 1, Kind: q.Kind, Key: q.Key, Origin: q.Origin, Sig: q.Sig}, from.name)
		}
		return
	}
	if seen {
		from.sendLookup(&wire.Message{Type: wire.MsgReply, Reply: &wire.Reply{ID: q.ID, Site: n.site, Seen: true}})
		return
	}
	reply := n.answerQuery(q)
	var next []*Link
	if !(reply.Found && (q.Kind == wire.QueryFetchChunk || q.Kind == wire.QueryFetchManifest)) && q.Hops > 1 {
		next = n.upLinks(from.name)
		reply.Fanout = uint16(len(next))
	}
	// The reply goes first: every reply of the sites further on comes
	// back through this site on the same lane, after the one that
	// announced them, so the asker's count never runs ahead.
	from.sendLookup(&wire.Message{Type: wire.MsgReply, Reply: reply})
	fwd := &wire.Message{Type: wire.MsgQuery, Query: &wire.Query{ID: q.ID, Hops: q.Hops - 1, Kind: q.Kind, Key: q.Key, Origin: q.Origin}}
	for _, l := range next {
		l.sendLookup(fwd)
	}
}

// onPull routes a pull towards the holder that answered a fetch; the
// holder ships the chunk back along the same path, and every site on it
// keeps a copy and relays it.
func (n *Node) onPull(from *Link, q *wire.Query) {
	if q.Origin == n.site {
		if have, err := n.stores.HasChunk(q.Key); err == nil && have {
			from.goShipFetched(q.Key)
		}
		return
	}
	n.q.mu.Lock()
	next := n.q.pulls[pullKey{pullID(q.ID), q.Origin}]
	if next != "" {
		if n.q.fetchers[q.Key] == nil {
			n.q.fetchers[q.Key] = map[string]bool{}
		}
		n.q.fetchers[q.Key][from.name] = true
	}
	n.q.mu.Unlock()
	if l := n.link(next); l != nil && q.Hops > 1 {
		l.sendLookup(&wire.Message{Type: wire.MsgQuery, Query: &wire.Query{ID: q.ID, Hops: q.Hops - 1, Kind: q.Kind, Key: q.Key, Origin: q.Origin}})
	}
}

// answerQuery looks up what this site holds for q.
func (n *Node) answerQuery(q *wire.Query) *wire.Reply {
	r := &wire.Reply{ID: q.ID, Site: n.site}
	var ms []*manifest.Manifest
	var err error
	switch q.Kind {
	case wire.QueryLatest:
		var m *manifest.Manifest
		if m, err = n.stores.Objects.NewestByHash(naming.Hash(q.Key)); err == nil {
			ms = append(ms, m)
		}
	case wire.QueryVersions:
		ms, err = n.stores.Objects.HistoryByHash(naming.Hash(q.Key))
	case wire.QueryContent:
		var m *manifest.Manifest
		if m, err = n.stores.Objects.BySHA256(q.Key); err == nil {
			ms = append(ms, m)
		}
	case wire.QueryFetchManifest:
		var m *manifest.Manifest
		if m, err = n.stores.Objects.Manifest(q.Key); err == nil {
			ms = append(ms, m)
		}
	case wire.QueryFetchChunk:
		have, herr := n.stores.HasChunk(q.Key)
		r.Found = herr == nil && have // the asker pulls it from the nearest holder
		return r
	}
	if err != nil && !errors.Is(err, naming.ErrNotFound) {
		n.log.Error("answer query", "kind", kindName(q.Kind), "err", err)
	}
	size := 0
	for _, m := range ms {
		enc := m.Encode()
		if size+len(enc) > wire.MaxMessage/2 || len(r.Manifests) == wire.MaxReplyManifests {
			break
		}
		size += len(enc)
		r.Manifests = append(r.Manifests, enc)
	}
	r.Found = len(r.Manifests) > 0
	return r
}

// onReply delivers a reply to this site's asker or routes it back.
func (n *Node) onReply(via *Link, p *wire.Reply) {
	n.q.mu.Lock()
	n.q.via[p] = via.name
	n.q.mu.Unlock()
	n.q.mu.Lock()
	a := n.q.askers[p.ID]
	route := n.q.routes[p.ID]
	if p.Found {
		n.q.pulls[pullKey{p.ID, p.Site}] = via.name
	}
	n.q.mu.Unlock()
	if a != nil {
		select {
		case a.replies <- p:
		default:
			n.log.Warn("query reply dropped: asker is slow")
		}
		return
	}
	if l := n.link(route); l != nil {
		l.sendLookup(&wire.Message{Type: wire.MsgReply, Reply: p})
	}
}

// Confirm tells the federation that this site holds manifest id and all
// its chunks durably.
func (n *Node) Confirm(id chunk.ID) {
	q := &wire.Query{Hops: DefaultHops, Kind: wire.QueryConfirm, Key: id, Origin: n.site, Sig: n.signer.Signer.Sign(wire.ConfirmMessage(n.site, id))}
	rand.Read(q.ID[:])
	n.q.mu.Lock()
	n.q.seen[q.ID] = time.Now()
	n.q.mu.Unlock()
	n.sendQuery(q, "")
}

// checkConfirm records a confirmation signed by a trusted site's key and
// reports whether to relay it: a forged one is refused and counted; one
// from a site this site does not know is relayed unrecorded (the waiting
// origin may know it).
func (n *Node) checkConfirm(q *wire.Query) bool {
	key, ok := n.peerKey(q.Origin)
	if !ok {
		return q.Origin != n.site
	}
	if !key.Verify(wire.ConfirmMessage(q.Origin, q.Key), q.Sig) {
		n.rejected("confirm")
		n.log.Warn("forged confirmation refused", "origin", q.Origin)
		return false
	}
	n.confirmed(q.Key, q.Origin)
	return true
}

func (n *Node) confirmed(id chunk.ID, site string) {
	n.q.mu.Lock()
	defer n.q.mu.Unlock()
	if n.q.confirms[id] == nil {
		n.q.confirms[id] = map[string]time.Time{}
	}
	n.q.confirms[id][site] = time.Now()
	for _, w := range n.q.cwait[id] {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Confirmed returns the sites other than this one that confirmed id.
func (n *Node) Confirmed(id chunk.ID) []string {
	n.q.mu.Lock()
	defer n.q.mu.Unlock()
	var out []string
	for s := range n.q.confirms[id] {
		out = append(out, s)
	}
	return out
}

// WaitConfirmed waits until want sites, this one included, hold manifest
// id durably, or ctx ends; it returns how many did.
func (n *Node) WaitConfirmed(ctx context.Context, id chunk.ID, want int) (int, error) {
	wake := make(chan struct{}, 1)
	n.q.mu.Lock()
	n.q.cwait[id] = append(n.q.cwait[id], wake)
	n.q.mu.Unlock()
	defer func() {
		n.q.mu.Lock()
		ws := n.q.cwait[id]
		for i, w := range ws {
			if w == wake {
				n.q.cwait[id] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(n.q.cwait[id]) == 0 {
			delete(n.q.cwait, id)
		}
		n.q.mu.Unlock()
	}()
	for {
		got := 1 + len(n.Confirmed(id))
		if got >= want {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-wake:
		}
	}
}

// fetching reports whether id is being fetched through this site right
// now (for a local read, or relayed for a neighbour's).
func (n *Node) fetching(id chunk.ID) bool {
	n.q.mu.Lock()
	defer n.q.mu.Unlock()
	return len(n.q.waiters[id]) > 0 || len(n.q.fetchers[id]) > 0
}
