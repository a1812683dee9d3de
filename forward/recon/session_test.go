package recon

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkPlanted runs a session between a and b and checks that both sides
// found exactly onlyA and onlyB.
func checkPlanted(t *testing.T, a, b *fakeLocal, onlyA, onlyB []entry) outcome {
	t.Helper()
	o := runSession(t, a, b, Options{}, Options{})
	if o.ei != nil || o.er != nil {
		t.Fatalf("initiator: %v, responder: %v", o.ei, o.er)
	}
	ri, rr := o.ri, o.rr
	if want := itemsOf(onlyA, nil); !slices.Equal(ri.Send, want) {
		t.Errorf("initiator sends %d items, want %d", len(ri.Send), len(want))
	}
	if want := itemsOf(onlyB, nil); !slices.Equal(rr.Send, want) {
		t.Errorf("responder sends %d items, want %d", len(rr.Send), len(want))
	}
	ca, cb := countsOf(onlyA), countsOf(onlyB)
	if ri.PeerLacks != ca || ri.LocalLacks != cb || rr.PeerLacks != cb || rr.LocalLacks != ca {
		t.Errorf("counts: initiator %+v/%+v, responder %+v/%+v, want %+v/%+v", ri.PeerLacks, ri.LocalLacks, rr.PeerLacks, rr.LocalLacks, ca, cb)
	}
	d := len(onlyA) + len(onlyB)
	if ri.InSync != (d == 0) || rr.InSync != (d == 0) {
		t.Errorf("in sync %v/%v with %d differences", ri.InSync, rr.InSync, d)
	}
	if ri.RoundTrips != rr.RoundTrips || ri.Symbols != rr.Symbols {
		t.Errorf("round trips %d/%d, symbols %d/%d", ri.RoundTrips, rr.RoundTrips, ri.Symbols, rr.Symbols)
	}
	if ri.SentBytes != rr.ReceivedBytes || rr.SentBytes != ri.ReceivedBytes {
		t.Errorf("bytes %d→%d, %d←%d", ri.SentBytes, rr.ReceivedBytes, ri.ReceivedBytes, rr.SentBytes)
	}
	return o
}

func TestReconSessionPlanted(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := randomEntries(rng, 2000)
	for _, d := range []int{0, 1, 2, 3, 10, 100, 1000, 5000} {
		for _, split := range []string{"split", "a", "b"} {
			t.Run(fmt.Sprintf("d=%d/%s", d, split), func(t *testing.T) {
				diff := randomEntries(rng, d)
				var onlyA, onlyB []entry
				switch split {
				case "split":
					onlyA, onlyB = diff[:d/2], diff[d/2:]
				case "a":
					onlyA = diff
				default:
					onlyB = diff
				}
				a, b := pair(base, onlyA, onlyB)
				o := checkPlanted(t, a, b, onlyA, onlyB)
				if d == 0 && (o.ri.RoundTrips != 1 || o.ri.SentBytes+o.ri.ReceivedBytes > 1000) {
					t.Errorf("in sync took %d round trips and %d bytes", o.ri.RoundTrips, o.ri.SentBytes+o.ri.ReceivedBytes)
				}
			})
		}
	}
}

func TestReconSessionRandomProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 20 {
		base := randomEntries(rng, rng.IntN(500))
		na, nb := rng.IntN(300), rng.IntN(300)
		if i%3 == 0 {
			nb = 0
		}
		onlyA, onlyB := randomEntries(rng, na), randomEntries(rng, nb)
		a, b := pair(base, onlyA, onlyB)
		// Removals: items both held and one side collected count as
		// differences too, and collected-everywhere ones as none.
		for _, e := range base[:len(base)/10] {
			a.remove(e.item)
			b.remove(e.item)
		}
		checkPlanted(t, a, b, onlyA, onlyB)
	}
}

func TestReconSessionMoreRounds(t *testing.T) {
	defer func(f func(int64) (int, int)) { firstBatchFor = f }(firstBatchFor)
	firstBatchFor = func(int64) (int, int) { return 8, 4096 }
	rng := rand.New(rand.NewPCG(11, 12))
	onlyA, onlyB := randomEntries(rng, 300), randomEntries(rng, 200)
	a, b := pair(randomEntries(rng, 100), onlyA, onlyB)
	o := checkPlanted(t, a, b, onlyA, onlyB)
	if o.ri.RoundTrips < 4 {
		t.Errorf("%d round trips, want More rounds", o.ri.RoundTrips)
	}
}

func TestReconSessionLimitExhausted(t *testing.T) {
	defer func(f func(int64) (int, int)) { firstBatchFor = f }(firstBatchFor)
	firstBatchFor = func(int64) (int, int) { return 8, 64 }
	rng := rand.New(rand.NewPCG(13, 14))
	a, b := pair(nil, randomEntries(rng, 500), nil)
	o := runSession(t, a, b, Options{}, Options{})
	if !errors.Is(o.ei, ErrTooManyDifferences) || !errors.Is(o.er, ErrTooManyDifferences) {
		t.Fatalf("errors %v / %v, want ErrTooManyDifferences at both", o.ei, o.er)
	}
}

func TestReconSessionTooManyDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	a, b := pair(randomEntries(rng, 50), randomEntries(rng, 300), randomEntries(rng, 300))
	for _, c := range []struct {
		name   string
		oa, ob Options
	}{{"initiator", Options{MaxItems: 10}, Options{}}, {"responder", Options{}, Options{MaxItems: 10}}} {
		t.Run(c.name, func(t *testing.T) {
			o := runSession(t, a, b, c.oa, c.ob)
			if !errors.Is(o.ei, ErrTooManyDifferences) || !errors.Is(o.er, ErrTooManyDifferences) {
				t.Fatalf("errors %v / %v, want ErrTooManyDifferences at both", o.ei, o.er)
			}
			if o.ri != nil || o.rr != nil {
				t.Fatal("a result with an error")
			}
		})
	}
}

func TestReconSessionRefusedAndNames(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	mk := func(kind byte, name string) entry {
		e := randomEntries(rng, 1)[0]
		e.item.Kind = kind
		e.info = Info{Bytes: 100, Name: name, Version: "v1"}
		return e
	}
	base := randomEntries(rng, 300)
	refusedByB := mk(KindManifest, "x.example/refused-by-b")
	refusedByA := mk(KindManifest, "x.example/refused-by-a")
	heldButRefusedByB := mk(KindManifest, "x.example/held-refused-by-b")
	okA := mk(KindManifest, "x.example/only-a")
	okB := mk(KindManifest, "x.example/only-b")
	chunkA := mk(KindChunk, "")
	a, b := pair(base, []entry{refusedByB, okA, chunkA}, []entry{refusedByA, okB, heldButRefusedByB})
	b.refuse[KeyOf(KindManifest, refusedByB.item.ID)] = true
	b.refuse[KeyOf(KindManifest, heldButRefusedByB.item.ID)] = true
	a.refuse[KeyOf(KindManifest, refusedByA.item.ID)] = true

	o := runSession(t, a, b, Options{Names: true}, Options{})
	if o.ei != nil || o.er != nil {
		t.Fatal(o.ei, o.er)
	}
	ri, rr := o.ri, o.rr
	if want := itemsOf([]entry{okA, chunkA}, nil); !slices.Equal(ri.Send, want) {
		t.Errorf("initiator sends %v, want %v", ri.Send, want)
	}
	if want := itemsOf([]entry{okB}, nil); !slices.Equal(rr.Send, want) {
		t.Errorf("responder sends %v, want %v", rr.Send, want)
	}
	if ri.Refused != 3 || rr.Refused != 3 {
		t.Errorf("refused %d/%d, want 3", ri.Refused, rr.Refused)
	}
	wantA := Counts{Versions: 1, Chunks: 1, Bytes: 200}
	wantB := Counts{Versions: 1, Bytes: 100}
	if ri.PeerLacks != wantA || ri.LocalLacks != wantB || rr.PeerLacks != wantB || rr.LocalLacks != wantA {
		t.Errorf("counts %+v %+v / %+v %+v", ri.PeerLacks, ri.LocalLacks, rr.PeerLacks, rr.LocalLacks)
	}
	wantNames := []Diff{{LacksHere: false, Name: "x.example/only-a", Version: "v1"}, {LacksHere: true, Name: "x.example/only-b", Version: "v1"}}
	if !slices.Equal(ri.Names, wantNames) {
		t.Errorf("initiator names %v, want %v", ri.Names, wantNames)
	}
	flipped := []Diff{{LacksHere: true, Name: "x.example/only-a", Version: "v1"}, {LacksHere: false, Name: "x.example/only-b", Version: "v1"}}
	if !slices.Equal(rr.Names, flipped) {
		t.Errorf("responder names %v, want %v", rr.Names, flipped)
	}

	// Only refused versions differ: in sync.
	a2, b2 := pair(base, []entry{refusedByB}, []entry{refusedByA})
	b2.refuse[KeyOf(KindManifest, refusedByB.item.ID)] = true
	a2.refuse[KeyOf(KindManifest, refusedByA.item.ID)] = true
	o = runSession(t, a2, b2, Options{}, Options{})
	if o.ei != nil || !o.ri.InSync || !o.rr.InSync || o.ri.Refused != 2 || len(o.ri.Send)+len(o.rr.Send) != 0 {
		t.Errorf("only refused versions differ: %v %+v %+v", o.ei, o.ri, o.rr)
	}
}

func TestReconSessionLargeResult(t *testing.T) {
	// Enough differences that Result and Summary take several bodies.
	rng := rand.New(rand.NewPCG(19, 20))
	onlyA, onlyB := randomEntries(rng, 12000), randomEntries(rng, 9000)
	for i := range onlyA {
		onlyA[i].item.Kind = KindManifest
		onlyA[i].info = Info{Bytes: 10, Name: fmt.Sprintf("big.example/%0200d", i), Version: "v"}
	}
	a, b := pair(nil, onlyA, onlyB)
	for _, e := range onlyA[:5000] {
		b.refuse[KeyOf(KindManifest, e.item.ID)] = true
	}
	o := runSession(t, a, b, Options{Names: true}, Options{})
	if o.ei != nil || o.er != nil {
		t.Fatal(o.ei, o.er)
	}
	if len(o.ri.Send) != 7000 || len(o.rr.Send) != 9000 || o.ri.Refused != 5000 || int64(len(o.rr.Names)) != 7000+countsOf(onlyB).Versions {
		t.Errorf("send %d/%d refused %d names %d", len(o.ri.Send), len(o.rr.Send), o.ri.Refused, len(o.rr.Names))
	}
}

func TestReconSessionGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	a, b := pair(randomEntries(rng, 100), randomEntries(rng, 20), randomEntries(rng, 20))
	garbage := [][]byte{nil, {}, {0}, {opOpen}, {opOpen, msgVersion}, {opSymbols, msgVersion, 0, 0, 0, 0}, {opMore, msgVersion, 0, 0}, {opInSync, 2}, {99, 1}}
	for i := 0; i < 200; i++ {
		g := make([]byte, rng.IntN(64))
		for j := range g {
			g[j] = byte(rng.Uint32())
		}
		if len(g) > 0 {
			g[0] = byte(1 + rng.IntN(7))
		}
		if len(g) > 1 {
			g[1] = msgVersion
		}
		garbage = append(garbage, g)
	}
	for _, g := range garbage {
		in, _ := NewInitiator(a, Options{})
		if _, res, err := in.Step(g); err == nil && res == nil {
			// Only well-formed bodies of the expected op pass; a
			// short random one must not finish the session silently.
			if len(g) < 2 || (g[0] != opSymbols) {
				t.Errorf("initiator took %x", g)
			}
		}
		r := NewResponder(b, Options{})
		r.Step(g) // must not panic
		// Mid-session: after a real Open.
		_, first := NewInitiator(a, Options{})
		r = NewResponder(b, Options{})
		if _, _, err := r.Step(first); err != nil {
			t.Fatal(err)
		}
		r.Step(g)
	}
	// A step after the end is an error.
	in, first := NewInitiator(a, Options{})
	r := NewResponder(b, Options{})
	out, _, _ := r.Step(first)
	in.Step([]byte{opAbort, msgVersion, abortProtocol})
	if _, _, err := in.Step(out[0]); !errors.Is(err, ErrProtocol) {
		t.Errorf("step after the end: %v", err)
	}
}

// A lying responder that answers with garbage symbols makes the initiator
// fail within its ceiling, never offer what it does not hold.
func TestReconSessionLyingResponder(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	a, _ := pair(randomEntries(rng, 100), nil, nil)
	in, _ := NewInitiator(a, Options{MaxItems: 1000})
	n := 4000
	syms := make([]symbol, n)
	for i := range syms {
		k := Key(rng.Uint64())
		syms[i] = symbol{key: uint64(k), check: checkOf(k), count: 1}
	}
	var err error
	var res *Result
	for from := 0; from < n && err == nil && res == nil; from += 1000 {
		b := appendSymbols(nil, from+1000 >= n, TableSymbols, from, syms[from:from+1000])
		_, res, err = in.Step(b)
	}
	if err == nil {
		t.Fatalf("garbage symbols decoded: %+v", res)
	}
}
