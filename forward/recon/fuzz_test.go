package recon

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// reencode encodes a decoded body again.
func reencode(m *body, names bool) []byte {
	switch m.op {
	case opOpen:
		return m.open.append(nil)
	case opInSync:
		return []byte{opInSync, msgVersion}
	case opSymbols:
		s := m.symbols
		syms := make([]symbol, len(s.syms))
		for i, w := range s.syms {
			syms[i] = symbol{key: w.key, check: w.check, count: int32(w.count)}
		}
		return appendSymbols(nil, s.last, s.limit, s.from, syms)
	case opMore:
		return m.more.append(nil)
	case opResult:
		return m.result.append(nil, names)
	case opSummary:
		return m.summary.append(nil)
	default:
		return appendAbort(nil, m.abort)
	}
}

// seedBodies returns one valid body of every op.
func seedBodies() [][]byte {
	rng := rand.New(rand.NewPCG(1, 1))
	a, _ := pair(randomEntries(rng, 50), nil, nil)
	o := openOf(a.t.head(), true)
	p := a.t.prefix(3)
	r := result{last: true, refused: 1, chunks: 2, chunkBytes: 3 << 20, lacksHere: []Key{1, 2}, lacksThere: []lacking{{key: 3, bytes: 10, name: "n.example/x", version: "v"}}}
	s := summary{last: true, lacks: Counts{1, 2, 3}, refusedHeld: 1, refusedThere: []Key{3}, names: []Diff{{LacksHere: true, Name: "n", Version: "v"}}}
	m := more{from: 10, n: 20}
	return [][]byte{
		o.append(nil),
		{opInSync, msgVersion},
		appendSymbols(nil, true, 100, 0, p),
		m.append(nil),
		r.append(nil, true),
		r.append(nil, false),
		s.append(nil),
		appendAbort(nil, abortTooMany),
	}
}

func FuzzReconBody(f *testing.F) {
	for _, b := range seedBodies() {
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, names bool) {
		m, err := decodeBody(b, names)
		if err != nil {
			return
		}
		if got := reencode(m, names); !bytes.Equal(got, b) {
			t.Fatalf("decode then encode changed the body:\n%x\n%x", b, got)
		}
	})
}

func FuzzReconLoadBlock(f *testing.F) {
	rng := rand.New(rand.NewPCG(2, 2))
	a, _ := pair(randomEntries(rng, 50), nil, nil)
	f.Add(a.t.AppendBlock(nil, 0))
	f.Add(a.t.AppendBlock(nil, 3))
	f.Add([]byte{blockVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		tab := NewTable()
		if err := tab.LoadBlock(1, b); err != nil {
			return
		}
		if got := tab.AppendBlock(nil, 1); !bytes.Equal(got, b) {
			t.Fatal("block changed in a round trip")
		}
	})
}

func FuzzReconLoadHead(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 3))
	a, _ := pair(randomEntries(rng, 50), nil, nil)
	f.Add(a.t.AppendHead(nil))
	f.Add(NewTable().AppendHead(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab := NewTable()
		if err := tab.LoadHead(b); err != nil {
			return
		}
		if got := tab.AppendHead(nil); !bytes.Equal(got, b) {
			t.Fatal("head changed in a round trip")
		}
	})
}

// FuzzReconSteps feeds bodies to sessions in every state: never a panic,
// and an initiator only ever offers items it holds.
func FuzzReconSteps(f *testing.F) {
	for _, b := range seedBodies() {
		f.Add(b, b)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	a, b := pair(randomEntries(rng, 30), randomEntries(rng, 5), randomEntries(rng, 5))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		in, first := NewInitiator(a, Options{Names: true, MaxItems: 100})
		for _, body := range [][]byte{x, y} {
			if _, res, err := in.Step(body); err != nil || res != nil {
				for _, it := range resSend(res) {
					if _, ok := a.items[KeyOf(it.Kind, it.ID)]; !ok {
						t.Fatalf("offers %x it does not hold", it.ID)
					}
				}
				break
			}
		}
		r := NewResponder(b, Options{MaxItems: 100})
		if _, _, err := r.Step(first); err != nil {
			t.Fatal(err)
		}
		for _, body := range [][]byte{x, y} {
			if _, res, err := r.Step(body); err != nil || res != nil {
				for _, it := range resSend(res) {
					if _, ok := b.items[KeyOf(it.Kind, it.ID)]; !ok {
						t.Fatalf("offers %x it does not hold", it.ID)
					}
				}
				break
			}
		}
	})
}

func resSend(r *Result) []Item {
	if r == nil {
		return nil
	}
	return r.Send
}
