package chunk

import (
	"os"
	"testing"
)

// benchChunk returns 1 MiB of image samples: a real frame's when
// SKYFED_BENCH_FITS names a FITS file, else synthetic 16-bit ones.
func benchChunk(b *testing.B) ([]byte, Layout) {
	if p := os.Getenv("SKYFED_BENCH_FITS"); p != "" {
		raw, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		s := NewFITSScanner()
		s.Next(raw[:min(len(raw), 2*DefaultSize)][:DefaultSize])
		raw = raw[DefaultSize:min(len(raw), 2*DefaultSize)]
		return raw, s.Next(raw)
	}
	raw := samplesLike(9, 16, DefaultSize/2, 1000)
	return raw, Layout{Bitpix: 16, DataEnd: len(raw), Row: 1000}
}

func BenchmarkCompressLayout(b *testing.B) {
	raw, l := benchChunk(b)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, _, err := CompressLayout(raw, l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFITS(b *testing.B) {
	raw, l := benchChunk(b)
	c, payload, err := CompressLayout(raw, l)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, len(raw))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if dst, err = Decode(c, payload, dst, len(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
