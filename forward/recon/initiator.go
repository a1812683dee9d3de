package recon

import "fmt"

// Initiator is the side that starts a session, decodes the difference and
// reports it. Not safe for concurrent use.
type Initiator struct {
	local Local
	opts  Options
	state int
	res   Result

	dec      *decoder
	limit    int // the responder's snapshot: symbols this session can get
	ceiling  int // symbols this side accepts before giving up
	batchEnd int // end of the More batch under way; 0 in the first batch
	nextMore int

	localOnly  []Item
	infos      map[Key]Info
	lacksThere map[Key]bool // local-only manifests, by key
	lacksHere  int          // keys sent as lacking here
	refused    int64        // peer-only versions this side refuses
	sum        summary      // accumulated summary parts
	refusedSet map[Key]bool
}

const (
	sOpen    = iota // waiting for the answer to Open
	sSymbols        // receiving symbols
	sSummary        // waiting for summary parts
	sDone
)

// NewInitiator starts a session and returns it with its first body (Open).
func NewInitiator(local Local, opts Options) (*Initiator, []byte) {
	s := &Initiator{local: local, opts: opts}
	o := openOf(local.Table().head(), opts.Names)
	b := o.append(nil)
	s.res.SentBytes = int64(len(b))
	s.res.RoundTrips = 1
	return s, b
}

// Step takes the next body from the responder. It returns bodies to send
// (also when err != nil: an Abort for the peer), and the result when the
// session is finished. After a result or an error the session is over.
func (s *Initiator) Step(body []byte) (out [][]byte, res *Result, err error) {
	if s.state == sDone {
		return nil, nil, fmt.Errorf("%w: step after the session ended", ErrProtocol)
	}
	s.res.ReceivedBytes += int64(len(body))
	m, err := decodeBody(body, false)
	if err != nil {
		return s.fail(err)
	}
	switch {
	case m.op == opAbort:
		s.state = sDone
		return nil, nil, abortErr(m.abort)
	case s.state == sOpen && m.op == opInSync:
		s.state = sDone
		s.res.InSync = true
		return nil, s.finished(), nil
	case (s.state == sOpen || s.state == sSymbols) && m.op == opSymbols:
		out, err = s.symbols(m.symbols)
	case s.state == sSummary && m.op == opSummary:
		return s.summary(m.summary)
	default:
		err = fmt.Errorf("%w: unexpected body op %d", ErrProtocol, m.op)
	}
	if err != nil {
		return s.fail(err)
	}
	return s.sent(out), nil, nil
}

func (s *Initiator) sent(out [][]byte) [][]byte {
	for _, b := range out {
		s.res.SentBytes += int64(len(b))
	}
	return out
}

func (s *Initiator) fail(err error) ([][]byte, *Result, error) {
	s.state = sDone
	return s.sent([][]byte{appendAbort(nil, abortCode(err))}), nil, err
}

func (s *Initiator) finished() *Result {
	r := s.res
	return &r
}

func (s *Initiator) symbols(m *symbols) ([][]byte, error) {
	if s.state == sOpen {
		if m.from != 0 {
			return nil, fmt.Errorf("%w: first symbols start at %d", ErrProtocol, m.from)
		}
		s.state = sSymbols
		s.limit = m.limit
		s.ceiling = min(s.limit, 2*maxItems(s.opts)+1024)
		s.dec = newDecoder(s.local.Table().prefix(s.limit), maxItems(s.opts))
	}
	end := m.from + len(m.syms)
	switch {
	case m.limit != s.limit || m.from != s.dec.received():
		return nil, fmt.Errorf("%w: symbols [%d, %d) of %d after %d of %d", ErrProtocol, m.from, end, m.limit, s.dec.received(), s.limit)
	case s.batchEnd != 0 && (end > s.batchEnd || m.last != (end == s.batchEnd)):
		return nil, fmt.Errorf("%w: symbols [%d, %d) do not end the batch at %d", ErrProtocol, m.from, end, s.batchEnd)
	case end > s.ceiling:
		return nil, fmt.Errorf("%w: %d symbols do not decode", ErrTooManyDifferences, end)
	}
	s.res.Symbols += len(m.syms)
	if err := s.dec.add(m); err != nil {
		return nil, err
	}
	if !m.last {
		return nil, nil
	}
	s.res.RoundTrips++
	if s.dec.decoded() {
		s.state = sSummary
		return s.result(), nil
	}
	have := s.dec.received()
	if have >= s.ceiling {
		return nil, fmt.Errorf("%w: %d symbols do not decode", ErrTooManyDifferences, have)
	}
	if s.nextMore == 0 {
		s.nextMore = max(have/4, 64)
	}
	n := min(s.nextMore, s.ceiling-have)
	s.nextMore *= 2
	s.batchEnd = have + n
	mm := more{from: have, n: n}
	return [][]byte{mm.append(nil)}, nil
}

// result resolves the decoded difference and returns the Result bodies.
func (s *Initiator) result() [][]byte {
	var r result
	var here []Key
	var there []lacking
	s.infos = make(map[Key]Info)
	s.lacksThere = make(map[Key]bool)
	for _, it := range s.dec.items {
		if it.sign < 0 {
			switch _, _, have := s.local.Resolve(it.key); {
			case s.local.Refuses(it.key):
				s.refused++
			case !have:
				here = append(here, it.key)
			}
			continue
		}
		item, info, ok := s.local.Resolve(it.key)
		if !ok || KeyOf(item.Kind, item.ID) != it.key {
			continue // gone meanwhile
		}
		s.localOnly = append(s.localOnly, item)
		s.infos[it.key] = info
		if item.Kind == KindManifest {
			s.lacksThere[it.key] = true
			l := lacking{key: it.key, bytes: info.Bytes}
			if s.opts.Names {
				l.name, l.version = cut(info.Name, maxName), cut(info.Version, maxVersion)
			}
			there = append(there, l)
		} else {
			r.chunks++
			r.chunkBytes += info.Bytes
		}
	}
	sortItems(s.localOnly)
	s.lacksHere = len(here)
	r.refused = s.refused
	nh := len(here)
	size := func(i int) int {
		if i < nh {
			return 8
		}
		l := there[i-nh]
		return 8 + 10 + 4 + len(l.name) + len(l.version)
	}
	return splitParts(nh+len(there), size, func(i, j int, last bool) []byte {
		p := r
		p.last = last
		p.lacksHere = here[min(i, nh):min(j, nh)]
		p.lacksThere = there[max(i, nh)-nh : max(j, nh)-nh]
		return p.append(nil, s.opts.Names)
	})
}

func (s *Initiator) summary(m *summary) ([][]byte, *Result, error) {
	if s.refusedSet == nil {
		s.refusedSet = make(map[Key]bool)
	}
	for _, k := range m.refusedThere {
		if !s.lacksThere[k] {
			return s.fail(fmt.Errorf("%w: the peer refuses %016x it was not offered", ErrProtocol, uint64(k)))
		}
		s.refusedSet[k] = true
	}
	s.sum.names = append(s.sum.names, m.names...)
	if len(s.sum.names) > s.lacksHere {
		return s.fail(fmt.Errorf("%w: %d names for %d keys", ErrProtocol, len(s.sum.names), s.lacksHere))
	}
	if !m.last {
		return nil, nil, nil
	}
	s.state = sDone
	s.res.LocalLacks = m.lacks
	s.res.Refused = s.refused + int64(len(s.refusedSet)) + m.refusedHeld
	for _, it := range s.localOnly {
		k := KeyOf(it.Kind, it.ID)
		if it.Kind == KindManifest && s.refusedSet[k] {
			continue
		}
		s.res.Send = append(s.res.Send, it)
		info := s.infos[k]
		s.res.PeerLacks.add(it.Kind, info.Bytes)
		if s.opts.Names && it.Kind == KindManifest {
			s.res.Names = append(s.res.Names, Diff{Name: info.Name, Version: info.Version})
		}
	}
	if s.opts.Names {
		s.res.Names = append(s.res.Names, s.sum.names...)
		sortNames(s.res.Names)
	}
	s.res.InSync = s.res.PeerLacks.Zero() && s.res.LocalLacks.Zero()
	return nil, s.finished(), nil
}
