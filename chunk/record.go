package chunk

import "hash/crc32"

// RecordHeaderSize is the size of the header before each payload in a
// pack.
const RecordHeaderSize = headerSize

// Record describes one record of a pack: where it starts (its header)
// and what its header says.
type Record struct {
	Offset    int64
	ID        ID
	Codec     Codec
	StoredLen uint32 // payload bytes after the header
	RawLen    uint32 // bytes the payload decodes to
}

// End returns the offset just past the record's payload.
func (r Record) End() int64 { return r.Offset + headerSize + int64(r.StoredLen) }

// ParseRecordHeader decodes and checks the record header at the start
// of b (its magic, checksum and lengths); the offset is left 0. Packs
// that describe their records (a bucket's trailers) use it.
func ParseRecordHeader(b []byte) (Record, error) {
	h, err := decodeHeader(b)
	if err != nil {
		return Record{}, err
	}
	return Record{ID: h.id, Codec: h.codec, StoredLen: h.storedLen, RawLen: h.rawLen}, nil
}

// EncodeRecord returns a record as the Store writes it to a pack: its
// header, then payload. For tests and tools that build packs.
func EncodeRecord(id ID, c Codec, payload []byte, rawLen uint32) []byte {
	b := make([]byte, headerSize, headerSize+len(payload))
	header{id: id, codec: c, storedLen: uint32(len(payload)), rawLen: rawLen, payloadCRC: crc32.Checksum(payload, castagnoli)}.put(b)
	return append(b, payload...)
}
