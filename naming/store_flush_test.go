package naming

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
)

// chunkJournal records every chunk and manifest staged, in order.
type chunkJournal struct {
	mu        sync.Mutex
	chunks    []chunk.ID
	manifests []chunk.ID
	logged    chan struct{} // gets a value at every commit that staged chunks
}

func (j *chunkJournal) Stage(_ *pebble.Batch, a Arrived) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.chunks = append(j.chunks, a.Chunks...)
	if !a.Manifest.IsZero() {
		j.manifests = append(j.manifests, a.Manifest)
	}
	return nil
}

func (j *chunkJournal) Committed() {
	select {
	case j.logged <- struct{}{}:
	default:
	}
}

func (j *chunkJournal) counts() (int, int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.chunks), len(j.manifests)
}

// gatedReader hands out data up to gate bytes, then waits for open
// before the rest.
type gatedReader struct {
	data []byte
	gate int
	open chan struct{}
	off  int
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.off == r.gate {
		<-r.open
	}
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	if r.off < r.gate {
		end = r.gate
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

// TestPutShipsChunksBeforeItCommits: a put longer than putFlushBytes
// makes its first chunks stored and logged (so links ship them) while
// the rest is still being read, yet the version is invisible until its
// manifest commits; a garbage collection meanwhile leaves them alone.
func TestPutShipsChunksBeforeItCommits(t *testing.T) {
	j := &chunkJournal{logged: make(chan struct{}, 1)}
	e := openEnvJournal(t, vfs.Default, t.TempDir(), j)
	defer e.close(t)

	data := randomBytes(7, putFlushBytes+5*4096+100)
	r := &gatedReader{data: data, gate: putFlushBytes + 4096, open: make(chan struct{})}
	name := MustParseName("gloria.eu/big/frame-1.fits")
	type result struct {
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, err := e.store.Put(context.Background(), name, r, PutOptions{})
		done <- result{err}
	}()

	<-j.logged // the first flush
	nChunks, nManifests := j.counts()
	if nChunks != putFlushBytes/4096 || nManifests != 0 {
		t.Fatalf("after the first flush the log holds %d chunks and %d manifests, want %d and 0", nChunks, nManifests, putFlushBytes/4096)
	}
	first := chunk.Sum(data[:4096])
	if has, err := e.chunks.Has(first); err != nil || !has {
		t.Fatalf("the put's first chunk is not stored before the put ends: %v, %v", has, err)
	}
	if _, err := e.store.Latest(name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the version is visible before its manifest commits: %v", err)
	}
	// A sweep of everything the manifests do not reference must leave
	// the open put's chunks alone.
	if r, err := e.chunks.Sweep([]chunk.ID{first}); err != nil || r.Chunks != 0 || r.Pinned != 1 {
		t.Fatalf("sweep during the put: %+v, %v; want the chunk kept as pinned", r, err)
	}

	close(r.open)
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	m, err := e.store.Latest(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.read(t, m); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differ from the %d put", len(got), len(data))
	}
	nChunks, nManifests = j.counts()
	if nChunks != len(m.Chunks) || nManifests != 1 {
		t.Fatalf("the log holds %d chunks and %d manifests, want %d and 1 (each once)", nChunks, nManifests, len(m.Chunks))
	}
}

// A put past putFlushBytes whose chunks are all stored already (the same
// file put again, under another name) flushes nothing new: it used to
// take that for a failure to stage and panic.
func TestPutOfStoredBytesPastAFlush(t *testing.T) {
	j := &chunkJournal{logged: make(chan struct{}, 64)}
	e := openEnvJournal(t, vfs.Default, t.TempDir(), j)
	defer e.close(t)
	data := randomBytes(9, 2*putFlushBytes+100)
	for _, n := range []string{"gloria.eu/a.fits", "gloria.eu/copy-of-a.fits"} {
		if _, err := e.store.Put(context.Background(), MustParseName(n), bytes.NewReader(data), PutOptions{}); err != nil {
			t.Fatalf("put %s: %v", n, err)
		}
	}
	m, err := e.store.Latest(MustParseName("gloria.eu/copy-of-a.fits"))
	if err != nil || !bytes.Equal(e.read(t, m), data) {
		t.Fatalf("the second put: %v", err)
	}
}
