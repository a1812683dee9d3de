package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// samplesLike returns n samples of the given BITPIX shaped like a sky
// image row by row: a smooth background, noise, and a few bright stars.
func samplesLike(seed uint64, bitpix, n, row int) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	f, _ := formatOf(bitpix)
	b := make([]byte, n*f.width)
	for i := range n {
		x, y := float64(i%row), float64(i/row)
		v := 1000 + 3*x + 2*y + 300*math.Sin(x/40)*math.Cos(y/30) + r.NormFloat64()*5
		if r.IntN(500) == 0 {
			v += 20000
		}
		p := b[i*f.width:]
		switch bitpix {
		case 8:
			p[0] = byte(int(v) >> 4)
		case 16:
			binary.BigEndian.PutUint16(p, uint16(int16(v)))
		case 32:
			binary.BigEndian.PutUint32(p, uint32(int32(v)))
		case 64:
			binary.BigEndian.PutUint64(p, uint64(int64(v)))
		case -32:
			binary.BigEndian.PutUint32(p, math.Float32bits(float32(v-2000)))
		case -64:
			binary.BigEndian.PutUint64(p, math.Float64bits(v/7-300))
		}
	}
	return b
}

func TestCompressLayoutRoundTrip(t *testing.T) {
	header := bytes.Repeat([]byte("SIMPLE  =                    T / conforms "), 70)
	for _, bitpix := range []int{8, 16, 32, 64, -32, -64} {
		for _, row := range []int{0, 100, 1000} {
			f, _ := formatOf(bitpix)
			data := samplesLike(uint64(bitpix+row), bitpix, 40000, max(row, 77))
			raw := append(append(append([]byte{}, header...), data...), 1, 2, 3)
			l := Layout{Bitpix: bitpix, DataStart: len(header), DataEnd: len(header) + len(data), Row: row, RowPhase: 13}
			c, payload, err := CompressLayout(raw, l)
			if err != nil {
				t.Fatalf("bitpix %d row %d: %v", bitpix, row, err)
			}
			gc, generic, _ := Compress(raw)
			got, err := Decode(c, payload, nil, len(raw))
			if err != nil {
				t.Fatalf("bitpix %d row %d: Decode %s: %v", bitpix, row, c, err)
			}
			if !bytes.Equal(got, raw) {
				t.Fatalf("bitpix %d row %d: round trip through %s differs", bitpix, row, c)
			}
			if len(payload) > len(generic) {
				t.Errorf("bitpix %d row %d: %s payload %d bytes, generic %s %d", bitpix, row, c, len(payload), gc, len(generic))
			}
			if c != CodecFITS && f.width > 1 {
				t.Errorf("bitpix %d row %d: codec %s, want %s", bitpix, row, c, CodecFITS)
			}
			t.Logf("bitpix %3d row %4d: %d → %s %d (generic %s %d)", bitpix, row, len(raw), c, len(payload), gc, len(generic))
		}
	}
}

// FuzzCompressLayout checks that any bytes with any layout hint decode
// to themselves, and that Decode's bounds hold for the payload.
func FuzzCompressLayout(f *testing.F) {
	img := samplesLike(4, 16, 3000, 100)
	f.Add(img, 16, 0, len(img), 100, 0)
	f.Add(img, 32, 3, len(img)-1, 7, 5)
	f.Add(samplesLike(5, -32, 1000, 50), -32, 0, 4000, 50, 49)
	f.Add(samplesLike(6, -64, 500, 20), -64, 8, 3000, 0, 0)
	f.Add(samplesLike(7, 8, 900, 30), 8, 1, 900, 30, 1)
	f.Add([]byte("SIMPLE  ="), 64, 0, 9, 1, 0)
	f.Fuzz(func(t *testing.T, raw []byte, bitpix, start, end, row, phase int) {
		l := Layout{Bitpix: bitpix, DataStart: start, DataEnd: end, Row: row, RowPhase: phase}
		c, payload, err := CompressLayout(raw, l)
		if err != nil {
			t.Fatalf("CompressLayout(%d bytes, %+v): %v", len(raw), l, err)
		}
		got, err := Decode(c, payload, nil, len(raw))
		if err != nil {
			t.Fatalf("Decode %s of %d bytes with %+v: %v", c, len(raw), l, err)
		}
		if !bytes.Equal(got, raw) {
			t.Fatalf("round trip through %s with %+v differs", c, l)
		}
		if len(raw) > 0 {
			if _, err := Decode(c, payload, nil, len(raw)-1); c != CodecRaw && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode %s with a limit below the raw size: %v, want ErrTooLarge", c, err)
			}
		}
	})
}

// scaledFloats returns n float32 samples k/25 (the mean of 25 exposures).
func scaledFloats(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 4))
	b := make([]byte, 0, 4*n)
	for i := range n {
		k := 12000 + int32(i%300) + int32(r.NormFloat64()*40)
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(k)/25))
	}
	return b
}

// Floats that are integers over a small divisor are coded as the
// integers; one sample that is not (NaN, -0) keeps the whole chunk on
// the float path. Both round-trip bit for bit.
func TestCompressLayoutScaledFloats(t *testing.T) {
	data := scaledFloats(1, 20000)
	for _, tc := range []struct {
		name      string
		poke      []byte // replaces sample 777
		wantScale int
	}{
		{"k/25", nil, 25},
		{"NaN", []byte{0x7f, 0xc0, 0, 1}, 0},
		{"-0", []byte{0x80, 0, 0, 0}, 0},
	} {
		raw := append([]byte{}, data...)
		copy(raw[4*777:], tc.poke)
		c, payload, err := CompressLayout(raw, Layout{Bitpix: -32, DataEnd: len(raw), Row: 300})
		if err != nil || c != CodecFITS {
			t.Fatalf("%s: codec %s, %v", tc.name, c, err)
		}
		h, err := parseFITSHeader(payload, len(raw))
		if err != nil || h.scale != tc.wantScale {
			t.Errorf("%s: scale %d (%v), want %d", tc.name, h.scale, err, tc.wantScale)
		}
		got, err := Decode(c, payload, nil, len(raw))
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("%s: round trip: %v", tc.name, err)
		}
		t.Logf("%s: %d → %d bytes (scale %d, coder %d)", tc.name, len(raw), len(payload), h.scale, h.ent)
	}
}

// shufflePayload builds a CodecFITS payload of the shuffle coder by hand
// (the encoder picks it only where it wins), for the decoder's tests.
func shufflePayload(t testing.TB, samples []byte) []byte {
	enc, err := planesEncoder()
	if err != nil {
		t.Fatal(err)
	}
	planes := make([]byte, len(samples))
	shuffleN(planes, samples, 4)
	p := []byte{fitsFormat, bitpixCode(-32), byte(predNone), byte(entShuffle), byte(CodecRaw)}
	for _, v := range []int{len(samples), 0, len(samples) / 4, 0, 0, 0, 0} {
		p = binary.AppendUvarint(p, uint64(v))
	}
	return enc.EncodeAll(planes, p)
}

func TestDecodeShuffle(t *testing.T) {
	raw := samplesLike(3, -32, 5000, 100)
	got, err := Decode(CodecFITS, shufflePayload(t, raw), nil, len(raw))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("shuffle payload: %v", err)
	}
}

// TestMedNarrow checks the branchless MED against med's three cases for
// samples narrower than 64 bits, at the extremes of each width.
func TestMedNarrow(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, nbits := range []uint{8, 16, 32} {
		lo, hi := -int64(1)<<(nbits-1), int64(1)<<(nbits-1)-1
		edge := []int64{lo, lo + 1, -1, 0, 1, hi - 1, hi}
		pick := func() int64 {
			if r.IntN(2) == 0 {
				return edge[r.IntN(len(edge))]
			}
			return r.Int64() << (64 - nbits) >> (64 - nbits)
		}
		for range 100000 {
			a, b, c := pick(), pick(), pick()
			if got, want := medNarrow(a, b, c), med(a, b, c); got != want {
				t.Fatalf("nbits %d: medNarrow(%d, %d, %d) = %d, med %d", nbits, a, b, c, got, want)
			}
		}
	}
}
