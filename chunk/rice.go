package chunk

import (
	"encoding/binary"
	"math/bits"
)

// Rice coding of zigzagged prediction residuals, in blocks of riceBlock
// values as fpack does: each block starts with a code of hb bits saying
// how the block is coded, 0 for a block of zeros, k+1 for Rice parameter
// k, all ones for values stored raw. Unlike fpack, a value whose unary
// part would reach qmax bits escapes to qmax zeros, a one and the raw
// value, so a star or a cosmic ray in a block of sky costs a few dozen
// bits rather than thousands.
const riceBlock = 32

// riceParams are the code's constants for values of nbits bits.
type riceParams struct {
	nbits uint // bits per value
	hb    uint // bits of a block's code
	raw   uint64
	kmax  uint // largest Rice parameter with its own code
	qmax  uint // unary prefixes this long escape to a raw value
}

func newRiceParams(nbits uint) riceParams {
	hb := uint(bits.Len(nbits)) - 1 // 8→3, 16→4, 32→5, 64→6
	return riceParams{nbits: nbits, hb: hb, raw: 1<<hb - 1, kmax: 1<<hb - 3, qmax: min(nbits, 32)}
}

// bitWriter appends bits, most significant first.
type bitWriter struct {
	buf []byte
	acc uint64 // the low n bits are pending
	n   uint
}

// write appends the low nb bits of v; nb <= 32 and v < 1<<nb.
func (w *bitWriter) write(v uint64, nb uint) {
	w.acc = w.acc<<(nb&63) | v // counts masked: plain shifts, none reaches 64
	w.n += nb
	if w.n >= 32 {
		w.n -= 32
		w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(w.acc>>(w.n&63)))
	}
}

// writeWide appends the low nb bits of v for any nb <= 64.
func (w *bitWriter) writeWide(v uint64, nb uint) {
	if nb > 32 {
		w.write(v>>32&(1<<(nb-32)-1), nb-32)
		nb = 32
	}
	w.write(v&(1<<nb-1), nb)
}

// finish pads the pending bits to a byte and returns the bytes.
func (w *bitWriter) finish() []byte {
	for w.n >= 8 {
		w.n -= 8
		w.buf = append(w.buf, byte(w.acc>>w.n))
	}
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc<<(8-w.n)))
		w.n = 0
	}
	return w.buf
}

// bitReader reads bits most significant first. Past the end it reads
// zeros and counts them, so a decoder loop needs no bounds checks and
// finds out at the end whether the input was long enough.
type bitReader struct {
	buf  []byte
	pos  int    // next byte of buf to load
	acc  uint64 // the top n bits are the next bits
	n    uint
	over int // zero bytes loaded past the end
}

// refill makes at least 56 bits available.
func (r *bitReader) refill() {
	if r.pos+8 <= len(r.buf) {
		r.acc |= binary.BigEndian.Uint64(r.buf[r.pos:]) >> r.n
		r.pos += int(63-r.n) >> 3
		r.n |= 56
		return
	}
	for r.n <= 56 {
		if r.pos < len(r.buf) {
			r.acc |= uint64(r.buf[r.pos]) << (56 - r.n)
			r.pos++
		} else {
			r.over++
		}
		r.n += 8
	}
}

// take consumes nb <= 56 bits; the caller has refilled.
func (r *bitReader) take(nb uint) uint64 {
	if nb == 0 {
		return 0
	}
	v := r.acc >> (64 - nb)
	r.acc <<= nb
	r.n -= nb
	return v
}

// takeWide consumes nb <= 64 bits.
func (r *bitReader) takeWide(nb uint) uint64 {
	if nb == 0 {
		return 0
	}
	if r.n < nb {
		r.refill()
	}
	if nb <= 56 {
		return r.take(nb)
	}
	hi := r.take(32)
	r.refill()
	return hi<<(nb-32) | r.take(nb-32)
}

// overrun reports whether more bits were consumed than the input has.
func (r *bitReader) overrun() bool {
	return r.over > 0 && uint(r.over*8) > r.n
}

// riceCosts returns the bits of coding vals with parameters k and k+1,
// in one pass and without branches. A value that escapes is counted as
// if its unary part were qmax+nbits-k long, the escape's true cost,
// capped from above only: for the few values between qmax and that
// the count is a little low, which can only pick a k a little off.
func (p riceParams) riceCosts(vals []uint64, k uint) (uint64, uint64) {
	capA, capB := uint64(p.qmax+p.nbits-k), uint64(p.qmax+p.nbits-k-1)
	var a, b uint64
	for _, v := range vals {
		a += min(v>>(k&63), capA)
		b += min(v>>((k+1)&63), capB)
	}
	n := uint64(len(vals))
	return a + n*uint64(k+1), b + n*uint64(k+2)
}

// riceEncode appends the Rice code of vals (each < 1<<nbits) to w.
func riceEncode(w *bitWriter, vals []uint64, p riceParams) {
	codes := make([]byte, (len(vals)+riceBlock-1)/riceBlock)
	p.plan(vals, codes, nil)
	p.emit(w, vals, codes)
}

// plan picks the code of each block of vals into codes (one per block,
// as riceEncode writes them) and returns the bits the Rice code of vals
// takes; if blockBits is not nil, it receives each block's bits too.
// Planning first lets a caller learn the size of the Rice code without
// writing it, and write it later without choosing again.
func (p riceParams) plan(vals []uint64, codes []byte, blockBits []uint32) uint64 {
	var total uint64
	for b := range codes {
		blk := vals[b*riceBlock : min((b+1)*riceBlock, len(vals))]
		var sum, or uint64
		for _, v := range blk {
			sum += v
			or |= v
		}
		var code byte
		bitsOf := uint64(p.hb)
		switch {
		case sum == 0:
		default:
			k, cost := p.bestK(blk, sum)
			if cost >= uint64(len(blk))*uint64(p.nbits) {
				code = byte(p.raw)
				bitsOf += uint64(len(blk)) * uint64(p.nbits)
				break
			}
			code = byte(k + 1)
			if or>>k >= uint64(p.qmax) { // some value escapes: cost is an estimate
				cost = p.exactCost(blk, k)
			}
			bitsOf += cost
		}
		codes[b] = code
		if blockBits != nil {
			blockBits[b] = uint32(bitsOf)
		}
		total += bitsOf
	}
	return total
}

// exactCost is the bits encodeBlock writes for blk with parameter k.
func (p riceParams) exactCost(blk []uint64, k uint) uint64 {
	var c uint64
	for _, v := range blk {
		if q := v >> k; q >= uint64(p.qmax) {
			c += uint64(p.qmax + 1 + p.nbits)
		} else {
			c += q + 1 + uint64(k)
		}
	}
	return c
}

// emit writes the Rice code of vals with the block codes from plan.
func (p riceParams) emit(w *bitWriter, vals []uint64, codes []byte) {
	for b, code := range codes {
		blk := vals[b*riceBlock : min((b+1)*riceBlock, len(vals))]
		w.write(uint64(code), p.hb)
		switch {
		case code == 0:
		case uint64(code) == p.raw:
			for _, v := range blk {
				w.writeWide(v, p.nbits)
			}
		default:
			p.encodeBlock(w, blk, uint(code)-1)
		}
	}
}

// bestK picks the Rice parameter for a block: fpack's estimate from the
// mean, or the next smaller one (cheaper when outliers, which escape,
// inflate the mean), whichever costs least.
func (p riceParams) bestK(blk []uint64, sum uint64) (uint, uint64) {
	n := uint64(len(blk))
	k0 := uint(0)
	if sum > n/2+1 {
		k0 = uint(bits.Len64((sum - n/2 - 1) / n >> 1))
	}
	k0 = min(k0, p.kmax)
	if k0 == 0 {
		c, _ := p.riceCosts(blk, 0)
		return 0, c
	}
	lo, hi := p.riceCosts(blk, k0-1)
	if lo <= hi {
		return k0 - 1, lo
	}
	return k0, hi
}

func (p riceParams) encodeBlock(w *bitWriter, blk []uint64, k uint) {
	qmax := uint64(p.qmax)
	for _, v := range blk {
		q := v >> k
		switch {
		case q >= qmax:
			w.write(0, p.qmax) // qmax may be 32: the escape is two writes
			w.write(1, 1)
			w.writeWide(v, p.nbits)
		case uint(q)+1+k <= 32:
			w.write(1<<(k&63)|v&(1<<(k&63)-1), uint(q)+1+k)
		default:
			w.write(1, uint(q)+1)
			w.writeWide(v&(1<<k-1), k)
		}
	}
}

// riceDecode fills vals from r. It returns false if the input is
// malformed (an unknown block code) or too short.
func riceDecode(r *bitReader, vals []uint64, p riceParams) bool {
	for len(vals) > 0 {
		blk := vals[:min(riceBlock, len(vals))]
		vals = vals[len(blk):]
		r.refill()
		code := r.take(p.hb)
		switch {
		case code == 0:
			clear(blk)
		case code == p.raw:
			for i := range blk {
				blk[i] = r.takeWide(p.nbits)
			}
		case code-1 > uint64(p.kmax):
			return false
		default:
			p.decodeBlock(r, blk, uint(code-1))
		}
	}
	return !r.overrun() // past the end the reader reads zeros: checked once
}

// decodeBlock decodes a block coded with parameter k. The loop keeps the
// reader's state in locals and refills inline: it is where decoding
// spends its time.
func (p riceParams) decodeBlock(r *bitReader, blk []uint64, k uint) {
	if k > 24 {
		p.decodeBlockSlow(r, blk, k)
		return
	}
	// Shift counts are masked to 63 so the compiler emits plain shifts;
	// none reaches 64 here (q < qmax ≤ 32, k ≤ 24).
	acc, n, pos, buf, qmax := r.acc, r.n, r.pos, r.buf, p.qmax
	// A value takes at most qmax+1+k bits unless it escapes; with that
	// many bits at hand the reader refills only every few values.
	need := qmax + 1 + k
	for i := range blk {
		if n < need {
			if pos+8 > len(buf) {
				r.acc, r.n, r.pos = acc, n, pos
				r.refill()
				acc, n, pos = r.acc, r.n, r.pos
			} else {
				acc |= binary.BigEndian.Uint64(buf[pos:]) >> (n & 63)
				pos += int(63-n) >> 3
				n |= 56
			}
		}
		// n ≥ min(need, 56): wider values may need a second refill
		// after the unary part.
		q := uint(bits.LeadingZeros64(acc))
		if q >= qmax {
			r.acc, r.n, r.pos = acc, n, pos
			r.take(qmax + 1)
			blk[i] = r.takeWide(p.nbits)
			acc, n, pos = r.acc, r.n, r.pos
			continue
		}
		acc <<= (q + 1) & 63
		n -= q + 1
		if n < k {
			r.acc, r.n, r.pos = acc, n, pos
			r.refill()
			acc, n, pos = r.acc, r.n, r.pos
		}
		blk[i] = uint64(q)<<(k&63) | acc>>1>>((63-k)&63) // k = 0 gives 0
		acc <<= k & 63
		n -= k
	}
	r.acc, r.n, r.pos = acc, n, pos
}

func (p riceParams) decodeBlockSlow(r *bitReader, blk []uint64, k uint) {
	for i := range blk {
		if r.n < 56 {
			r.refill()
		}
		q := uint(bits.LeadingZeros64(r.acc))
		if q >= p.qmax {
			r.take(p.qmax + 1)
			blk[i] = r.takeWide(p.nbits)
			continue
		}
		r.take(q + 1)
		blk[i] = uint64(q)<<k | r.takeWide(k)
	}
}
