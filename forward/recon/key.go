package recon

import (
	"encoding/binary"
	"math"
)

// Item kinds; the same bytes as the forwarding engine's kinds.
const (
	KindManifest byte = 'm'
	KindChunk    byte = 'c'
)

// Key is the 64-bit key of an item in the table: the first 8 bytes of its
// ID, big-endian, tweaked for manifests so that a chunk and a manifest
// with the same ID are different items.
type Key uint64

// manifestTweak is XORed into a manifest's key (and into the 16 ID bytes
// behind its digest and tug-of-war signs, in both halves). It is odd and
// fixed forever: it is part of the format.
const manifestTweak uint64 = 0x6d616e69_66657374 | 1 // "manifest"

// KeyOf returns the key of the item (kind, id).
func KeyOf(kind byte, id [32]byte) Key {
	k := binary.BigEndian.Uint64(id[:8])
	if kind == KindManifest {
		k ^= manifestTweak
	}
	return Key(k)
}

// Prefix returns the first 8 ID bytes of an item of the given kind with
// key k (it undoes the tweak), for a prefix seek in an index.
func Prefix(kind byte, k Key) [8]byte {
	v := uint64(k)
	if kind == KindManifest {
		v ^= manifestTweak
	}
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], v)
	return p
}

// signBits returns the 128 bits behind an item's digest contribution and
// tug-of-war signs: ID bytes 8..24, tweaked for manifests.
func signBits(kind byte, id *[32]byte) (hi, lo uint64) {
	hi = binary.BigEndian.Uint64(id[8:16])
	lo = binary.BigEndian.Uint64(id[16:24])
	if kind == KindManifest {
		hi ^= manifestTweak
		lo ^= manifestTweak
	}
	return hi, lo
}

// mix64 is the splitmix64 finalizer: a fixed bijective mixing function.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// seedOf is the seed of a key's index mapping.
func seedOf(k Key) uint64 { return mix64(uint64(k)) }

// checkOf is the 32-bit check hash of a key, independent of its seed.
func checkOf(k Key) uint32 { return uint32(mix64(uint64(k)^0x9e3779b97f4a7c15) >> 32) }

// mapping walks the indices of the coded symbols an item maps to: index 0,
// then each next one drawn as in the reference riblt code
// (github.com/yangl1996/riblt, mapping.go), so that index i is hit with
// probability about 1/(1+i/2). Every site must compute the same indices:
// the arithmetic is IEEE float64 with explicit conversions (no fused
// multiply-add), and math.Sqrt is exact.
type mapping struct {
	prng uint64
	idx  uint64
}

func newMapping(k Key) mapping { return mapping{prng: seedOf(k)} }

// maxStep caps one step so the float-to-integer conversion never
// overflows; any index past it is past every table.
const maxStep = 1 << 40

func (m *mapping) next() {
	r := m.prng * 0xda942042e4dd58b5
	m.prng = r
	scale := float64(float64(1<<32)/math.Sqrt(float64(r)+1)) - 1
	step := math.Ceil(float64((float64(m.idx) + 1.5) * scale))
	if step >= maxStep || m.idx >= maxStep {
		m.idx = maxStep
		return
	}
	m.idx += uint64(step)
}
