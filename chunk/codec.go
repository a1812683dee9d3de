package chunk

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Codec says how a stored payload encodes the raw bytes of a chunk.
// The chunk ID is always the hash of the raw bytes, whatever the codec.
type Codec byte

// Codecs. The numbers are stored on disk and sent on the wire: never renumber.
const (
	CodecRaw  Codec = 0 // the payload is the raw bytes
	CodecZstd Codec = 1 // zstd (klauspost/compress) of the raw bytes
	// CodecZstdShuffle16 is zstd of the raw bytes regrouped as byte planes of
	// 16-bit samples: all first (high, for big-endian FITS) bytes, then all
	// second bytes; a trailing odd byte stays last. The idea behind FITS GZIP_2.
	CodecZstdShuffle16 Codec = 2
)

// minSaving is the fraction a compressed payload must save to be kept:
// below 2% the decompression cost on every read is not worth it.
const minSaving = 0.02

// String names the codec for logs.
func (c Codec) String() string {
	switch c {
	case CodecRaw:
		return "raw"
	case CodecZstd:
		return "zstd"
	case CodecZstdShuffle16:
		return "zstd-shuffle16"
	case CodecFITS:
		return "fits"
	default:
		return fmt.Sprintf("codec(%d)", byte(c))
	}
}

// Valid reports whether c is a codec this package can decode.
func (c Codec) Valid() bool {
	return c <= CodecFITS
}

var (
	encOnce sync.Once
	encoder *zstd.Encoder
	encErr  error

	decOnce sync.Once
	decoder *zstd.Decoder
	decErr  error

	// scratch holds buffers for shuffled planes and losing compression attempts.
	scratch sync.Pool // of *[]byte
)

func sharedEncoder() (*zstd.Encoder, error) {
	encOnce.Do(func() {
		encoder, encErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderCRC(false), // the chunk ID already checks the bytes
		)
	})
	return encoder, encErr
}

func sharedDecoder() (*zstd.Decoder, error) {
	decOnce.Do(func() {
		decoder, decErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(MaxSize),
			zstd.WithDecodeAllCapLimit(true), // output never grows past cap(dst)
		)
	})
	return decoder, decErr
}

func getScratch(n int) *[]byte {
	if p, ok := scratch.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n)
	return &b
}

func putScratch(p *[]byte) {
	if cap(*p) <= 2*MaxSize {
		scratch.Put(p)
	}
}

// Compress tries zstd and zstd with the 16-bit shuffle filter and returns the
// smaller payload, or CodecRaw with raw itself when neither saves at least 2%.
// The returned payload is newly allocated unless it is raw. Safe for
// concurrent use (one shared encoder).
func Compress(raw []byte) (Codec, []byte, error) {
	if len(raw) > MaxSize {
		return CodecRaw, nil, fmt.Errorf("compress %d bytes: %w", len(raw), ErrTooLarge)
	}
	enc, err := sharedEncoder()
	if err != nil {
		return CodecRaw, nil, fmt.Errorf("compress: zstd encoder: %w", err)
	}
	if incompressible(enc, raw) {
		return CodecRaw, raw, nil
	}
	limit := int(float64(len(raw)) * (1 - minSaving))
	plain := enc.EncodeAll(raw, make([]byte, 0, len(raw)))

	planes := getScratch(len(raw))
	shuffle16(*planes, raw)
	out := getScratch(len(raw))
	shuffled := enc.EncodeAll(*planes, (*out)[:0])
	putScratch(planes)

	codec, best := CodecZstd, plain
	if len(shuffled) < len(plain) {
		codec, best = CodecZstdShuffle16, append(plain[:0], shuffled...)
	}
	*out = shuffled[:0]
	putScratch(out)
	if len(best) > limit || len(raw) == 0 {
		return CodecRaw, raw, nil
	}
	return codec, best, nil
}

// Sampling before compressing: a chunk of sampleMin bytes or more is
// first tried on sampleWindows windows of sampleWindow bytes spread
// over it, both ways; if neither saves sampleSaving, the whole chunk is
// not tried. Random, encrypted and already compressed data (a .fits.fz,
// a .gz) then cost a sixteenth of the two full passes that found
// nothing, which was a second of CPU per 256 MiB at the origin of
// every such put. Redundancy only at a distance larger than a window
// within one chunk (a chunk repeating its first half) is what the
// sample cannot see; whole repeated chunks are deduplicated anyway.
const (
	sampleMin     = 256 << 10
	sampleWindow  = 16 << 10
	sampleWindows = 4
	sampleSaving  = minSaving / 2
)

// incompressible reports whether a sample of raw shows it will not
// compress by minSaving.
func incompressible(enc *zstd.Encoder, raw []byte) bool {
	if len(raw) < sampleMin {
		return false
	}
	const n = sampleWindows * sampleWindow
	work := getScratch(3 * n)
	defer putScratch(work)
	sample, planes, out := (*work)[:n], (*work)[n:2*n], (*work)[2*n:2*n]
	step := (len(raw) - sampleWindow) / (sampleWindows - 1)
	for i := range sampleWindows {
		off := i * step &^ 1 // even: the shuffle pairs bytes as the chunk does
		copy(sample[i*sampleWindow:], raw[off:off+sampleWindow])
	}
	shuffle16(planes, sample)
	out = enc.EncodeAll(sample, out)
	best := len(out)
	out = enc.EncodeAll(planes, out[:0])
	best = min(best, len(out))
	return float64(best) > n*(1-sampleSaving)
}

// Decode returns the raw bytes of a payload encoded with c, appending into
// dst[:0]. It refuses to produce more than maxRaw bytes (clamped to MaxSize)
// with ErrTooLarge, without allocating more than that; a payload that does not
// decode is reported with ErrCorrupt. Safe for concurrent use.
func Decode(c Codec, payload []byte, dst []byte, maxRaw int) ([]byte, error) {
	maxRaw = max(min(maxRaw, MaxSize), 0)
	switch c {
	case CodecRaw:
		if len(payload) > maxRaw {
			return dst[:0], fmt.Errorf("decode %s payload of %d bytes (limit %d): %w", c, len(payload), maxRaw, ErrTooLarge)
		}
		return append(dst[:0], payload...), nil
	case CodecZstd:
		return decodeZstd(c, payload, dst, maxRaw)
	case CodecZstdShuffle16:
		planes := getScratch(0)
		defer putScratch(planes)
		p, err := decodeZstd(c, payload, *planes, maxRaw)
		*planes = p[:0]
		if err != nil {
			return dst[:0], err
		}
		dst = grow(dst[:0], len(p))
		unshuffle16(dst, p)
		return dst, nil
	case CodecFITS:
		return decodeFITS(payload, dst, maxRaw)
	default:
		return dst[:0], fmt.Errorf("decode payload: unknown codec %d: %w", byte(c), ErrCorrupt)
	}
}

// decodeZstd decodes payload into dst[:0] with output bounded by maxRaw.
// It sizes the buffer from the frame header when the header declares the
// content size, so a lying header cannot make it allocate past maxRaw.
func decodeZstd(c Codec, payload []byte, dst []byte, maxRaw int) ([]byte, error) {
	dec, err := sharedDecoder()
	if err != nil {
		return dst[:0], fmt.Errorf("decode %s: zstd decoder: %w", c, err)
	}
	var h zstd.Header
	if err := h.Decode(payload); err != nil {
		return dst[:0], fmt.Errorf("decode %s payload of %d bytes: frame header: %v: %w", c, len(payload), err, ErrCorrupt)
	}
	want := maxRaw
	if h.HasFCS {
		if h.FrameContentSize > uint64(maxRaw) {
			return dst[:0], fmt.Errorf("decode %s: frame declares %d bytes (limit %d): %w", c, h.FrameContentSize, maxRaw, ErrTooLarge)
		}
		want = int(h.FrameContentSize)
	}
	for {
		buf := dst[:0]
		if cap(buf) < want {
			buf = make([]byte, 0, want)
		}
		buf = buf[:0:min(cap(buf), maxRaw)]
		out, err := dec.DecodeAll(payload, buf)
		switch {
		case err == nil && len(out) <= maxRaw:
			return out, nil
		case err == nil || errors.Is(err, zstd.ErrDecoderSizeExceeded):
			if want < maxRaw { // several frames: allow the whole limit once
				want, dst = maxRaw, out
				continue
			}
			return dst[:0], fmt.Errorf("decode %s: output exceeds %d bytes: %w", c, maxRaw, ErrTooLarge)
		default:
			return dst[:0], fmt.Errorf("decode %s payload of %d bytes: %v: %w", c, len(payload), err, ErrCorrupt)
		}
	}
}

// grow returns b with length n, reusing its array when it is large enough.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// shuffle16 writes src regrouped as byte planes of 16-bit samples into dst
// (len(dst) == len(src)): every even-indexed byte, then every odd-indexed
// byte, then a trailing odd byte.
func shuffle16(dst, src []byte) {
	half := len(src) / 2
	hi, lo := dst[:half], dst[half:2*half]
	for i := range half {
		hi[i] = src[2*i]
		lo[i] = src[2*i+1]
	}
	if len(src)%2 == 1 {
		dst[len(dst)-1] = src[len(src)-1]
	}
}

// unshuffle16 is the inverse of shuffle16.
func unshuffle16(dst, src []byte) {
	half := len(src) / 2
	hi, lo := src[:half], src[half:2*half]
	for i := range half {
		dst[2*i] = hi[i]
		dst[2*i+1] = lo[i]
	}
	if len(src)%2 == 1 {
		dst[len(dst)-1] = src[len(src)-1]
	}
}
