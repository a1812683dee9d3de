package recon

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
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

// towCounters is the number of tug-of-war counters. 256 rather than 128:
// the estimate's relative error is sqrt(2/towCounters), 8.8 % instead of
// 12.5 %, which is what keeps a difference of 1000 inside one batch of
// symbols and 64 KiB nearly always; on the wire each counter takes 12 bits.
const towCounters = 256

// Format versions of the persisted block and head.
const (
	blockVersion = 1
	headVersion  = 1
)

// Table is a site's reconciliation state, kept incrementally: the coded
// symbols (about 4 MiB), the item counts per kind, a
// 16-byte XOR digest of the items, the tug-of-war counters and the
// blocks changed since the last ClearDirty. It is not safe for
// concurrent use.
type Table struct {
	syms []symbol // TableSymbols coded symbols

	manifests, chunks int64
	digest            [16]byte
	ones              [towCounters]int32 // see towAdd
	dirty             [Blocks / 64]uint64
}

// NewTable returns the table of an empty inventory.
func NewTable() *Table {
	return &Table{
		syms: make([]symbol, TableSymbols),
	}
}

// symbol is one coded symbol: the XOR of the keys and of the checks of
// the items mapped to it, and their signed count. One cache line holds it
// whole, so a Toggle misses the cache once per symbol.
type symbol struct {
	key   uint64
	check uint32
	count int32
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
		s := &t.syms[m.idx]
		s.key ^= uint64(k)
		s.check ^= c
		s.count += d
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
	towAdd(&t.ones, hi, lo, d)
}

// towAdd counts an item (d = ±1) in ones: counter j of the tug-of-war
// sketch is the signed number of items minus twice ones[j], the signed
// number of items whose sign bit j is set. The sign bits of counters
// 0..127 are (hi, lo), ID bytes 8..24; those of 128..255 their mix64,
// which for random words are as good as independent.
func towAdd(ones *[towCounters]int32, hi, lo uint64, d int32) {
	for w, word := range [4]uint64{hi, lo, mix64(hi), mix64(lo)} {
		c := ones[64*w : 64*w+64]
		for word != 0 {
			c[bits.TrailingZeros64(word)] += d
			word &= word - 1
		}
	}
}

// tow returns the tug-of-war counters.
func (t *Table) tow() [towCounters]int32 {
	var c [towCounters]int32
	n := int32(t.manifests + t.chunks)
	for j, o := range t.ones {
		c[j] = n - 2*o
	}
	return c
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
	if t.manifests != o.manifests || t.chunks != o.chunks || t.digest != o.digest || t.ones != o.ones {
		return false
	}
	return slices.Equal(t.syms, o.syms)
}

// Clone returns a deep copy of t.
func (t *Table) Clone() *Table {
	c := *t
	c.syms = slices.Clone(t.syms)
	return &c
}

// AppendBlock appends the encoding of block i (0 ≤ i < Blocks) to dst:
//
//	version(u8=1) BlockSymbols × (keySum[8] check[4] count(zigzag uvarint))
func (t *Table) AppendBlock(dst []byte, i int) []byte {
	dst = append(dst, blockVersion)
	for j := i * BlockSymbols; j < (i+1)*BlockSymbols; j++ {
		s := t.syms[j]
		dst = binary.BigEndian.AppendUint64(dst, s.key)
		dst = binary.BigEndian.AppendUint32(dst, s.check)
		dst = binary.AppendVarint(dst, int64(s.count))
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
	var syms [BlockSymbols]symbol
	for j := range syms {
		syms[j] = symbol{key: r.uint64(), check: r.uint32(), count: r.int32()}
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("block %d: %w", i, err)
	}
	base := i * BlockSymbols
	copy(t.syms[base:], syms[:])
	return nil
}

// AppendHead appends the encoding of the table's head to dst:
//
//	version(u8=1) manifests(zigzag uvarint) chunks(zigzag uvarint) digest[16] 256 × ones(zigzag uvarint)
//
// ones[j] is the signed number of items whose tug-of-war sign bit j is set.
func (t *Table) AppendHead(dst []byte) []byte {
	dst = append(dst, headVersion)
	dst = binary.AppendVarint(dst, t.manifests)
	dst = binary.AppendVarint(dst, t.chunks)
	dst = append(dst, t.digest[:]...)
	for _, c := range t.ones {
		dst = binary.AppendVarint(dst, int64(c))
	}
	return dst
}

// head is the summary of a table that travels in Open.
type head struct {
	manifests, chunks int64
	digest            [16]byte
	tow               [towCounters]int32
}

// LoadHead replaces the table's head with its encoding b, as AppendHead
// wrote it. On error the table is unchanged.
func (t *Table) LoadHead(b []byte) error {
	r := reader{b: b}
	if v := r.byte(); v != headVersion && r.err == nil {
		return fmt.Errorf("%w: head version %d, want %d", ErrBadEncoding, v, headVersion)
	}
	manifests, chunks := r.varint(), r.varint()
	digest := r.bytes(16)
	var ones [towCounters]int32
	for j := range ones {
		ones[j] = r.int32()
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("head: %w", err)
	}
	t.manifests, t.chunks, t.ones = manifests, chunks, ones
	copy(t.digest[:], digest)
	return nil
}

func (t *Table) head() head {
	return head{manifests: t.manifests, chunks: t.chunks, digest: t.digest, tow: t.tow()}
}
