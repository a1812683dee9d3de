package bench

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"io"
	"testing"
)

func readAll(t *testing.T, r io.Reader, step int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, step)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRandomDeterministic(t *testing.T) {
	const n = 3<<20 + 12345
	want := readAll(t, NewRandom(7, n), 1<<20)
	if len(want) != n {
		t.Fatalf("got %d bytes, want %d", len(want), n)
	}
	for _, step := range []int{1, 4093, 64 << 10, 5 << 20} {
		if step == 1 {
			if got := readAll(t, io.LimitReader(NewRandom(7, n), 200000), 1); !bytes.Equal(got, want[:200000]) {
				t.Errorf("1-byte reads differ from 1 MiB reads")
			}
			continue
		}
		if got := readAll(t, NewRandom(7, n), step); !bytes.Equal(got, want) {
			t.Errorf("reads of %d bytes differ from reads of 1 MiB", step)
		}
	}
	if other := readAll(t, NewRandom(8, n), 1<<20); bytes.Equal(other, want) {
		t.Error("seeds 7 and 8 give the same stream")
	}
}

func TestRandomUniqueIncompressible(t *testing.T) {
	data := readAll(t, NewRandom(1, 16<<20), 1<<20)
	seen := map[[32]byte]int{}
	for off := 0; off < len(data); off += 4096 {
		sum := sha256.Sum256(data[off : off+4096])
		if prev, ok := seen[sum]; ok {
			t.Fatalf("4 KiB block at %d repeats the one at %d", off, prev)
		}
		seen[sum] = off
	}
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestSpeed)
	w.Write(data[:4<<20])
	w.Close()
	if z.Len() < 4<<20 {
		t.Errorf("4 MiB compress to %d bytes; the stream should be incompressible", z.Len())
	}
}

func TestRandomEmpty(t *testing.T) {
	n, err := NewRandom(1, 0).Read(make([]byte, 10))
	if n != 0 || err != io.EOF {
		t.Errorf("Read of an empty stream = %d, %v; want 0, EOF", n, err)
	}
}
