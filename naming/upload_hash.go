package naming

import (
	"context"
	"crypto/sha256"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/skyfed/skyfed/chunk"
)

// The object's SHA-256 is computed while its parts arrive, in part
// order, off the parts' requests: when a part is stored, a hasher of the
// upload (one goroutine at a time, started on demand) hashes on from the
// next unhashed part as far as the parts are stored (their chunks are
// still in the page cache), so a part's answer never waits for hashing
// and completion finds the sum ready instead of reading the whole object
// back while its client waits. Parts that arrive out of order are hashed
// once the gap closes. The state is memory only: a part stored again
// after it was hashed, or a restart, leaves completion to read the
// parts back (hashChunks).
//
// Only the SHA-256: an S3 client learns a multipart object's ETag from
// its parts' MD5s, as AWS makes it, so no MD5 of the whole is needed.

// runningHash is the in-order hash of one upload's parts.
type runningHash struct {
	mu      sync.Mutex  // held while hashing
	pending atomic.Bool // a part was stored since the hasher last looked
	running atomic.Bool // a hasher goroutine is on it
	next    int         // the next part number to hash
	sha     hash.Hash
	scan    *chunk.FITSScanner // the object's FITS headers, read in part order (nil: not wanted)
	hashed  map[int]string     // part number → the MD5 of the part hashed
	broken  bool               // a part could not be read: the sum is not the object's
}

// uploadHashes holds the running hashes of the uploads in progress and
// owns their hasher goroutines.
type uploadHashes struct {
	m      sync.Map // upload ID → *runningHash
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newUploadHashes() *uploadHashes {
	u := &uploadHashes{}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	return u
}

// close stops the hashers and waits for them.
func (u *uploadHashes) close() {
	u.cancel()
	u.wg.Wait()
}

func (u *uploadHashes) start(id string, scan *chunk.FITSScanner) {
	u.m.Store(id, &runningHash{next: 1, sha: sha256.New(), scan: scan, hashed: map[int]string{}})
}

func (u *uploadHashes) get(id string) *runningHash {
	if v, ok := u.m.Load(id); ok {
		return v.(*runningHash)
	}
	return nil
}

func (u *uploadHashes) drop(id string) { u.m.Delete(id) }

// advance has upload id's parts hashed from the next unhashed one on,
// as far as they are stored, by the upload's hasher: started here unless
// one runs, which then sees pending and goes on. A part replaced after
// it was hashed shows at completion: its MD5 is no longer the one
// hashed, and sum refuses.
func (s *Store) advance(id string) {
	rh := s.hashes.get(id)
	if rh == nil {
		return
	}
	rh.pending.Store(true)
	if !rh.running.CompareAndSwap(false, true) {
		return
	}
	s.hashes.wg.Add(1)
	go func() {
		defer s.hashes.wg.Done()
		for {
			for rh.pending.Swap(false) {
				rh.mu.Lock()
				s.hashStored(s.hashes.ctx, id, rh)
				rh.mu.Unlock()
			}
			rh.running.Store(false)
			// A part stored between the last look and the flag's
			// clearing found the hasher running: look again unless
			// another hasher took over.
			if !rh.pending.Load() || !rh.running.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// hashStored hashes the stored parts from rh.next on; rh.mu held.
func (s *Store) hashStored(ctx context.Context, id string, rh *runningHash) {
	for !rh.broken {
		v, ok, err := getValue(s.db, partKey(id, rh.next))
		if err != nil || !ok {
			return // a gap: the part that fills it hashes on
		}
		p, err := decodePart(v)
		if err == nil {
			_, err = s.hashInto(ctx, p.Chunks, rh.sha, s.scanning(rh.scan))
		}
		if err != nil {
			rh.broken = true // half a part hashed, or not readable
			return
		}
		rh.hashed[p.Number] = p.MD5
		rh.next++
	}
}

// sum returns the SHA-256 of parts and the scanner that read them if the
// running hash of upload id covers exactly them (parts 1..n, as hashed),
// hashing what the hasher has not reached yet.
func (s *Store) sum(ctx context.Context, id string, parts []Part) ([32]byte, *chunk.FITSScanner, bool) {
	var sha [32]byte
	rh := s.hashes.get(id)
	if rh == nil {
		return sha, nil, false
	}
	rh.mu.Lock()
	defer rh.mu.Unlock()
	s.hashStored(ctx, id, rh)
	if rh.broken || rh.next != len(parts)+1 {
		return sha, nil, false
	}
	for i, p := range parts {
		if p.Number != i+1 || rh.hashed[p.Number] != p.MD5 {
			return sha, nil, false
		}
	}
	rh.sha.Sum(sha[:0])
	return sha, rh.scan, true
}
