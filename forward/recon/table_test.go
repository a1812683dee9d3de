package recon

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestReconKeyPrefix(t *testing.T) {
	var id [32]byte
	copy(id[:], "0123456789abcdef0123456789abcdef")
	for _, kind := range []byte{KindChunk, KindManifest} {
		k := KeyOf(kind, id)
		if p := Prefix(kind, k); !bytes.Equal(p[:], id[:8]) {
			t.Errorf("kind %c: Prefix(KeyOf) = %x, want %x", kind, p, id[:8])
		}
	}
	if KeyOf(KindChunk, id) == KeyOf(KindManifest, id) {
		t.Error("a chunk and a manifest with one ID share a key")
	}
}

func TestReconMappingStartsAtZeroAndGrows(t *testing.T) {
	var total int
	for k := Key(1); k < 2000; k++ {
		m := newMapping(k * 0x9e3779b97f4a7c15)
		if m.idx != 0 {
			t.Fatal("first index is not 0")
		}
		last := uint64(0)
		n := 1
		for m.next(); m.idx < TableSymbols; m.next() {
			if m.idx <= last {
				t.Fatalf("index %d after %d", m.idx, last)
			}
			last = m.idx
			n++
		}
		total += n
	}
	// Density 1/(1+i/2): about 1 + 2·ln(TableSymbols/2) ≈ 24.6 indices.
	if avg := float64(total) / 1999; avg < 20 || avg > 30 {
		t.Errorf("an item maps to %.1f symbols on average, want about 24.6", avg)
	}
}

func TestReconToggleAddRemoveRestores(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := randomEntries(rng, 500)
	extra := randomEntries(rng, 300)
	a, _ := pair(base, nil, nil)
	want := a.t.Clone()
	for _, e := range extra {
		a.add(e)
	}
	if a.t.Equal(want) {
		t.Fatal("adding items left the table equal")
	}
	for _, e := range slices.Backward(extra) {
		a.remove(e.item)
	}
	if !a.t.Equal(want) {
		t.Fatal("add then remove did not restore the table")
	}
	// Order does not matter either.
	b := newFake()
	for i := len(base) - 1; i >= 0; i-- {
		b.add(base[i])
	}
	if !b.t.Equal(want) {
		t.Fatal("the table depends on the order of adds")
	}
}

func TestReconEstimate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := randomEntries(rng, 200)
	for _, d := range []int{0, 1, 100, 1000} {
		a, b := pair(base, randomEntries(rng, d), nil)
		est := a.t.Estimate(b.t)
		switch {
		case d <= 1 && est != int64(d):
			t.Errorf("d=%d: estimate %d", d, est)
		case d > 1 && (float64(est) < 0.5*float64(d) || float64(est) > 1.5*float64(d)):
			t.Errorf("d=%d: estimate %d", d, est)
		}
	}
}

func TestReconPersistRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a, _ := pair(randomEntries(rng, 1000), nil, nil)
	a.remove(a.itemsSorted()[0])
	dirty := a.t.Dirty()
	if len(dirty) == 0 || dirty[0] != 0 || !slices.IsSorted(dirty) {
		t.Fatalf("dirty blocks %v", dirty)
	}
	b := NewTable()
	for i := range Blocks {
		if err := b.LoadBlock(i, a.t.AppendBlock(nil, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.LoadHead(a.t.AppendHead(nil)); err != nil {
		t.Fatal(err)
	}
	if !b.Equal(a.t) {
		t.Fatal("table differs after a round trip")
	}
	a.t.ClearDirty()
	if d := a.t.Dirty(); len(d) != 0 {
		t.Fatalf("dirty after ClearDirty: %v", d)
	}
}

func (f *fakeLocal) itemsSorted() []Item {
	var out []Item
	for _, e := range f.items {
		out = append(out, e.item)
	}
	sortItems(out)
	return out
}

func TestReconLoadRejects(t *testing.T) {
	a := NewTable()
	var id [32]byte
	id[0] = 7
	a.Toggle(KindChunk, id, true)
	blk := a.AppendBlock(nil, 0)
	head := a.AppendHead(nil)
	nonMinimal := slices.Clone(blk[:1+12])
	nonMinimal = append(nonMinimal, 0x82, 0x00) // count 2 in two bytes
	nonMinimal = append(nonMinimal, blk[1+12+1:]...)
	cases := []struct {
		name  string
		block int
		b     []byte
		head  bool
	}{
		{"empty block", 0, nil, false},
		{"bad version", 0, append([]byte{9}, blk[1:]...), false},
		{"truncated", 0, blk[:len(blk)-1], false},
		{"trailing", 0, append(slices.Clone(blk), 0), false},
		{"non-minimal varint", 0, nonMinimal, false},
		{"block out of range", Blocks, blk, false},
		{"empty head", 0, nil, true},
		{"head trailing", 0, append(slices.Clone(head), 0), true},
		{"head version", 0, append([]byte{2}, head[1:]...), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := NewTable()
			var err error
			if c.head {
				err = b.LoadHead(c.b)
			} else {
				err = b.LoadBlock(c.block, c.b)
			}
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("err = %v, want ErrBadEncoding", err)
			}
			if !b.Equal(NewTable()) {
				t.Fatal("a failed load changed the table")
			}
		})
	}
}

func BenchmarkReconToggle(b *testing.B) {
	t := NewTable()
	rng := rand.New(rand.NewPCG(1, 1))
	items := randomEntries(rng, 1<<16)
	b.ResetTimer()
	for i := range b.N {
		e := items[i%len(items)]
		t.Toggle(e.item.Kind, e.item.ID, true)
	}
}
