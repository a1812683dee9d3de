package forward

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// Stores is what links read from and write to: the site's chunk store,
// its version index and its arrival log. Everything stored through it is
// verified first and logged, which relays it over the other links.
type Stores struct {
	Chunks  *chunk.Store
	Objects *naming.Store
	Log     *Log
	// repairer, when set, heals damaged chunks from other sites before
	// they are shipped (SetRepairer).
	repairer atomic.Pointer[Repairer]

	// compress compresses each chunk put here once (compress.go).
	compress compressor
}

// Stage implements naming.Journal: it logs what a put or an accepted
// manifest made new, inside the same commit.
func (s *Stores) Stage(pb *pebble.Batch, a naming.Arrived) error {
	now := time.Now()
	if err := s.Log.Stage(pb, KindChunk, a.Chunks, a.ChunkSize, a.From, now); err != nil {
		return err
	}
	if a.Manifest.IsZero() {
		return nil
	}
	return s.Log.Stage(pb, KindManifest, []chunk.ID{a.Manifest}, func(chunk.ID) uint64 { return uint64(a.ManifestSize) }, a.From, now)
}

// Committed implements naming.Journal.
func (s *Stores) Committed() { s.Log.Committed() }

// HasChunk reports whether the chunk is stored here.
func (s *Stores) HasChunk(id chunk.ID) (bool, error) { return s.Chunks.Has(id) }

// HasManifest reports whether the manifest is stored here.
func (s *Stores) HasManifest(id chunk.ID) (bool, error) { return s.Objects.HasManifest(id) }

// Has reports whether an object of kind k is stored here.
func (s *Stores) Has(k Kind, id chunk.ID) (bool, error) {
	if k == KindManifest {
		return s.HasManifest(id)
	}
	return s.HasChunk(id)
}

// Payload returns what to ship for an object: a chunk's stored payload,
// compressed first if it is stored raw and was never tried (once, under
// a claim: see compress.go), or a manifest's encoding.
func (s *Stores) Payload(k Kind, id chunk.ID) (chunk.Codec, []byte, uint32, error) {
	if k == KindManifest {
		enc, err := s.Objects.ManifestBytes(id)
		if err != nil {
			return 0, nil, 0, err
		}
		return chunk.CodecRaw, enc, uint32(len(enc)), nil
	}
	return s.chunkPayload(id)
}

// SetRepairer has damaged chunks repaired before they are shipped.
func (s *Stores) SetRepairer(r *Repairer) { s.repairer.Store(r) }

// ErrRejected marks a payload refused by verification.
var ErrRejected = errors.New("rejected")

// Put verifies and stores a received object and logs it as arrived on
// link from. It reports whether it was new here.
func (s *Stores) Put(k Kind, id chunk.ID, c chunk.Codec, payload []byte, rawLen uint32, from string) (bool, error) {
	if k == KindManifest {
		m, err := manifest.Decode(payload)
		if err != nil {
			return false, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		if m.ID() != id {
			return false, fmt.Errorf("%w: manifest %s arrived as %s", ErrRejected, m.ID().Short(), id.Short())
		}
		isNew, err := s.Objects.Accept(m, from)
		if err != nil && !isStorageError(err) {
			return false, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		return isNew, err
	}
	b := s.Chunks.NewBatch()
	isNew, err := b.AddStored(id, c, payload, rawLen)
	if err != nil {
		b.Abort()
		if errors.Is(err, chunk.ErrCorrupt) || errors.Is(err, chunk.ErrTooLarge) {
			return false, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		return false, err
	}
	if !isNew {
		b.Abort()
		return false, nil
	}
	var added []chunk.ID
	var tracked func()
	err = b.Commit(func(pb *pebble.Batch, ids []chunk.ID) error {
		added = ids
		apply, err := s.Objects.StageChunksArrived(pb, ids)
		if err != nil {
			return err
		}
		tracked = apply
		if c == chunk.CodecRaw {
			// Stored as it came and never compressed here (compress.go).
			if err := stageArrivedRaw(pb, ids); err != nil {
				return err
			}
		}
		return s.Log.Stage(pb, KindChunk, ids, func(chunk.ID) uint64 { return uint64(rawLen) }, from, time.Now())
	})
	if err != nil {
		return false, err
	}
	tracked()
	s.Log.Committed()
	return len(added) > 0, nil
}

// Deferred reports whether a received manifest was refused for a reason
// that may pass: its signer was taken out of this site's trust store
// recently (an operator may trust it back: naming.ErrRevoked; a key
// never trusted here is refused for good), or its stamp is beyond this
// site's clock plus the allowed skew (a clock behind). Such a
// manifest is not refused for good, as a forged one is, but left
// unacknowledged, so the sender offers it again until it is accepted.
// Acking it as refused would let every cursor pass it, and the version
// would be missing here for good once the trust or the clock is right.
func Deferred(err error) bool {
	return errors.Is(err, naming.ErrRevoked) || errors.Is(err, naming.ErrFuture)
}

// isStorageError tells local failures (which say nothing about the
// payload) from verification failures.
func isStorageError(err error) bool {
	return !errors.Is(err, manifest.ErrMalformed) && !errors.Is(err, manifest.ErrBadSignature) &&
		!errors.Is(err, naming.ErrForbidden) && !errors.Is(err, naming.ErrUntrusted) &&
		!errors.Is(err, naming.ErrConflict) && !errors.Is(err, naming.ErrBadName) && !errors.Is(err, naming.ErrFuture) &&
		!errors.Is(err, naming.ErrCollected)
}

// Store verifies and stores a payload the engine assembled, logging it
// as arrived on its link.
func (s *Stores) Store(st engine.Store) (engine.StoreResult, string) {
	res, err := s.store(st)
	if err != nil {
		return res, err.Error()
	}
	return res, ""
}

// store is Store with the error itself, for the link to tell a manifest
// refused for its stamp (naming.ErrFuture: clock skew) from others.
func (s *Stores) store(st engine.Store) (engine.StoreResult, error) {
	isNew, err := s.Put(st.Kind, st.ID, st.Codec, st.Payload, st.RawLen, st.Link.String())
	switch {
	case Deferred(err):
		return engine.Failed, err // not acked: the sender offers it again
	case errors.Is(err, ErrRejected):
		return engine.Rejected, err
	case err != nil:
		return engine.Failed, err
	case !isNew:
		return engine.Duplicate, nil
	}
	return engine.Stored, nil
}

// storage is what the engine reads of the site: Pebble through the
// stores and the arrival log.
type storage struct{ s *Stores }

var _ engine.Storage = storage{}

func (st storage) Has(k engine.Kind, id chunk.ID) (bool, error) { return st.s.Has(k, id) }
func (st storage) Head(k engine.Kind) uint64                    { return st.s.Log.Head(k) }

func (st storage) ReadLog(k engine.Kind, after uint64, max int) ([]engine.Arrival, error) {
	as, err := st.s.Log.Read(k, after, max)
	if err != nil {
		return nil, err
	}
	out := make([]engine.Arrival, len(as))
	for i, a := range as {
		// A name other than a link's ("local", "lookup:<site>") is
		// relayed over every link.
		from, _ := engine.ParseLinkID(a.From)
		out[i] = engine.Arrival{Seq: a.Seq, Kind: a.Kind, ID: a.ID, From: from, At: a.At}
	}
	return out, nil
}

func (st storage) Cursor(k engine.Kind, link engine.LinkID) (uint64, error) {
	return st.s.Log.Cursor(k, link.String())
}

func (st storage) Lookup(kind wire.QueryKind, key [32]byte) ([][]byte, error) {
	var ms []*manifest.Manifest
	var err error
	switch kind {
	case wire.QueryLatest:
		var m *manifest.Manifest
		if m, err = st.s.Objects.NewestByHash(naming.Hash(key)); err == nil {
			ms = append(ms, m)
		}
	case wire.QueryVersions:
		ms, err = st.s.Objects.HistoryByHash(naming.Hash(key))
	case wire.QueryContent:
		var m *manifest.Manifest
		if m, err = st.s.Objects.BySHA256(key); err == nil {
			ms = append(ms, m)
		}
	case wire.QueryFetchManifest:
		var m *manifest.Manifest
		if m, err = st.s.Objects.Manifest(key); err == nil {
			ms = append(ms, m)
		}
	case wire.QueryHeld:
		var m *manifest.Manifest
		if m, err = st.held(key); err == nil && m != nil {
			ms = append(ms, m)
		}
	}
	if errors.Is(err, naming.ErrNotFound) {
		err = nil
	}
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = m.Encode()
	}
	return out, err
}

// held returns manifest id if it is stored here and none of its chunks
// is still expected (a version is durable only with all of them); nil if
// not.
func (st storage) held(id chunk.ID) (*manifest.Manifest, error) {
	incomplete, err := st.s.Objects.IsIncomplete(id)
	if err != nil || incomplete {
		return nil, err
	}
	return st.s.Objects.Manifest(id)
}

func (st storage) ManifestChunks(id chunk.ID) ([]chunk.ID, error) {
	m, err := st.s.Objects.Manifest(id)
	if err != nil {
		return nil, err
	}
	return m.Chunks, nil
}
