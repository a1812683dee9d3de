package recon

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

type entry struct {
	item Item
	info Info
}

// fakeLocal is an inventory in memory with its table.
type fakeLocal struct {
	t      *Table
	items  map[Key]entry
	refuse map[Key]bool
}

func newFake() *fakeLocal {
	return &fakeLocal{t: NewTable(), items: make(map[Key]entry), refuse: make(map[Key]bool)}
}

func (f *fakeLocal) Table() *Table { return f.t }

func (f *fakeLocal) Resolve(k Key) (Item, Info, bool) {
	e, ok := f.items[k]
	return e.item, e.info, ok
}

func (f *fakeLocal) Refuses(k Key) bool { return f.refuse[k] }

func (f *fakeLocal) add(e entry) {
	f.items[KeyOf(e.item.Kind, e.item.ID)] = e
	f.t.Toggle(e.item.Kind, e.item.ID, true)
}

func (f *fakeLocal) remove(it Item) {
	delete(f.items, KeyOf(it.Kind, it.ID))
	f.t.Toggle(it.Kind, it.ID, false)
}

// randomEntries returns n random items, about one manifest in 30.
func randomEntries(rng *rand.Rand, n int) []entry {
	out := make([]entry, n)
	for i := range out {
		e := &out[i]
		for j := 0; j < 32; j += 8 {
			v := rng.Uint64()
			for b := range 8 {
				e.item.ID[j+b] = byte(v >> (8 * b))
			}
		}
		e.item.Kind = KindChunk
		e.info.Bytes = 1 << 20
		if rng.IntN(30) == 0 {
			e.item.Kind = KindManifest
			e.info = Info{Bytes: 1200, Name: fmt.Sprintf("test.example/obj-%d.fits", rng.Uint32()), Version: fmt.Sprintf("v%d", i)}
		}
	}
	return out
}

// pair builds two inventories that share common items; a has onlyA more,
// b has onlyB more.
func pair(common, onlyA, onlyB []entry) (a, b *fakeLocal) {
	a, b = newFake(), newFake()
	for _, e := range common {
		a.add(e)
		b.add(e)
	}
	for _, e := range onlyA {
		a.add(e)
	}
	for _, e := range onlyB {
		b.add(e)
	}
	return a, b
}

type outcome struct {
	ri, rr *Result
	ei, er error
	steps  int
}

// runSession runs a session between initiator a and responder b in
// memory, delivering bodies in order.
func runSession(t testing.TB, a, b Local, oa, ob Options) outcome {
	t.Helper()
	in, first := NewInitiator(a, oa)
	resp := NewResponder(b, ob)
	var o outcome
	toResp, toInit := [][]byte{first}, [][]byte(nil)
	iDone, rDone := false, false
	for len(toResp)+len(toInit) > 0 {
		if o.steps++; o.steps > 100000 {
			t.Fatal("session does not end")
		}
		for len(toResp) > 0 && !rDone {
			body := toResp[0]
			toResp = toResp[1:]
			if len(body) > maxBody {
				t.Fatalf("body of %d bytes", len(body))
			}
			out, res, err := resp.Step(body)
			toInit = append(toInit, out...)
			if res != nil || err != nil {
				o.rr, o.er, rDone = res, err, true
			}
		}
		toResp = nil
		for len(toInit) > 0 && !iDone {
			body := toInit[0]
			toInit = toInit[1:]
			if len(body) > maxBody {
				t.Fatalf("body of %d bytes", len(body))
			}
			out, res, err := in.Step(body)
			toResp = append(toResp, out...)
			if res != nil || err != nil {
				o.ri, o.ei, iDone = res, err, true
			}
		}
		toInit = nil
	}
	return o
}

func itemsOf(es []entry, keep func(entry) bool) []Item {
	var out []Item
	for _, e := range es {
		if keep == nil || keep(e) {
			out = append(out, e.item)
		}
	}
	sortItems(out)
	return out
}

func countsOf(es []entry) Counts {
	var c Counts
	for _, e := range es {
		c.add(e.item.Kind, e.info.Bytes)
	}
	return c
}
