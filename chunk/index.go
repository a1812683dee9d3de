package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Index keys are keyPrefix followed by the 32 bytes of the ID. The Pebble DB
// is shared: this package owns exactly the keys that start with keyPrefix.
const keyPrefix = 'c'

// indexKey returns the index key of id.
func indexKey(id ID) []byte {
	k := make([]byte, 1+len(id))
	k[0] = keyPrefix
	copy(k[1:], id[:])
	return k
}

// entry says where a chunk's payload lives.
type entry struct {
	pack      uint32 // pack file number
	offset    int64  // offset of the record header in the pack file
	storedLen uint32 // payload bytes after the record header
	rawLen    uint32 // raw bytes the payload decodes to
	codec     Codec
}

// Index value layout (entrySize bytes, little endian):
//
//	[0]     format version (entryVersion)
//	[1]     codec
//	[2:6]   pack number
//	[6:14]  record offset
//	[14:18] stored length
//	[18:22] raw length
const (
	entryVersion = 1
	entrySize    = 22
)

var errBadEntry = errors.New("malformed chunk index entry")

// appendTo appends the encoding of e to b.
func (e entry) appendTo(b []byte) []byte {
	b = append(b, entryVersion, byte(e.codec))
	b = binary.LittleEndian.AppendUint32(b, e.pack)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.offset))
	b = binary.LittleEndian.AppendUint32(b, e.storedLen)
	return binary.LittleEndian.AppendUint32(b, e.rawLen)
}

// decodeEntry decodes and validates an index value.
func decodeEntry(b []byte) (entry, error) {
	if len(b) != entrySize {
		return entry{}, fmt.Errorf("%w: %d bytes, want %d", errBadEntry, len(b), entrySize)
	}
	if b[0] != entryVersion {
		return entry{}, fmt.Errorf("%w: version %d", errBadEntry, b[0])
	}
	e := entry{
		codec:     Codec(b[1]),
		pack:      binary.LittleEndian.Uint32(b[2:6]),
		offset:    int64(binary.LittleEndian.Uint64(b[6:14])),
		storedLen: binary.LittleEndian.Uint32(b[14:18]),
		rawLen:    binary.LittleEndian.Uint32(b[18:22]),
	}
	if err := e.validate(); err != nil {
		return entry{}, err
	}
	return e, nil
}

// validate checks the invariants every stored chunk keeps.
func (e entry) validate() error {
	switch {
	case !e.codec.Valid():
		return fmt.Errorf("%w: unknown codec %d", errBadEntry, byte(e.codec))
	case e.offset < 0:
		return fmt.Errorf("%w: negative offset", errBadEntry)
	case e.storedLen > MaxSize || e.rawLen > MaxSize:
		return fmt.Errorf("%w: lengths %d/%d exceed %d", errBadEntry, e.storedLen, e.rawLen, MaxSize)
	case e.codec == CodecRaw && e.storedLen != e.rawLen:
		return fmt.Errorf("%w: raw payload of %d bytes for %d raw bytes", errBadEntry, e.storedLen, e.rawLen)
	}
	return nil
}

// Record header in a pack file, before each payload (headerSize bytes, little endian):
//
//	[0:4]   magic "SKC1"
//	[4:36]  chunk ID
//	[36]    codec
//	[37:41] stored length
//	[41:45] raw length
//	[45:49] CRC-32C of the payload
//	[49:53] CRC-32C of bytes [0:49]
//
// Reads go by the index's offset; the header lets a scrub walk a pack file
// and lets a read check that the index points at the record it expects.
const headerSize = 53

var (
	recordMagic  = [4]byte{'S', 'K', 'C', '1'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
	errBadHeader = errors.New("malformed pack record header")
)

// header is a decoded record header.
type header struct {
	id         ID
	codec      Codec
	storedLen  uint32
	rawLen     uint32
	payloadCRC uint32
}

// put writes h into b[:headerSize].
func (h header) put(b []byte) {
	copy(b[0:4], recordMagic[:])
	copy(b[4:36], h.id[:])
	b[36] = byte(h.codec)
	binary.LittleEndian.PutUint32(b[37:41], h.storedLen)
	binary.LittleEndian.PutUint32(b[41:45], h.rawLen)
	binary.LittleEndian.PutUint32(b[45:49], h.payloadCRC)
	binary.LittleEndian.PutUint32(b[49:53], crc32.Checksum(b[:49], castagnoli))
}

// decodeHeader decodes and checks a record header.
func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("%w: %d bytes, want %d", errBadHeader, len(b), headerSize)
	}
	if [4]byte(b[0:4]) != recordMagic {
		return header{}, fmt.Errorf("%w: bad magic %x", errBadHeader, b[0:4])
	}
	if got, want := crc32.Checksum(b[:49], castagnoli), binary.LittleEndian.Uint32(b[49:53]); got != want {
		return header{}, fmt.Errorf("%w: header checksum %08x, want %08x", errBadHeader, got, want)
	}
	h := header{
		id:         ID(b[4:36]),
		codec:      Codec(b[36]),
		storedLen:  binary.LittleEndian.Uint32(b[37:41]),
		rawLen:     binary.LittleEndian.Uint32(b[41:45]),
		payloadCRC: binary.LittleEndian.Uint32(b[45:49]),
	}
	e := entry{codec: h.codec, storedLen: h.storedLen, rawLen: h.rawLen}
	if err := e.validate(); err != nil {
		return header{}, fmt.Errorf("%w: %v", errBadHeader, err)
	}
	return h, nil
}

// matches reports whether the header describes the chunk the index entry expects.
func (h header) matches(id ID, e entry) bool {
	return h.id == id && h.codec == e.codec && h.storedLen == e.storedLen && h.rawLen == e.rawLen
}
