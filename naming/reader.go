package naming

import (
	"fmt"
	"io"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// ChunkGetter returns the verified raw bytes of a chunk.
type ChunkGetter interface {
	Get(id chunk.ID, dst []byte) ([]byte, error)
}

// Reader streams a byte range of one version, one verified chunk at a time.
type Reader struct {
	chunks    ChunkGetter
	m         *manifest.Manifest
	off, end  int64
	buf, left []byte
}

// NewReader returns a reader of length bytes of m starting at off, with
// chunks from the store. Every chunk is verified against its ID as read.
func (s *Store) NewReader(m *manifest.Manifest, off, length int64) *Reader {
	return NewReader(s.chunks, m, off, length)
}

// NewReader returns a reader of length bytes of m starting at off.
func NewReader(chunks ChunkGetter, m *manifest.Manifest, off, length int64) *Reader {
	end := min(off+length, m.Size)
	return &Reader{chunks: chunks, m: m, off: off, end: end}
}

// Read implements io.Reader. A chunk that is missing or fails its hash
// ends the stream with that error, never with wrong bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if len(r.left) == 0 {
		if r.off >= r.end {
			return 0, io.EOF
		}
		if err := r.load(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.left)
	r.left = r.left[n:]
	r.off += int64(n)
	return n, nil
}

func (r *Reader) load() error {
	cs := int64(r.m.ChunkSize)
	i := r.off / cs
	id := r.m.Chunks[i]
	raw, err := r.chunks.Get(id, r.buf)
	if err != nil {
		return fmt.Errorf("read %s chunk %d (%s): %w", r.m.Name, i, id.Short(), err)
	}
	r.buf = raw
	start := r.off - i*cs
	want := min(cs, r.m.Size-i*cs)
	if int64(len(raw)) != want {
		return fmt.Errorf("read %s chunk %d (%s): %w: %d bytes, manifest says %d", r.m.Name, i, id.Short(), chunk.ErrCorrupt, len(raw), want)
	}
	stop := min(int64(len(raw)), r.end-i*cs)
	r.left = raw[start:stop]
	return nil
}

// Seek implements io.Seeker within the reader's range, so HTTP range
// requests can be served from it.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.end + offset
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek to %d: negative position", abs)
	}
	if abs != r.off {
		r.left = nil
		r.off = abs
	}
	return abs, nil
}
