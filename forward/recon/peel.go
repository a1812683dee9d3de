package recon

import (
	"fmt"
	"slices"
)

// estimate returns the tug-of-war estimate of the size of the symmetric
// difference between the sets behind a and b: the mean over counters of
// the squared difference, rounded. It is exact for 0 and 1 differences;
// for larger ones its relative standard deviation is about
// sqrt(2/256) ≈ 8.8 %.
func estimate(a, b *[towCounters]int32) int64 {
	var sum int64
	for j := range a {
		d := int64(a[j]) - int64(b[j])
		sum += d * d
	}
	return (sum + towCounters/2) / towCounters
}

// Estimate returns the estimated number of items in which the inventories
// behind t and o differ (see the package doc).
func (t *Table) Estimate(o *Table) int64 {
	a, b := t.tow(), o.tow()
	return estimate(&a, &b)
}

// prefix returns a copy of the first n symbols of t.
func (t *Table) prefix(n int) []symbol {
	return slices.Clone(t.syms[:min(n, TableSymbols)])
}

// peeled is one decoded item of the difference: sign +1 for an item only
// the local side holds, -1 for one only the peer holds, and the state of
// its mapping at the first index not yet received.
type peeled struct {
	key  Key
	sign int8
	m    mapping
}

// decoder subtracts the peer's symbols from the local prefix as they
// arrive and peels the difference. Counts are kept mod 256, as on the
// wire; the check guards the detection of pure symbols.
type decoder struct {
	local    []symbol
	maxItems int

	diff    []wireSym // local minus received, counts mod 256
	nonzero int       // received symbols that are not zero

	items   []peeled
	seen    map[Key]bool
	queue   []int
	scratch []int
}

func newDecoder(local []symbol, maxItems int) *decoder {
	return &decoder{local: local, maxItems: maxItems, seen: make(map[Key]bool)}
}

func (d *decoder) received() int { return len(d.diff) }

// decoded reports whether every received symbol is zero.
func (d *decoder) decoded() bool { return d.received() > 0 && d.nonzero == 0 }

func (d *decoder) zero(i int) bool { return d.diff[i] == wireSym{} }

// add takes the peer's symbols at indices [received, received+n) and peels
// what it can. The caller checks the range against the local prefix.
func (d *decoder) add(s *symbols) error {
	from := d.received()
	for i, r := range s.syms {
		l := d.local[from+i]
		d.diff = append(d.diff, wireSym{key: l.key ^ r.key, check: l.check ^ r.check, count: uint8(l.count) - r.count})
	}
	end := d.received()
	// Items peeled before touch the new symbols too.
	for n := range d.items {
		it := &d.items[n]
		c := checkOf(it.key)
		for ; it.m.idx < uint64(end); it.m.next() {
			s := &d.diff[it.m.idx]
			s.key ^= uint64(it.key)
			s.check ^= c
			s.count -= uint8(it.sign)
		}
	}
	for j := from; j < end; j++ {
		if !d.zero(j) {
			d.nonzero++
			d.queue = append(d.queue, j)
		}
	}
	return d.peel()
}

// toggle removes an item with sign from symbol j and keeps nonzero.
func (d *decoder) toggle(j int, k Key, sign int8) {
	was := d.zero(j)
	s := &d.diff[j]
	s.key ^= uint64(k)
	s.check ^= checkOf(k)
	s.count -= uint8(sign)
	switch now := d.zero(j); {
	case was && !now:
		d.nonzero++
	case !was && now:
		d.nonzero--
	}
}

// pure returns the item of symbol j if it holds exactly one.
func (d *decoder) pure(j int) (Key, int8, bool) {
	var sign int8
	s := d.diff[j]
	switch s.count {
	case 1:
		sign = 1
	case 255:
		sign = -1
	default:
		return 0, 0, false
	}
	k := Key(s.key)
	if checkOf(k) != s.check {
		return 0, 0, false
	}
	return k, sign, true
}

func (d *decoder) peel() error {
	for len(d.queue) > 0 {
		j := d.queue[len(d.queue)-1]
		d.queue = d.queue[:len(d.queue)-1]
		k, sign, ok := d.pure(j)
		if !ok {
			continue
		}
		// The item must map to j, or the symbol only looks pure.
		d.scratch = d.scratch[:0]
		hit := false
		m := newMapping(k)
		for ; m.idx < uint64(d.received()); m.next() {
			d.scratch = append(d.scratch, int(m.idx))
			hit = hit || int(m.idx) == j
		}
		if !hit {
			continue
		}
		if d.seen[k] {
			return fmt.Errorf("%w: key %016x decoded twice", ErrProtocol, uint64(k))
		}
		if len(d.items) >= d.maxItems {
			return fmt.Errorf("%w: more than %d", ErrTooManyDifferences, d.maxItems)
		}
		d.seen[k] = true
		d.items = append(d.items, peeled{key: k, sign: sign, m: m})
		for _, i := range d.scratch {
			d.toggle(i, k, sign)
			if _, _, ok := d.pure(i); ok {
				d.queue = append(d.queue, i)
			}
		}
	}
	return nil
}
