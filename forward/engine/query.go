package engine

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// queries is the engine's state for flooded queries: which it has seen,
// where replies go back, what this site's own askers and fetches wait
// for, and the confirmations heard.
type queries struct {
	seen         map[[16]byte]time.Time
	routes       map[[16]byte]LinkID          // query → link it came in on
	pulls        map[pullKey]LinkID           // (fetch query, holder) → link its Found reply came in on
	askers       map[[16]byte]*asker          // queries this site asked
	byReq        map[uint64][16]byte          // a local Ask → its query
	fetchers     map[chunk.ID]map[LinkID]bool // chunk → links that asked this site for it
	pendingPulls map[chunk.ID][]pendingPull   // pulls held back while this site's own copy is on its way
	fetches      map[chunk.ID]*fetch          // this site's fetches
	fetchReqs    map[uint64]chunk.ID
	confirms     map[chunk.ID]map[string]time.Time
	incomplete   map[chunk.ID]*incomplete
	polled       time.Time
	swept        time.Time
}

type pullKey struct {
	query  [16]byte
	holder string
}

type pendingPull struct {
	q    wire.Query
	next LinkID
}

type asker struct {
	req      uint64 // the local Ask; 0 for a fetch's own query
	kind     wire.QueryKind
	expected int
	replies  []*wire.Reply
	deadline time.Time
	fetch    *fetch
}

// IncompleteError ends a query that reached its deadline before every
// site it was sent towards had answered; it wraps ErrIncomplete.
//
// What the asker knows is sends, not sites: it sent the query on each of
// its links that was up, and every reply says on how many links the
// replying site passed it on (its fan-out). Each send is answered once:
// by a reply from a site not reached before (an answer) or by "seen"
// from one that was. So the sites asked are the Answered ones plus one
// for each send still Unanswered. An unanswered send may lead to a site
// that already answered by another path (a loop), or on to sites never
// heard of, so Asked is what the query is known to have reached or been
// sent towards, not a count of the federation.
type IncompleteError struct {
	Kind       wire.QueryKind
	Answered   int // sites that answered ("seen" replies not counted)
	Unanswered int // sends of the query with no reply by the deadline
}

// Asked is the number of sites the query was sent towards: Answered plus
// Unanswered.
func (e *IncompleteError) Asked() int { return e.Answered + e.Unanswered }

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("%s query: %d of %d sites answered: %v", kindName(e.Kind), e.Answered, e.Asked(), ErrIncomplete)
}

func (e *IncompleteError) Unwrap() error { return ErrIncomplete }

type fetch struct {
	id        chunk.ID
	reqs      map[uint64]time.Time // local Fetch → its deadline
	query     [16]byte
	asked     bool
	queryDone bool
	started   time.Time
	holders   []holder // heard of, not yet pulled from
	pulled    int
	pullVia   LinkID    // the pull under way
	waitUntil time.Time // how long it may take (zero: none under way)
}

type holder struct {
	site string
	via  LinkID
}

// incomplete is a manifest stored here whose chunks are not all here yet.
type incomplete struct {
	chunks []chunk.ID
	next   int // chunks before next are known present
	at     time.Time
}

func newQueries() queries {
	return queries{
		seen: map[[16]byte]time.Time{}, routes: map[[16]byte]LinkID{}, pulls: map[pullKey]LinkID{},
		askers: map[[16]byte]*asker{}, byReq: map[uint64][16]byte{},
		fetchers: map[chunk.ID]map[LinkID]bool{}, pendingPulls: map[chunk.ID][]pendingPull{},
		fetches: map[chunk.ID]*fetch{}, fetchReqs: map[uint64]chunk.ID{},
		confirms: map[chunk.ID]map[string]time.Time{}, incomplete: map[chunk.ID]*incomplete{},
	}
}

// pullID maps a fetch query's ID to the ID of its pulls and back, so
// that nothing said about a pull can count as an answer to the query.
func pullID(id [16]byte) [16]byte {
	id[15] ^= 0x80
	return id
}

func (e *Engine) newQueryID() [16]byte {
	var id [16]byte
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		e.note(false, Local, "query ID: random source failed", chunk.ID{}, err)
	}
	return id
}

// flood sends q over every link that is up but skip and takes q's kind;
// it returns how many.
func (e *Engine) flood(q *wire.Query, skip LinkID) int {
	n := 0
	for _, id := range e.queryLinks(q.Kind, skip) {
		e.send(id, wire.LaneLookup, &wire.Message{Type: wire.MsgQuery, Query: q})
		n++
	}
	return n
}

// queryLinks returns the links that are up but skip whose peer takes
// queries of kind (held queries only go to peers that announced them).
func (e *Engine) queryLinks(kind wire.QueryKind, skip LinkID) []LinkID {
	var out []LinkID
	for _, id := range e.Up() {
		if id != skip && (kind != wire.QueryHeld || e.links[id].held) {
			out = append(out, id)
		}
	}
	return out
}

func (e *Engine) ask(ev Ask) {
	q := &wire.Query{ID: e.newQueryID(), Hops: DefaultHops, Kind: ev.Kind, Key: ev.Key, Origin: e.cfg.Site}
	a := &asker{req: ev.Req, kind: ev.Kind, deadline: ev.Deadline}
	e.startQuery(q, a)
}

func (e *Engine) startQuery(q *wire.Query, a *asker) {
	e.q.seen[q.ID] = e.now
	e.q.askers[q.ID] = a
	if a.req != 0 {
		e.q.byReq[a.req] = q.ID
	}
	a.expected = e.flood(q, Local)
	if a.expected == 0 {
		e.finishQuery(q.ID, nil)
	}
}

// finishQuery ends a query this site asked.
func (e *Engine) finishQuery(qid [16]byte, err error) {
	a := e.q.askers[qid]
	if a == nil {
		return
	}
	delete(e.q.askers, qid)
	if a.req != 0 {
		delete(e.q.byReq, a.req)
		e.rd.Queries = append(e.rd.Queries, QueryDone{Req: a.req, Replies: a.replies, Err: err})
		return
	}
	if f := a.fetch; f != nil && e.q.fetches[f.id] == f {
		f.queryDone = true
		e.advanceFetch(f)
	}
}

func (e *Engine) onReply(l *link, p *wire.Reply) {
	if p.Found {
		e.q.pulls[pullKey{p.ID, p.Site}] = l.id
	}
	a := e.q.askers[p.ID]
	if a == nil {
		if route, ok := e.q.routes[p.ID]; ok && e.links[route] != nil {
			e.send(route, wire.LaneLookup, &wire.Message{Type: wire.MsgReply, Reply: p})
		}
		return
	}
	a.expected += int(p.Fanout) - 1
	if !p.Seen {
		if f := a.fetch; f != nil {
			if p.Found && e.q.fetches[f.id] == f {
				f.holders = append(f.holders, holder{site: p.Site, via: l.id})
				e.advanceFetch(f)
			}
		} else {
			a.replies = append(a.replies, p)
			if p.Found && a.kind == wire.QueryFetchManifest {
				e.finishQuery(p.ID, nil)
				return
			}
		}
	}
	if a.expected <= 0 {
		e.finishQuery(p.ID, nil)
	}
}

// onQuery answers a query that came in on l and passes it on.
func (e *Engine) onQuery(l *link, q *wire.Query) {
	if q.Kind == wire.QueryPull {
		e.onPull(l, q)
		return
	}
	_, seen := e.q.seen[q.ID]
	e.q.seen[q.ID] = e.now
	if !seen {
		e.q.routes[q.ID] = l.id
	}
	if q.Kind == wire.QueryConfirm {
		if !seen && e.checkConfirm(l, q) && q.Hops > 1 {
			e.flood(&wire.Query{ID: q.ID, Hops: q.Hops - 1, Kind: q.Kind, Key: q.Key, Origin: q.Origin, Sig: q.Sig}, l.id)
		}
		return
	}
	if seen {
		e.send(l.id, wire.LaneLookup, &wire.Message{Type: wire.MsgReply, Reply: &wire.Reply{ID: q.ID, Site: e.cfg.Site, Seen: true}})
		return
	}
	reply := e.answerQuery(q)
	var next []LinkID
	if !(reply.Found && (q.Kind == wire.QueryFetchChunk || q.Kind == wire.QueryFetchManifest)) && q.Hops > 1 {
		next = e.queryLinks(q.Kind, l.id)
		reply.Fanout = uint16(len(next))
	}
	// The reply goes first: every reply of the sites further on comes
	// back through this site on the same lane, after the one that
	// announced them, so the asker's count never runs ahead.
	e.send(l.id, wire.LaneLookup, &wire.Message{Type: wire.MsgReply, Reply: reply})
	if q.Kind == wire.QueryHeld && reply.Found && q.Origin != e.cfg.Site {
		// The reply is the neighbour's word; the count that frees a
		// telescope's buffer takes only signed confirmations.
		e.confirm(q.Key)
	}
	fwd := &wire.Query{ID: q.ID, Hops: q.Hops - 1, Kind: q.Kind, Key: q.Key, Origin: q.Origin}
	for _, id := range next {
		e.send(id, wire.LaneLookup, &wire.Message{Type: wire.MsgQuery, Query: fwd})
	}
}

// answerQuery looks up what this site holds for q.
func (e *Engine) answerQuery(q *wire.Query) *wire.Reply {
	r := &wire.Reply{ID: q.ID, Site: e.cfg.Site}
	if q.Kind == wire.QueryFetchChunk {
		have, err := e.st.Has(KindChunk, q.Key)
		r.Found = err == nil && have // the asker pulls it from the nearest holder
		return r
	}
	ms, err := e.st.Lookup(q.Kind, q.Key)
	if err != nil {
		e.note(false, Local, fmt.Sprintf("answer query kind %d", q.Kind), chunk.ID{}, err)
	}
	if q.Kind == wire.QueryHeld {
		r.Found = len(ms) > 0 // the asker knows the manifest: only whether it is held here
		return r
	}
	size := 0
	for _, enc := range ms {
		if size+len(enc) > wire.MaxMessage/2 || len(r.Manifests) == wire.MaxReplyManifests {
			break
		}
		size += len(enc)
		r.Manifests = append(r.Manifests, enc)
	}
	r.Found = len(r.Manifests) > 0
	return r
}

// onPull routes a pull towards the holder that answered a fetch; the
// holder ships the chunk back along the same path, and every site on it
// keeps a copy and relays it. A site that holds the chunk by then ships
// it itself; one that has it on its way holds the pull back, so the
// chunk crosses into it once.
func (e *Engine) onPull(l *link, q *wire.Query) {
	id := chunk.ID(q.Key)
	if have, err := e.st.Has(KindChunk, id); err == nil && have {
		e.rd.Ships = append(e.rd.Ships, Ship{Link: l.id, Lane: wire.LaneLookup, Kind: KindChunk, ID: id})
		return
	}
	if q.Origin == e.cfg.Site {
		return // asked as the holder, and no longer holds it: the fetcher moves on
	}
	next, ok := e.q.pulls[pullKey{pullID(q.ID), q.Origin}]
	if !ok {
		return
	}
	if e.q.fetchers[id] == nil {
		e.q.fetchers[id] = map[LinkID]bool{}
	}
	e.q.fetchers[id][l.id] = true
	if e.claims[claimKey{KindChunk, id}] != nil {
		e.q.pendingPulls[id] = append(e.q.pendingPulls[id], pendingPull{q: *q, next: next})
		return
	}
	e.forwardPull(q, next)
}

func (e *Engine) forwardPull(q *wire.Query, next LinkID) bool {
	if e.links[next] == nil || q.Hops <= 1 {
		return false
	}
	e.send(next, wire.LaneLookup, &wire.Message{Type: wire.MsgQuery, Query: &wire.Query{ID: q.ID, Hops: q.Hops - 1, Kind: q.Kind, Key: q.Key, Origin: q.Origin}})
	e.claims[claimKey{KindChunk, q.Key}] = &claim{link: next, lane: wire.LaneLookup, at: e.now}
	return true
}

func (e *Engine) fetch(ev Fetch) {
	if have, err := e.st.Has(KindChunk, ev.ID); err != nil || have {
		e.rd.Fetches = append(e.rd.Fetches, FetchDone{Req: ev.Req, Err: err})
		return
	}
	e.q.fetchReqs[ev.Req] = ev.ID
	if f := e.q.fetches[ev.ID]; f != nil {
		f.reqs[ev.Req] = ev.Deadline
		return
	}
	f := &fetch{id: ev.ID, reqs: map[uint64]time.Time{ev.Req: ev.Deadline}}
	e.q.fetches[ev.ID] = f
	if e.claims[claimKey{KindChunk, ev.ID}] != nil {
		return // on its way here already: wait for it (or for its claim to end)
	}
	e.askHolders(f)
}

// askHolders floods the query that finds who holds f's chunk.
func (e *Engine) askHolders(f *fetch) {
	f.asked, f.started = true, e.now
	q := &wire.Query{ID: e.newQueryID(), Hops: DefaultHops, Kind: wire.QueryFetchChunk, Key: f.id, Origin: e.cfg.Site}
	f.query = q.ID
	e.startQuery(q, &asker{kind: q.Kind, fetch: f})
}

// advanceFetch pulls from the next holder when no pull is under way,
// and gives up when no holder is left to ask.
func (e *Engine) advanceFetch(f *fetch) {
	if e.q.fetches[f.id] != f {
		return
	}
	if !f.waitUntil.IsZero() {
		c := e.claims[claimKey{KindChunk, f.id}]
		if c != nil && c.link == f.pullVia && (c.storing > 0 || c.at.Add(e.cfg.Timing.PullPatience).After(f.waitUntil)) {
			f.waitUntil = c.at.Add(e.cfg.Timing.PullPatience) // frames are arriving: patience
		}
		if c != nil && c.storing > 0 || e.now.Before(f.waitUntil) {
			return
		}
		f.waitUntil = time.Time{} // that holder did not deliver in time: the next one
		if c != nil && c.link == f.pullVia && c.lane == wire.LaneLookup {
			delete(e.claims, claimKey{KindChunk, f.id})
		}
	}
	if c := e.claims[claimKey{KindChunk, f.id}]; c != nil {
		return // on its way here from a link: wait for it, or for its claim to end
	}
	for len(f.holders) > 0 {
		h := f.holders[0]
		f.holders = f.holders[1:]
		pull := &wire.Query{ID: pullID(f.query), Hops: DefaultHops, Kind: wire.QueryPull, Key: f.id, Origin: h.site}
		if e.links[h.via] == nil {
			continue
		}
		e.send(h.via, wire.LaneLookup, &wire.Message{Type: wire.MsgQuery, Query: pull})
		e.claims[claimKey{KindChunk, f.id}] = &claim{link: h.via, lane: wire.LaneLookup, at: e.now}
		f.pulled++
		f.pullVia = h.via
		f.waitUntil = e.now.Add(max(e.cfg.Timing.PullPatience, 4*e.now.Sub(f.started)))
		return
	}
	// No holder left to ask: none answered, or every one pulled from
	// failed to deliver within its patience (a holder whose copy turned
	// out damaged and could not be repaired sends nothing). Waiting on
	// to the deadline would only stall the reader.
	if f.queryDone && (f.pulled == 0 || f.waitUntil.IsZero()) {
		e.endFetch(f, fmt.Errorf("fetch chunk %s: %w", f.id.Short(), ErrNoHolder))
	}
}

func (e *Engine) endFetch(f *fetch, err error) {
	delete(e.q.fetches, f.id)
	reqs := make([]uint64, 0, len(f.reqs))
	for r := range f.reqs {
		reqs = append(reqs, r)
	}
	slices.Sort(reqs)
	for _, r := range reqs {
		delete(e.q.fetchReqs, r)
		e.rd.Fetches = append(e.rd.Fetches, FetchDone{Req: r, Err: err})
	}
}

func (e *Engine) cancel(req uint64) {
	if qid, ok := e.q.byReq[req]; ok {
		delete(e.q.byReq, req)
		delete(e.q.askers, qid)
	}
	if id, ok := e.q.fetchReqs[req]; ok {
		delete(e.q.fetchReqs, req)
		if f := e.q.fetches[id]; f != nil {
			delete(f.reqs, req)
			if len(f.reqs) == 0 {
				delete(e.q.fetches, id)
			}
		}
	}
}

// chunkArrived ends the fetches of id and ships it to the links that
// asked this site for it.
func (e *Engine) chunkArrived(id chunk.ID) {
	if f := e.q.fetches[id]; f != nil {
		e.endFetch(f, nil)
	}
	delete(e.q.pendingPulls, id)
	askers := e.q.fetchers[id]
	delete(e.q.fetchers, id)
	links := make([]LinkID, 0, len(askers))
	for l := range askers {
		if e.links[l] != nil {
			links = append(links, l)
		}
	}
	sortLinks(links)
	for _, l := range links {
		e.rd.Ships = append(e.rd.Ships, Ship{Link: l, Lane: wire.LaneLookup, Kind: KindChunk, ID: id})
	}
}

// claimReleased lets what waited for a payload go on without it: a
// held-back pull goes on towards its holder, a fetch here asks (again).
func (e *Engine) claimReleased(key claimKey) {
	if key.kind != KindChunk {
		return
	}
	for len(e.q.pendingPulls[key.id]) > 0 {
		p := e.q.pendingPulls[key.id][0]
		e.q.pendingPulls[key.id] = e.q.pendingPulls[key.id][1:]
		if e.forwardPull(&p.q, p.next) {
			return
		}
	}
	delete(e.q.pendingPulls, key.id)
	if f := e.q.fetches[key.id]; f != nil {
		if !f.asked {
			e.askHolders(f)
			return
		}
		f.waitUntil = time.Time{}
		e.advanceFetch(f)
	}
}

// checkConfirm records a confirmation signed by a trusted site's key and
// reports whether to relay it: a forged one is refused and counted; one
// from a site this site does not know is relayed unrecorded (the waiting
// origin may know it).
func (e *Engine) checkConfirm(l *link, q *wire.Query) bool {
	if q.Origin == e.cfg.Site {
		return false
	}
	ok, known := e.cfg.Verify(q.Origin, wire.ConfirmMessage(q.Origin, q.Key), q.Sig)
	if !known {
		return true
	}
	if !ok {
		e.reject(l.id, "confirm")
		e.note(true, l.id, "forged confirmation refused from "+q.Origin, q.Key, nil)
		return false
	}
	sites := e.q.confirms[q.Key]
	if sites == nil {
		sites = map[string]time.Time{}
		e.q.confirms[q.Key] = sites
	}
	if _, dup := sites[q.Origin]; !dup {
		e.rd.Confirmed = append(e.rd.Confirmed, Confirmation{ID: q.Key, Site: q.Origin})
	}
	sites[q.Origin] = e.now
	return true
}

// track notes a manifest that became known here from elsewhere, to
// confirm it to the federation once all its chunks are here.
func (e *Engine) track(id chunk.ID) {
	if e.q.incomplete[id] != nil || len(e.q.incomplete) >= e.cfg.Limits.MaxIncomplete {
		return
	}
	chunks, err := e.st.ManifestChunks(id)
	if err != nil {
		e.note(false, Local, "track manifest", id, err)
		return
	}
	inc := &incomplete{chunks: chunks, at: e.now}
	e.q.incomplete[id] = inc
	e.checkOne(id, inc)
}

func (e *Engine) checkComplete() {
	if e.now.Sub(e.q.polled) < e.cfg.Timing.ConfirmPoll {
		return
	}
	e.q.polled = e.now
	for _, id := range sortedIDs(e.q.incomplete) {
		e.checkOne(id, e.q.incomplete[id])
	}
}

func (e *Engine) checkOne(id chunk.ID, inc *incomplete) {
	for inc.next < len(inc.chunks) {
		have, err := e.st.Has(KindChunk, inc.chunks[inc.next])
		if err != nil || !have {
			break
		}
		inc.next++
	}
	switch {
	case inc.next == len(inc.chunks):
		delete(e.q.incomplete, id)
		e.confirm(id)
	case e.now.Sub(inc.at) > 24*time.Hour:
		delete(e.q.incomplete, id)
	}
}

// confirm tells the federation that this site holds manifest id and all
// its chunks durably.
func (e *Engine) confirm(id chunk.ID) {
	q := &wire.Query{ID: e.newQueryID(), Hops: DefaultHops, Kind: wire.QueryConfirm, Key: id, Origin: e.cfg.Site,
		Sig: e.cfg.Sign(wire.ConfirmMessage(e.cfg.Site, id))}
	e.q.seen[q.ID] = e.now
	e.flood(q, Local)
}

// linkDown forgets the fetches a link asked of this site (nothing is
// sent, so the order does not matter).
func (q *queries) linkDown(id LinkID) {
	for cid, links := range q.fetchers {
		delete(links, id)
		if len(links) == 0 {
			delete(q.fetchers, cid)
		}
	}
}

func (q *queries) tick(e *Engine) {
	now := e.now
	var late [][16]byte
	for qid, a := range q.askers {
		if !a.deadline.IsZero() && !now.Before(a.deadline) {
			late = append(late, qid)
		}
	}
	slices.SortFunc(late, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	for _, qid := range late {
		a := q.askers[qid]
		e.finishQuery(qid, &IncompleteError{Kind: a.kind, Answered: len(a.replies), Unanswered: a.expected})
	}
	for _, id := range sortedIDs(q.fetches) {
		f := q.fetches[id]
		if f == nil {
			continue
		}
		var expired []uint64
		for r, dl := range f.reqs {
			if !dl.IsZero() && !now.Before(dl) {
				expired = append(expired, r)
			}
		}
		slices.Sort(expired)
		for _, r := range expired {
			delete(f.reqs, r)
			delete(q.fetchReqs, r)
			e.rd.Fetches = append(e.rd.Fetches, FetchDone{Req: r, Err: fmt.Errorf("fetch chunk %s: %w", id.Short(), ErrDeadline)})
		}
		if len(f.reqs) == 0 {
			delete(q.fetches, id)
			continue
		}
		if !f.waitUntil.IsZero() && !now.Before(f.waitUntil) {
			e.advanceFetch(f)
		}
	}
	q.sweep(now, e.cfg.Timing.QueryTTL)
}

// sweep forgets what is older than ttl.
func (q *queries) sweep(now time.Time, ttl time.Duration) {
	if now.Sub(q.swept) < ttl/4 {
		return
	}
	q.swept = now
	for id, at := range q.seen {
		if now.Sub(at) > ttl && q.askers[id] == nil {
			delete(q.seen, id)
			delete(q.routes, id)
		}
	}
	for k := range q.pulls {
		if _, ok := q.seen[pullID(k.query)]; !ok {
			if _, ok := q.seen[k.query]; !ok {
				delete(q.pulls, k)
			}
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

func (q *queries) wake(t Timing) time.Time {
	var at time.Time
	earliest := func(x time.Time) {
		if !x.IsZero() && (at.IsZero() || x.Before(at)) {
			at = x
		}
	}
	for _, a := range q.askers {
		earliest(a.deadline)
	}
	for _, f := range q.fetches {
		earliest(f.waitUntil)
		for _, dl := range f.reqs {
			earliest(dl)
		}
	}
	if len(q.incomplete) > 0 {
		earliest(q.polled.Add(t.ConfirmPoll))
	}
	return at
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
	case wire.QueryHeld:
		return "held"
	}
	return "confirm"
}
