package chunk

import (
	"encoding/binary"
	"math"
)

// Float images are often integers in disguise: counts stored as floats
// (k/1), or the mean of D exposures (k/D, e.g. ISAAC's k/25). Such
// samples are coded as the integers k with integer prediction, which
// neither fpack (lossless floats only with GZIP) nor zstd can do. The
// divisor is found on a few samples and then checked on every sample by
// rebuilding its exact bits, so a chunk that is not such data, or any
// sample that does not fit (NaN, -0, a fraction), keeps the float path.
const (
	maxFloatScale = 1000 // largest divisor tried
	scaleProbes   = 64   // samples the divisor is found on
)

// findScale returns the smallest divisor D ≤ maxFloatScale for which
// nonzero samples spread over the chunk are all integers divided by D,
// or 0.
func findScale(data []byte, f sampleFormat) int {
	n := len(data) / f.width
	step := max(n/(4*scaleProbes), 1)
	var probes []float64
	for i := 0; i < n && len(probes) < scaleProbes; i += step {
		if v := floatAt(data[i*f.width:], f); v != 0 {
			probes = append(probes, v)
		}
	}
	if len(probes) == 0 {
		return 0
	}
next:
	for d := 1; d <= maxFloatScale; d++ {
		for _, v := range probes {
			if _, ok := scaledInt(v, f, d); !ok {
				continue next
			}
		}
		return d
	}
	return 0
}

func floatAt(b []byte, f sampleFormat) float64 {
	if f.width == 4 {
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b))
}

// scaledInt returns k with v == k/d exactly in v's precision.
func scaledInt(v float64, f sampleFormat, d int) (int64, bool) {
	x := math.Round(v * float64(d))
	if math.IsNaN(x) || math.Abs(x) >= float64(int64(1)<<(f.nbits-2)) {
		return 0, false
	}
	k := int64(x)
	return k, unscale(k, f, d) == v && math.Signbit(v) == math.Signbit(unscale(k, f, d))
}

// unscale is k/d computed in the precision of the samples.
func unscale(k int64, f sampleFormat, d int) float64 {
	if f.width == 4 {
		return float64(float32(float32(k) / float32(d)))
	}
	return float64(k) / float64(d)
}

// loadScaled fills s with the integers k of samples k/d, and reports
// whether every sample is one.
func loadScaled(s []uint64, b []byte, f sampleFormat, d int) bool {
	for i := range s {
		v := floatAt(b[i*f.width:], f)
		k, ok := scaledInt(v, f, d)
		if !ok {
			return false
		}
		s[i] = uint64(k)
	}
	return true
}

// storeScaled is the inverse of loadScaled.
func storeScaled(b []byte, s []int64, f sampleFormat, d int) {
	if f.width == 4 {
		for i, k := range s {
			binary.BigEndian.PutUint32(b[4*i:], math.Float32bits(float32(float32(k)/float32(d))))
		}
		return
	}
	for i, k := range s {
		binary.BigEndian.PutUint64(b[8*i:], math.Float64bits(float64(k)/float64(d)))
	}
}
