package recon

import (
	"encoding/binary"
	"fmt"
)

// Body ops: the first byte of every body. Sent on the wire: never
// renumber.
const (
	opOpen    byte = 1 // initiator → responder: head and flags
	opInSync  byte = 2 // responder → initiator: identical, done
	opSymbols byte = 3 // responder → initiator: coded symbols [from, from+n)
	opMore    byte = 4 // initiator → responder: send [from, from+n)
	opResult  byte = 5 // initiator → responder: one part of the decoded difference
	opSummary byte = 6 // responder → initiator: one part of what it resolved
	opAbort   byte = 7 // either way: the session ends with an error
)

// msgVersion is the format version after the op byte.
const msgVersion = 1

// Limits of the bodies.
const (
	// maxBody is the largest body (wire.MaxReconBody).
	maxBody = 64 << 10
	// wireSymbol is the size of one symbol on the wire: keySum[8]
	// check[4] count mod 256 (u8).
	wireSymbol = 13
	// symbolsPerBody keeps a Symbols body under maxBody.
	symbolsPerBody = (maxBody - 32) / wireSymbol
	// maxName and maxVersion bound the strings of a name line; longer
	// ones are cut.
	maxName    = 1024
	maxVersion = 128
)

// Flags.
const (
	flagNames byte = 1 << 0 // Open: list names and versions
	flagLast  byte = 1 << 0 // Symbols, Result, Summary: last body of its batch
)

// Abort codes.
const (
	abortTooMany  byte = 1
	abortProtocol byte = 2
	abortEncoding byte = 3
)

// open is the first body:
//
//	op(1) ver(1) flags(u8) manifests(zigzag) chunks(zigzag) digest[16] 256 × counter mod 4096 (12 bits, packed big-endian, two in 3 bytes)
//
// Only the difference of two sides' counters matters and it is small for
// any difference that fits a table, so 12 bits of each counter suffice; a
// huge difference wraps and is underestimated, which costs a More round,
// never a wrong result.
type open struct {
	names             bool
	manifests, chunks int64
	digest            [16]byte
	tow               [towCounters]uint16 // mod towMod
}

const towMod = 1 << 12

// maxOpenCount bounds the counts of an Open, so differences never overflow.
const maxOpenCount = 1 << 60

func openOf(h head, names bool) open {
	o := open{names: names, manifests: h.manifests, chunks: h.chunks, digest: h.digest}
	for j, c := range h.tow {
		o.tow[j] = uint16(c) % towMod
	}
	return o
}

func (m *open) append(dst []byte) []byte {
	var f byte
	if m.names {
		f = flagNames
	}
	dst = append(dst, opOpen, msgVersion, f)
	dst = binary.AppendVarint(dst, m.manifests)
	dst = binary.AppendVarint(dst, m.chunks)
	dst = append(dst, m.digest[:]...)
	for j := 0; j < towCounters; j += 2 {
		a, b := m.tow[j], m.tow[j+1]
		dst = append(dst, byte(a>>4), byte(a<<4)|byte(b>>8), byte(b))
	}
	return dst
}

func decodeOpen(r *reader) *open {
	f := r.byte()
	if f&^flagNames != 0 {
		r.fail("unknown open flags %#x", f)
	}
	m := &open{names: f&flagNames != 0, manifests: r.varint(), chunks: r.varint()}
	if m.manifests < -maxOpenCount || m.manifests > maxOpenCount || m.chunks < -maxOpenCount || m.chunks > maxOpenCount {
		r.fail("counts %d, %d out of range", m.manifests, m.chunks)
	}
	copy(m.digest[:], r.bytes(16))
	packed := r.bytes(towCounters / 2 * 3)
	if r.err != nil {
		return nil
	}
	for j := 0; j < towCounters; j += 2 {
		p := packed[j/2*3:]
		m.tow[j] = uint16(p[0])<<4 | uint16(p[1]>>4)
		m.tow[j+1] = uint16(p[1]&0x0f)<<8 | uint16(p[2])
	}
	return m
}

// sameAs reports whether the open describes the same inventory as h.
func (m *open) sameAs(h head) bool {
	return m.manifests == h.manifests && m.chunks == h.chunks && m.digest == h.digest && openOf(h, m.names).tow == m.tow
}

// estimate returns the estimated difference between h and the open's
// inventory from the counters mod towMod.
func (m *open) estimate(h head) int64 {
	var sum int64
	for j, c := range h.tow {
		d := (int64(uint16(c)%towMod) - int64(m.tow[j]) + towMod) % towMod
		if d >= towMod/2 {
			d -= towMod
		}
		sum += d * d
	}
	return (sum + towCounters/2) / towCounters
}

// inSync confirms identical inventories: op(1) ver(1).

// symbols carries coded symbols [from, from+n) of the responder's
// snapshot of limit symbols:
//
//	op(3) ver(1) flags(u8: last) limit(uvarint) from(uvarint) n(uvarint) n × (keySum[8] check[4] count(u8))
type symbols struct {
	last  bool
	limit int
	from  int
	syms  []wireSym
}

// wireSym is a symbol as sent: its count mod 256.
type wireSym struct {
	key   uint64
	check uint32
	count uint8
}

func appendSymbols(dst []byte, last bool, limit, from int, syms []symbol) []byte {
	var f byte
	if last {
		f = flagLast
	}
	dst = append(dst, opSymbols, msgVersion, f)
	dst = binary.AppendUvarint(dst, uint64(limit))
	dst = binary.AppendUvarint(dst, uint64(from))
	dst = binary.AppendUvarint(dst, uint64(len(syms)))
	for _, s := range syms {
		dst = binary.BigEndian.AppendUint64(dst, s.key)
		dst = binary.BigEndian.AppendUint32(dst, s.check)
		dst = append(dst, uint8(s.count))
	}
	return dst
}

// more asks for symbols [from, from+n): op(4) ver(1) from(uvarint) n(uvarint).
type more struct{ from, n int }

func (m *more) append(dst []byte) []byte {
	dst = append(dst, opMore, msgVersion)
	dst = binary.AppendUvarint(dst, uint64(m.from))
	return binary.AppendUvarint(dst, uint64(m.n))
}

// lacking is a manifest the initiator holds and the responder lacks.
type lacking struct {
	key           Key
	bytes         int64
	name, version string // only with names
}

// result is one part of the initiator's decoded difference:
//
//	op(5) ver(1) flags(u8: last) refused(uvarint) chunks(uvarint) chunkBytes(uvarint)
//	n(uvarint) n × key[8]                               keys the initiator lacks
//	k(uvarint) k × (key[8] bytes(uvarint) [name version]) manifests the responder lacks
//
// name and version (uvarint length + bytes) are present when the Open
// asked for names. Counts are of the whole difference, in every part.
type result struct {
	last       bool
	refused    int64
	chunks     int64
	chunkBytes int64
	lacksHere  []Key
	lacksThere []lacking
}

func (m *result) append(dst []byte, names bool) []byte {
	var f byte
	if m.last {
		f = flagLast
	}
	dst = append(dst, opResult, msgVersion, f)
	dst = binary.AppendUvarint(dst, uint64(m.refused))
	dst = binary.AppendUvarint(dst, uint64(m.chunks))
	dst = binary.AppendUvarint(dst, uint64(m.chunkBytes))
	dst = binary.AppendUvarint(dst, uint64(len(m.lacksHere)))
	for _, k := range m.lacksHere {
		dst = binary.BigEndian.AppendUint64(dst, uint64(k))
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.lacksThere)))
	for _, l := range m.lacksThere {
		dst = binary.BigEndian.AppendUint64(dst, uint64(l.key))
		dst = binary.AppendUvarint(dst, uint64(l.bytes))
		if names {
			dst = appendString(dst, l.name)
			dst = appendString(dst, l.version)
		}
	}
	return dst
}

// summary is one part of the responder's answer to the result:
//
//	op(6) ver(1) flags(u8: last) versions(uvarint) chunks(uvarint) bytes(uvarint) refusedHeld(uvarint)
//	n(uvarint) n × key[8]                manifests of the result the responder refuses
//	k(uvarint) k × (name version)        manifests the initiator lacks, when names were asked
//
// versions, chunks and bytes count what the responder resolved of the
// keys the initiator lacks and will offer; refusedHeld counts those it
// holds but refuses itself. Counts are of the whole answer, in every part.
type summary struct {
	last         bool
	lacks        Counts
	refusedHeld  int64
	refusedThere []Key
	names        []Diff
}

func (m *summary) append(dst []byte) []byte {
	var f byte
	if m.last {
		f = flagLast
	}
	dst = append(dst, opSummary, msgVersion, f)
	dst = binary.AppendUvarint(dst, uint64(m.lacks.Versions))
	dst = binary.AppendUvarint(dst, uint64(m.lacks.Chunks))
	dst = binary.AppendUvarint(dst, uint64(m.lacks.Bytes))
	dst = binary.AppendUvarint(dst, uint64(m.refusedHeld))
	dst = binary.AppendUvarint(dst, uint64(len(m.refusedThere)))
	for _, k := range m.refusedThere {
		dst = binary.BigEndian.AppendUint64(dst, uint64(k))
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.names)))
	for _, n := range m.names {
		dst = appendString(dst, n.Name)
		dst = appendString(dst, n.Version)
	}
	return dst
}

// abort ends a session with an error: op(7) ver(1) code(u8).
func appendAbort(dst []byte, code byte) []byte { return append(dst, opAbort, msgVersion, code) }

// body is a decoded body: op and exactly the field of that op.
type body struct {
	op      byte
	open    *open
	symbols *symbols
	more    *more
	result  *result
	summary *summary
	abort   byte
}

// decodeBody decodes b strictly. names says whether Result bodies carry
// name lines (the session knows it from the Open).
func decodeBody(b []byte, names bool) (*body, error) {
	if len(b) > maxBody {
		return nil, fmt.Errorf("%w: body of %d bytes, at most %d", ErrBadEncoding, len(b), maxBody)
	}
	r := reader{b: b}
	m := &body{op: r.byte()}
	if v := r.byte(); r.err == nil && v != msgVersion {
		return nil, fmt.Errorf("%w: body version %d, want %d", ErrBadEncoding, v, msgVersion)
	}
	switch m.op {
	case opOpen:
		m.open = decodeOpen(&r)
	case opInSync:
	case opSymbols:
		m.symbols = decodeSymbols(&r)
	case opMore:
		m.more = &more{from: r.index(), n: r.index()}
	case opResult:
		m.result = decodeResult(&r, names)
	case opSummary:
		m.summary = decodeSummary(&r)
	case opAbort:
		m.abort = r.byte()
		if r.err == nil && (m.abort < abortTooMany || m.abort > abortEncoding) {
			r.fail("unknown abort code %d", m.abort)
		}
	default:
		r.fail("unknown op %d", m.op)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}

// index reads a symbol index or count, at most TableSymbols.
func (r *reader) index() int {
	v := r.uvarint()
	if v > TableSymbols {
		r.fail("index %d past the table", v)
		return 0
	}
	return int(v)
}

func (r *reader) flags() bool {
	f := r.byte()
	if f&^flagLast != 0 {
		r.fail("unknown flags %#x", f)
	}
	return f&flagLast != 0
}

func decodeSymbols(r *reader) *symbols {
	m := &symbols{last: r.flags(), limit: r.index(), from: r.index()}
	n := r.n(wireSymbol)
	if r.err == nil && (n == 0 || m.from+n > m.limit) {
		r.fail("symbols [%d, %d) outside [0, %d)", m.from, m.from+n, m.limit)
	}
	if r.err != nil {
		return nil
	}
	m.syms = make([]wireSym, n)
	for i := range m.syms {
		m.syms[i] = wireSym{key: r.uint64(), check: r.uint32(), count: r.byte()}
	}
	return m
}

func decodeResult(r *reader, names bool) *result {
	m := &result{last: r.flags(), refused: r.count(), chunks: r.count(), chunkBytes: r.count()}
	if n := r.n(8); r.err == nil {
		m.lacksHere = make([]Key, n)
		for i := range n {
			m.lacksHere[i] = Key(r.uint64())
		}
	}
	if n := r.n(9); r.err == nil {
		m.lacksThere = make([]lacking, n)
		for i := range n {
			l := &m.lacksThere[i]
			l.key, l.bytes = Key(r.uint64()), r.count()
			if names {
				l.name, l.version = r.string(maxName), r.string(maxVersion)
			}
		}
	}
	return m
}

func decodeSummary(r *reader) *summary {
	m := &summary{last: r.flags()}
	m.lacks = Counts{Versions: r.count(), Chunks: r.count(), Bytes: r.count()}
	m.refusedHeld = r.count()
	if n := r.n(8); r.err == nil {
		m.refusedThere = make([]Key, n)
		for i := range n {
			m.refusedThere[i] = Key(r.uint64())
		}
	}
	if n := r.n(2); r.err == nil {
		m.names = make([]Diff, n)
		for i := range n {
			m.names[i] = Diff{LacksHere: true, Name: r.string(maxName), Version: r.string(maxVersion)}
		}
	}
	return m
}
