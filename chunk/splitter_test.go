package chunk

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestSplitter(t *testing.T) {
	const size = 4096
	cases := []struct {
		name       string
		n          int
		wantChunks int
	}{
		{"empty", 0, 0},
		{"one byte", 1, 1},
		{"exactly size", size, 1},
		{"size plus one", size + 1, 2},
		{"three and a half", 3*size + size/2, 4},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"data+EOF": iotest.DataErrReader,
	}
	for _, tc := range cases {
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				in := randomBytes(uint64(tc.n), tc.n)
				s := NewSplitter(wrap(bytes.NewReader(in)), size)
				var out []byte
				chunks := 0
				for {
					c, err := s.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("Next: %v", err)
					}
					if len(c) == 0 || len(c) > size {
						t.Fatalf("chunk %d has %d bytes", chunks, len(c))
					}
					chunks++
					out = append(out, c...)
				}
				if chunks != tc.wantChunks {
					t.Errorf("got %d chunks, want %d", chunks, tc.wantChunks)
				}
				if !bytes.Equal(out, in) {
					t.Error("reassembled bytes differ from input")
				}
				if _, err := s.Next(); err != io.EOF {
					t.Errorf("Next after EOF = %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestSplitterReadError(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{
		{"plain error", errors.New("disk on fire")},
		{"truncated source", io.ErrUnexpectedEOF}, // must not pass for a short last chunk
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := io.MultiReader(bytes.NewReader(make([]byte, 100)), iotest.ErrReader(tc.err))
			s := NewSplitter(r, 64)
			if c, err := s.Next(); err != nil || len(c) != 64 {
				t.Fatalf("first Next = %d bytes, %v", len(c), err)
			}
			for range 2 {
				if _, err := s.Next(); !errors.Is(err, tc.err) {
					t.Fatalf("Next = %v, want %v", err, tc.err)
				}
			}
		})
	}
}

func TestSplitterSizeDefaults(t *testing.T) {
	if got := NewSplitter(nil, 0).Size(); got != DefaultSize {
		t.Errorf("size 0 → %d, want %d", got, DefaultSize)
	}
	if got := NewSplitter(nil, MaxSize+1).Size(); got != MaxSize {
		t.Errorf("size MaxSize+1 → %d, want %d", got, MaxSize)
	}
}
