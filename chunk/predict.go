package chunk

import "math/bits"

// Prediction of image samples for CodecFITS. Samples are int64 values
// sign-extended from nbits bits; a residual is the sample minus its
// prediction modulo 2^nbits, zigzagged so small residuals of either sign
// are small numbers (0, -1, 1, -2 → 0, 1, 2, 3).

// zigzag maps d modulo 2^(64-sh) to an unsigned value below 2^(64-sh).
func zigzag(d int64, sh uint) uint64 {
	d = d << sh >> sh
	return uint64(d<<1) ^ uint64(d>>63)
}

func unzigzag(z uint64) int64 { return int64(z>>1) ^ -int64(z&1) }

// med is LOCO-I's median edge detector: the smaller of left and up
// below a rising edge, the larger above a falling one, else the plane
// through the three neighbours.
func med(a, b, c int64) int64 {
	lo, hi := min(a, b), max(a, b)
	switch {
	case c >= hi:
		return lo
	case c <= lo:
		return hi
	default:
		return a + b - c
	}
}

// medNarrow is med for samples of fewer than 64 bits, where a+b-c
// cannot overflow: clamping the plane to [min, max] gives med's three
// cases without branches.
func medNarrow(a, b, c int64) int64 {
	return min(max(a+b-c, min(a, b)), max(a, b))
}

// predictorsFor lists the predictors worth measuring.
func predictorsFor(row int, f sampleFormat) []predictor {
	ps := []predictor{predLeft}
	if f.float {
		ps = append(ps, predNone)
	}
	if row > 0 {
		ps = append(ps, predUp, predMED)
	}
	return ps
}

// choosePredictor measures the candidates on an eighth of the samples
// (runs of 32 every 256, past the first row and a half) by the bits of
// their residuals, in one pass, and returns the cheapest.
func choosePredictor(s []uint64, row int, f sampleFormat) predictor {
	sh := 64 - f.nbits
	var cost [predEnd]uint64
	for base := row + 1; base < len(s); base += 256 {
		for i := base; i < min(base+32, len(s)); i++ {
			v, a := int64(s[i]), int64(s[i-1])
			cost[predNone] += uint64(bits.Len64(zigzag(v, sh)))
			cost[predLeft] += uint64(bits.Len64(zigzag(v-a, sh)))
			if row > 0 {
				b, c := int64(s[i-row]), int64(s[i-row-1])
				cost[predUp] += uint64(bits.Len64(zigzag(v-b, sh)))
				m := medNarrow(a, b, c)
				if sh == 0 {
					m = med(a, b, c)
				}
				cost[predMED] += uint64(bits.Len64(zigzag(v-m, sh)))
			}
		}
	}
	best := predLeft
	for _, p := range predictorsFor(row, f) {
		if cost[p] < cost[best] {
			best = p
		}
	}
	return best
}

// head is how many leading samples predictor p codes with predLeft
// because the row above is not in the chunk.
func head(p predictor, row, n int) int {
	switch {
	case p == predNone || p == predLeft:
		return 0
	case row == 0:
		return n
	case p == predUp:
		return min(row, n)
	default:
		return min(row+1, n)
	}
}

// residuals replaces the samples in z (int64s as bits) by their
// zigzagged residuals under predictor p. It works from the end, so that
// the samples a residual is predicted from are still there.
func residuals(z []uint64, row int, p predictor, nbits uint) {
	sh := 64 - nbits
	if p == predNone {
		for i, v := range z {
			z[i] = zigzag(int64(v), sh)
		}
		return
	}
	h := head(p, row, len(z))
	if p == predLeft {
		h = len(z)
	}
	if h < len(z) {
		// Reslices of equal length, so that the loops have no bounds
		// checks; they overlap, and each step reads only samples before
		// the one it writes.
		cur := z[h:]
		up := z[h-row : len(z)-row]
		up = up[:len(cur)]
		switch p {
		case predUp:
			for j := len(cur) - 1; j >= 0; j-- {
				cur[j] = zigzag(int64(cur[j])-int64(up[j]), sh)
			}
		case predMED:
			left := z[h-1 : len(z)-1]
			left = left[:len(cur)]
			ul := z[h-row-1 : len(z)-row-1]
			ul = ul[:len(cur)]
			if sh == 0 {
				for j := len(cur) - 1; j >= 0; j-- {
					cur[j] = zigzag(int64(cur[j])-med(int64(left[j]), int64(up[j]), int64(ul[j])), sh)
				}
				break
			}
			for j := len(cur) - 1; j >= 0; j-- {
				cur[j] = zigzag(int64(cur[j])-medNarrow(int64(left[j]), int64(up[j]), int64(ul[j])), sh)
			}
		}
	}
	hs := z[:h]
	for i := len(hs) - 1; i > 0; i-- {
		hs[i] = zigzag(int64(hs[i])-int64(hs[i-1]), sh)
	}
	if len(hs) > 0 {
		hs[0] = zigzag(int64(hs[0]), sh)
	}
}

// reconstructRange is the inverse of residuals for s[from:from+len(z)],
// the samples before from being decoded already. s holds the samples
// from base on of a chunk of n samples, at least a row and one before
// from unless they start the chunk.
func reconstructRange(s []int64, z []uint64, from, row int, p predictor, nbits uint, base, n int) {
	sh := 64 - nbits
	end := from + len(z)
	if p == predNone {
		for i, v := range z {
			s[from+i] = unzigzag(v) << sh >> sh
		}
		return
	}
	h := head(p, row, n)
	if p == predLeft {
		h = n
	}
	h -= base
	i := from
	if i < h {
		prev := int64(0)
		if base+i > 0 {
			prev = s[i-1]
		}
		for ; i < min(h, end); i++ {
			prev = (prev + unzigzag(z[i-from])) << sh >> sh
			s[i] = prev
		}
	}
	if i >= end {
		return
	}
	// The loops run over reslices of equal length so that the compiler
	// drops the bounds checks.
	cur := s[i:end]
	zz := z[i-from : end-from]
	zz = zz[:len(cur)]
	switch p {
	case predUp:
		up := s[i-row : end-row]
		up = up[:len(cur)]
		for j := range cur {
			cur[j] = (up[j] + unzigzag(zz[j])) << sh >> sh
		}
	case predMED:
		up := s[i-row : end-row]
		up = up[:len(cur)]
		ul := s[i-row-1 : end-row-1]
		ul = ul[:len(cur)]
		left := s[i-1]
		if sh == 0 { // a+b-c may overflow: med's cases as they are
			for j := range cur {
				left = med(left, up[j], ul[j]) + unzigzag(zz[j])
				cur[j] = left
			}
			return
		}
		for j := range cur {
			left = (medNarrow(left, up[j], ul[j]) + unzigzag(zz[j])) << sh >> sh
			cur[j] = left
		}
	}
}
