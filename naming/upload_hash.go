package naming

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"hash"
	"sync"
	"sync/atomic"
)

// The object's SHA-256 and MD5 are computed while its parts arrive, in
// part order: when a part is stored and every part before it has been
// hashed, the part that stored it hashes on (its chunks are still in
// the page cache), so completion finds the sums ready instead of reading
// the whole object back while its client waits. Parts that arrive out
// of order are hashed once the gap closes. The state is memory only: a
// part stored again after it was hashed, or a restart, leaves
// completion to read the parts back (hashChunks).

// runningHash is the in-order hash of one upload's parts.
type runningHash struct {
	mu      sync.Mutex  // held while hashing
	pending atomic.Bool // a part was stored since the hashing last looked
	next    int         // the next part number to hash
	sha     hash.Hash
	md5     hash.Hash
	hashed  map[int]string // part number → the MD5 of the part hashed
	broken  bool           // a part could not be read: the sums are not the object's
}

// uploadHashes holds the running hashes of the uploads in progress.
type uploadHashes struct {
	m sync.Map // upload ID → *runningHash
}

func (u *uploadHashes) start(id string) {
	u.m.Store(id, &runningHash{next: 1, sha: sha256.New(), md5: md5.New(), hashed: map[int]string{}})
}

func (u *uploadHashes) get(id string) *runningHash {
	if v, ok := u.m.Load(id); ok {
		return v.(*runningHash)
	}
	return nil
}

func (u *uploadHashes) drop(id string) { u.m.Delete(id) }

// advance hashes the parts of upload id from the next unhashed one on,
// as long as they are stored. One part's store does the hashing at a
// time; a part stored meanwhile leaves it to that one (pending), so
// parts answer at once while one of them hashes for all. A part
// replaced after it was hashed shows at completion: its MD5 is no
// longer the one hashed, and sums refuses.
func (s *Store) advance(ctx context.Context, id string) {
	rh := s.hashes.get(id)
	if rh == nil {
		return
	}
	rh.pending.Store(true)
	for rh.pending.Load() {
		if !rh.mu.TryLock() {
			return // the one hashing sees pending and goes on
		}
		rh.pending.Store(false)
		s.hashStored(ctx, id, rh)
		rh.mu.Unlock()
	}
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
			_, err = s.hashInto(ctx, p.Chunks, rh.sha, rh.md5)
		}
		if err != nil {
			rh.broken = true // half a part hashed, or not readable
			return
		}
		rh.hashed[p.Number] = p.MD5
		rh.next++
	}
}

// sums returns the SHA-256 and MD5 of parts if the running hash of
// upload id covers exactly them (parts 1..n, as hashed).
func (s *Store) sums(id string, parts []Part) ([32]byte, []byte, bool) {
	var sha [32]byte
	rh := s.hashes.get(id)
	if rh == nil {
		return sha, nil, false
	}
	rh.mu.Lock()
	defer rh.mu.Unlock()
	if rh.broken || rh.next != len(parts)+1 {
		return sha, nil, false
	}
	for i, p := range parts {
		if p.Number != i+1 || rh.hashed[p.Number] != p.MD5 {
			return sha, nil, false
		}
	}
	rh.sha.Sum(sha[:0])
	return sha, rh.md5.Sum(nil), true
}
