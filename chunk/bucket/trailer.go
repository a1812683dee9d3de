package bucket

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/skyfed/skyfed/chunk"
)

// A pack object is its records as the Store wrote them, then a trailer
// that lists them, so a pack describes itself to a reader that has only
// the bucket (site rebuild) with two ranged reads:
//
//	records | entries | count(4) | recordsEnd(8) | sha256(entries, count, recordsEnd)(32) | magic(8)
//
// Each entry is a record's offset (8, big endian) and a copy of its
// header (chunk.RecordHeaderSize bytes, which carries its own checksum).
const (
	trailerMagic = "SKYFPAK1"
	tailSize     = 4 + 8 + sha256.Size + len(trailerMagic)
	entrySize    = 8 + chunk.RecordHeaderSize
	// maxEntries bounds a trailer a reader accepts (a pack of 64 GiB of
	// empty chunks would not reach it).
	maxEntries = 1 << 24
)

// ErrBadTrailer says a pack object's trailer is damaged or not there.
var ErrBadTrailer = errors.New("bad pack trailer")

// appendTrailer appends the trailer listing entries (offset, header
// bytes) to b.
func appendTrailer(b []byte, entries []byte, recordsEnd int64) []byte {
	b = append(b, entries...)
	n := len(entries) / entrySize
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint64(b, uint64(recordsEnd))
	sum := sha256.Sum256(b[len(b)-len(entries)-12:])
	b = append(b, sum[:]...)
	return append(b, trailerMagic...)
}

// parseTail reads the fixed tail of a pack object: how many entries
// the trailer has and where the records end.
func parseTail(tail []byte) (count int, recordsEnd int64, sum [sha256.Size]byte, err error) {
	if len(tail) != tailSize || string(tail[tailSize-len(trailerMagic):]) != trailerMagic {
		return 0, 0, sum, fmt.Errorf("%w: no trailer magic", ErrBadTrailer)
	}
	n := binary.BigEndian.Uint32(tail[0:4])
	end := binary.BigEndian.Uint64(tail[4:12])
	if n > maxEntries || end > 1<<50 {
		return 0, 0, sum, fmt.Errorf("%w: %d entries, records end at %d", ErrBadTrailer, n, end)
	}
	copy(sum[:], tail[12:12+sha256.Size])
	return int(n), int64(end), sum, nil
}

// parseEntries checks the trailer's entries (b: entries, count,
// recordsEnd, as hashed) against its hash and decodes them: records in
// order, each header valid, none past recordsEnd.
func parseEntries(b []byte, count int, recordsEnd int64, sum [sha256.Size]byte) ([]chunk.Record, error) {
	if len(b) != count*entrySize+12 {
		return nil, fmt.Errorf("%w: %d bytes for %d entries", ErrBadTrailer, len(b), count)
	}
	if sha256.Sum256(b) != sum {
		return nil, fmt.Errorf("%w: hash mismatch", ErrBadTrailer)
	}
	if !bytes.Equal(b[len(b)-12:], binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, uint32(count)), uint64(recordsEnd))) {
		return nil, fmt.Errorf("%w: tail disagrees with the hashed count", ErrBadTrailer)
	}
	recs := make([]chunk.Record, 0, count)
	var next int64
	for i := range count {
		e := b[i*entrySize : (i+1)*entrySize]
		r, err := chunk.ParseRecordHeader(e[8:])
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrBadTrailer, i, err)
		}
		r.Offset = int64(binary.BigEndian.Uint64(e[:8]))
		if r.Offset < next || r.End() > recordsEnd {
			return nil, fmt.Errorf("%w: entry %d at %d overlaps or passes the records' end %d", ErrBadTrailer, i, r.Offset, recordsEnd)
		}
		next = r.End()
		recs = append(recs, r)
	}
	return recs, nil
}
