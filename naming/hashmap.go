package naming

// Hashmap puts (Pithos+'s): a client that cut a file into the store's
// chunks sends the chunk list first; the site names the chunks it lacks,
// the client sends only those (StoreChunk), and the list is put again to
// make the version. Re-putting a renamed or copied file moves only its
// chunk list. The version's SHA-256 is never taken from the client: a
// version here over the same chunks proves it, or the chunks are read
// once to compute it.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// Hashmap describes an object by its chunks, cut at ChunkSize.
type Hashmap struct {
	ChunkSize int
	Size      int64
	SHA256    [32]byte
	Chunks    []chunk.ID
}

// Sentinel errors of hashmap puts.
var (
	// ErrMissingChunks: some chunks of a hashmap are not stored here
	// (MissingChunksError lists them).
	ErrMissingChunks = errors.New("chunks missing")
	// ErrBadHashmap: the hashmap does not describe an object this store
	// can make (another chunk size, a chunk count or chunk lengths that do
	// not add up to its size, or a SHA-256 that is not its chunks').
	ErrBadHashmap = errors.New("hashmap does not match")
)

// MissingChunksError lists the chunks of a hashmap this store lacks.
type MissingChunksError struct{ IDs []chunk.ID }

func (e *MissingChunksError) Error() string {
	return fmt.Sprintf("%d chunks of the hashmap not stored here", len(e.IDs))
}

func (e *MissingChunksError) Is(target error) bool { return target == ErrMissingChunks }

// StoreChunk stores raw as chunk id, durably, after checking that it
// hashes to id, and logs it as arrived so links ship it at once. It
// reports whether the chunk was new here.
func (s *Store) StoreChunk(id chunk.ID, raw []byte) (bool, error) {
	if len(raw) > s.cfg.ChunkSize {
		return false, fmt.Errorf("chunk %s: %d bytes, this store's chunks hold at most %d: %w", id, len(raw), s.cfg.ChunkSize, ErrBadHashmap)
	}
	if chunk.Sum(raw) != id {
		return false, fmt.Errorf("chunk %s: its bytes hash to %s: %w", id, chunk.Sum(raw), chunk.ErrCorrupt)
	}
	b := s.chunks.NewBatch()
	if _, err := b.Add(id, raw); err != nil {
		b.Abort()
		return false, err
	}
	arrival := localArrival{s: s, b: b}
	var isNew bool
	err := b.Commit(func(pb *pebble.Batch, added []chunk.ID) error {
		isNew = len(added) > 0
		return arrival.stage(pb, added)
	})
	if err != nil {
		return false, fmt.Errorf("store chunk %s: %w", id, err)
	}
	arrival.done()
	return isNew, nil
}

// PutHashmap makes a version of name over the chunks hm lists, which
// must all be stored here (else a MissingChunksError names those that
// are not). hm's SHA-256 is checked: proven by a version here over the
// same chunks, or else by reading the chunks once, in order.
func (s *Store) PutHashmap(ctx context.Context, name Name, hm Hashmap, opts PutOptions) (*manifest.Manifest, error) {
	if err := s.checkWriter(s.cfg.Signer.PublicKey(), name.Domain()); err != nil {
		return nil, err
	}
	size := int64(s.cfg.ChunkSize)
	switch {
	case hm.ChunkSize != s.cfg.ChunkSize:
		return nil, fmt.Errorf("hashmap of %s: chunk size %d, this store cuts at %d: %w", name, hm.ChunkSize, s.cfg.ChunkSize, ErrBadHashmap)
	case hm.Size < 0 || int64(len(hm.Chunks)) != (hm.Size+size-1)/size:
		return nil, fmt.Errorf("hashmap of %s: %d chunks for %d bytes: %w", name, len(hm.Chunks), hm.Size, ErrBadHashmap)
	}
	unpin := s.chunks.Pin(hm.Chunks) // not collected between the look and the commit
	defer unpin()
	var missing []chunk.ID
	for _, id := range hm.Chunks {
		ok, err := s.chunks.Has(id)
		if err != nil {
			return nil, err
		}
		if !ok && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, &MissingChunksError{IDs: missing}
	}
	meta := opts.Meta
	if same := s.provenBy(hm); same != nil {
		meta = withFITSMetaOf(meta, same) // the same bytes: the same header
	} else {
		scan := s.newScanner()
		if err := s.checkHashmap(ctx, name, hm, scan); err != nil {
			return nil, err
		}
		meta = s.withFITSMeta(meta, scan)
	}
	m := &manifest.Manifest{Name: name.String(), ChunkSize: uint32(s.cfg.ChunkSize), Chunks: slices.Clone(hm.Chunks), Size: hm.Size,
		SHA256: hm.SHA256, ContentType: opts.ContentType, Meta: meta}
	if !opts.Expires.IsZero() {
		m.Expires = opts.Expires.UnixMilli()
	}
	b := s.chunks.NewBatch()
	if err := s.commit(b, m); err != nil {
		b.Abort()
		return nil, fmt.Errorf("put %s: %w", name, err)
	}
	return m, nil
}

// provenBy returns a version here that already has hm's SHA-256 over
// exactly hm's chunks (a renamed or copied file), or nil: its bytes are
// hm's, so its SHA-256 is, and nothing needs reading.
func (s *Store) provenBy(hm Hashmap) *manifest.Manifest {
	m, err := s.BySHA256(hm.SHA256)
	if err == nil && int(m.ChunkSize) == hm.ChunkSize && m.Size == hm.Size && slices.Equal(m.Chunks, hm.Chunks) {
		return m
	}
	return nil
}

// checkHashmap reads hm's chunks once, in order, and checks their
// lengths and that they hash to hm's SHA-256; scan, if set, reads their
// FITS headers and notes their layouts on the way.
func (s *Store) checkHashmap(ctx context.Context, name Name, hm Hashmap, scan *chunk.FITSScanner) error {
	size := int64(s.cfg.ChunkSize)
	sha := sha256.New()
	_, err := s.hashInto(ctx, hm.Chunks, sha, func(i int, id chunk.ID, raw []byte) error {
		want := size
		if i == len(hm.Chunks)-1 {
			want = hm.Size - int64(i)*size
		}
		if int64(len(raw)) != want {
			return fmt.Errorf("hashmap of %s: chunk %d holds %d bytes, not %d: %w", name, i, len(raw), want, ErrBadHashmap)
		}
		s.scanChunk(scan, id, raw)
		return nil
	})
	if err != nil {
		return err
	}
	var sum [32]byte
	sha.Sum(sum[:0])
	if sum != hm.SHA256 {
		return fmt.Errorf("hashmap of %s: its chunks hash to %x, not %x: %w", name, sum, hm.SHA256, ErrBadHashmap)
	}
	return nil
}
