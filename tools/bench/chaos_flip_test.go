package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
)

// openChunkStore opens a real chunk store (Pebble index, pack files) in dir
// laid out as a site's data dir: index/ and packs/.
func openChunkStore(t *testing.T, dir string) (*chunk.Store, func()) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := chunk.Open(db, chunk.Options{Dir: filepath.Join(dir, "packs"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return s, func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}
}

// storeChunks puts n random chunks of 1–64 KiB in one batch.
func storeChunks(t *testing.T, s *chunk.Store, seed uint64, n int) []chunk.ID {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	b := s.NewBatch()
	var ids []chunk.ID
	for i := range n {
		raw := randomBytes(seed+uint64(i), int64(1024+rng.IntN(63<<10)))
		id := chunk.Sum(raw)
		if _, err := b.Add(id, raw); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	return ids
}

// The flip walks the packs a real chunk store wrote, finds every chunk
// record, and damages exactly the chunks it chose: the store then refuses
// those (corrupt) and still serves the others.
func TestChaosFlipDamagesChosenChunks(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := openChunkStore(t, dir)
	ids := storeChunks(t, s, 1, 20)
	closeStore()
	s, closeStore = openChunkStore(t, dir) // a second pack, as after a restart
	ids = append(ids, storeChunks(t, s, 100, 10)...)
	closeStore()

	choice, err := scanSitePacks(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	var found []chunk.ID
	packs := map[string]bool{}
	for _, r := range choice.records {
		found = append(found, r.ID)
		packs[filepath.Base(r.Pack)] = true
	}
	if !sameIDs(found, ids) || len(packs) != 2 {
		t.Fatalf("the walk found %d records in packs %v, the store wrote %d chunks in 2 packs", len(found), packs, len(ids))
	}
	newest, err := scanSitePacks(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(newest.records) != 20 {
		t.Fatalf("without the newest pack the walk found %d records, want the first pack's 20", len(newest.records))
	}

	rng := rand.New(rand.NewPCG(7, 7))
	avoid := map[chunk.ID]bool{ids[0]: true}
	refused := ids[1]
	recs := choice.choose(rng, 3, avoid, func(id chunk.ID) bool { return id != refused })
	if len(recs) != 3 {
		t.Fatalf("chose %d records, want 3", len(recs))
	}
	damaged := map[chunk.ID]bool{}
	for _, r := range recs {
		if r.ID == ids[0] || r.ID == refused {
			t.Fatalf("chose %s, which was to be avoided", r.ID.Short())
		}
		if r.Pack != recs[0].Pack {
			t.Fatal("the chosen records are in more than one pack")
		}
		offs, err := flipRecord(r, rng, r == recs[0])
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(offs, func(o int64) bool { return o < r.Offset || o >= r.Offset+packHeaderSize+int64(r.StoredLen) }) {
			t.Fatalf("flipped bytes %v outside the record at %d", offs, r.Offset)
		}
		if !slices.ContainsFunc(offs, func(o int64) bool { return o >= r.Offset+packHeaderSize }) {
			t.Fatalf("flipped bytes %v hold none of the payload", offs)
		}
		damaged[r.ID] = true
	}

	s, closeStore = openChunkStore(t, dir)
	defer closeStore()
	for _, id := range ids {
		_, err := s.Get(id, nil)
		switch {
		case damaged[id] && !errors.Is(err, chunk.ErrCorrupt):
			t.Errorf("damaged chunk %s read back: %v", id.Short(), err)
		case !damaged[id] && err != nil:
			t.Errorf("chunk %s, not damaged, does not read: %v", id.Short(), err)
		}
	}
}

// A chunk found in two records (one of them a commit that never
// happened) is never chosen: which one the index points at is not known
// from the files. A torn tail ends the walk.
func TestChaosFlipSkipsDoubledChunksAndTornTails(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := openChunkStore(t, dir)
	ids := storeChunks(t, s, 1, 3)
	closeStore()
	packs, err := dataDirPacks(dir)
	if err != nil || len(packs) != 1 {
		t.Fatalf("packs %v, %v", packs, err)
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	recs, err := scanPack(packs[0])
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	first := b[:recs[1].Offset]
	dup := filepath.Join(dir, "packs", "pack-000009.dat")
	torn := append(slices.Clone(first), b[recs[1].Offset:recs[1].Offset+packHeaderSize+10]...)
	if err := os.WriteFile(dup, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	choice, err := scanSitePacks(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(choice.records) != 4 || choice.count[ids[0]] != 2 {
		t.Fatalf("%d records, chunk 0 found %d times; want 4 and 2", len(choice.records), choice.count[ids[0]])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		for _, r := range choice.choose(rng, 3, nil, nil) {
			if r.ID == ids[0] {
				t.Fatal("chose a chunk found in two records")
			}
		}
	}
}

// quietPebble keeps Pebble's recovery notes out of the test output.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)           {}
func (quietPebble) Errorf(string, ...any)          {}
func (quietPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func sameIDs(a, b []chunk.ID) bool {
	key := func(x, y chunk.ID) int { return slices.Compare(x[:], y[:]) }
	a, b = slices.SortedFunc(slices.Values(a), key), slices.SortedFunc(slices.Values(b), key)
	return slices.Equal(a, b)
}

// The healing faults come from their own random stream: a plan drawn
// without them is the full plan less its flips and fills, so earlier
// replays still draw the same topology, workload and other faults.
func TestChaosHealFaultsLeaveThePlanAsItWas(t *testing.T) {
	without := testLimits
	without.Faults = linkAndSiteFaults
	for s := 1; s <= 50; s++ {
		full, old := newChaosPlan(testLimits, 3, s), newChaosPlan(without, 3, s)
		rest := slices.DeleteFunc(slices.Clone(full.Faults), func(f chaosFault) bool { return f.Kind == faultFlip || f.Kind == faultFill })
		if !slices.Equal(rest, old.Faults) || !slices.Equal(full.Ops, old.Ops) || !slices.Equal(full.Edges, old.Edges) {
			t.Fatalf("schedule %d: the healing faults changed the rest of the plan", s)
		}
	}
}

// Every plan flips bytes during the phase and once more just before the
// final scrub; every kill has a flip of its site inside its
// window (the damage waits for the start); at most one site is filled,
// once, and a fill is healed within the phase.
func TestChaosHealFaults(t *testing.T) {
	fills := 0
	for s := 1; s <= 300; s++ {
		p := newChaosPlan(testLimits, 1, s)
		var flips, running, final, fill []chaosFault
		for _, f := range p.Faults {
			switch f.Kind {
			case faultFlip:
				flips = append(flips, f)
				switch {
				case f.Final:
					final = append(final, f)
				case !f.Stopped:
					running = append(running, f)
				}
				if f.Chunks < 1 || f.Chunks > 3 || f.Until != f.At {
					t.Fatalf("schedule %d: %s", s, f)
				}
			case faultFill:
				fill = append(fill, f)
			}
		}
		if len(running) != 2 || len(final) != 1 || final[0].At != p.Duration {
			t.Fatalf("schedule %d: %d flips during the 30 s and %d at the end, want 2 and 1", s, len(running), len(final))
		}
		for _, k := range p.Faults {
			if k.Kind != faultKill || k.Until-k.At < time.Second {
				continue
			}
			if !slices.ContainsFunc(flips, func(f chaosFault) bool { return f.Stopped && f.Site == k.Site && f.At > k.At && f.At < k.Until }) {
				t.Fatalf("schedule %d: no flip inside %s", s, k)
			}
		}
		if len(fill) > 1 {
			t.Fatalf("schedule %d: %d fills", s, len(fill))
		}
		if len(fill) == 1 {
			fills++
			if f := fill[0]; f.Until <= f.At || f.Until > p.Duration || p.fillSite() != f.Site {
				t.Fatalf("schedule %d: %s", s, f)
			}
		} else if p.fillSite() != -1 {
			t.Fatalf("schedule %d: a fill site without a fill", s)
		}
	}
	if fills < 100 || fills > 200 {
		t.Fatalf("%d of 300 schedules fill a disk, want about half", fills)
	}
}

// The fill's tmpfs fits what the workload puts, at least three times.
func TestChaosTmpfsSize(t *testing.T) {
	frames := [][]byte{make([]byte, 5<<20)}
	plan := chaosPlan{Ops: []chaosOp{
		{Kind: opPut, Size: 10 << 20, FITS: -1},
		{Kind: opPut2, Size: 1 << 20, FITS: -1},
		{Kind: opPut, Size: 99, FITS: 0},
		{Kind: opGet, Size: 1 << 30},
	}}
	r := &scheduleRun{plan: plan, frames: frames}
	want := int64(fillHeadroom + 3*(10<<20+2<<20+5<<20))
	if got := r.tmpfsSize(); got != want {
		t.Fatalf("tmpfs of %d bytes, want %d", got, want)
	}
}
