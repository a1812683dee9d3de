package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/forward/wire"
)

// store is a site's simulated durable state: chunks, manifests, the two
// arrival logs and the cursors. Everything in it survives a crash; what
// the engine holds does not.
type store struct {
	chunks     map[chunk.ID][]byte
	chunkOrder []chunk.ID
	manifests  map[chunk.ID][]byte
	byName     map[[32]byte][]chunk.ID
	logs       [2][]engine.Arrival
	cursors    map[cursorKey]uint64
	// The reconciliation table, kept as the real site keeps it: every
	// ID toggled in as it is stored, out when it is lost.
	table *recon.Table
	keys  map[recon.Key]recon.Item
}

type cursorKey struct {
	kind engine.Kind
	link engine.LinkID
}

type simPayload struct {
	id  chunk.ID
	raw []byte
}

func newStore() *store {
	return &store{chunks: map[chunk.ID][]byte{}, manifests: map[chunk.ID][]byte{}, byName: map[[32]byte][]chunk.ID{},
		cursors: map[cursorKey]uint64{}, table: recon.NewTable(), keys: map[recon.Key]recon.Item{}}
}

var (
	_ engine.Storage = (*store)(nil)
	_ recon.Local    = (*store)(nil)
)

func (s *store) Table() *recon.Table { return s.table }

func (s *store) Resolve(k recon.Key) (recon.Item, recon.Info, bool) {
	it, ok := s.keys[k]
	if !ok {
		return recon.Item{}, recon.Info{}, false
	}
	b := s.chunks[chunk.ID(it.ID)]
	if engine.Kind(it.Kind) == engine.KindManifest {
		b = s.manifests[chunk.ID(it.ID)]
	}
	return it, recon.Info{Bytes: int64(len(b))}, true
}

func (s *store) Refuses(recon.Key) bool { return false }

// toggle adds or removes an item of the reconciliation table.
func (s *store) toggle(k engine.Kind, id chunk.ID, add bool) {
	s.table.Toggle(byte(k), id, add)
	key := recon.KeyOf(byte(k), id)
	if add {
		s.keys[key] = recon.Item{Kind: byte(k), ID: id}
	} else {
		delete(s.keys, key)
	}
}

// lose forgets a stored payload, as a lost pack file does: the log and
// the cursors still say it was here, so only reconciliation brings it
// back.
func (s *store) lose(k engine.Kind, id chunk.ID) {
	if !s.has(k, id) {
		return
	}
	if k == engine.KindManifest {
		m, _ := decodeSimManifest(s.manifests[id])
		delete(s.manifests, id)
		ids := s.byName[m.name]
		for i, x := range ids {
			if x == id {
				s.byName[m.name] = append(ids[:i:i], ids[i+1:]...)
				break
			}
		}
	} else {
		delete(s.chunks, id)
		for i, x := range s.chunkOrder {
			if x == id {
				s.chunkOrder = append(s.chunkOrder[:i:i], s.chunkOrder[i+1:]...)
				break
			}
		}
	}
	s.toggle(k, id, false)
}

func (s *store) has(k engine.Kind, id chunk.ID) bool {
	if k == engine.KindManifest {
		_, ok := s.manifests[id]
		return ok
	}
	_, ok := s.chunks[id]
	return ok
}

func (s *store) Has(k engine.Kind, id chunk.ID) (bool, error) { return s.has(k, id), nil }

func (s *store) Head(k engine.Kind) uint64 { return uint64(len(s.logs[k.Index()])) }

func (s *store) ReadLog(k engine.Kind, after uint64, max int) ([]engine.Arrival, error) {
	log := s.logs[k.Index()]
	if after >= uint64(len(log)) {
		return nil, nil
	}
	end := min(uint64(len(log)), after+uint64(max))
	return append([]engine.Arrival(nil), log[after:end]...), nil
}

func (s *store) Cursor(k engine.Kind, link engine.LinkID) (uint64, error) {
	return s.cursors[cursorKey{k, link}], nil
}

func (s *store) Lookup(kind wire.QueryKind, key [32]byte) ([][]byte, error) {
	switch kind {
	case wire.QueryLatest:
		var best []byte
		var bestStamp uint64
		for _, id := range s.byName[key] {
			m, _ := decodeSimManifest(s.manifests[id])
			if m.stampKey() > bestStamp {
				best, bestStamp = s.manifests[id], m.stampKey()
			}
		}
		if best != nil {
			return [][]byte{best}, nil
		}
	case wire.QueryVersions:
		var out [][]byte
		for _, id := range s.byName[key] {
			out = append(out, s.manifests[id])
		}
		return out, nil
	case wire.QueryFetchManifest:
		if enc, ok := s.manifests[key]; ok {
			return [][]byte{enc}, nil
		}
	case wire.QueryHeld:
		if s.holdsWhole(key) {
			return [][]byte{s.manifests[key]}, nil
		}
	}
	return nil, nil
}

func (s *store) ManifestChunks(id chunk.ID) ([]chunk.ID, error) {
	m, _ := decodeSimManifest(s.manifests[id])
	return m.chunks, nil
}

func (s *store) log(k engine.Kind, id chunk.ID, from engine.LinkID, at time.Time) {
	i := k.Index()
	s.logs[i] = append(s.logs[i], engine.Arrival{Seq: uint64(len(s.logs[i]) + 1), Kind: k, ID: id, From: from, At: at})
}

func (s *store) addChunk(id chunk.ID, raw []byte, from engine.LinkID, at time.Time) bool {
	if _, ok := s.chunks[id]; ok {
		return false
	}
	s.chunks[id] = raw
	s.chunkOrder = append(s.chunkOrder, id)
	s.log(engine.KindChunk, id, from, at)
	s.toggle(engine.KindChunk, id, true)
	return true
}

func (s *store) addManifest(id chunk.ID, enc []byte, from engine.LinkID, at time.Time) bool {
	if _, ok := s.manifests[id]; ok {
		return false
	}
	m, _ := decodeSimManifest(enc)
	s.manifests[id] = enc
	s.byName[m.name] = append(s.byName[m.name], id)
	s.log(engine.KindManifest, id, from, at)
	s.toggle(engine.KindManifest, id, true)
	return true
}

func (s *store) putLocal(chunks []simPayload, mid chunk.ID, enc []byte, at time.Time) {
	for _, c := range chunks {
		s.addChunk(c.id, c.raw, engine.Local, at)
	}
	s.addManifest(mid, enc, engine.Local, at)
}

// put verifies and stores a payload that arrived on a link.
func (s *store) put(st engine.Store, at time.Time) (engine.StoreResult, string) {
	if st.Codec != chunk.CodecRaw || int(st.RawLen) != len(st.Payload) {
		return engine.Rejected, "codec"
	}
	if chunk.ID(sha256.Sum256(st.Payload)) != st.ID {
		return engine.Rejected, "hash"
	}
	raw := append([]byte(nil), st.Payload...)
	if st.Kind == engine.KindManifest {
		if _, ok := decodeSimManifest(raw); !ok {
			return engine.Rejected, "manifest"
		}
		if !s.addManifest(st.ID, raw, st.Link, at) {
			return engine.Duplicate, ""
		}
		return engine.Stored, ""
	}
	if !s.addChunk(st.ID, raw, st.Link, at) {
		return engine.Duplicate, ""
	}
	return engine.Stored, ""
}

func (s *store) payload(k engine.Kind, id chunk.ID) (chunk.Codec, []byte, uint32, bool) {
	var b []byte
	var ok bool
	if k == engine.KindManifest {
		b, ok = s.manifests[id]
	} else {
		b, ok = s.chunks[id]
	}
	return chunk.CodecRaw, b, uint32(len(b)), ok
}

// holdsWhole reports whether manifest id and all its chunks are here.
func (s *store) holdsWhole(id chunk.ID) bool {
	enc, ok := s.manifests[id]
	if !ok {
		return false
	}
	m, _ := decodeSimManifest(enc)
	for _, c := range m.chunks {
		if _, ok := s.chunks[c]; !ok {
			return false
		}
	}
	return true
}

// latest returns the highest stamp held for a name (0: none).
func (s *store) latest(name [32]byte) uint64 {
	var best uint64
	for _, id := range s.byName[name] {
		m, _ := decodeSimManifest(s.manifests[id])
		best = max(best, m.stampKey())
	}
	return best
}

// simManifest is the simulation's stand-in for a version manifest: a
// name, a stamp, its origin and chunks. Its ID is the SHA-256 of its
// encoding, as a real manifest's is.
type simManifest struct {
	name   [32]byte
	stamp  uint64
	site   byte
	tomb   bool
	chunks []chunk.ID
}

func (m simManifest) stampKey() uint64 { return m.stamp<<8 | uint64(m.site) }

func (m simManifest) encode() []byte {
	b := append([]byte("simv1"), m.name[:]...)
	b = binary.BigEndian.AppendUint64(b, m.stamp)
	tomb := byte(0)
	if m.tomb {
		tomb = 1
	}
	b = append(b, m.site, tomb, byte(len(m.chunks)))
	for _, c := range m.chunks {
		b = append(b, c[:]...)
	}
	return b
}

func decodeSimManifest(b []byte) (simManifest, bool) {
	var m simManifest
	if len(b) < 5+32+8+3 || string(b[:5]) != "simv1" {
		return m, false
	}
	copy(m.name[:], b[5:37])
	m.stamp = binary.BigEndian.Uint64(b[37:45])
	m.site, m.tomb = b[45], b[46] == 1
	n := int(b[47])
	rest := b[48:]
	if len(rest) != 32*n {
		return m, false
	}
	for i := range n {
		m.chunks = append(m.chunks, chunk.ID(rest[32*i:32*i+32]))
	}
	return m, true
}
