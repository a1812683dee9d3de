// Package manifest owns the manifest type (the signed record of one
// version of a named object), its canonical encoding, signing and
// verification with ed25519, version stamps (a hybrid logical clock) and
// the ordering of versions. It does no I/O: storing, indexing and shipping
// manifests belong to chunk, naming and forward; name syntax and which
// keys may write under a domain belong to naming and site.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/skyfed/skyfed/chunk"
)

// FormatVersion is the first byte of every encoded manifest.
const FormatVersion byte = 1

// Sentinel errors; every error from this package wraps one of them.
var (
	ErrMalformed    = errors.New("malformed manifest")
	ErrBadSignature = errors.New("bad manifest signature")
	ErrBadStamp     = errors.New("malformed version stamp")
	ErrBadKey       = errors.New("malformed public key")
)

// Limits checked by Validate and Decode.
const (
	maxNameLen        = 1024
	maxContentTypeLen = 256
	maxMetaPairs      = 64
	maxMetaKeyLen     = 128
	maxMetaValueLen   = 1024
	maxChunkSize      = 64 << 20
	maxEncodedLen     = 64 << 20
	signatureLen      = 64
	flagTombstone     = 1
)

// Meta is one user metadata pair. Manifest.Meta is sorted by Key
// (bytewise) with unique, non-empty keys.
type Meta struct{ Key, Value string }

// Manifest is the record of one version of a named object.
type Manifest struct {
	// Signed fields, in encoding order.
	Name        string     // full name "domain/path"; here only 1..1024 bytes of valid UTF-8
	Stamp       Stamp      // version stamp; Stamp.Origin is the site that made the version
	Size        int64      // object size in bytes (0 for tombstones)
	ChunkSize   uint32     // chunk size used to split, 1..64 MiB (a tombstone may leave it 0)
	Chunks      []chunk.ID // len == ceil(Size/ChunkSize); empty for Size 0 and for tombstones
	SHA256      [32]byte   // whole-object SHA-256 (zero for tombstones)
	ContentType string     // at most 256 bytes
	Meta        []Meta     // sorted by Key, unique keys, <= 64 pairs, key <= 128 and value <= 1024 bytes
	Expires     int64      // unix ms; 0 = never
	Tombstone   bool       // this version deletes the name
	Signer      PublicKey  // key that made Signature

	// Not signed.
	Signature []byte // 64-byte ed25519 signature over SigningBytes(); empty while unsigned
}

// Sign sets m.Signer to s's public key and m.Signature to its signature
// over the signed fields. Change no signed field afterwards.
func (m *Manifest) Sign(s Signer) {
	m.Signer = s.PublicKey()
	m.Signature = s.Sign(m.SigningBytes())
}

// Verify checks that m.Signature is m.Signer's signature over the signed
// fields. It does not decide whether m.Signer may write m.Name.
func (m *Manifest) Verify() error {
	if !m.Signer.Verify(m.SigningBytes(), m.Signature) {
		return fmt.Errorf("%w: %q version %s by %s", ErrBadSignature, clip(m.Name), m.Stamp, m.Signer)
	}
	return nil
}

// ID is the SHA-256 of the manifest's encoding, its key in the chunk store.
func (m *Manifest) ID() chunk.ID { return chunk.ID(sha256.Sum256(m.Encode())) }

// Version is the stamp in text form, which sorts lexically in version order.
func (m *Manifest) Version() string { return m.Stamp.String() }

// Expired reports whether the version has an expiry that now has reached.
func (m *Manifest) Expired(now time.Time) bool {
	return m.Expires != 0 && now.UnixMilli() >= m.Expires
}

// Deleted reports whether the version is a tombstone or expired at now.
func (m *Manifest) Deleted(now time.Time) bool { return m.Tombstone || m.Expired(now) }

// Newer reports whether a is a newer version than b.
func Newer(a, b *Manifest) bool { return a.Stamp.Compare(b.Stamp) > 0 }

// SortNewestFirst sorts ms by stamp, newest first; the sort is stable.
func SortNewestFirst(ms []*Manifest) {
	slices.SortStableFunc(ms, func(a, b *Manifest) int { return b.Stamp.Compare(a.Stamp) })
}

// Validate checks the structural rules documented on the fields; the
// error wraps ErrMalformed and names the field.
func (m *Manifest) Validate() error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

func (m *Manifest) validate() error {
	if len(m.Name) == 0 || len(m.Name) > maxNameLen {
		return fmt.Errorf("name length %d outside 1..%d", len(m.Name), maxNameLen)
	}
	if !utf8.ValidString(m.Name) {
		return fmt.Errorf("name %q is not valid UTF-8", clip(m.Name))
	}
	if err := m.Stamp.check(); err != nil {
		return fmt.Errorf("stamp: %w", err)
	}
	if err := m.validateContent(); err != nil {
		return err
	}
	if len(m.ContentType) > maxContentTypeLen {
		return fmt.Errorf("content type length %d exceeds %d", len(m.ContentType), maxContentTypeLen)
	}
	if err := validateMeta(m.Meta); err != nil {
		return err
	}
	if m.Expires < 0 {
		return fmt.Errorf("expires %d is negative", m.Expires)
	}
	if n := len(m.Signature); n != 0 && n != signatureLen {
		return fmt.Errorf("signature length %d, want %d (or 0 while unsigned)", n, signatureLen)
	}
	if n := m.encodedLen(); n > maxEncodedLen {
		return fmt.Errorf("encoded size %d exceeds %d", n, maxEncodedLen)
	}
	return nil
}

// validateContent checks Size, ChunkSize, Chunks and SHA256.
func (m *Manifest) validateContent() error {
	if m.Size < 0 {
		return fmt.Errorf("size %d is negative", m.Size)
	}
	if m.Tombstone {
		switch {
		case m.Size != 0:
			return fmt.Errorf("tombstone has size %d, want 0", m.Size)
		case len(m.Chunks) != 0:
			return fmt.Errorf("tombstone has %d chunks, want 0", len(m.Chunks))
		case m.SHA256 != [32]byte{}:
			return fmt.Errorf("tombstone has a non-zero sha256")
		case m.ChunkSize > maxChunkSize:
			return fmt.Errorf("chunk size %d exceeds %d", m.ChunkSize, maxChunkSize)
		}
		return nil
	}
	if m.ChunkSize == 0 || m.ChunkSize > maxChunkSize {
		return fmt.Errorf("chunk size %d outside 1..%d", m.ChunkSize, maxChunkSize)
	}
	cs := int64(m.ChunkSize)
	want := m.Size / cs
	if m.Size%cs != 0 {
		want++
	}
	if int64(len(m.Chunks)) != want {
		return fmt.Errorf("chunks: %d listed, want %d for size %d and chunk size %d", len(m.Chunks), want, m.Size, cs)
	}
	return nil
}

func validateMeta(meta []Meta) error {
	if len(meta) > maxMetaPairs {
		return fmt.Errorf("meta: %d pairs exceed %d", len(meta), maxMetaPairs)
	}
	for i, kv := range meta {
		switch {
		case len(kv.Key) == 0 || len(kv.Key) > maxMetaKeyLen:
			return fmt.Errorf("meta[%d]: key length %d outside 1..%d", i, len(kv.Key), maxMetaKeyLen)
		case len(kv.Value) > maxMetaValueLen:
			return fmt.Errorf("meta %q: value length %d exceeds %d", kv.Key, len(kv.Value), maxMetaValueLen)
		case i > 0 && meta[i-1].Key >= kv.Key:
			return fmt.Errorf("meta %q: keys not sorted and unique", kv.Key)
		}
	}
	return nil
}

// Encoding, format version 1. Integers are fixed-width big-endian;
// "uvarint" is encoding/binary's unsigned varint in its minimal form;
// "bytes" is a uvarint length followed by that many bytes.
//
//	u8       format version (1)
//	bytes    name
//	u64      stamp wall ms
//	u16      stamp counter
//	bytes    stamp origin
//	u64      size
//	u32      chunk size
//	uvarint  chunk count, then count × 32-byte chunk ID
//	32 bytes whole-object SHA-256
//	bytes    content type
//	uvarint  meta count, then count × (bytes key, bytes value)
//	u64      expires (unix ms, 0 = never)
//	u8       flags: bit 0 = tombstone, other bits 0
//	32 bytes signer public key
//	         (SigningBytes ends here)
//	bytes    signature (length 64, or 0 while unsigned)

// SigningBytes returns the canonical encoding of the signed fields.
func (m *Manifest) SigningBytes() []byte {
	return m.appendSigned(make([]byte, 0, m.signedLen()))
}

// Encode returns the canonical encoding: SigningBytes then the signature.
func (m *Manifest) Encode() []byte {
	b := m.appendSigned(make([]byte, 0, m.encodedLen()))
	return appendBytes(b, m.Signature)
}

func (m *Manifest) appendSigned(b []byte) []byte {
	b = append(b, FormatVersion)
	b = appendBytes(b, []byte(m.Name))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Stamp.WallMS))
	b = binary.BigEndian.AppendUint16(b, m.Stamp.Counter)
	b = appendBytes(b, []byte(m.Stamp.Origin))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	b = binary.AppendUvarint(b, uint64(len(m.Chunks)))
	for _, id := range m.Chunks {
		b = append(b, id[:]...)
	}
	b = append(b, m.SHA256[:]...)
	b = appendBytes(b, []byte(m.ContentType))
	b = binary.AppendUvarint(b, uint64(len(m.Meta)))
	for _, kv := range m.Meta {
		b = appendBytes(b, []byte(kv.Key))
		b = appendBytes(b, []byte(kv.Value))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.Expires))
	var flags byte
	if m.Tombstone {
		flags |= flagTombstone
	}
	b = append(b, flags)
	return append(b, m.Signer[:]...)
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// signedLen is len(m.SigningBytes()), computed without encoding.
func (m *Manifest) signedLen() int {
	n := 1 + bytesLen(len(m.Name)) + 8 + 2 + bytesLen(len(m.Stamp.Origin)) + 8 + 4
	n += uvarintLen(uint64(len(m.Chunks))) + 32*len(m.Chunks) + 32
	n += bytesLen(len(m.ContentType)) + uvarintLen(uint64(len(m.Meta)))
	for _, kv := range m.Meta {
		n += bytesLen(len(kv.Key)) + bytesLen(len(kv.Value))
	}
	return n + 8 + 1 + 32
}

func (m *Manifest) encodedLen() int { return m.signedLen() + bytesLen(len(m.Signature)) }

func bytesLen(n int) int { return uvarintLen(uint64(n)) + n }

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// Decode parses a canonical encoding. It accepts exactly the bytes that
// Encode produces for a manifest that passes Validate, so for every
// accepted b, Encode(Decode(b)) == b. It does not verify the signature.
func Decode(b []byte) (*Manifest, error) {
	if len(b) > maxEncodedLen {
		return nil, fmt.Errorf("%w: %d bytes exceed %d", ErrMalformed, len(b), maxEncodedLen)
	}
	m, err := decodeFields(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !bytes.Equal(m.Encode(), b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return m, nil
}

func decodeFields(b []byte) (*Manifest, error) {
	d := &decoder{b: b}
	if v := d.u8("format version"); d.err == nil && v != FormatVersion {
		return nil, fmt.Errorf("unknown format version %d (this build reads %d)", v, FormatVersion)
	}
	m := &Manifest{}
	m.Name = d.str("name", maxNameLen)
	m.Stamp.WallMS = int64(d.fixed("stamp wall clock", 8))
	m.Stamp.Counter = uint16(d.fixed("stamp counter", 2))
	m.Stamp.Origin = d.str("stamp origin", maxSiteIDLen)
	m.Size = int64(d.fixed("size", 8))
	m.ChunkSize = uint32(d.fixed("chunk size", 4))
	m.Chunks = d.chunks()
	copy(m.SHA256[:], d.take(32, "sha256"))
	m.ContentType = d.str("content type", maxContentTypeLen)
	m.Meta = d.meta()
	m.Expires = int64(d.fixed("expires", 8))
	if flags := d.u8("flags"); flags&^flagTombstone != 0 {
		d.fail("flags: unknown bits %#x", flags&^flagTombstone)
	} else {
		m.Tombstone = flags&flagTombstone != 0
	}
	copy(m.Signer[:], d.take(32, "signer"))
	if sig := d.take(d.length("signature", signatureLen), "signature"); len(sig) > 0 {
		m.Signature = bytes.Clone(sig)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return m, d.err
}

// decoder reads fields from b; after the first error every read returns
// a zero value and err keeps that first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) take(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s: truncated: need %d bytes, have %d", what, n, len(d.b))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8(what string) byte {
	if p := d.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

// fixed reads an n-byte big-endian unsigned integer.
func (d *decoder) fixed(what string, n int) uint64 {
	var v uint64
	for _, c := range d.take(uint64(n), what) {
		v = v<<8 | uint64(c)
	}
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n <= 0:
		d.fail("%s: bad varint", what)
		return 0
	case n != uvarintLen(v):
		d.fail("%s: non-minimal varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a uvarint that must not exceed limit.
func (d *decoder) length(what string, limit int) uint64 {
	n := d.uvarint(what)
	if n > uint64(limit) {
		d.fail("%s: length %d exceeds %d", what, n, limit)
		return 0
	}
	return n
}

func (d *decoder) str(what string, limit int) string {
	return string(d.take(d.length(what, limit), what))
}

func (d *decoder) chunks() []chunk.ID {
	n := d.uvarint("chunk count")
	if d.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(d.b))/32 {
		d.fail("chunks: truncated: %d listed, room for %d", n, len(d.b)/32)
		return nil
	}
	ids := make([]chunk.ID, n)
	for i := range ids {
		copy(ids[i][:], d.take(32, "chunk"))
	}
	return ids
}

func (d *decoder) meta() []Meta {
	n := d.length("meta count", maxMetaPairs)
	if d.err != nil || n == 0 {
		return nil
	}
	meta := make([]Meta, n)
	for i := range meta {
		meta[i].Key = d.str("meta key", maxMetaKeyLen)
		meta[i].Value = d.str("meta value", maxMetaValueLen)
	}
	return meta
}
