package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// imageLike returns n bytes of big-endian int16 samples shaped like a sky
// image: a smooth gradient plus a few counts of noise. An odd n ends in half a sample.
func imageLike(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n+1)
	const width = 1024
	for i := 0; i+1 < len(b); i += 2 {
		x, y := float64((i/2)%width), float64((i/2)/width)
		v := 1000 + 8*x + 3*y + 400*math.Sin(x/90)*math.Cos(y/70) + r.NormFloat64()*6
		binary.BigEndian.PutUint16(b[i:], uint16(int16(v)))
	}
	return b[:n]
}

func TestCompressRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		raw   []byte
		codec Codec // expected codec; 255 means any compressed codec
	}{
		{"empty", nil, CodecRaw},
		{"one byte", []byte{7}, CodecRaw},
		{"random", randomBytes(1, DefaultSize), CodecRaw},
		{"random odd", randomBytes(2, 4097), CodecRaw},
		{"zeros", make([]byte, DefaultSize), 255},
		{"zeros odd", make([]byte, 1001), 255},
		{"image 16-bit", imageLike(3, DefaultSize), CodecZstdShuffle16},
		{"image 16-bit odd", imageLike(4, DefaultSize-1), CodecZstdShuffle16},
		{"text", bytes.Repeat([]byte("SIMPLE  =                    T / conforms to FITS standard "), 2000), 255},
		// The sample sees the random windows and the zeros between them:
		// the chunk is tried whole and compresses.
		{"random then zeros", append(randomBytes(5, DefaultSize/2), make([]byte, DefaultSize/2)...), 255},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, payload, err := Compress(tc.raw)
			if err != nil {
				t.Fatalf("Compress: %v", err)
			}
			switch {
			case tc.codec == 255 && c == CodecRaw:
				t.Errorf("codec = raw, want a compressed codec")
			case tc.codec != 255 && c != tc.codec:
				t.Errorf("codec = %s, want %s", c, tc.codec)
			}
			if c == CodecRaw && !bytes.Equal(payload, tc.raw) {
				t.Error("raw codec payload differs from input")
			}
			if c != CodecRaw && float64(len(payload)) > 0.98*float64(len(tc.raw)) {
				t.Errorf("%s payload of %d bytes saves < 2%% of %d", c, len(payload), len(tc.raw))
			}
			got, err := Decode(c, payload, nil, len(tc.raw))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Fatal("round trip differs")
			}
			t.Logf("%s: %d → %d bytes", c, len(tc.raw), len(payload))
		})
	}
}

// A chunk whose sample does not compress is not tried whole; one whose
// sample does is.
func TestIncompressibleBySample(t *testing.T) {
	enc, err := sharedEncoder()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"random", randomBytes(6, DefaultSize), true},
		{"random, too small to sample", randomBytes(7, sampleMin-1), false},
		{"image", imageLike(8, DefaultSize), false},
		{"zeros", make([]byte, sampleMin), false},
	}
	for _, tc := range cases {
		if got := incompressible(enc, tc.raw); got != tc.want {
			t.Errorf("%s: incompressible = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCodecConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				raw := imageLike(uint64(100*g+i), 64<<10+g)
				c, payload, err := Compress(raw)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := Decode(c, payload, nil, len(raw))
				if err != nil || !bytes.Equal(got, raw) {
					t.Errorf("round trip: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestShuffleWinsOnImages(t *testing.T) {
	raw := imageLike(5, DefaultSize)
	enc, err := sharedEncoder()
	if err != nil {
		t.Fatal(err)
	}
	plain := enc.EncodeAll(raw, nil)
	c, shuffled, err := Compress(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c != CodecZstdShuffle16 || len(shuffled) >= len(plain) {
		t.Errorf("Compress chose %s with %d bytes; plain zstd gives %d", c, len(shuffled), len(plain))
	}
}

func TestShuffleLayout(t *testing.T) {
	cases := []struct{ in, want []byte }{
		{[]byte{}, []byte{}},
		{[]byte{9}, []byte{9}},
		{[]byte{1, 2}, []byte{1, 2}},
		{[]byte{1, 2, 3, 4, 5, 6}, []byte{1, 3, 5, 2, 4, 6}},
		{[]byte{1, 2, 3, 4, 5}, []byte{1, 3, 2, 4, 5}},
	}
	for _, tc := range cases {
		got := make([]byte, len(tc.in))
		shuffle16(got, tc.in)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("shuffle16(%v) = %v, want %v", tc.in, got, tc.want)
		}
		back := make([]byte, len(got))
		unshuffle16(back, got)
		if !bytes.Equal(back, tc.in) {
			t.Errorf("unshuffle16(%v) = %v, want %v", got, back, tc.in)
		}
	}
}

func TestDecodeRefusesLargeOutput(t *testing.T) {
	enc, err := sharedEncoder()
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 8<<20)
	withSize := enc.EncodeAll(zeros, nil)
	shuffled := enc.EncodeAll(zeros, nil) // planes of zeros are zeros
	var streamed bytes.Buffer             // a frame that does not declare its size
	w, err := zstd.NewWriter(&streamed, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(zeros); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	twoFrames := append(enc.EncodeAll(zeros[:1000], nil), enc.EncodeAll(zeros[:1000], nil)...)
	cases := []struct {
		name    string
		c       Codec
		payload []byte
		maxRaw  int
		wantErr error
		wantLen int
	}{
		{"raw", CodecRaw, zeros[:101], 100, ErrTooLarge, 0},
		{"raw fits", CodecRaw, zeros[:100], 100, nil, 100},
		{"zstd declared size", CodecZstd, withSize, 1 << 20, ErrTooLarge, 0},
		{"shuffle declared size", CodecZstdShuffle16, shuffled, 1 << 20, ErrTooLarge, 0},
		{"zstd undeclared size", CodecZstd, streamed.Bytes(), 1 << 20, ErrTooLarge, 0},
		{"shuffle undeclared size", CodecZstdShuffle16, streamed.Bytes(), 1 << 20, ErrTooLarge, 0},
		{"two frames over", CodecZstd, twoFrames, 1500, ErrTooLarge, 0},
		{"two frames fit", CodecZstd, twoFrames, 2000, nil, 2000},
		{"negative limit", CodecZstd, twoFrames, -1, ErrTooLarge, 0},
		{"garbage", CodecZstd, []byte("not zstd at all"), 1 << 20, ErrCorrupt, 0},
		{"empty", CodecZstdShuffle16, nil, 1 << 20, ErrCorrupt, 0},
		{"unknown codec", Codec(9), withSize, 1 << 20, ErrCorrupt, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := Decode(tc.c, tc.payload, nil, tc.maxRaw)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Decode error = %v, want %v", err, tc.wantErr)
			}
			if len(got) != tc.wantLen {
				t.Errorf("Decode returned %d bytes, want %d", len(got), tc.wantLen)
			}
			// Generous bound: maxRaw twice over (scratch + output) plus decoder state.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(2*max(tc.maxRaw, 0))+4<<20 {
				t.Errorf("Decode allocated %d bytes for a %d-byte limit", alloc, tc.maxRaw)
			}
		})
	}
}

func TestDecodeReusesDst(t *testing.T) {
	raw := imageLike(6, 100000)
	c, payload, err := Compress(raw)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 7, len(raw))
	got, err := Decode(c, payload, dst, len(raw))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("Decode = %d bytes, %v", len(got), err)
	}
	if &got[0] != &dst[:1][0] {
		t.Error("Decode did not reuse a large enough dst")
	}
}

func FuzzDecode(f *testing.F) {
	enc, err := sharedEncoder()
	if err != nil {
		f.Fatal(err)
	}
	img := imageLike(7, 3000)
	planes := make([]byte, len(img))
	shuffle16(planes, img)
	f.Add(byte(CodecZstd), enc.EncodeAll(img, nil), 3000)
	f.Add(byte(CodecZstdShuffle16), enc.EncodeAll(planes, nil), 3000)
	f.Add(byte(CodecZstd), enc.EncodeAll(make([]byte, 5000), nil), 100)
	f.Add(byte(CodecRaw), []byte("abc"), 2)
	for _, bitpix := range []int{16, 32, -32, 8, -64} {
		raw := append([]byte("SIMPLE  = T"), samplesLike(uint64(10-bitpix), bitpix, 400, 20)...)
		l := Layout{Bitpix: bitpix, DataStart: 11, DataEnd: len(raw) - 3, Row: 20, RowPhase: 3}
		if c, payload, err := CompressLayout(raw, l); err == nil && c == CodecFITS {
			f.Add(byte(c), payload, len(raw))
		}
	}
	if c, payload, err := CompressLayout(scaledFloats(2, 300), Layout{Bitpix: -32, DataEnd: 1200, Row: 30}); err == nil {
		f.Add(byte(c), payload, 1200)
	}
	f.Add(byte(CodecFITS), shufflePayload(f, samplesLike(4, -32, 300, 30)), 1200)
	f.Fuzz(func(t *testing.T, c byte, payload []byte, maxRaw int) {
		maxRaw %= 1 << 20 // keep the fuzzer's allocations small
		got, err := Decode(Codec(c), payload, nil, maxRaw)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrTooLarge", err)
			}
			return
		}
		if len(got) > max(maxRaw, 0) {
			t.Fatalf("Decode returned %d bytes, limit %d", len(got), maxRaw)
		}
	})
}
