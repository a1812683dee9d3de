package chunk

import (
	"math/rand/v2"
	"testing"
)

// TestRiceRoundTrip codes values of every width and magnitude (zero
// blocks, small geometric values, outliers that escape, blocks coded raw)
// and decodes them back.
func TestRiceRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, nbits := range []uint{8, 16, 32, 64} {
		for _, scale := range []uint{0, 1, 3, 8, 13, 20, 26, 30, 40, 60} {
			if scale >= nbits {
				continue
			}
			vals := make([]uint64, 1000+r.IntN(100))
			for i := range vals {
				v := r.Uint64() >> (64 - max(scale, 1)) >> uint(r.IntN(3))
				if r.IntN(7) == 0 { // an outlier
					v = r.Uint64() >> (64 - nbits)
				}
				if scale == 0 && i < 500 {
					v = 0
				}
				vals[i] = v
			}
			p := newRiceParams(nbits)
			var w bitWriter
			riceEncode(&w, vals, p)
			enc := w.finish()
			got := make([]uint64, len(vals))
			rd := bitReader{buf: enc}
			if !riceDecode(&rd, got, p) {
				t.Fatalf("nbits %d scale %d: decode failed", nbits, scale)
			}
			for i := range vals {
				if got[i] != vals[i] {
					t.Fatalf("nbits %d scale %d: value %d = %#x, want %#x", nbits, scale, i, got[i], vals[i])
				}
			}
			if used := rd.pos + rd.over - int(rd.n/8); used != len(enc) {
				t.Fatalf("nbits %d scale %d: decoder used %d of %d bytes", nbits, scale, used, len(enc))
			}
		}
	}
}
