package naming

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// Key prefixes of the version index in the site's Pebble DB. The chunk
// store owns 'c'; these are naming's.
const (
	prefixManifest = 'm' // 'm' + manifest ID → canonical manifest encoding
	prefixVersion  = 'v' // 'v' + name hash + stamp key → manifest ID
	prefixName     = 'n' // 'n' + name → nothing (listing by prefix)
	prefixContent  = 's' // 's' + whole-object SHA-256 + manifest ID → nothing

	// The incomplete-version tracker (incomplete.go): versions indexed
	// here whose chunks are not all stored yet.
	prefixWaiting    = 'w' // 'w' + chunk ID + manifest ID → bytes of that chunk's occurrences in that version (uint64 BE)
	prefixIncomplete = 'i' // 'i' + manifest ID → chunks still missing (distinct, uint32 BE) + bytes still missing (uint64 BE)
	prefixMeta       = 'x' // 'x' + "incomplete" → tracker format (one byte); absent or another format: rebuild at open

	// Manifests removed by garbage collection (gc.go), kept so that no
	// peer can bring them back.
	prefixCollected = 'g' // 'g' + manifest ID → nothing
)

func collectedKey(id chunk.ID) []byte {
	return append([]byte{prefixCollected}, id[:]...)
}

func manifestKey(id chunk.ID) []byte {
	return append([]byte{prefixManifest}, id[:]...)
}

// stampKey encodes a stamp so that byte order is version order.
func stampKey(s manifest.Stamp) []byte {
	k := make([]byte, 10, 10+len(s.Origin))
	binary.BigEndian.PutUint64(k, uint64(s.WallMS))
	binary.BigEndian.PutUint16(k[8:], s.Counter)
	return append(k, s.Origin...)
}

func versionPrefix(h Hash) []byte {
	return append([]byte{prefixVersion}, h[:]...)
}

func versionKey(h Hash, s manifest.Stamp) []byte {
	return append(versionPrefix(h), stampKey(s)...)
}

func nameKey(name string) []byte {
	return append([]byte{prefixName}, name...)
}

func contentPrefix(sum [32]byte) []byte {
	return append([]byte{prefixContent}, sum[:]...)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// stageVersion adds the keys that make m (encoded as enc) visible to pb.
func stageVersion(pb *pebble.Batch, m *manifest.Manifest, enc []byte) error {
	name, err := ParseName(m.Name)
	if err != nil {
		return err
	}
	id := m.ID()
	sets := [][2][]byte{
		{manifestKey(id), enc},
		{versionKey(name.Hash(), m.Stamp), id[:]},
		{nameKey(m.Name), nil},
	}
	if !m.Tombstone {
		sets = append(sets, [2][]byte{append(contentPrefix(m.SHA256), id[:]...), nil})
	}
	for _, kv := range sets {
		if err := pb.Set(kv[0], kv[1], nil); err != nil {
			return fmt.Errorf("stage version of %s: %w", m.Name, err)
		}
	}
	return stageFind(pb, m, id)
}

// getValue copies the value at key in r (the DB, or a snapshot of
// it), or returns nil, false.
func getValue(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}
