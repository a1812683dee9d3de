package recon

import "fmt"

// estimate returns the tug-of-war estimate of the size of the symmetric
// difference between the sets behind a and b: the mean over counters of
// the squared difference, rounded. It is exact for 0 and 1 differences;
// for larger ones its relative standard deviation is about
// sqrt(2/128) ≈ 12.5 %.
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
func (t *Table) Estimate(o *Table) int64 { return estimate(&t.tow, &o.tow) }

// prefix is a copy of the first symbols of a table.
type prefix struct {
	keys   []uint64
	checks []uint32
	counts []int32
}

func (t *Table) prefix(n int) prefix {
	n = min(n, TableSymbols)
	return prefix{
		keys:   append([]uint64(nil), t.keys[:n]...),
		checks: append([]uint32(nil), t.checks[:n]...),
		counts: append([]int32(nil), t.counts[:n]...),
	}
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
	local    prefix
	maxItems int

	keys    []uint64
	checks  []uint32
	counts  []uint8
	nonzero int // received symbols that are not zero

	items   []peeled
	seen    map[Key]bool
	queue   []int
	scratch []int
}

func newDecoder(local prefix, maxItems int) *decoder {
	return &decoder{local: local, maxItems: maxItems, seen: make(map[Key]bool)}
}

func (d *decoder) received() int { return len(d.keys) }

// decoded reports whether every received symbol is zero.
func (d *decoder) decoded() bool { return d.received() > 0 && d.nonzero == 0 }

func (d *decoder) zero(i int) bool { return d.keys[i] == 0 && d.checks[i] == 0 && d.counts[i] == 0 }

// add takes the peer's symbols at indices [received, received+n) and peels
// what it can. The caller checks the range against the local prefix.
func (d *decoder) add(s *symbols) error {
	from := d.received()
	for i := range s.keys {
		j := from + i
		d.keys = append(d.keys, d.local.keys[j]^s.keys[i])
		d.checks = append(d.checks, d.local.checks[j]^s.checks[i])
		d.counts = append(d.counts, uint8(d.local.counts[j])-s.counts[i])
	}
	end := d.received()
	// Items peeled before touch the new symbols too.
	for n := range d.items {
		it := &d.items[n]
		c := checkOf(it.key)
		for ; it.m.idx < uint64(end); it.m.next() {
			j := it.m.idx
			d.keys[j] ^= uint64(it.key)
			d.checks[j] ^= c
			d.counts[j] -= uint8(it.sign)
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
	d.keys[j] ^= uint64(k)
	d.checks[j] ^= checkOf(k)
	d.counts[j] -= uint8(sign)
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
	switch d.counts[j] {
	case 1:
		sign = 1
	case 255:
		sign = -1
	default:
		return 0, 0, false
	}
	k := Key(d.keys[j])
	if checkOf(k) != d.checks[j] {
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
