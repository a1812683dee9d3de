package recon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Sentinel errors. Each is returned wrapped with the reason.
var (
	// ErrBadEncoding reports a body, block or head that does not decode.
	ErrBadEncoding = errors.New("recon: malformed encoding")
	// ErrTooManyDifferences reports a difference larger than the session
	// may decode (Options.MaxItems or the table's symbols).
	ErrTooManyDifferences = errors.New("recon: too many differences")
	// ErrProtocol reports a step the session did not expect, or symbols
	// that contradict each other.
	ErrProtocol = errors.New("recon: protocol violation")
)

// reader decodes strictly: fixed-width big-endian integers and minimal
// uvarints, bounded by the input; the first failure sticks in err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBadEncoding, fmt.Sprintf(format, args...))
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// uvarint reads a minimal uvarint.
func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	if n != uvarintLen(v) {
		r.fail("non-minimal uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// varint reads a zigzag varint.
func (r *reader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// int32 reads a zigzag varint that fits an int32.
func (r *reader) int32() int32 {
	v := r.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail("counter out of range")
		return 0
	}
	return int32(v)
}

// count reads a non-negative count of at most maxCount.
func (r *reader) count() int64 {
	v := r.uvarint()
	if v > maxCount {
		r.fail("count %d too large", v)
		return 0
	}
	return int64(v)
}

// n reads a number of elements of at least size bytes each that must
// still fit in the input.
func (r *reader) n(size int) int {
	v := r.uvarint()
	if r.err == nil && v > uint64(len(r.b)/size) {
		r.fail("%d elements of %d bytes in %d bytes", v, size, len(r.b))
		return 0
	}
	return int(v)
}

func (r *reader) string(max int) string {
	n := r.uvarint()
	if r.err == nil && n > uint64(max) {
		r.fail("string of %d bytes, at most %d", n, max)
		return ""
	}
	return string(r.bytes(int(n)))
}

// done fails unless every byte was read.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// maxCount bounds every count and byte total on the wire.
const maxCount = 1 << 62

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
