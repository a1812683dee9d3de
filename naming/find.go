package naming

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// FindQuery is what find looks for: versions matching every predicate.
type FindQuery struct {
	Predicates  []Predicate
	AllVersions bool   // every live version, not only each name's latest
	Limit       int    // results per page (0: DefaultFindLimit)
	After       string // the Next of the page before
	// Keep, if set, says which names the asker may see; the others are
	// passed over as if they did not match.
	Keep func(name string) bool
}

// DefaultFindLimit and MaxFindLimit bound a page of find results.
const (
	DefaultFindLimit = 100
	MaxFindLimit     = 1000
)

// findBudget bounds the index entries one page reads, so that a query
// whose every predicate matches much still answers promptly (with a
// short page and a Next).
const findBudget = 200_000

// probeCap bounds the entries counted to choose the predicate that
// drives a find.
const probeCap = 4096

// FindPage is one page of find results.
type FindPage struct {
	Versions []*manifest.Manifest
	Next     string // "" when there are no more
}

// Find returns the versions whose header values match every predicate
// of q: each name's latest live version, or every live version with
// AllVersions. It reads the index range of the most selective
// predicate and checks the others on each version found there.
func (s *Store) Find(ctx context.Context, q FindQuery) (FindPage, error) {
	if len(q.Predicates) == 0 {
		return FindPage{}, fmt.Errorf("%w: find needs at least one condition", ErrBadQuery)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultFindLimit
	}
	limit = min(limit, MaxFindLimit)
	spans := make([][]span, len(q.Predicates))
	for i, p := range q.Predicates {
		sp, err := p.spans()
		if err != nil {
			return FindPage{}, err
		}
		spans[i] = sp
	}
	drivers, groups := driversOf(q.Predicates, spans)
	drive, from, err := s.findDriver(q.After, drivers)
	if err != nil {
		return FindPage{}, err
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	versions, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixVersion}, UpperBound: []byte{prefixVersion + 1}})
	if err != nil {
		return FindPage{}, err
	}
	defer versions.Close()
	c := findCheck{q: q, spans: spans, fields: fieldsOf(q.Predicates), snap: snap, versions: versions}
	c.joins = joinable(q.Predicates, spans, groups, drive)
	page, err := s.findPages(ctx, &c, drive, drivers[drive], from, limit)
	if err != nil {
		return FindPage{}, err
	}
	return page, nil
}

// findBatch is how many driver entries are read ahead and filtered by
// the exact conditions' entries before their versions are loaded.
const findBatch = 512

// candidate is a driver entry: its key and the version it names.
type candidate struct {
	key []byte
	id  chunk.ID
}

// findPages reads the driver's spans from from on, in batches, and
// checks the versions they name until the page is full.
func (s *Store) findPages(ctx context.Context, c *findCheck, drive int, spans []span, from []byte, limit int) (FindPage, error) {
	var page FindPage
	seen := map[chunk.ID]bool{}
	var batch []candidate
	read := 0
	// check takes the batch in driver order; a full page stops at the
	// first candidate not checked, which the next page starts with.
	check := func() (bool, error) {
		alive, err := c.semiJoin(batch)
		if err != nil {
			return false, err
		}
		for i, cand := range batch {
			if len(page.Versions) == limit {
				page.Next = findToken(drive, cand.key)
				return true, nil
			}
			if !alive[i] {
				continue
			}
			m, ok, err := s.findMatch(c, cand.id)
			if err != nil {
				return false, err
			}
			if ok {
				page.Versions = append(page.Versions, m)
			}
		}
		batch = batch[:0]
		return false, ctx.Err()
	}
	for _, sp := range spans {
		if from != nil {
			if bytes.Compare(from, sp.hi) >= 0 {
				continue
			}
			if bytes.Compare(from, sp.lo) > 0 {
				sp.lo = from
			}
		}
		it, err := c.snap.NewIter(&pebble.IterOptions{LowerBound: sp.lo, UpperBound: sp.hi})
		if err != nil {
			return FindPage{}, err
		}
		for valid := it.First(); valid; valid = it.Next() {
			k := it.Key()
			if read == findBudget {
				done, err := check()
				if err == nil && !done {
					page.Next = findToken(drive, k)
				}
				return page, errors.Join(err, it.Close())
			}
			read++
			if len(k) < len(chunk.ID{}) {
				continue
			}
			id := chunk.ID(k[len(k)-len(chunk.ID{}):])
			if seen[id] {
				continue
			}
			seen[id] = true
			batch = append(batch, candidate{key: bytes.Clone(k), id: id})
			if len(batch) == findBatch {
				if done, err := check(); done || err != nil {
					return page, errors.Join(err, it.Close())
				}
			}
		}
		if err := it.Close(); err != nil {
			return FindPage{}, err
		}
	}
	_, err := check()
	return page, err
}

// joinable returns, for each predicate outside the driver's group whose
// spans each hold one exact value (keys: the span's start + a manifest
// ID), those spans: a candidate is checked against them by seeking its
// ID, before its version is loaded.
func joinable(preds []Predicate, spans [][]span, groups []int, drive int) [][]span {
	var out [][]span
	for i, p := range preds {
		if groups[i] == drive || p.Op != "=" && p.Op != "in" || slices.ContainsFunc(spans[i], func(sp span) bool { return !sp.exact }) {
			continue
		}
		out = append(out, spans[i])
	}
	return out
}

// semiJoin reports which candidates have an entry in every joinable
// predicate's spans, seeking them in ID order.
func (c *findCheck) semiJoin(batch []candidate) ([]bool, error) {
	alive := make([]bool, len(batch))
	for i := range alive {
		alive[i] = true
	}
	if len(c.joins) == 0 || len(batch) == 0 {
		return alive, nil
	}
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(batch[a].id[:], batch[b].id[:]) })
	for _, spans := range c.joins {
		found := make([]bool, len(batch))
		for _, sp := range spans {
			it, err := c.snap.NewIter(&pebble.IterOptions{LowerBound: sp.lo, UpperBound: sp.hi})
			if err != nil {
				return nil, err
			}
			for _, i := range order {
				if !alive[i] || found[i] {
					continue
				}
				k := append(sp.lo[:len(sp.lo):len(sp.lo)], batch[i].id[:]...)
				found[i] = it.SeekGE(k) && bytes.Equal(it.Key(), k)
			}
			if err := it.Close(); err != nil {
				return nil, err
			}
		}
		for i := range alive {
			alive[i] = alive[i] && found[i]
		}
	}
	return alive, nil
}

// findCheck is what a find checks each version it reads against.
type findCheck struct {
	q        FindQuery
	spans    [][]span
	fields   map[string]bool
	snap     *pebble.Snapshot
	versions *pebble.Iterator // over the version index, to tell the latest
	joins    [][]span         // exact conditions checked in the index first (joinable)
}

// findMatch loads version id and reports whether it matches.
func (s *Store) findMatch(c *findCheck, id chunk.ID) (*manifest.Manifest, bool, error) {
	enc, ok, err := getValue(c.snap, manifestKey(id))
	if err != nil || !ok {
		return nil, false, err // gone: collected since the entry was read
	}
	m, err := manifest.Decode(enc)
	if err != nil {
		return nil, false, fmt.Errorf("load manifest %s: %w", id.Short(), err)
	}
	if m.Deleted(s.cfg.Now()) || c.q.Keep != nil && !c.q.Keep(m.Name) {
		return nil, false, nil
	}
	entries := findEntriesOf(m, c.fields)
	for i, p := range c.q.Predicates {
		if !matches(p, c.spans[i], entries, id) {
			return nil, false, nil
		}
	}
	if c.q.AllVersions {
		return m, true, nil
	}
	return m, c.isLatest(m, id), c.versions.Error()
}

// isLatest reports whether m (manifest id) is the newest version of its name.
func (c *findCheck) isLatest(m *manifest.Manifest, id chunk.ID) bool {
	name, err := ParseName(m.Name)
	if err != nil {
		return false
	}
	p := versionPrefix(name.Hash())
	return c.versions.SeekLT(prefixEnd(p)) && bytes.HasPrefix(c.versions.Key(), p) && bytes.Equal(c.versions.Value(), id[:])
}

// Matcher checks versions against predicates as Find does, without
// the index and whether or not a version is its name's latest: for
// benchmarks and tests.
type Matcher struct {
	preds []Predicate
	spans [][]span
}

// NewMatcher compiles preds.
func NewMatcher(preds []Predicate) (*Matcher, error) {
	mt := &Matcher{preds: preds}
	for _, p := range preds {
		sp, err := p.spans()
		if err != nil {
			return nil, err
		}
		mt.spans = append(mt.spans, sp)
	}
	return mt, nil
}

// Match reports whether m matches every predicate.
func (mt *Matcher) Match(m *manifest.Manifest) bool {
	if m.Tombstone {
		return false
	}
	entries, id := findEntries(m), m.ID()
	for i, p := range mt.preds {
		if !matches(p, mt.spans[i], entries, id) {
			return false
		}
	}
	return true
}

// fieldsOf returns the keywords preds look at.
func fieldsOf(preds []Predicate) map[string]bool {
	fields := map[string]bool{}
	for _, p := range preds {
		if p.Op == "cone" {
			fields["ra"], fields["dec"] = true, true
		} else {
			fields[p.Field] = true
		}
	}
	return fields
}

// matches reports whether one of a version's index entries lies in the
// predicate's spans (and, for a cone, within the circle).
func matches(p Predicate, spans []span, entries [][]byte, id chunk.ID) bool {
	for _, e := range entries {
		if p.Op == "cone" && !p.Cone.holds(e) {
			continue
		}
		k := append(e[:len(e):len(e)], id[:]...)
		for _, sp := range spans {
			if sp.holds(k) {
				return true
			}
		}
	}
	return false
}

// driversOf returns the index ranges find may read, one per keyword
// and kind of value (and one for the cones): the predicates on the same
// keyword and kind intersected, so that DATE-OBS>=A and DATE-OBS<B
// read only the entries between A and B.
func driversOf(preds []Predicate, spans [][]span) (drivers [][]span, groups []int) {
	group := map[string]int{}
	groups = make([]int, len(preds))
	for i, p := range preds {
		key, ok := kindOf(p, spans[i])
		if j, seen := group[key]; ok && seen {
			drivers[j] = intersectSpans(drivers[j], spans[i])
			groups[i] = j
			continue
		}
		if ok {
			group[key] = len(drivers)
		}
		groups[i] = len(drivers)
		drivers = append(drivers, spans[i])
	}
	return drivers, groups
}

// kindOf returns the part of the index all of spans lie in (a keyword
// and kind of value, or the cones), if they lie in one.
func kindOf(p Predicate, spans []span) (string, bool) {
	if p.Op == "cone" {
		return string(prefixCone), true
	}
	if len(spans) == 0 {
		return "", false
	}
	n := 1 + len(p.Field) + 2
	if len(spans[0].lo) < n {
		return "", false
	}
	part := spans[0].lo[:n]
	end := prefixEnd(part)
	for _, sp := range spans {
		if !bytes.HasPrefix(sp.lo, part) || sp.hi == nil || bytes.Compare(sp.hi, end) > 0 {
			return "", false
		}
	}
	return string(part), true
}

// intersectSpans returns the keys in both a and b (each sorted and
// disjoint) as spans.
func intersectSpans(a, b []span) []span {
	var out []span
	for len(a) > 0 && len(b) > 0 {
		lo, hi := a[0].lo, a[0].hi
		if bytes.Compare(b[0].lo, lo) > 0 {
			lo = b[0].lo
		}
		if bytes.Compare(b[0].hi, hi) < 0 {
			hi = b[0].hi
		}
		if bytes.Compare(lo, hi) < 0 {
			out = append(out, span{lo: lo, hi: hi})
		}
		if bytes.Compare(a[0].hi, b[0].hi) < 0 {
			a = a[1:]
		} else {
			b = b[1:]
		}
	}
	return out
}

// findDriver picks the index ranges read: those the token after names,
// or those with the fewest entries (counted up to the fewest so far).
func (s *Store) findDriver(after string, drivers [][]span) (int, []byte, error) {
	if after != "" {
		drive, from, err := parseFindToken(after)
		if err != nil || drive >= len(drivers) || !inSpans(drivers[drive], from) {
			return 0, nil, fmt.Errorf("%w: next token %q is not one of this query's", ErrBadQuery, after)
		}
		return drive, from, nil
	}
	best, fewest := 0, probeCap+1
	for i, sp := range drivers {
		n, err := s.countSpans(sp, fewest)
		if err != nil {
			return 0, nil, err
		}
		if n < fewest {
			best, fewest = i, n
		}
	}
	return best, nil, nil
}

// countSpans counts the entries in spans, stopping at limit.
func (s *Store) countSpans(spans []span, limit int) (int, error) {
	n := 0
	for _, sp := range spans {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: sp.lo, UpperBound: sp.hi})
		if err != nil {
			return 0, err
		}
		for valid := it.First(); valid && n < limit; valid = it.Next() {
			n++
		}
		if err := it.Close(); err != nil {
			return 0, err
		}
		if n >= limit {
			break
		}
	}
	return n, nil
}

func inSpans(spans []span, k []byte) bool {
	for _, sp := range spans {
		if sp.holds(k) {
			return true
		}
	}
	return false
}

// findToken names where the next page starts: the driving predicate
// and the first entry not read.
func findToken(drive int, k []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{1, byte(drive)}, k...))
}

func parseFindToken(t string) (int, []byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) < 3 || b[0] != 1 {
		return 0, nil, fmt.Errorf("%w: bad next token", ErrBadQuery)
	}
	return int(b[1]), b[2:], nil
}
