package bench

import (
	"crypto/subtle"
	"encoding/binary"
	"io"
	"math/rand/v2"
)

// Shape of the random stream: each block of the stream is the XOR of two
// windows of a pool, at offsets a ChaCha8 stream picks per block.
const (
	poolSize  = 4 << 20
	blockSize = 64 << 10
)

// Random is a deterministic stream of incompressible bytes: the same seed
// and length give the same bytes however they are read. A 4 MiB pool is
// filled from ChaCha8(seed); every 64 KiB block of the stream is the XOR of
// two pool windows at byte offsets drawn from the same ChaCha8 stream, so
// no block repeats (at 4 KiB granularity or coarser) while the stream costs
// little more than a memory copy. Pure ChaCha8 output runs at about
// 0.4–0.9 GB/s on the benchmark machine, slower than the disk it would
// feed; this source keeps the generator out of the measured path.
// It holds 4 MiB, never the stream.
type Random struct {
	pool  []byte
	rng   *rand.ChaCha8
	left  int64 // bytes still to produce
	a, b  int   // pool offsets of the current block's windows
	inBlk int   // bytes of the current block already produced
}

// NewRandom returns a stream of n bytes decided by seed.
func NewRandom(seed uint64, n int64) *Random {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "skyfed-bench-random-v1")
	rng := rand.NewChaCha8(key)
	pool := make([]byte, poolSize)
	_, _ = rng.Read(pool) // ChaCha8.Read always fills p and returns nil
	return &Random{pool: pool, rng: rng, left: n, inBlk: blockSize}
}

// Read fills p with the next bytes of the stream; io.EOF at the end.
func (r *Random) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := 0
	for n < len(p) {
		if r.inBlk == blockSize {
			r.nextBlock()
		}
		k := min(len(p)-n, blockSize-r.inBlk)
		subtle.XORBytes(p[n:n+k], r.pool[r.a+r.inBlk:][:k], r.pool[r.b+r.inBlk:][:k])
		r.inBlk += k
		n += k
	}
	r.left -= int64(n)
	return n, nil
}

// nextBlock picks the two windows of the next block; they never coincide
// (the XOR would be zeros).
func (r *Random) nextBlock() {
	span := uint64(poolSize - blockSize)
	r.a = int(r.rng.Uint64() % span)
	r.b = int(r.rng.Uint64() % span)
	if r.a == r.b {
		r.b = (r.b + 1 + blockSize) % int(span)
	}
	r.inBlk = 0
}
