package recon

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Table sizes. The table keeps the first TableSymbols coded symbols of
// the inventory's rateless IBLT; about TableSymbols/1.4 differences decode
// from them without more state. It is persisted in blocks of BlockSymbols
// symbols plus a head.
const (
	TableSymbols = 1 << 18
	BlockSymbols = 1024
	Blocks       = TableSymbols / BlockSymbols
)

// towCounters is the number of tug-of-war counters.
const towCounters = 128

// Format versions of the persisted block and head.
const (
	blockVersion = 1
	headVersion  = 1
)

// Table is a site's reconciliation state, kept incrementally: the coded
// symbols (struct of arrays, about 4 MiB), the item counts per kind, a
// 16-byte XOR digest of the items, the tug-of-war counters and the
// blocks changed since the last ClearDirty. It is not safe for
// concurrent use.
type Table struct {
	keys   []uint64 // TableSymbols key sums
	checks []uint32 // TableSymbols check sums
	counts []int32  // TableSymbols signed counts

	manifests, chunks int64
	digest            [16]byte
	tow               [towCounters]int32
	dirty             [Blocks / 64]uint64
}

// NewTable returns the table of an empty inventory.
func NewTable() *Table {
	return &Table{
		keys:   make([]uint64, TableSymbols),
		checks: make([]uint32, TableSymbols),
		counts: make([]int32, TableSymbols),
	}
}

// Toggle adds (add) or removes (!add) one item: its key and check are
// XORed into every symbol it maps to and the symbol's count moves by ±1;
// the digest, counts and tug-of-war counters follow. Removing is the same
// XOR with the opposite count, so garbage collection takes items out.
func (t *Table) Toggle(kind byte, id [32]byte, add bool) {
	k := KeyOf(kind, id)
	c := checkOf(k)
	d := int32(1)
	if !add {
		d = -1
	}
	for m := newMapping(k); m.idx < TableSymbols; m.next() {
		t.keys[m.idx] ^= uint64(k)
		t.checks[m.idx] ^= c
		t.counts[m.idx] += d
		b := m.idx / BlockSymbols
		t.dirty[b/64] |= 1 << (b % 64)
	}
	if kind == KindManifest {
		t.manifests += int64(d)
	} else {
		t.chunks += int64(d)
	}
	hi, lo := signBits(kind, &id)
	binary.BigEndian.PutUint64(t.digest[:8], binary.BigEndian.Uint64(t.digest[:8])^hi)
	binary.BigEndian.PutUint64(t.digest[8:], binary.BigEndian.Uint64(t.digest[8:])^lo)
	towAdd(&t.tow, hi, lo, d)
}

// towAdd moves each counter by +d or -d: counter j by the sign bit j of
// (hi, lo).
func towAdd(tow *[towCounters]int32, hi, lo uint64, d int32) {
	for j := 0; j < 64; j++ {
		tow[j] += d * (1 - 2*int32(hi>>j&1))
		tow[64+j] += d * (1 - 2*int32(lo>>j&1))
	}
}

// Counts returns the number of manifests and chunks in the table.
func (t *Table) Counts() (manifests, chunks int64) { return t.manifests, t.chunks }

// Dirty returns the numbers of the blocks changed since the last
// ClearDirty, in increasing order.
func (t *Table) Dirty() []int {
	var out []int
	for w, word := range t.dirty {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			out = append(out, w*64+b)
			word &^= 1 << b
		}
	}
	return out
}

// ClearDirty forgets which blocks changed.
func (t *Table) ClearDirty() { t.dirty = [Blocks / 64]uint64{} }

// Equal reports whether t and o hold the same symbols, counts, digest and
// counters (dirty bits aside).
func (t *Table) Equal(o *Table) bool {
	if t.manifests != o.manifests || t.chunks != o.chunks || t.digest != o.digest || t.tow != o.tow {
		return false
	}
	for i := range t.keys {
		if t.keys[i] != o.keys[i] || t.checks[i] != o.checks[i] || t.counts[i] != o.counts[i] {
			return false
		}
	}
	return true
}

// Clone returns a deep copy of t.
func (t *Table) Clone() *Table {
	c := *t
	c.keys = append([]uint64(nil), t.keys...)
	c.checks = append([]uint32(nil), t.checks...)
	c.counts = append([]int32(nil), t.counts...)
	return &c
}

// AppendBlock appends the encoding of block i (0 ≤ i < Blocks) to dst:
//
//	version(u8=1) BlockSymbols × (keySum[8] check[4] count(zigzag uvarint))
func (t *Table) AppendBlock(dst []byte, i int) []byte {
	dst = append(dst, blockVersion)
	for j := i * BlockSymbols; j < (i+1)*BlockSymbols; j++ {
		dst = binary.BigEndian.AppendUint64(dst, t.keys[j])
		dst = binary.BigEndian.AppendUint32(dst, t.checks[j])
		dst = binary.AppendVarint(dst, int64(t.counts[j]))
	}
	return dst
}

// LoadBlock replaces block i with its encoding b, as AppendBlock wrote it.
// On error the table is unchanged.
func (t *Table) LoadBlock(i int, b []byte) error {
	if i < 0 || i >= Blocks {
		return fmt.Errorf("%w: block %d out of range", ErrBadEncoding, i)
	}
	r := reader{b: b}
	if v := r.byte(); v != blockVersion && r.err == nil {
		return fmt.Errorf("%w: block version %d, want %d", ErrBadEncoding, v, blockVersion)
	}
	var keys [BlockSymbols]uint64
	var checks [BlockSymbols]uint32
	var counts [BlockSymbols]int32
	for j := range BlockSymbols {
		keys[j] = r.uint64()
		checks[j] = r.uint32()
		counts[j] = r.int32()
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("block %d: %w", i, err)
	}
	base := i * BlockSymbols
	copy(t.keys[base:], keys[:])
	copy(t.checks[base:], checks[:])
	copy(t.counts[base:], counts[:])
	return nil
}

// AppendHead appends the encoding of the table's head to dst:
//
//	version(u8=1) manifests(zigzag uvarint) chunks(zigzag uvarint) digest[16] 128 × counter(zigzag uvarint)
func (t *Table) AppendHead(dst []byte) []byte {
	dst = append(dst, headVersion)
	dst = appendHead(dst, t.manifests, t.chunks, t.digest, &t.tow)
	return dst
}

func appendHead(dst []byte, manifests, chunks int64, digest [16]byte, tow *[towCounters]int32) []byte {
	dst = binary.AppendVarint(dst, manifests)
	dst = binary.AppendVarint(dst, chunks)
	dst = append(dst, digest[:]...)
	for _, c := range tow {
		dst = binary.AppendVarint(dst, int64(c))
	}
	return dst
}

// head is the summary of a table that travels in Open and persists in the
// head record.
type head struct {
	manifests, chunks int64
	digest            [16]byte
	tow               [towCounters]int32
}

func (r *reader) head() head {
	var h head
	h.manifests = r.varint()
	h.chunks = r.varint()
	copy(h.digest[:], r.bytes(16))
	for j := range h.tow {
		h.tow[j] = r.int32()
	}
	return h
}

// LoadHead replaces the table's head with its encoding b, as AppendHead
// wrote it. On error the table is unchanged.
func (t *Table) LoadHead(b []byte) error {
	r := reader{b: b}
	if v := r.byte(); v != headVersion && r.err == nil {
		return fmt.Errorf("%w: head version %d, want %d", ErrBadEncoding, v, headVersion)
	}
	h := r.head()
	if err := r.done(); err != nil {
		return fmt.Errorf("head: %w", err)
	}
	t.manifests, t.chunks, t.digest, t.tow = h.manifests, h.chunks, h.digest, h.tow
	return nil
}

func (t *Table) head() head {
	return head{manifests: t.manifests, chunks: t.chunks, digest: t.digest, tow: t.tow}
}
