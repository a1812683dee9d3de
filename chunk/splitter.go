package chunk

import (
	"fmt"
	"io"
)

// Splitter cuts a stream into fixed-size chunks (the last may be shorter),
// reusing one buffer, so a stream of any length needs only one chunk of memory.
type Splitter struct {
	r    io.Reader
	size int
	buf  []byte
	done bool
	err  error
}

// NewSplitter returns a Splitter reading r in chunks of size bytes.
// A size <= 0 means DefaultSize; a size above MaxSize is clamped to MaxSize.
func NewSplitter(r io.Reader, size int) *Splitter {
	if size <= 0 {
		size = DefaultSize
	}
	return &Splitter{r: r, size: min(size, MaxSize)}
}

// Size returns the chunk size.
func (s *Splitter) Size() int { return s.size }

// Next returns the next chunk, valid until the next call, or io.EOF after the
// last one. An empty stream yields io.EOF at once. Read errors (anything but
// io.EOF, including io.ErrUnexpectedEOF from a truncated source) are returned
// wrapped, and again on every later call; the bytes of the failed chunk are dropped.
func (s *Splitter) Next() ([]byte, error) {
	if s.buf == nil {
		s.buf = make([]byte, s.size)
	}
	return s.NextInto(s.buf)
}

// NextInto is Next reading into buf (at least Size bytes) instead of the
// splitter's own buffer, so that callers can work on several chunks at once.
func (s *Splitter) NextInto(buf []byte) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	buf = buf[:s.size]
	n := 0
	for !s.done && n < len(buf) {
		m, err := s.r.Read(buf[n:])
		n += m
		if err == io.EOF {
			s.done = true
		} else if err != nil {
			s.err = fmt.Errorf("split stream into chunks: %w", err)
			return nil, s.err
		}
	}
	if n == 0 {
		return nil, io.EOF
	}
	return buf[:n], nil
}
