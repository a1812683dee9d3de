package chunk

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// CodecFITS codes the image samples of a chunk by prediction and an
// entropy coder, and its other bytes with zstd. Its payload starts with
// a versioned header recording everything decoding needs (sample type,
// where the samples are, row length, predictor, entropy coder), so
// Decode needs no Layout. Format version 1:
//
//	version, bitpix code, predictor, entropy coder, generic codec (1 byte each)
//	rawLen, dataStart, samples, row, rowPhase, scale, genLen (uvarints)
//	genLen bytes: the bytes outside the samples (prefix then suffix), raw or zstd
//	the rest: the residuals, Rice-coded or as zstd of byte planes, or
//	(coder shuffle, floats) zstd of the samples' own byte planes
//
// Residuals are taken modulo 2^bits and zigzagged, so every predictor is
// lossless for any input; floats are predicted on their bit patterns,
// mapped so that integer order follows float order, unless every float
// of the chunk is an integer divided by a small scale (floatscale.go).
const CodecFITS Codec = 3

const (
	fitsFormat = 1
	// fitsMinSamples is the fewest samples worth the FITS codec's header.
	fitsMinSamples = 64
	// fitsHeaderMax bounds the encoded header: 5 bytes and 7 uvarints.
	fitsHeaderMax = 5 + 7*binary.MaxVarintLen64
)

// predictor says how a sample is predicted from the ones before it.
type predictor byte

const (
	predNone predictor = iota // zero: the sample itself
	predLeft                  // the previous sample
	predUp                    // the sample a row above (the previous one in the first row)
	predMED                   // LOCO-I's median edge detector of left, up and upper left
	predEnd
)

// entropyCoder says how residuals are stored.
type entropyCoder byte

const (
	entRice   entropyCoder = 1 // block-adaptive Rice, as fpack
	entPlanes entropyCoder = 2 // zstd of the residuals' byte planes, high bytes first
	// entShuffle is zstd of the samples' own byte planes, unpredicted (the
	// payload's predictor is predNone): floats whose bit patterns repeat
	// in ways prediction hides.
	entShuffle entropyCoder = 3
)

// bitpix codes in the payload header.
var bitpixCodes = [...]int{0, 8, 16, 32, 64, -32, -64}

func bitpixCode(b int) byte {
	for i, v := range bitpixCodes {
		if v == b && i > 0 {
			return byte(i)
		}
	}
	return 0
}

// sampleFormat is how samples of one BITPIX are read.
type sampleFormat struct {
	width int  // bytes per sample
	nbits uint // bits per sample
	float bool
}

func formatOf(bitpix int) (sampleFormat, bool) {
	switch bitpix {
	case 8, 16, 32, 64, -32, -64:
		w := abs(bitpix) / 8
		return sampleFormat{width: w, nbits: uint(8 * w), float: bitpix < 0}, true
	}
	return sampleFormat{}, false
}

// fitsHeader is the decoded payload header.
type fitsHeader struct {
	bitpix          int
	pred            predictor
	ent             entropyCoder
	gen             Codec // CodecRaw or CodecZstd
	rawLen, start   int
	samples, row    int
	phase, genLen   int
	scale           int // samples are integers k of floats k/scale; 0: float bit patterns
	format          sampleFormat
	residualPayload []byte
	genPayload      []byte
}

// slicePool keeps scratch slices of samples and residuals between chunks.
type slicePool[T any] struct{ p sync.Pool }

func (sp *slicePool[T]) get(n int) *[]T {
	if p, ok := sp.p.Get().(*[]T); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]T, n)
	return &b
}

func (sp *slicePool[T]) put(p *[]T) {
	if cap(*p) <= MaxSize {
		sp.p.Put(p)
	}
}

var (
	samplePool   slicePool[int64]
	residualPool slicePool[uint64]
)

// CompressLayout compresses raw knowing from l where its image samples
// are: the samples with CodecFITS, the rest generically, keeping the
// smallest of the candidate encodings, or raw when none saves 2%. With a
// zero or unusable Layout it is Compress. The returned payload is newly
// allocated unless it is raw. Safe for concurrent use.
func CompressLayout(raw []byte, l Layout) (Codec, []byte, error) {
	if len(raw) > MaxSize {
		return CodecRaw, nil, fmt.Errorf("compress %d bytes: %w", len(raw), ErrTooLarge)
	}
	f, ok := formatOf(l.Bitpix)
	if !ok || l.DataStart < 0 || l.DataEnd > len(raw) || (l.DataEnd-l.DataStart)/max(f.width, 1) < fitsMinSamples {
		return Compress(raw)
	}
	best, err := compressFITS(raw, l, f)
	if err != nil {
		return CodecRaw, nil, err
	}
	codec := CodecFITS
	if 2*(l.DataEnd-l.DataStart) < len(raw) { // mostly not samples: the generic codecs may do better
		c, p, err := Compress(raw)
		if err != nil {
			return CodecRaw, nil, err
		}
		if c != CodecRaw && len(p) < len(best) {
			codec, best = c, p
		}
	}
	if len(best) > int(float64(len(raw))*(1-minSaving)) {
		return CodecRaw, raw, nil
	}
	return codec, best, nil
}

// compressFITS returns the CodecFITS payload of raw.
func compressFITS(raw []byte, l Layout, f sampleFormat) ([]byte, error) {
	n := (l.DataEnd - l.DataStart) / f.width
	start, end := l.DataStart, l.DataStart+n*f.width
	row := max(l.Row, 0)
	if row >= n {
		row = 0 // no row above in this chunk
	}

	// The samples are loaded where their residuals go: residuals works
	// in place.
	zp := residualPool.get(n)
	defer residualPool.put(zp)
	z := *zp
	scale := 0
	if f.float {
		if d := findScale(raw[start:end], f); d > 0 && loadScaled(z, raw[start:end], f, d) {
			scale, f.float = d, false // code the integers
		}
	}
	if scale == 0 {
		loadSamples(z, raw[start:end], f)
	}
	pred := choosePredictor(z, row, f)
	residuals(z, row, pred, f.nbits)

	gen, genCodec, err := encodeOutside(raw, start, end)
	if err != nil {
		return nil, err
	}
	var hdr [fitsHeaderMax]byte
	h := append(hdr[:0], fitsFormat, bitpixCode(l.Bitpix), byte(pred), byte(entRice), byte(genCodec))
	for _, v := range []int{len(raw), start, n, row, max(l.RowPhase, 0) % max(row, 1), scale, len(gen)} {
		h = binary.AppendUvarint(h, uint64(v))
	}
	return encodeResiduals(h, gen, z, raw[start:end], f, f.float)
}

// planesTrial is the share of samples a chunk's trial of the zstd coders
// runs on before the whole chunk is coded with one, and planesGain the
// saving over Rice it must show there to be run on the whole chunk: 2%
// for integers, which Rice serves well; for floats, where zstd often wins
// and does better on a whole chunk than on a trial's sixteenth, a trial
// up to 3% worse than Rice still runs. A sixteenth decides as an eighth
// did on all but a few chunks of eso-midas-testdata (+0.06% bytes) and
// halves the trial's cost, which on planes where Rice wins is zstd's
// slowest case.
const (
	planesTrial     = 16
	planesGain      = 0.02
	planesGainFloat = -0.03
	trialStripes    = 8
)

// encodeResiduals codes z with the entropy coder that makes it smallest
// for its cost. Rice is fast and near the entropy of residuals with a
// geometric distribution. zstd on byte planes (for integers at its
// better level, 2 to 8 times slower) wins where the distribution is
// otherwise (many repeated values, floats' bit patterns), and for floats
// (shuffle) so may zstd on the planes of the unpredicted samples (data,
// the samples' bytes). The zstd coders run on a sixteenth of the chunk
// first; the best of them is run on the whole chunk only if it beats
// Rice there by 2%, and the smaller result is kept.
//
// The payload returned is newly allocated: hdr (whose predictor and
// coder bytes are set here), gen, then the residuals.
func encodeResiduals(hdr, gen []byte, z []uint64, data []byte, f sampleFormat, shuffle bool) ([]byte, error) {
	// Integers' residual planes need zstd's better level (planesEncoder).
	// For floats the default level serves both their residual planes
	// (the better one saved about 1% there, for a quarter of the float
	// coding time) and the samples' own planes, which hold the repeats
	// zstd's match finder is for.
	enc, err := sharedEncoder()
	if err == nil && !shuffle {
		enc, err = planesEncoder()
	}
	if err != nil {
		return nil, fmt.Errorf("compress: zstd encoder: %w", err)
	}
	p := newRiceParams(f.nbits)
	// Rice is planned first, block by block: its size decides between
	// the coders, and it is written only if it is kept.
	nblk := (len(z) + riceBlock - 1) / riceBlock
	codes := getScratch(nblk)
	defer putScratch(codes)
	bp := blockBitsPool.get(nblk)
	defer blockBitsPool.put(bp)
	riceBytes := int((p.plan(z, *codes, *bp) + 7) / 8)
	payload := func(ent entropyCoder, res []byte) []byte {
		out := make([]byte, len(hdr)+len(gen)+len(res))
		copy(out[copy(out, hdr):], gen)
		out[3] = byte(ent)
		if ent == entShuffle {
			out[2] = byte(predNone)
		}
		copy(out[len(hdr)+len(gen):], res)
		return out
	}
	rice := func() []byte {
		out := make([]byte, len(hdr)+len(gen), len(hdr)+len(gen)+riceBytes)
		copy(out[copy(out, hdr):], gen)
		out[3] = byte(entRice)
		w := bitWriter{buf: out}
		p.emit(&w, z, *codes)
		return w.finish()
	}
	// The trial runs on trialStripes stripes spread over the chunk (the
	// start of a frame is often unlike the rest), of whole Rice blocks so
	// that Rice's bits for them are known from the plan.
	stripe := len(z) / planesTrial / trialStripes / riceBlock * riceBlock
	trial := stripe * trialStripes
	ent := entPlanes
	if trial >= 4096 {
		tz := residualPool.get(trial)
		defer residualPool.put(tz)
		tdata := getScratch(trial * f.width)
		defer putScratch(tdata)
		riceBits := 0
		for k := range trialStripes {
			from := k * (len(z) / trialStripes) / riceBlock * riceBlock
			for _, b := range (*bp)[from/riceBlock : (from+stripe)/riceBlock] {
				riceBits += int(b)
			}
			copy((*tz)[k*stripe:], z[from:from+stripe])
			copy((*tdata)[k*stripe*f.width:], data[from*f.width:(from+stripe)*f.width])
		}
		t := getScratch(trial * f.width)
		defer putScratch(t)
		toPlanes(*t, *tz, f.width)
		gain := planesGain
		if shuffle {
			gain = planesGainFloat
		}
		limit := int((1 - gain) * float64(riceBits) / 8)
		ent = entRice
		zt := getScratch(trial * f.width)
		defer putScratch(zt)
		if zb := enc.EncodeAll(*t, (*zt)[:0]); len(zb) < limit {
			ent, limit = entPlanes, len(zb)
		}
		if shuffle {
			shuffleN(*t, *tdata, f.width)
			if zb := enc.EncodeAll(*t, (*zt)[:0]); len(zb) < limit {
				ent = entShuffle
			}
		}
		if ent == entRice {
			return rice(), nil
		}
	}
	planes := getScratch(len(z) * f.width)
	defer putScratch(planes)
	if ent == entShuffle {
		shuffleN(*planes, data, f.width)
	} else {
		toPlanes(*planes, z, f.width)
	}
	out := getScratch(riceBytes)
	defer putScratch(out)
	if zb := enc.EncodeAll(*planes, (*out)[:0]); len(zb) < riceBytes {
		*out = zb[:0]
		return payload(ent, zb), nil
	}
	return rice(), nil
}

var blockBitsPool slicePool[uint32]

// shuffleN writes the samples of width bytes in src as byte planes.
func shuffleN(dst, src []byte, width int) {
	n := len(src) / width
	for p := range width {
		plane := dst[p*n : (p+1)*n]
		for i := range plane {
			plane[i] = src[i*width+p]
		}
	}
}

// unshuffleN is the inverse of shuffleN.
func unshuffleN(dst, src []byte, width int) {
	n := len(dst) / width
	for p := range width {
		plane := src[p*n : (p+1)*n]
		for i, b := range plane {
			dst[i*width+p] = b
		}
	}
}

var (
	planesOnce sync.Once
	planesEnc  *zstd.Encoder
	planesErr  error
)

// planesEncoder is zstd at its better level, for integers' residual byte
// planes: it spends its time on entropy coding the literals, where the
// faster levels give up on such data and store it nearly raw.
func planesEncoder() (*zstd.Encoder, error) {
	planesOnce.Do(func() {
		planesEnc, planesErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderCRC(false), // the chunk ID already checks the bytes
		)
	})
	return planesEnc, planesErr
}

// encodeOutside codes the bytes of raw outside [start, end).
func encodeOutside(raw []byte, start, end int) ([]byte, Codec, error) {
	if start == 0 && end == len(raw) {
		return nil, CodecRaw, nil
	}
	other := make([]byte, 0, start+len(raw)-end)
	other = append(append(other, raw[:start]...), raw[end:]...)
	enc, err := sharedEncoder()
	if err != nil {
		return nil, 0, fmt.Errorf("compress: zstd encoder: %w", err)
	}
	if z := enc.EncodeAll(other, nil); len(z) < len(other) {
		return z, CodecZstd, nil
	}
	return other, CodecRaw, nil
}

// loadSamples reads big-endian samples, sign-extended (as the bits of
// int64s: residuals turns them into residuals in place); floats are mapped
// so that integer order is float order (negative floats have their
// magnitude bits flipped).
func loadSamples(s []uint64, b []byte, f sampleFormat) {
	switch f.width {
	case 1:
		for i := range s {
			s[i] = uint64(int64(int8(b[i])))
		}
	case 2: // four samples to an 8-byte load, as storeSamples
		b = b[:2*len(s)]
		i := 0
		for ; i+4 <= len(s); i += 4 {
			w := binary.BigEndian.Uint64(b[2*i:])
			q := s[i : i+4 : i+4]
			q[0], q[1], q[2], q[3] = uint64(int64(int16(w>>48))), uint64(int64(int16(w>>32))), uint64(int64(int16(w>>16))), uint64(int64(int16(w)))
		}
		for ; i < len(s); i++ {
			s[i] = uint64(int64(int16(binary.BigEndian.Uint16(b[2*i:]))))
		}
	case 4:
		b = b[:4*len(s)]
		i := 0
		for ; i+2 <= len(s); i += 2 {
			w := binary.BigEndian.Uint64(b[4*i:])
			q := s[i : i+2 : i+2]
			q[0], q[1] = uint64(int64(int32(w>>32))), uint64(int64(int32(w)))
		}
		for ; i < len(s); i++ {
			s[i] = uint64(int64(int32(binary.BigEndian.Uint32(b[4*i:]))))
		}
	case 8:
		for i := range s {
			s[i] = binary.BigEndian.Uint64(b[8*i:])
		}
	}
	if f.float {
		flip := int64(1)<<(f.nbits-1) - 1
		for i, u := range s {
			v := int64(u)
			s[i] = uint64(v ^ (flip & (v >> 63)))
		}
	}
}

// storeSamples is the inverse of loadSamples.
// It leaves s as it is: later samples are predicted from it.
func storeSamples(b []byte, s []int64, f sampleFormat) {
	flip := int64(0)
	if f.float {
		flip = int64(1)<<(f.nbits-1) - 1
	}
	// 2- and 4-byte samples are stored in 8-byte words: one bounds
	// check and one store for several samples.
	switch f.width {
	case 1:
		b = b[:len(s)]
		for i, v := range s {
			b[i] = byte(v)
		}
	case 2:
		b = b[:2*len(s)]
		i := 0
		for ; i+4 <= len(s); i += 4 {
			q := s[i : i+4 : i+4]
			binary.BigEndian.PutUint64(b[2*i:], uint64(uint16(q[0]))<<48|uint64(uint16(q[1]))<<32|uint64(uint16(q[2]))<<16|uint64(uint16(q[3])))
		}
		for ; i < len(s); i++ {
			binary.BigEndian.PutUint16(b[2*i:], uint16(s[i]))
		}
	case 4:
		b = b[:4*len(s)]
		i := 0
		for ; i+2 <= len(s); i += 2 {
			q := s[i : i+2 : i+2]
			v0, v1 := q[0]^(flip&(q[0]>>63)), q[1]^(flip&(q[1]>>63))
			binary.BigEndian.PutUint64(b[4*i:], uint64(uint32(v0))<<32|uint64(uint32(v1)))
		}
		for ; i < len(s); i++ {
			v := s[i]
			binary.BigEndian.PutUint32(b[4*i:], uint32(v^(flip&(v>>63))))
		}
	case 8:
		b = b[:8*len(s)]
		for i, v := range s {
			binary.BigEndian.PutUint64(b[8*i:], uint64(v^(flip&(v>>63))))
		}
	}
}

// toPlanes writes the low width bytes of each value as byte planes, the
// most significant plane first.
func toPlanes(dst []byte, z []uint64, width int) {
	n := len(z)
	for p := range width {
		shift := uint(8 * (width - 1 - p))
		plane := dst[p*n : (p+1)*n]
		for i, v := range z {
			plane[i] = byte(v >> shift)
		}
	}
}

// fromPlanesRange is the inverse of toPlanes for the values from..from+len(z)
// of n values in src.
func fromPlanesRange(z []uint64, src []byte, n, from, width int) {
	plane := func(p int) []byte {
		b := src[p*n+from : p*n+from+len(z)]
		return b[:len(z)]
	}
	switch width { // the common widths in one pass, without bounds checks
	case 2:
		hi, lo := plane(0), plane(1)
		for i := range z {
			z[i] = uint64(hi[i])<<8 | uint64(lo[i])
		}
		return
	case 4:
		b0, b1, b2, b3 := plane(0), plane(1), plane(2), plane(3)
		for i := range z {
			z[i] = uint64(b0[i])<<24 | uint64(b1[i])<<16 | uint64(b2[i])<<8 | uint64(b3[i])
		}
		return
	}
	clear(z)
	for p := range width {
		shift := uint(8 * (width - 1 - p))
		for i, b := range plane(p) {
			z[i] |= uint64(b) << shift
		}
	}
}

// decodeBlock is how many samples decoding carries through its stages at
// a time; a multiple of riceBlock.
const decodeBlock = 2048

// parseFITSHeader reads and checks a CodecFITS payload header against
// maxRaw. Any inconsistency is ErrCorrupt; a declared size beyond maxRaw
// is ErrTooLarge.
func parseFITSHeader(payload []byte, maxRaw int) (fitsHeader, error) {
	var h fitsHeader
	if len(payload) < 5 || payload[0] != fitsFormat {
		return h, fmt.Errorf("decode %s: bad header: %w", CodecFITS, ErrCorrupt)
	}
	code := int(payload[1])
	if code == 0 || code >= len(bitpixCodes) {
		return h, fmt.Errorf("decode %s: bitpix code %d: %w", CodecFITS, code, ErrCorrupt)
	}
	h.bitpix = bitpixCodes[code]
	h.format, _ = formatOf(h.bitpix)
	h.pred, h.ent, h.gen = predictor(payload[2]), entropyCoder(payload[3]), Codec(payload[4])
	if h.pred >= predEnd || h.ent < entRice || h.ent > entShuffle || (h.gen != CodecRaw && h.gen != CodecZstd) {
		return h, fmt.Errorf("decode %s: predictor %d, coder %d, generic codec %d: %w", CodecFITS, h.pred, h.ent, h.gen, ErrCorrupt)
	}
	pos := 5
	var vals [7]int
	for i := range vals {
		v, n := binary.Uvarint(payload[pos:])
		if n <= 0 || v > MaxSize {
			return h, fmt.Errorf("decode %s: header field %d: %w", CodecFITS, i, ErrCorrupt)
		}
		vals[i], pos = int(v), pos+n
	}
	h.rawLen, h.start, h.samples, h.row, h.phase, h.scale, h.genLen = vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6]
	if h.scale > 0 {
		if !h.format.float || h.scale > maxFloatScale {
			return h, fmt.Errorf("decode %s: scale %d for BITPIX %d: %w", CodecFITS, h.scale, h.bitpix, ErrCorrupt)
		}
		h.format.float = false // the samples coded are integers
	}
	if h.rawLen > maxRaw {
		return h, fmt.Errorf("decode %s: payload declares %d bytes (limit %d): %w", CodecFITS, h.rawLen, maxRaw, ErrTooLarge)
	}
	dataLen := h.samples * h.format.width
	if h.start > h.rawLen || dataLen > h.rawLen-h.start || h.row >= max(h.samples, 1) ||
		(h.phase > 0 && h.phase >= h.row) || h.genLen > len(payload)-pos {
		return h, fmt.Errorf("decode %s: inconsistent header: %w", CodecFITS, ErrCorrupt)
	}
	h.genPayload = payload[pos : pos+h.genLen]
	h.residualPayload = payload[pos+h.genLen:]
	return h, nil
}

// decodeFITS decodes a CodecFITS payload into dst[:0].
func decodeFITS(payload, dst []byte, maxRaw int) ([]byte, error) {
	h, err := parseFITSHeader(payload, maxRaw)
	if err != nil {
		return dst[:0], err
	}
	f := h.format
	end := h.start + h.samples*f.width
	dst = grow(dst[:0], h.rawLen)
	if err := decodeOutside(dst, h, end); err != nil {
		return dst[:0], err
	}
	if h.ent == entShuffle {
		if h.pred != predNone || h.scale != 0 {
			return dst[:0], fmt.Errorf("decode %s: shuffled samples with predictor %d, scale %d: %w", CodecFITS, h.pred, h.scale, ErrCorrupt)
		}
		buf := getScratch(0)
		defer putScratch(buf)
		p, err := decodeZstd(CodecFITS, h.residualPayload, *buf, h.samples*f.width)
		*buf = p[:0]
		if err != nil || len(p) != h.samples*f.width {
			return dst[:0], fmt.Errorf("decode %s: sample planes of %d bytes, want %d: %v: %w", CodecFITS, len(p), h.samples*f.width, err, ErrCorrupt)
		}
		unshuffleN(dst[h.start:end], p, f.width)
		return dst, nil
	}
	var planes []byte
	if h.ent == entPlanes {
		buf := getScratch(0)
		defer putScratch(buf)
		p, err := decodeZstd(CodecFITS, h.residualPayload, *buf, h.samples*f.width)
		*buf = p[:0]
		if err != nil || len(p) != h.samples*f.width {
			return dst[:0], fmt.Errorf("decode %s: residual planes of %d bytes, want %d: %v: %w", CodecFITS, len(p), h.samples*f.width, err, ErrCorrupt)
		}
		planes = p
	}
	r := bitReader{buf: h.residualPayload}
	rp := newRiceParams(f.nbits)
	// Block by block, so that residuals and samples stay in cache between
	// the entropy decoder, the predictor and the store. The samples are
	// kept in a window of the chunk, from a row and one sample before the
	// block (all the predictors look at), which slides when full: a
	// window a few rows long stays in cache where the whole chunk's
	// samples, as int64, would not.
	keep := h.row + 1
	wp := samplePool.get(min(h.samples, keep+max(4*keep, decodeBlock)))
	defer samplePool.put(wp)
	win, base := *wp, 0
	var zb [decodeBlock]uint64
	for i0 := 0; i0 < h.samples; i0 += decodeBlock {
		i1 := min(i0+decodeBlock, h.samples)
		z := zb[:i1-i0]
		if planes != nil {
			fromPlanesRange(z, planes, h.samples, i0, f.width)
		} else if !riceDecode(&r, z, rp) {
			return dst[:0], fmt.Errorf("decode %s: Rice residuals: %w", CodecFITS, ErrCorrupt)
		}
		if i1-base > len(win) {
			k := min(i0, keep)
			copy(win, win[i0-base-k:i0-base])
			base = i0 - k
		}
		s := win[:i1-base]
		reconstructRange(s, z, i0-base, h.row, h.pred, f.nbits, base, h.samples)
		out := dst[h.start+i0*f.width : h.start+i1*f.width]
		if h.scale > 0 {
			storeScaled(out, s[i0-base:], f, h.scale)
		} else {
			storeSamples(out, s[i0-base:], f)
		}
	}
	if planes == nil && r.pos+r.over-int(r.n/8) != len(h.residualPayload) {
		return dst[:0], fmt.Errorf("decode %s: Rice residuals: %d bytes left over: %w", CodecFITS, len(h.residualPayload)-(r.pos+r.over-int(r.n/8)), ErrCorrupt)
	}
	return dst, nil
}

// decodeOutside fills the bytes of dst outside the samples [h.start, end).
func decodeOutside(dst []byte, h fitsHeader, end int) error {
	want := h.rawLen - (end - h.start)
	other := h.genPayload
	if h.gen == CodecZstd {
		buf := getScratch(0)
		defer putScratch(buf)
		var err error
		other, err = decodeZstd(CodecFITS, h.genPayload, *buf, want)
		*buf = other[:0]
		if err != nil {
			return fmt.Errorf("decode %s: bytes outside the samples: %v: %w", CodecFITS, err, ErrCorrupt)
		}
	}
	if len(other) != want {
		return fmt.Errorf("decode %s: %d bytes outside the samples, want %d: %w", CodecFITS, len(other), want, ErrCorrupt)
	}
	copy(dst[:h.start], other)
	copy(dst[end:], other[h.start:])
	return nil
}
