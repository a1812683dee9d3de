package bucket

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/skyfed/skyfed/chunk"
)

// buildPack returns a pack object as a writer makes it: records, then
// the trailer listing them.
func buildPack(t testing.TB, sizes ...int) ([]byte, []chunk.Record) {
	var obj, entries []byte
	var recs []chunk.Record
	for _, n := range sizes {
		payload := make([]byte, n)
		_, _ = rand.Read(payload)
		rec := chunk.EncodeRecord(chunk.Sum(payload), chunk.CodecRaw, payload, uint32(n))
		entries = binary.BigEndian.AppendUint64(entries, uint64(len(obj)))
		entries = append(entries, rec[:chunk.RecordHeaderSize]...)
		recs = append(recs, chunk.Record{Offset: int64(len(obj)), ID: chunk.Sum(payload), Codec: chunk.CodecRaw, StoredLen: uint32(n), RawLen: uint32(n)})
		obj = append(obj, rec...)
	}
	return appendTrailer(obj, entries, int64(len(obj))), recs
}

// readTrailer reads a whole object's trailer as a rebuild does with two
// ranged reads.
func readTrailer(obj []byte) ([]chunk.Record, error) {
	if len(obj) < tailSize {
		return nil, ErrBadTrailer
	}
	n, end, sum, err := parseTail(obj[len(obj)-tailSize:])
	if err != nil {
		return nil, err
	}
	start := len(obj) - tailSize - n*entrySize
	if start < 0 || int64(start) != end {
		return nil, ErrBadTrailer
	}
	return parseEntries(obj[start:len(obj)-tailSize+12], n, end, sum)
}

func TestTrailerRoundTripAndDamage(t *testing.T) {
	obj, want := buildPack(t, 10, 0, 5000, 1)
	got, err := readTrailer(obj)
	if err != nil || len(got) != len(want) {
		t.Fatalf("trailer: %v, %d records", err, len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, at := range []int{len(obj) - 1, len(obj) - tailSize + 2, len(obj) - tailSize - 3, len(obj) - tailSize - entrySize + 1} {
		bad := bytes.Clone(obj)
		bad[at] ^= 0x40
		if _, err := readTrailer(bad); !errors.Is(err, ErrBadTrailer) {
			t.Errorf("a flipped byte at %d of %d: %v, want ErrBadTrailer", at, len(obj), err)
		}
	}
}

func FuzzTrailer(f *testing.F) {
	obj, _ := buildPack(f, 3, 100)
	f.Add(obj)
	f.Add(obj[len(obj)-tailSize:])
	f.Add([]byte(trailerMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := readTrailer(b)
		if err != nil {
			return
		}
		var next int64
		for _, r := range recs {
			if r.Offset < next {
				t.Fatalf("records out of order: %+v", recs)
			}
			next = r.End()
		}
	})
}

func TestManifestLogObjectRoundTripAndDamage(t *testing.T) {
	a, b := chunk.ID{1}, chunk.ID{2}
	entries := appendMlogEntry(appendMlogEntry(nil, mlogManifest, a, []byte("signed manifest")), mlogCollected, b, nil)
	obj := mlogObject(entries)
	got, err := parseMlog(obj)
	if err != nil || len(got) != 2 || got[0].ID != a || string(got[0].Encoding) != "signed manifest" || !got[1].Collected || got[1].ID != b {
		t.Fatalf("parse: %+v, %v", got, err)
	}
	for at := range obj {
		bad := bytes.Clone(obj)
		bad[at] ^= 1
		if _, err := parseMlog(bad); !errors.Is(err, ErrBadManifestLog) {
			t.Fatalf("a flipped byte at %d of %d: %v", at, len(obj), err)
		}
	}
}

func FuzzManifestLog(f *testing.F) {
	f.Add(mlogObject(appendMlogEntry(nil, mlogManifest, chunk.ID{1}, []byte("m"))))
	f.Add([]byte(mlogMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseMlog(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Collected != (e.Encoding == nil) {
				t.Fatalf("entry %+v", e)
			}
		}
	})
}
