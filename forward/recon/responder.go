package recon

import (
	"cmp"
	"fmt"
	"slices"
)

// Responder is the side that answers a session: it sends its symbols and
// resolves what the initiator found. Not safe for concurrent use.
type Responder struct {
	local Local
	opts  Options
	state int
	res   Result
	names bool // the initiator asked for names

	pre    []symbol
	limit  int
	served int // symbols sent

	part    result // the last Result part
	here    []Key
	there   []lacking
	entries int
}

const (
	rOpen    = iota // waiting for Open
	rServing        // symbols sent; waiting for More or Result
	rResult         // collecting Result parts
	rDone
)

// NewResponder returns a session that answers an Open.
func NewResponder(local Local, opts Options) *Responder {
	return &Responder{local: local, opts: opts}
}

// Step takes the next body from the initiator, as Initiator.Step.
func (s *Responder) Step(body []byte) (out [][]byte, res *Result, err error) {
	if s.state == rDone {
		return nil, nil, fmt.Errorf("%w: step after the session ended", ErrProtocol)
	}
	s.res.ReceivedBytes += int64(len(body))
	m, err := decodeBody(body, s.names)
	if err != nil {
		return s.fail(err)
	}
	switch {
	case m.op == opAbort:
		s.state = rDone
		return nil, nil, abortErr(m.abort)
	case s.state == rOpen && m.op == opOpen:
		return s.open(m.open)
	case s.state == rServing && m.op == opMore:
		out, err = s.more(m.more)
	case (s.state == rServing || s.state == rResult) && m.op == opResult:
		return s.result(m.result)
	default:
		err = fmt.Errorf("%w: unexpected body op %d", ErrProtocol, m.op)
	}
	if err != nil {
		return s.fail(err)
	}
	return s.sent(out), nil, nil
}

func (s *Responder) sent(out [][]byte) [][]byte {
	for _, b := range out {
		s.res.SentBytes += int64(len(b))
	}
	return out
}

func (s *Responder) fail(err error) ([][]byte, *Result, error) {
	s.state = rDone
	s.pre = nil
	return s.sent([][]byte{appendAbort(nil, abortCode(err))}), nil, err
}

func (s *Responder) open(o *open) ([][]byte, *Result, error) {
	s.names = o.names
	t := s.local.Table()
	own := t.head()
	s.res.RoundTrips = 1
	if o.sameAs(own) {
		s.state = rDone
		s.res.InSync = true
		out := s.sent([][]byte{{opInSync, msgVersion}})
		r := s.res
		return out, &r, nil
	}
	est := max(o.estimate(own), abs(own.manifests-o.manifests)+abs(own.chunks-o.chunks), 1)
	if est > 2*int64(maxItems(s.opts)) {
		return s.fail(fmt.Errorf("%w: about %d, at most %d", ErrTooManyDifferences, est, maxItems(s.opts)))
	}
	m, limit := firstBatchFor(est)
	s.limit = limit
	s.pre = t.prefix(limit)
	s.state = rServing
	return s.sent(s.symbols(0, m)), nil, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// symbols returns the bodies of symbols [from, from+n), the last marked.
func (s *Responder) symbols(from, n int) [][]byte {
	var out [][]byte
	end := from + n
	for i := from; i < end; i += symbolsPerBody {
		j := min(i+symbolsPerBody, end)
		out = append(out, appendSymbols(nil, j == end, s.limit, i, s.pre[i:j]))
	}
	s.served = end
	s.res.Symbols = end
	return out
}

func (s *Responder) more(m *more) ([][]byte, error) {
	if m.from != s.served || m.n == 0 || m.from+m.n > s.limit {
		return nil, fmt.Errorf("%w: more [%d, %d) after %d of %d", ErrProtocol, m.from, m.from+m.n, s.served, s.limit)
	}
	s.res.RoundTrips++
	return s.symbols(m.from, m.n), nil
}

func (s *Responder) result(m *result) ([][]byte, *Result, error) {
	s.state = rResult
	s.pre = nil // no more symbols
	if s.entries += len(m.lacksHere) + len(m.lacksThere); s.entries > maxItems(s.opts) {
		return s.fail(fmt.Errorf("%w: the peer reports more than %d", ErrTooManyDifferences, maxItems(s.opts)))
	}
	s.here = append(s.here, m.lacksHere...)
	s.there = append(s.there, m.lacksThere...)
	s.part = *m
	if !m.last {
		return nil, nil, nil
	}
	s.state = rDone
	s.res.RoundTrips++
	sum, names := s.resolve()
	out := s.sent(s.summaries(sum, names))
	r := s.res
	return out, &r, nil
}

// resolve works out the responder's result and the summary for the
// initiator (whose lacks-here names are the responder's lacks-there).
func (s *Responder) resolve() (summary, []Diff) {
	var sum summary
	var names []Diff
	slices.Sort(s.here)
	for _, k := range slices.Compact(s.here) {
		item, info, ok := s.local.Resolve(k)
		if !ok || KeyOf(item.Kind, item.ID) != k {
			continue
		}
		if item.Kind == KindManifest && s.local.Refuses(k) {
			sum.refusedHeld++
			continue
		}
		s.res.Send = append(s.res.Send, item)
		s.res.PeerLacks.add(item.Kind, info.Bytes)
		if s.names && item.Kind == KindManifest {
			names = append(names, Diff{Name: cut(info.Name, maxName), Version: cut(info.Version, maxVersion)})
		}
	}
	sortItems(s.res.Send)
	slices.SortFunc(s.there, func(a, b lacking) int { return cmp.Compare(a.key, b.key) })
	s.there = slices.CompactFunc(s.there, func(a, b lacking) bool { return a.key == b.key })
	for _, l := range s.there {
		if s.local.Refuses(l.key) {
			sum.refusedThere = append(sum.refusedThere, l.key)
			continue
		}
		s.res.LocalLacks.Versions++
		s.res.LocalLacks.Bytes += l.bytes
		if s.names {
			s.res.Names = append(s.res.Names, Diff{LacksHere: true, Name: l.name, Version: l.version})
		}
	}
	s.res.LocalLacks.Chunks = s.part.chunks
	s.res.LocalLacks.Bytes += s.part.chunkBytes
	s.res.Refused = s.part.refused + int64(len(sum.refusedThere)) + sum.refusedHeld
	if s.names {
		s.res.Names = append(s.res.Names, names...)
		sortNames(s.res.Names)
	}
	s.res.InSync = s.res.PeerLacks.Zero() && s.res.LocalLacks.Zero()
	sum.lacks = s.res.PeerLacks
	return sum, names
}

// summaries splits the summary over bodies.
func (s *Responder) summaries(sum summary, names []Diff) [][]byte {
	keys := sum.refusedThere
	nk := len(keys)
	size := func(i int) int {
		if i < nk {
			return 8
		}
		n := names[i-nk]
		return 4 + len(n.Name) + len(n.Version)
	}
	return splitParts(nk+len(names), size, func(i, j int, last bool) []byte {
		p := sum
		p.last = last
		p.refusedThere = keys[min(i, nk):min(j, nk)]
		p.names = names[max(i, nk)-nk : max(j, nk)-nk]
		return p.append(nil)
	})
}
