package naming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

const grace = 7 * 24 * time.Hour

var collectibleCases = []struct {
	name   string
	vs     []versionInfo // oldest first
	cutoff int64
	want   []bool
}{
	{"live history kept", []versionInfo{{wallMS: 1}, {wallMS: 2}, {wallMS: 3}}, 100, []bool{false, false, false}},
	{"under an old tombstone", []versionInfo{{wallMS: 1}, {wallMS: 2}, {wallMS: 3, tombstone: true}}, 100, []bool{true, true, false}},
	{"tombstone within grace", []versionInfo{{wallMS: 1}, {wallMS: 100, tombstone: true}}, 100, []bool{false, false}},
	{"re-put after rm", []versionInfo{{wallMS: 1}, {wallMS: 2, tombstone: true}, {wallMS: 3}}, 100, []bool{true, false, false}},
	{"only under the tombstone", []versionInfo{{wallMS: 1}, {wallMS: 2}, {wallMS: 3, tombstone: true}, {wallMS: 4}, {wallMS: 5}}, 100, []bool{true, true, false, false, false}},
	{"tombstones kept under tombstones", []versionInfo{{wallMS: 1, tombstone: true}, {wallMS: 2}, {wallMS: 3, tombstone: true}}, 100, []bool{false, true, false}},
	{"expired newest takes the older", []versionInfo{{wallMS: 1}, {wallMS: 2, expires: 50}}, 100, []bool{true, true}},
	{"expiry within grace", []versionInfo{{wallMS: 1}, {wallMS: 2, expires: 100}}, 100, []bool{false, false}},
	{"expired, replaced before it expired", []versionInfo{{wallMS: 1}, {wallMS: 2, expires: 50}, {wallMS: 40}}, 100, []bool{false, true, false}},
	{"expired, replaced at its expiry", []versionInfo{{wallMS: 1}, {wallMS: 2, expires: 50}, {wallMS: 50}}, 100, []bool{false, true, false}},
	{"expired, replaced after a gap", []versionInfo{{wallMS: 1}, {wallMS: 2, expires: 50}, {wallMS: 60}}, 100, []bool{true, true, false}},
	{"expiring later is kept", []versionInfo{{wallMS: 1, expires: 500}, {wallMS: 2}}, 100, []bool{false, false}},
	{"expired under a newer expiry", []versionInfo{{wallMS: 1, expires: 500}, {wallMS: 2, expires: 50}}, 100, []bool{true, true}},
}

func TestCollectible(t *testing.T) {
	for _, tc := range collectibleCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := collectible(tc.vs, tc.cutoff); !slices.Equal(got, tc.want) {
				t.Errorf("collectible = %v, want %v", got, tc.want)
			}
		})
	}
}

// collect runs CollectHidden at e.now + after.
func (e *testEnv) collect(t *testing.T, after time.Duration) Collected {
	t.Helper()
	return e.collectAt(t, e.now.Add(after))
}

func (e *testEnv) collectAt(t *testing.T, now time.Time) Collected {
	t.Helper()
	c, err := e.store.CollectHidden(context.Background(), now, grace)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkIndex checks that naming's keys agree with each other and with
// the counters: every version key names a stored manifest of that name
// and stamp, every manifest has its keys, no collected manifest is
// stored, and the tracker's totals are right.
func checkIndex(t *testing.T, e *testEnv) {
	t.Helper()
	keys := map[byte]map[string][]byte{}
	for _, p := range []byte{prefixManifest, prefixVersion, prefixName, prefixContent, prefixCollected} {
		keys[p] = map[string][]byte{}
		err := e.store.forEachKey(p, func(k, v []byte) error {
			keys[p][string(k)] = bytes.Clone(v)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range keys[prefixVersion] {
		enc, ok := keys[prefixManifest][string(manifestKey(chunk.ID(v)))]
		if !ok {
			t.Errorf("version key %x names a manifest not stored", k)
			continue
		}
		m, err := manifest.Decode(enc)
		if err != nil || k != string(versionKey(MustParseName(m.Name).Hash(), m.Stamp)) {
			t.Errorf("version key %x: manifest %v, %v", k, m, err)
		}
	}
	for k := range keys[prefixManifest] {
		id := chunk.ID([]byte(k[1:]))
		m, err := e.store.CheckManifest(id)
		if err != nil {
			t.Errorf("stored manifest: %v", err)
			continue
		}
		if _, ok := keys[prefixName][string(nameKey(m.Name))]; !ok {
			t.Errorf("%s: listing key missing", m.Name)
		}
		if _, ok := keys[prefixContent][string(append(contentPrefix(m.SHA256), id[:]...))]; !ok && !m.Tombstone {
			t.Errorf("%s: content key missing", m.Name)
		}
		if _, ok := keys[prefixCollected][string(collectedKey(id))]; ok {
			t.Errorf("%s: collected manifest still stored", m.Name)
		}
	}
	for k := range keys[prefixContent] {
		if _, ok := keys[prefixManifest][string(manifestKey(chunk.ID([]byte(k[33:]))))]; !ok {
			t.Errorf("content key %x names a manifest not stored", k)
		}
	}
	for k := range keys[prefixName] {
		if h, err := e.store.HistoryByHash(MustParseName(k[1:]).Hash()); err != nil || len(h) == 0 {
			t.Errorf("listing key %s: %d versions, %v", k[1:], len(h), err)
		}
	}
	if got, want := e.store.Versions(), int64(len(keys[prefixManifest])); got != want {
		t.Errorf("Versions() = %d, %d manifests stored", got, want)
	}
	if got, _ := e.store.CollectedCount(); got != int64(len(keys[prefixCollected])) {
		t.Errorf("CollectedCount() = %d, %d keys", got, len(keys[prefixCollected]))
	}
	v, b := bruteIncomplete(t, e)
	checkIncomplete(t, e, v, b)
}

func ids(ms ...*manifest.Manifest) []chunk.ID {
	var out []chunk.ID
	for _, m := range ms {
		out = append(out, m.ID())
	}
	return out
}

func sameIDs(a, b []chunk.ID) bool {
	cmp := func(x, y chunk.ID) int { return bytes.Compare(x[:], y[:]) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

func TestCollectAfterRm(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	name := MustParseName("gloria.eu/rm")
	v1 := e.put(t, name.String(), randomBytes(10, 2*cs+5))
	v2 := e.put(t, name.String(), randomBytes(11, cs))
	live := e.put(t, "gloria.eu/live", randomBytes(12, cs))
	tomb, err := e.store.Delete(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if c := e.collect(t, grace); c.Versions != 0 {
		t.Fatalf("within grace: collected %+v", c)
	}
	c := e.collect(t, grace+time.Millisecond)
	if c.Versions != 2 || c.Bytes != v1.Size+v2.Size || !sameIDs(c.Manifests, ids(v1, v2)) ||
		!sameIDs(c.Chunks, append(slices.Clone(v1.Chunks), v2.Chunks...)) {
		t.Fatalf("collected %+v, want v1 and v2", c)
	}
	hist, err := e.store.History(name)
	if err != nil || len(hist) != 1 || hist[0].ID() != tomb.ID() {
		t.Fatalf("history after collection = %v, %v; want the tombstone alone", hist, err)
	}
	if _, err := e.store.Latest(name); !errors.Is(err, ErrDeleted) {
		t.Errorf("latest: err = %v, want ErrDeleted", err)
	}
	if _, err := e.store.BySHA256(v1.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("by content: err = %v, want ErrNotFound", err)
	}
	if _, err := e.store.Version(name, v1.Stamp); !errors.Is(err, ErrNotFound) {
		t.Errorf("version: err = %v, want ErrNotFound", err)
	}
	if page, _, err := e.store.List("gloria.eu/", "", 10); err != nil || len(page) != 1 || page[0].ID() != live.ID() {
		t.Errorf("list = %v, %v; want the live object", page, err)
	}
	for _, m := range []*manifest.Manifest{v1, v2} {
		if gone, err := e.store.IsCollected(m.ID()); err != nil || !gone {
			t.Errorf("IsCollected = %v, %v", gone, err)
		}
		id := m.ID()
		if gone, err := e.store.CollectedByPrefix(id[:8]); err != nil || !gone {
			t.Errorf("CollectedByPrefix = %v, %v", gone, err)
		}
	}
	id := live.ID()
	if gone, err := e.store.CollectedByPrefix(id[:8]); err != nil || gone {
		t.Errorf("CollectedByPrefix of a live manifest = %v, %v", gone, err)
	}
	if c := e.collect(t, 2*grace); c.Versions != 0 {
		t.Errorf("second pass collected %+v", c)
	}
	checkIndex(t, e)
	if e.store.Versions() != 2 {
		t.Errorf("Versions() = %d, want 2 (tombstone and live)", e.store.Versions())
	}
}

func TestCollectRePutAfterRm(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	name := MustParseName("gloria.eu/again")
	v1 := e.put(t, name.String(), randomBytes(20, cs))
	if _, err := e.store.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Millisecond)
	v3 := e.put(t, name.String(), randomBytes(21, cs))
	v4 := e.put(t, name.String(), randomBytes(22, cs))
	c := e.collect(t, grace+time.Second)
	if !sameIDs(c.Manifests, ids(v1)) {
		t.Fatalf("collected %v, want v1 only", c.Manifests)
	}
	if m, err := e.store.Latest(name); err != nil || m.ID() != v4.ID() {
		t.Fatalf("latest = %v, %v; want v4", m, err)
	}
	if hist, _ := e.store.History(name); len(hist) != 3 || hist[1].ID() != v3.ID() || !hist[2].Tombstone {
		t.Errorf("history = %d versions, want v4, v3, tombstone", len(hist))
	}
	if m, err := e.store.BySHA256(v3.SHA256); err != nil || m.ID() != v3.ID() {
		t.Errorf("by content of v3: %v", err)
	}
	checkIndex(t, e)
}

func TestCollectExpired(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	ctx := context.Background()
	putExp := func(name string, seed uint64, expires time.Time) *manifest.Manifest {
		t.Helper()
		m, err := e.store.Put(ctx, MustParseName(name), bytes.NewReader(randomBytes(seed, cs+1)), PutOptions{Expires: expires})
		if err != nil {
			t.Fatal(err)
		}
		e.now = e.now.Add(time.Millisecond)
		return m
	}
	expiry := e.now.Add(time.Hour)
	// gone: an older version, then one that expires; nothing after it.
	old := e.put(t, "gloria.eu/gone", randomBytes(30, cs))
	exp := putExp("gloria.eu/gone", 31, expiry)
	// kept: a version that expires, replaced before it expired.
	k1 := e.put(t, "gloria.eu/kept", randomBytes(32, cs))
	k2 := putExp("gloria.eu/kept", 33, expiry)
	k3 := e.put(t, "gloria.eu/kept", randomBytes(34, cs))

	if c := e.collectAt(t, expiry.Add(grace)); c.Versions != 0 {
		t.Fatalf("at expiry + grace: collected %v", c.Manifests)
	}
	c := e.collectAt(t, expiry.Add(grace+time.Millisecond))
	if !sameIDs(c.Manifests, ids(old, exp, k2)) {
		t.Fatalf("collected %d manifests, want old, exp and k2", len(c.Manifests))
	}
	gone := MustParseName("gloria.eu/gone")
	if _, err := e.store.Latest(gone); !errors.Is(err, ErrNotFound) {
		t.Errorf("latest of an expired and collected name: err = %v, want ErrNotFound", err)
	}
	if _, err := e.store.History(gone); !errors.Is(err, ErrNotFound) {
		t.Errorf("history: err = %v, want ErrNotFound", err)
	}
	if page, _, _ := e.store.List("gloria.eu/", "", 10); len(page) != 1 || page[0].ID() != k3.ID() {
		t.Errorf("list = %v, want kept alone", page)
	}
	if _, ok, _ := getValue(e.db, nameKey(gone.String())); ok {
		t.Error("listing key of a name with no version left is still there")
	}
	if hist, _ := e.store.History(MustParseName("gloria.eu/kept")); len(hist) != 2 || hist[1].ID() != k1.ID() {
		t.Errorf("history of kept = %d versions, want k3, k1", len(hist))
	}
	checkIndex(t, e)
}

// remoteTombstone signs a tombstone of name as site "beta" would.
func remoteTombstone(t *testing.T, name string, wallMS int64) *manifest.Manifest {
	m := &manifest.Manifest{Name: name, Stamp: manifest.Stamp{WallMS: wallMS, Origin: "beta"}, Tombstone: true}
	m.Sign(seedKey(t, 2))
	return m
}

// collectingJournal is a recordingJournal that also records what was collected.
type collectingJournal struct {
	recordingJournal
	collected []chunk.ID
}

func (j *collectingJournal) StageCollected(_ *pebble.Batch, ms []chunk.ID) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.collected = append(j.collected, ms...)
	return nil
}

func TestCollectedRefused(t *testing.T) {
	j := &collectingJournal{recordingJournal: recordingJournal{manifests: map[chunk.ID]int{}}}
	dir := t.TempDir()
	e := openEnvJournal(t, vfs.Default, dir, j)
	r := remoteVersion(t, "other.org/x", randomBytes(40, 2*cs), e.now.UnixMilli()-10)
	e.accept(t, r)
	e.arrive(t, r.chunks...)
	if isNew, err := e.store.Accept(remoteTombstone(t, "other.org/x", e.now.UnixMilli()-5), "in:beta"); err != nil || !isNew {
		t.Fatal(isNew, err)
	}
	if c := e.collect(t, grace); !sameIDs(c.Manifests, ids(r.m)) || !sameIDs(j.collected, ids(r.m)) {
		t.Fatalf("collected %v, journal told of %v; want the version under the tombstone", c.Manifests, j.collected)
	}
	logged, versions := len(j.manifests), e.store.Versions()
	for range 2 {
		if _, err := e.store.Accept(r.m, "in:beta"); !errors.Is(err, ErrCollected) {
			t.Fatalf("Accept of a collected manifest: err = %v, want ErrCollected", err)
		}
		// A receiver already past Accept's look when the collection committed.
		if _, err := e.store.commitVersion(e.chunks.NewBatch(), r.m, "in:beta"); !errors.Is(err, ErrCollected) {
			t.Fatalf("commit of a collected manifest: err = %v, want ErrCollected", err)
		}
		if len(j.manifests) != logged || e.store.Versions() != versions {
			t.Fatalf("a refused manifest was logged or counted")
		}
		checkIndex(t, e)
		e.close(t)
		e = openEnvJournal(t, vfs.Default, dir, j) // and after a restart
	}
	if n, _ := e.store.CollectedCount(); n != 1 {
		t.Errorf("CollectedCount() after restart = %d, want 1", n)
	}
	e.close(t)
}

// TestCollectSkipsUnreadable: a name with a manifest that cannot be read
// is left for scrub; the pass goes on with the others.
func TestCollectSkipsUnreadable(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	ctx := context.Background()
	var lost, doomed *manifest.Manifest
	for _, n := range []string{"gloria.eu/u/1", "gloria.eu/u/2"} {
		doomed, lost = lost, e.put(t, n, randomBytes(90, cs))
		if _, err := e.store.Delete(ctx, MustParseName(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.db.Delete(manifestKey(lost.ID()), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	c := e.collect(t, grace+time.Second)
	if c.Skipped != 1 || !sameIDs(c.Manifests, ids(doomed)) {
		t.Errorf("collected %v, skipped %d; want u/1's version, u/2 skipped", c.Manifests, c.Skipped)
	}
}

func TestCollectIncomplete(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	base := e.now.UnixMilli() - 100
	shared := randomBytes(50, cs)
	a := remoteVersion(t, "other.org/a", slices.Concat(shared, randomBytes(51, 2*cs), shared, randomBytes(53, 7)), base)
	b := remoteVersion(t, "other.org/b", append(slices.Clone(shared), randomBytes(52, cs)...), base+1)
	e.accept(t, a)
	e.accept(t, b)
	e.arrive(t, a.chunks[1])
	checkIncomplete(t, e, 2, (3*cs+7)+2*cs)
	if ok, err := e.store.IsIncomplete(a.m.ID()); err != nil || !ok {
		t.Fatalf("IsIncomplete(a) = %v, %v", ok, err)
	}
	if _, err := e.store.Accept(remoteTombstone(t, "other.org/a", base+2), "in:beta"); err != nil {
		t.Fatal(err)
	}
	if c := e.collect(t, grace); !sameIDs(c.Manifests, ids(a.m)) {
		t.Fatalf("collected %v, want a", c.Manifests)
	}
	checkIncomplete(t, e, 1, 2*cs)
	aID := a.m.ID()
	for k := range trackerKeys(t, e) {
		if bytes.Contains([]byte(k), aID[:]) {
			t.Errorf("tracker key %x of the collected version remains", k)
		}
	}
	if ok, err := e.store.IsIncomplete(a.m.ID()); err != nil || ok {
		t.Errorf("IsIncomplete(a) after collection = %v, %v", ok, err)
	}
	e.arrive(t, shared) // b's wait on the shared chunk still ends
	checkIncomplete(t, e, 1, cs)
	e.arrive(t, b.chunks[1])
	checkIncomplete(t, e, 0, 0)
	checkIndex(t, e)
}

func TestForEachReferencedChunk(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	e.store.gcLimits = gcLimits{groupKeys: 10, scanPage: 2}
	want := map[chunk.ID]bool{}
	for i := range 5 {
		m := e.put(t, fmt.Sprintf("gloria.eu/f/%d", i), randomBytes(uint64(60+i), 2*cs))
		for _, c := range m.Chunks {
			want[c] = true
		}
	}
	r := remoteVersion(t, "other.org/r", randomBytes(70, cs), e.now.UnixMilli())
	e.accept(t, r) // referenced, though not stored here
	want[r.m.Chunks[0]] = true
	got := map[chunk.ID]bool{}
	err := e.store.ForEachReferencedChunk(context.Background(), func(c chunk.ID) error {
		got[c] = true
		return nil
	})
	if err != nil || len(got) != len(want) {
		t.Fatalf("ForEachReferencedChunk: %d chunks, %v; want %d", len(got), err, len(want))
	}
	for c := range want {
		if !got[c] {
			t.Errorf("chunk %s not reported", c.Short())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.store.ForEachReferencedChunk(ctx, func(chunk.ID) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := e.store.CollectHidden(ctx, e.now, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled collection: err = %v", err)
	}
}

func TestCheckManifest(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	good := e.put(t, "gloria.eu/good", randomBytes(80, cs))
	if m, err := e.store.CheckManifest(good.ID()); err != nil || m.ID() != good.ID() {
		t.Fatalf("good manifest: %v", err)
	}
	// Stored behind the store's back, the way a damaged or forged index would hold them.
	store := func(m *manifest.Manifest, enc []byte, id chunk.ID) {
		pb := e.db.NewBatch()
		pb.Set(manifestKey(id), enc, nil)
		pb.Set(versionKey(MustParseName(m.Name).Hash(), m.Stamp), id[:], nil)
		if err := pb.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	forged := *good
	forged.Name, forged.Stamp.Counter = "gloria.eu/forged", 7
	store(&forged, forged.Encode(), forged.ID())
	stranger := remoteVersion(t, "other.org/s", randomBytes(81, cs), e.now.UnixMilli()).m
	stranger.Sign(seedKey(t, 3))
	store(stranger, stranger.Encode(), stranger.ID())
	flipped := good.Encode()
	flipped[len(flipped)-1] ^= 1
	var flippedID chunk.ID
	flippedID[0] = 1
	store(good, flipped, flippedID)
	unindexed := e.put(t, "gloria.eu/unindexed", nil)
	if err := e.db.Delete(versionKey(MustParseName(unindexed.Name).Hash(), unindexed.Stamp), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		id   chunk.ID
		want error
	}{
		{"bad signature", forged.ID(), manifest.ErrBadSignature},
		{"untrusted signer", stranger.ID(), ErrUntrusted},
		{"bytes do not hash to the ID", flippedID, chunk.ErrCorrupt},
		{"not in the version index", unindexed.ID(), chunk.ErrCorrupt},
		{"absent", chunk.ID{9}, ErrNotFound},
	}
	for _, tc := range cases {
		if _, err := e.store.CheckManifest(tc.id); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestCollectDuringPuts runs collections in small groups while puts,
// deletes and arrivals go on (run with -race), then checks the index.
func TestCollectDuringPuts(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	e.store.gcLimits = gcLimits{groupKeys: 16, scanPage: 5}
	ctx := context.Background()
	const names = 12
	var doomed []*manifest.Manifest
	for i := range names {
		n := fmt.Sprintf("gloria.eu/c/%02d", i)
		doomed = append(doomed, e.put(t, n, randomBytes(uint64(100+i), cs+i)), e.put(t, n, randomBytes(uint64(200+i), 2*cs)))
		if _, err := e.store.Delete(ctx, MustParseName(n)); err != nil {
			t.Fatal(err)
		}
	}
	later := e.now.Add(grace + time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var kept []*manifest.Manifest
	for w := range 2 {
		wg.Go(func() {
			for i := range names {
				n := MustParseName(fmt.Sprintf("gloria.eu/c/%02d", (i+w*names/2)%names))
				m, err := e.store.Put(ctx, n, bytes.NewReader(randomBytes(uint64(300+i+w*names), cs)), PutOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				kept = append(kept, m)
				mu.Unlock()
			}
		})
	}
	var remotes []remote
	for i := range names {
		remotes = append(remotes, remoteVersion(t, fmt.Sprintf("other.org/c/%02d", i), randomBytes(uint64(400+i), 2*cs), e.now.UnixMilli()-1))
	}
	wg.Go(func() {
		for _, r := range remotes {
			if _, err := e.store.Accept(r.m, "in:beta"); err != nil {
				t.Error(err)
			}
			if err := arriveErr(e, r.chunks[0]); err != nil {
				t.Error(err)
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var got []chunk.ID
	passes := 0
	for running := true; running; passes++ {
		select {
		case <-done:
			running = false
		default:
		}
		c, err := e.store.CollectHidden(ctx, later, grace)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.Manifests...)
	}
	t.Logf("%d passes beside the puts", passes)
	c, err := e.store.CollectHidden(ctx, later, grace) // what a name changed under a pass left
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, c.Manifests...)
	if !sameIDs(got, ids(doomed...)) {
		t.Errorf("collected %d manifests, want the %d under tombstones", len(got), len(doomed))
	}
	for _, m := range kept {
		if ok, err := e.store.HasManifest(m.ID()); err != nil || !ok {
			t.Errorf("version put during collection lost: %s %s", m.Name, m.Stamp)
		}
	}
	if n, _ := e.store.Objects(); n != 2*names {
		t.Errorf("objects = %d, want %d", n, 2*names)
	}
	checkIndex(t, e)
}

// arriveErr is testEnv.arrive for other goroutines.
func arriveErr(e *testEnv, raw []byte) error {
	b := e.chunks.NewBatch()
	if _, err := b.Add(chunk.Sum(raw), raw); err != nil {
		return err
	}
	var apply func()
	err := b.Commit(func(pb *pebble.Batch, added []chunk.ID) error {
		var err error
		apply, err = e.store.StageChunksArrived(pb, added)
		return err
	})
	if err == nil {
		apply()
	}
	return err
}
