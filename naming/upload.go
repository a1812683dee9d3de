package naming

// Multipart uploads (the S3 API's): each part is stored as chunks while
// it arrives and recorded under its upload; completing the upload makes
// one version of the parts in order, cut into the store's fixed chunk
// size like any put. Parts whose sizes are multiples of the chunk size
// (what clients send: 5, 8, 16 MiB...) re-cut into the very chunks they
// were stored as, so completing writes nothing again and reads nothing
// back (the object's SHA-256 is hashed as the parts come, upload_hash.go); other sizes are re-cut and
// their new chunks written. A manifest keeps one chunk size, so every
// manifest stays readable by every binary.

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// prefixUpload keys the uploads: 'p' 'u' + upload ID → upload record;
// 'p' 'p' + upload ID + part number (uint32 BE) → part record.
const prefixUpload = 'p'

// ErrNoSuchUpload is returned for an upload that was never started, or
// was completed, aborted or collected.
var ErrNoSuchUpload = errors.New("no such upload")

// MaxParts is the most parts one upload takes (as S3).
const MaxParts = 10000

// Upload is a multipart upload in progress.
type Upload struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	ContentType string          `json:"content_type,omitempty"`
	Meta        []manifest.Meta `json:"meta,omitempty"`
	Initiated   time.Time       `json:"initiated"`
}

// Part is one stored part of an upload.
type Part struct {
	Number int        `json:"n"`
	Size   int64      `json:"size"`
	MD5    string     `json:"md5"` // hex
	Chunks []chunk.ID `json:"chunks"`
	At     time.Time  `json:"at"`
}

func uploadKey(id string) []byte { return append([]byte{prefixUpload, 'u'}, id...) }

func partKey(id string, n int) []byte {
	k := append([]byte{prefixUpload, 'p'}, id...)
	return binary.BigEndian.AppendUint32(k, uint32(n))
}

func validUploadID(id string) bool {
	b, err := hex.DecodeString(id)
	return err == nil && len(b) == 16
}

// decodeUpload reads an upload record from the index.
func decodeUpload(b []byte) (Upload, error) {
	var u Upload
	if err := json.Unmarshal(b, &u); err != nil {
		return u, fmt.Errorf("upload record: %w", err)
	}
	if !validUploadID(u.ID) {
		return u, fmt.Errorf("upload record: bad ID %q", u.ID)
	}
	if _, err := ParseName(u.Name); err != nil {
		return u, fmt.Errorf("upload record: %w", err)
	}
	return u, nil
}

// decodePart reads a part record from the index.
func decodePart(b []byte) (Part, error) {
	var p Part
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("part record: %w", err)
	}
	if p.Number < 1 || p.Number > MaxParts || p.Size < 0 || int64(len(p.Chunks)) > p.Size {
		return p, fmt.Errorf("part record: part %d of %d bytes in %d chunks", p.Number, p.Size, len(p.Chunks))
	}
	if m, err := hex.DecodeString(p.MD5); err != nil || len(m) != md5.Size {
		return p, fmt.Errorf("part record: bad MD5 %q", p.MD5)
	}
	return p, nil
}

// StartUpload begins a multipart upload of name with opts' content type
// and meta; it returns the upload's ID.
func (s *Store) StartUpload(name Name, opts PutOptions) (string, error) {
	if err := s.checkWriter(s.cfg.Signer.PublicKey(), name.Domain()); err != nil {
		return "", err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	u := Upload{ID: hex.EncodeToString(b[:]), Name: name.String(), ContentType: opts.ContentType, Meta: opts.Meta, Initiated: s.cfg.Now().UTC()}
	enc, err := json.Marshal(u)
	if err != nil {
		return "", err
	}
	if err := s.db.Set(uploadKey(u.ID), enc, pebble.Sync); err != nil {
		return "", fmt.Errorf("start upload of %s: %w", name, err)
	}
	s.hashes.start(u.ID, s.newScanner())
	return u.ID, nil
}

// GetUpload returns upload id and its parts, by number.
func (s *Store) GetUpload(id string) (Upload, []Part, error) {
	if !validUploadID(id) {
		return Upload{}, nil, fmt.Errorf("upload %q: %w", id, ErrNoSuchUpload)
	}
	v, ok, err := getValue(s.db, uploadKey(id))
	if err != nil {
		return Upload{}, nil, err
	}
	if !ok {
		return Upload{}, nil, fmt.Errorf("upload %s: %w", id, ErrNoSuchUpload)
	}
	u, err := decodeUpload(v)
	if err != nil {
		return u, nil, err
	}
	lower := append([]byte{prefixUpload, 'p'}, id...)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return u, nil, err
	}
	defer it.Close()
	var parts []Part
	for it.First(); it.Valid(); it.Next() {
		p, err := decodePart(it.Value())
		if err != nil {
			return u, nil, fmt.Errorf("upload %s: %w", id, err)
		}
		parts = append(parts, p)
	}
	return u, parts, it.Error()
}

// PutPart stores part n of upload id from r as chunks, durably, and
// records it (replacing an earlier part n). Its chunks are logged as
// arrived, so links ship them while the upload goes on; the version
// that names them comes at CompleteUpload.
func (s *Store) PutPart(ctx context.Context, id string, n int, r io.Reader) (Part, error) {
	if n < 1 || n > MaxParts {
		return Part{}, fmt.Errorf("part number %d outside 1..%d", n, MaxParts)
	}
	u, _, err := s.GetUpload(id)
	if err != nil {
		return Part{}, err
	}
	if err := s.checkWriter(s.cfg.Signer.PublicKey(), mustDomain(u.Name)); err != nil {
		return Part{}, err
	}
	b := s.chunks.NewBatch()
	committed := false
	defer func() {
		if !committed {
			b.Abort()
		}
	}()
	sum := md5.New()
	p := Part{Number: n, At: s.cfg.Now().UTC()}
	sp := chunk.NewSplitter(io.TeeReader(r, sum), s.cfg.ChunkSize)
	buf := make([]byte, sp.Size())
	for {
		raw, err := sp.NextInto(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Part{}, fmt.Errorf("part %d of upload %s: read: %w", n, id, err)
		}
		if err := ctx.Err(); err != nil {
			return Part{}, err
		}
		cid := chunk.Sum(raw)
		if _, err := b.Add(cid, raw); err != nil {
			return Part{}, err
		}
		p.Chunks = append(p.Chunks, cid)
		p.Size += int64(len(raw))
	}
	p.MD5 = hex.EncodeToString(sum.Sum(nil))
	enc, err := json.Marshal(p)
	if err != nil {
		return Part{}, err
	}
	arrival := localArrival{s: s, b: b}
	err = b.Commit(func(pb *pebble.Batch, added []chunk.ID) error {
		// Still there: an abort or a collection meanwhile drops the part.
		if _, ok, err := getValue(s.db, uploadKey(id)); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("upload %s: %w", id, ErrNoSuchUpload)
			}
			return err
		}
		if err := pb.Set(partKey(id, n), enc, nil); err != nil {
			return err
		}
		return arrival.stage(pb, added)
	})
	committed = true
	if err != nil {
		return Part{}, fmt.Errorf("part %d of upload %s: %w", n, id, err)
	}
	arrival.done()
	s.advance(id)
	return p, nil
}

func mustDomain(name string) string {
	n, err := ParseName(name)
	if err != nil {
		return ""
	}
	return n.Domain()
}

// ErrInvalidPart is returned when a completion names a part that was
// not stored (or with another MD5 than the one stored).
var ErrInvalidPart = errors.New("invalid part")

// PartRef names a part in a completion: its number and the MD5 (hex)
// its upload answered.
type PartRef struct {
	Number int
	MD5    string
}

// CompleteUpload makes the version of upload id from the parts listed,
// in their order, with meta added to the upload's (the S3 ETag), and
// ends the upload.
func (s *Store) CompleteUpload(ctx context.Context, id string, refs []PartRef, meta []manifest.Meta) (*manifest.Manifest, error) {
	u, stored, err := s.GetUpload(id)
	if err != nil {
		return nil, err
	}
	name, err := ParseName(u.Name)
	if err != nil {
		return nil, err
	}
	byNumber := make(map[int]Part, len(stored))
	for _, p := range stored {
		byNumber[p.Number] = p
	}
	var parts []Part
	for i, ref := range refs {
		p, ok := byNumber[ref.Number]
		if !ok || (ref.MD5 != "" && ref.MD5 != p.MD5) {
			return nil, fmt.Errorf("part %d of upload %s: %w", ref.Number, id, ErrInvalidPart)
		}
		if i > 0 && ref.Number <= refs[i-1].Number {
			return nil, fmt.Errorf("parts of upload %s out of order at %d: %w", id, ref.Number, ErrInvalidPart)
		}
		parts = append(parts, p)
	}
	unpin := s.chunks.Pin(partChunks(parts)) // not collected while they are read
	defer unpin()
	u.Meta = mergeMeta(u.Meta, meta)
	if s.aligned(parts) {
		m, err := s.completeAligned(ctx, id, name, u, parts)
		if err != nil {
			return nil, fmt.Errorf("complete upload %s: %w", id, err)
		}
		return m, s.dropUpload(id)
	}
	m, err := s.Put(ctx, name, &partsReader{s: s, parts: parts}, PutOptions{ContentType: u.ContentType, Meta: u.Meta})
	if err != nil {
		return nil, fmt.Errorf("complete upload %s: %w", id, err)
	}
	return m, s.dropUpload(id)
}

// aligned reports whether the parts, in order, are the store's chunks
// of the whole object: every part but the last a whole number of
// chunks, each part cut at the store's chunk size.
func (s *Store) aligned(parts []Part) bool {
	size := int64(s.cfg.ChunkSize)
	for i, p := range parts {
		if i < len(parts)-1 && p.Size%size != 0 {
			return false
		}
		if int64(len(p.Chunks)) != (p.Size+size-1)/size {
			return false
		}
	}
	return true
}

// completeAligned makes the version of parts that fall on chunk
// boundaries: its chunk list is theirs, so no byte is cut or written
// again. The object's SHA-256 was computed as the parts came
// (upload_hash.go), or else now, from one read of the chunks.
func (s *Store) completeAligned(ctx context.Context, id string, name Name, u Upload, parts []Part) (*manifest.Manifest, error) {
	if err := s.checkWriter(s.cfg.Signer.PublicKey(), name.Domain()); err != nil {
		return nil, err
	}
	m := &manifest.Manifest{Name: name.String(), ChunkSize: uint32(s.cfg.ChunkSize), ContentType: u.ContentType, Meta: u.Meta}
	for _, p := range parts {
		m.Chunks = append(m.Chunks, p.Chunks...)
		m.Size += p.Size
	}
	sum, scan, ok := s.sum(ctx, id, parts) // hashed as the parts came
	if !ok {
		sha := sha256.New()
		scan = s.newScanner()
		total, err := s.hashInto(ctx, m.Chunks, sha, s.scanning(scan))
		if err != nil {
			return nil, err
		}
		if total != m.Size {
			return nil, fmt.Errorf("parts hold %d bytes, their records %d", total, m.Size)
		}
		sha.Sum(sum[:0])
	}
	m.SHA256 = sum
	m.Meta = s.withFITSMeta(m.Meta, scan)
	b := s.chunks.NewBatch()
	if err := s.commit(b, m); err != nil {
		b.Abort()
		return nil, err
	}
	return m, nil
}

// hashInto reads chunks in order and writes their bytes to h on a
// goroutine of its own, so that reading (which verifies each chunk) and
// hashing overlap; each, if set, sees every chunk first (its error stops
// the read). It returns how many bytes it hashed.
func (s *Store) hashInto(ctx context.Context, ids []chunk.ID, h hash.Hash, each func(i int, id chunk.ID, raw []byte) error) (int64, error) {
	const slots = 4
	var bufs [slots][]byte
	var busy [slots]sync.WaitGroup
	type piece struct {
		b    []byte
		slot int
	}
	feed := make(chan piece, slots)
	var done sync.WaitGroup
	done.Go(func() {
		for p := range feed {
			h.Write(p.b)
			busy[p.slot].Done()
		}
	})
	var total int64
	err := func() error {
		defer close(feed)
		for i, id := range ids {
			if err := ctx.Err(); err != nil {
				return err
			}
			slot := i % slots
			busy[slot].Wait() // the hasher is done with what the slot held
			raw, err := s.chunks.Get(id, bufs[slot])
			if err != nil {
				return err
			}
			bufs[slot] = raw
			total += int64(len(raw))
			if each != nil {
				if err := each(i, id, raw); err != nil {
					return err
				}
			}
			busy[slot].Add(1)
			feed <- piece{raw, slot}
		}
		return nil
	}()
	done.Wait()
	return total, err
}

func partChunks(parts []Part) []chunk.ID {
	var ids []chunk.ID
	for _, p := range parts {
		ids = append(ids, p.Chunks...)
	}
	return ids
}

// AbortUpload ends upload id without a version; its parts' chunks are
// left to garbage collection.
func (s *Store) AbortUpload(id string) error {
	if _, _, err := s.GetUpload(id); err != nil {
		return err
	}
	return s.dropUpload(id)
}

func (s *Store) dropUpload(id string) error {
	s.hashes.drop(id)
	pb := s.db.NewBatch()
	defer pb.Close()
	lower := append([]byte{prefixUpload, 'p'}, id...)
	if err := pb.DeleteRange(lower, prefixEnd(lower), nil); err != nil {
		return err
	}
	if err := pb.Delete(uploadKey(id), nil); err != nil {
		return err
	}
	return pb.Commit(pebble.Sync)
}

// CollectUploads aborts the uploads started before cutoff: an upload
// left unfinished for that long was abandoned by its client. It returns
// how many it aborted.
func (s *Store) CollectUploads(ctx context.Context, cutoff time.Time) (int, error) {
	var old []string
	err := s.scanPrefix(ctx, prefixUpload, func(k, v []byte) error {
		if len(k) < 2 || k[1] != 'u' {
			return nil
		}
		u, err := decodeUpload(v)
		if err != nil {
			return err
		}
		if u.Initiated.Before(cutoff) {
			old = append(old, u.ID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range old {
		if err := s.dropUpload(id); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// forEachPartChunk calls fn with every chunk of every stored part: they
// are live until their upload ends.
func (s *Store) forEachPartChunk(ctx context.Context, fn func(chunk.ID) error) error {
	return s.scanPrefix(ctx, prefixUpload, func(k, v []byte) error {
		if len(k) < 2 || k[1] != 'p' {
			return nil
		}
		p, err := decodePart(v)
		if err != nil {
			return err
		}
		for _, c := range p.Chunks {
			if err := fn(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// partsReader reads the bytes of parts in order from the local chunk
// store, a chunk at a time.
type partsReader struct {
	s     *Store
	parts []Part
	part  int
	chunk int
	buf   []byte
	left  []byte
}

func (r *partsReader) Read(p []byte) (int, error) {
	for len(r.left) == 0 {
		if r.part == len(r.parts) {
			return 0, io.EOF
		}
		if r.chunk == len(r.parts[r.part].Chunks) {
			r.part, r.chunk = r.part+1, 0
			continue
		}
		raw, err := r.s.chunks.Get(r.parts[r.part].Chunks[r.chunk], r.buf)
		if err != nil {
			return 0, fmt.Errorf("part %d: %w", r.parts[r.part].Number, err)
		}
		r.buf, r.left = raw, raw
		r.chunk++
	}
	n := copy(p, r.left)
	r.left = r.left[n:]
	return n, nil
}
