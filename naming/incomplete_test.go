package naming

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

const cs = 4096 // openEnv's chunk size

// remote is a version put at another site: its manifest and the raw
// bytes of its chunks, to arrive here in any order.
type remote struct {
	m      *manifest.Manifest
	chunks [][]byte // in manifest order, repeats included
}

// remoteVersion signs a version of data under name as site "beta" would.
func remoteVersion(t *testing.T, name string, data []byte, wallMS int64) remote {
	t.Helper()
	m := &manifest.Manifest{Name: name, Stamp: manifest.Stamp{WallMS: wallMS, Origin: "beta"},
		ChunkSize: cs, Size: int64(len(data)), SHA256: sha256.Sum256(data)}
	var r remote
	sp := chunk.NewSplitter(bytes.NewReader(data), cs)
	for {
		raw, err := sp.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		m.Chunks = append(m.Chunks, chunk.Sum(raw))
		r.chunks = append(r.chunks, bytes.Clone(raw))
	}
	m.Sign(seedKey(t, 2))
	r.m = m
	return r
}

func (e *testEnv) accept(t *testing.T, r remote) {
	t.Helper()
	if isNew, err := e.store.Accept(r.m, "in:beta"); err != nil || !isNew {
		t.Fatalf("accept %s: new=%v err=%v", r.m.Name, isNew, err)
	}
}

// arrive commits chunks the way the forwarding layer does: a chunk
// batch whose callback stages the tracker's updates, applied after.
func (e *testEnv) arrive(t *testing.T, raws ...[]byte) {
	t.Helper()
	b := e.chunks.NewBatch()
	for _, raw := range raws {
		if _, err := b.Add(chunk.Sum(raw), raw); err != nil {
			t.Fatal(err)
		}
	}
	var apply func()
	err := b.Commit(func(pb *pebble.Batch, added []chunk.ID) error {
		var err error
		apply, err = e.store.StageChunksArrived(pb, added)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	apply()
}

// bruteIncomplete computes the totals from scratch, without the tracker.
func bruteIncomplete(t *testing.T, e *testEnv) (versions, missingBytes int64) {
	t.Helper()
	err := e.store.ForEachManifest(func(id chunk.ID) error {
		m, err := e.store.Manifest(id)
		if err != nil {
			return err
		}
		var lack int64
		for i, c := range m.Chunks {
			has, err := e.chunks.Has(c)
			if err != nil {
				return err
			}
			if !has {
				lack += min(int64(m.ChunkSize), m.Size-int64(i)*int64(m.ChunkSize))
			}
		}
		if lack > 0 {
			versions++
			missingBytes += lack
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return versions, missingBytes
}

// checkIncomplete checks the in-memory totals against want, against the
// committed 'i' keys and against a count from scratch.
func checkIncomplete(t *testing.T, e *testEnv, wantVersions, wantBytes int64) {
	t.Helper()
	if v, b := e.store.Incomplete(); v != wantVersions || b != wantBytes {
		t.Errorf("Incomplete() = %d versions, %d bytes; want %d, %d", v, b, wantVersions, wantBytes)
	}
	if v, b, err := e.store.scanIncomplete(); err != nil || v != wantVersions || b != wantBytes {
		t.Errorf("committed 'i' keys: %d versions, %d bytes, %v; want %d, %d", v, b, err, wantVersions, wantBytes)
	}
	if v, b := bruteIncomplete(t, e); v != wantVersions || b != wantBytes {
		t.Errorf("from scratch: %d versions, %d bytes; want %d, %d", v, b, wantVersions, wantBytes)
	}
}

// trackerKeys dumps the tracker's keys and values.
func trackerKeys(t *testing.T, e *testEnv) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for _, p := range []byte{prefixWaiting, prefixIncomplete} {
		err := e.store.forEachKey(p, func(k, v []byte) error {
			keys[string(k)] = string(v)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestIncompleteManifestBeforeChunks(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	checkIncomplete(t, e, 0, 0)
	r := remoteVersion(t, "other.org/a.fits", randomBytes(1, 3*cs+100), 1763700000100)
	e.accept(t, r)
	checkIncomplete(t, e, 1, 3*cs+100)
	e.arrive(t, r.chunks[3]) // the short tail
	checkIncomplete(t, e, 1, 3*cs)
	e.arrive(t, r.chunks[0], r.chunks[1])
	checkIncomplete(t, e, 1, cs)
	e.arrive(t, r.chunks[2])
	checkIncomplete(t, e, 0, 0)
	if len(trackerKeys(t, e)) != 0 {
		t.Error("tracker keys left after the version completed")
	}
}

func TestIncompleteChunksBeforeManifest(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	whole := remoteVersion(t, "other.org/whole", randomBytes(2, 2*cs+1), 1763700000100)
	part := remoteVersion(t, "other.org/part", randomBytes(3, 3*cs), 1763700000200)
	e.arrive(t, whole.chunks...)
	e.arrive(t, part.chunks[1])
	e.accept(t, whole)
	checkIncomplete(t, e, 0, 0)
	e.accept(t, part)
	checkIncomplete(t, e, 1, 2*cs)
}

func TestIncompleteSharedChunks(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	data := randomBytes(4, 4*cs)
	v1 := remoteVersion(t, "other.org/img", data, 1763700000100)
	data2 := bytes.Clone(data)
	copy(data2[3*cs:], randomBytes(5, cs/2)) // only the last chunk differs
	v2 := remoteVersion(t, "other.org/img", data2[:4*cs-7], 1763700000200)
	e.accept(t, v1)
	e.accept(t, v2)
	checkIncomplete(t, e, 2, 4*cs+4*cs-7)
	e.arrive(t, v1.chunks[0], v1.chunks[1]) // shared by both
	checkIncomplete(t, e, 2, 2*cs+2*cs-7)
	e.arrive(t, v1.chunks[2], v1.chunks[3])
	checkIncomplete(t, e, 1, cs-7)
	e.arrive(t, v2.chunks[3])
	checkIncomplete(t, e, 0, 0)
}

func TestIncompleteRepeatedChunk(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	block := randomBytes(6, cs)
	data := append(bytes.Repeat(block, 3), randomBytes(7, 50)...)
	r := remoteVersion(t, "other.org/flat", data, 1763700000100)
	if r.m.Chunks[0] != r.m.Chunks[2] {
		t.Fatal("test data: chunks 0 and 2 should be the same")
	}
	e.accept(t, r)
	checkIncomplete(t, e, 1, 3*cs+50)
	if v, _, _ := getValue(e.db, incompleteKey(r.m.ID())); v != nil {
		if m, _ := decodeMissing(v); m.chunks != 2 {
			t.Errorf("missing distinct chunks = %d, want 2", m.chunks)
		}
	}
	e.arrive(t, block)
	checkIncomplete(t, e, 1, 50)
	e.arrive(t, r.chunks[3])
	checkIncomplete(t, e, 0, 0)
}

func TestIncompleteTombstonesAndLocalPuts(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	e.put(t, "gloria.eu/local", randomBytes(8, 2*cs+5))
	checkIncomplete(t, e, 0, 0)
	if _, err := e.store.Delete(context.Background(), MustParseName("gloria.eu/local")); err != nil {
		t.Fatal(err)
	}
	tomb := &manifest.Manifest{Name: "other.org/gone", Stamp: manifest.Stamp{WallMS: 1763700000100, Origin: "beta"}, Tombstone: true}
	tomb.Sign(seedKey(t, 2))
	e.accept(t, remote{m: tomb})
	empty := remoteVersion(t, "other.org/empty", nil, 1763700000200)
	e.accept(t, empty)
	checkIncomplete(t, e, 0, 0)

	// A local put of the same bytes completes a remote version waiting for them.
	data := randomBytes(9, 3*cs+1)
	r := remoteVersion(t, "other.org/same", data, 1763700000300)
	e.accept(t, r)
	checkIncomplete(t, e, 1, 3*cs+1)
	e.put(t, "gloria.eu/same", data)
	checkIncomplete(t, e, 0, 0)
}

func TestIncompleteRestart(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, vfs.Default, dir)
	r1 := remoteVersion(t, "other.org/1", randomBytes(10, 2*cs+3), 1763700000100)
	r2 := remoteVersion(t, "other.org/2", randomBytes(11, cs), 1763700000200)
	e.accept(t, r1)
	e.accept(t, r2)
	e.arrive(t, r1.chunks[0])
	checkIncomplete(t, e, 2, cs+3+cs)
	e.close(t)

	e = openEnv(t, vfs.Default, dir)
	defer e.close(t)
	checkIncomplete(t, e, 2, cs+3+cs)
	e.arrive(t, r1.chunks[1:]...)
	e.arrive(t, r2.chunks...)
	checkIncomplete(t, e, 0, 0)
}

// TestRecountIncomplete builds a mixed state incrementally, then checks
// that a rebuild from scratch finds the same keys and totals, and that a
// data dir without the tracker (older than it) gets one at open.
func TestRecountIncomplete(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, vfs.Default, dir)
	var rs []remote
	for i := range 6 {
		r := remoteVersion(t, "other.org/r", randomBytes(uint64(20+i), (i+1)*cs-i), 1763700000100+int64(i))
		e.accept(t, r)
		e.arrive(t, r.chunks[:i/2]...)
		rs = append(rs, r)
	}
	e.put(t, "gloria.eu/local", rs[5].chunks[4]) // a local put brings one chunk of rs[5]
	wantV, wantB := bruteIncomplete(t, e)
	if wantV == 0 {
		t.Fatal("test setup: nothing incomplete")
	}
	checkIncomplete(t, e, wantV, wantB)
	before := trackerKeys(t, e)
	if err := e.store.RecountIncomplete(); err != nil {
		t.Fatal(err)
	}
	checkIncomplete(t, e, wantV, wantB)
	if after := trackerKeys(t, e); !equalMaps(before, after) {
		t.Errorf("recount wrote %d tracker keys, incremental had %d (or values differ)", len(after), len(before))
	}

	// An older data dir: no marker, no tracker keys.
	pb := e.db.NewBatch()
	for k := range before {
		_ = pb.Delete([]byte(k), nil)
	}
	_ = pb.Delete(trackerMarker, nil)
	if err := pb.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	e.close(t)
	e = openEnv(t, vfs.Default, dir)
	defer e.close(t)
	checkIncomplete(t, e, wantV, wantB)
	if after := trackerKeys(t, e); !equalMaps(before, after) {
		t.Error("tracker rebuilt at open differs from the incremental one")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestIncompleteAfterLostPack: chunks forgotten at open because their
// pack file is gone make their versions incomplete again.
func TestIncompleteAfterLostPack(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, vfs.Default, dir)
	r := remoteVersion(t, "other.org/lost", randomBytes(30, 2*cs+9), 1763700000100)
	e.accept(t, r)
	e.close(t)
	e = openEnv(t, vfs.Default, dir) // a new pack for the chunks below
	e.arrive(t, r.chunks...)
	checkIncomplete(t, e, 0, 0)
	e.close(t)
	packs, err := filepath.Glob(filepath.Join(dir, "packs", "pack-*.dat"))
	if err != nil || len(packs) < 2 {
		t.Fatalf("packs %v, %v", packs, err)
	}
	if err := os.Remove(packs[1]); err != nil { // the second open's pack
		t.Fatal(err)
	}
	e = openEnv(t, vfs.Default, dir)
	defer e.close(t)
	if e.chunks.Stats().LostAtOpen == 0 {
		t.Fatal("no chunk lost at open")
	}
	checkIncomplete(t, e, 1, 2*cs+9)
}

// recordingJournal records the manifests staged.
type recordingJournal struct {
	mu        sync.Mutex
	manifests map[chunk.ID]int
}

func (j *recordingJournal) Stage(_ *pebble.Batch, a Arrived) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !a.Manifest.IsZero() {
		j.manifests[a.Manifest]++
	}
	return nil
}

func (j *recordingJournal) Committed() {}

// TestConcurrentAcceptLogsOnce: receivers that Accept one manifest at
// once (a link and a lookup) index it and log it once.
func TestConcurrentAcceptLogsOnce(t *testing.T) {
	j := &recordingJournal{manifests: map[chunk.ID]int{}}
	e := openEnvJournal(t, vfs.Default, t.TempDir(), j)
	defer e.close(t)
	const versions, receivers = 20, 8
	for i := range versions {
		r := remoteVersion(t, "other.org/c", randomBytes(uint64(40+i), cs+i), 1763700000100+int64(i))
		var wg sync.WaitGroup
		var news sync.Map
		start := make(chan struct{})
		for k := range receivers {
			wg.Go(func() {
				<-start
				isNew, err := e.store.Accept(r.m, "in:beta")
				if err != nil {
					t.Error(err)
				}
				news.Store(k, isNew)
			})
		}
		close(start)
		wg.Wait()
		n := 0
		news.Range(func(_, v any) bool {
			if v.(bool) {
				n++
			}
			return true
		})
		if n != 1 {
			t.Errorf("version %d: %d Accepts reported new, want 1", i, n)
		}
	}
	// Past the check outside the commit, as a racing receiver would be.
	r := remoteVersion(t, "other.org/c", randomBytes(99, cs), 1763700000999)
	for k := range 2 {
		isNew, err := e.store.commitVersion(e.chunks.NewBatch(), r.m, "lookup:beta")
		if err != nil || isNew != (k == 0) {
			t.Fatalf("commit %d: new=%v err=%v", k, isNew, err)
		}
	}
	// Another manifest with the same name and stamp is refused inside the commit too.
	other := remoteVersion(t, "other.org/c", randomBytes(100, cs), 1763700000999)
	if _, err := e.store.commitVersion(e.chunks.NewBatch(), other.m, "in:beta"); !errors.Is(err, ErrConflict) {
		t.Errorf("same name and stamp: err = %v, want ErrConflict", err)
	}
	if len(j.manifests) != versions+1 {
		t.Errorf("%d manifests logged, want %d", len(j.manifests), versions+1)
	}
	for id, n := range j.manifests {
		if n != 1 {
			t.Errorf("manifest %s logged %d times", id.Short(), n)
		}
	}
	if got := e.store.Versions(); got != versions+1 {
		t.Errorf("Versions() = %d, want %d", got, versions+1)
	}
	checkIncomplete(t, e, versions+1, int64(versions*cs+versions*(versions-1)/2+cs))
}

// TestRecountDropsEarlierDeltas: a commit's delta applied only after a
// recount (which already counted that commit) is not added twice.
func TestRecountDropsEarlierDeltas(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	r := remoteVersion(t, "other.org/late", randomBytes(50, 3*cs), 1763700000100)
	e.accept(t, r)
	b := e.chunks.NewBatch()
	if _, err := b.Add(chunk.Sum(r.chunks[0]), r.chunks[0]); err != nil {
		t.Fatal(err)
	}
	var late func()
	err := b.Commit(func(pb *pebble.Batch, added []chunk.ID) error {
		var err error
		late, err = e.store.StageChunksArrived(pb, added)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.RecountIncomplete(); err != nil {
		t.Fatal(err)
	}
	late()
	checkIncomplete(t, e, 1, 2*cs)
}
