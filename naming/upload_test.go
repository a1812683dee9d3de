package naming

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
)

// Parts are stored as they come, keep their chunks from garbage
// collection until their upload ends, and make one version in the order
// the completion lists them; an upload left past its expiry is
// collected.
func TestUploadParts(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	ctx := context.Background()
	name := MustParseName("gloria.eu/mp/frame.fits")
	id, err := e.store.StartUpload(name, PutOptions{ContentType: "image/fits"})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := randomBytes(1, 3*4096), randomBytes(2, 4096+17)
	// Out of order, and part 1 sent twice (the second replaces the first).
	if _, err := e.store.PutPart(ctx, id, 2, bytes.NewReader(p2)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.PutPart(ctx, id, 1, bytes.NewReader(randomBytes(3, 100))); err != nil {
		t.Fatal(err)
	}
	part1, err := e.store.PutPart(ctx, id, 1, bytes.NewReader(p1))
	if err != nil {
		t.Fatal(err)
	}
	referenced := map[chunk.ID]bool{}
	if err := e.store.ForEachReferencedChunk(ctx, func(c chunk.ID) error { referenced[c] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, c := range part1.Chunks {
		if !referenced[c] {
			t.Fatalf("chunk %s of a stored part is not kept from collection", c.Short())
		}
	}
	if _, err := e.store.CompleteUpload(ctx, id, []PartRef{{Number: 2}, {Number: 1}}, nil); !errors.Is(err, ErrInvalidPart) {
		t.Fatalf("parts out of order: %v", err)
	}
	if _, err := e.store.CompleteUpload(ctx, id, []PartRef{{Number: 1, MD5: "00"}}, nil); !errors.Is(err, ErrInvalidPart) {
		t.Fatalf("a part with another MD5: %v", err)
	}
	m, err := e.store.CompleteUpload(ctx, id, []PartRef{{Number: 1, MD5: part1.MD5}, {Number: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.read(t, m); !bytes.Equal(got, append(p1, p2...)) || m.ContentType != "image/fits" {
		t.Fatalf("completed: %d bytes, type %q", len(got), m.ContentType)
	}
	if _, _, err := e.store.GetUpload(id); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("a completed upload is still there: %v", err)
	}

	old, err := e.store.StartUpload(name, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(8 * 24 * time.Hour)
	fresh, err := e.store.StartUpload(name, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.store.CollectUploads(ctx, e.now.Add(-7*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("collected %d uploads, %v", n, err)
	}
	if _, _, err := e.store.GetUpload(old); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("the abandoned upload: %v", err)
	}
	if _, _, err := e.store.GetUpload(fresh); err != nil {
		t.Errorf("the fresh upload: %v", err)
	}
}

// The upload and part records read from the index never panic and
// refuse what they could not have written.
func FuzzDecodeUploadRecords(f *testing.F) {
	u, _ := json.Marshal(Upload{ID: "00112233445566778899aabbccddeeff", Name: "gloria.eu/x", Initiated: time.Unix(1, 0)})
	p, _ := json.Marshal(Part{Number: 1, Size: 5, MD5: "00112233445566778899aabbccddeeff", Chunks: []chunk.ID{{1}}})
	f.Add(u)
	f.Add(p)
	f.Add([]byte(`{"n":0,"size":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if u, err := decodeUpload(b); err == nil {
			if !validUploadID(u.ID) {
				t.Fatalf("accepted upload ID %q", u.ID)
			}
		}
		if p, err := decodePart(b); err == nil {
			if p.Number < 1 || p.Number > MaxParts || int64(len(p.Chunks)) > p.Size {
				t.Fatalf("accepted part %+v", p)
			}
		}
	})
}

// The object's SHA-256 and MD5 are right whether completion found them
// hashed in order as the parts came, or read the parts back: parts in
// order, out of order, and a hashed part sent again.
func TestUploadSums(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	ctx := context.Background()
	parts := [][]byte{randomBytes(11, 2*4096), randomBytes(12, 3*4096), randomBytes(13, 999)}
	whole := bytes.Join(parts, nil)
	for _, tc := range []struct {
		name    string
		order   []int // part numbers in the order they are sent (1-based)
		running bool  // the sums are ready before completion
	}{
		{"in order", []int{1, 2, 3}, true},
		{"out of order", []int{3, 1, 2}, true},
		{"a hashed part sent again, the same", []int{1, 2, 1, 3}, true},
		{"a hashed part replaced", []int{-1, 2, 1, 3}, false}, // -1: other bytes first
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.store.StartUpload(MustParseName("gloria.eu/sums/"+tc.name), PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.order {
				body := parts[max(n, -n)-1]
				if n < 0 {
					n, body = -n, randomBytes(14, 2*4096)
				}
				if _, err := e.store.PutPart(ctx, id, n, bytes.NewReader(body)); err != nil {
					t.Fatal(err)
				}
				e.store.hashes.waitIdle(id)
			}
			_, stored, err := e.store.GetUpload(id)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, ok := e.store.sum(ctx, id, stored); ok != tc.running {
				t.Errorf("sum ready before completion: %v, want %v", ok, tc.running)
			}
			m, err := e.store.CompleteUpload(ctx, id, []PartRef{{Number: 1}, {Number: 2}, {Number: 3}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.SHA256 != sha256.Sum256(whole) || !bytes.Equal(e.read(t, m), whole) {
				t.Errorf("sum or bytes wrong")
			}
		})
	}
}

// waitIdle waits until no hasher of upload id runs (tests: the hasher's
// progress is otherwise a matter of timing).
func (u *uploadHashes) waitIdle(id string) {
	rh := u.get(id)
	for rh != nil && (rh.running.Load() || rh.pending.Load()) {
		time.Sleep(time.Millisecond)
	}
}
