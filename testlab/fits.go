// Package testlab owns the test federation: sites on one machine (in
// process and as OS processes), topologies, fault injection, convergence
// checks, and the sample data (real and synthetic FITS frames) that tests,
// the demo and the benchmarks feed them.
package testlab

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

const fitsBlock = 2880

// WriteSyntheticFrame writes a FITS file holding one 16-bit image that
// looks like a sky frame: a smooth background, Gaussian stars and noise,
// all decided by seed.
func WriteSyntheticFrame(w io.Writer, seed uint64, width, height int) error {
	bw := bufio.NewWriter(w)
	cards := []string{
		fitsCard("SIMPLE", "T"), fitsCard("BITPIX", "16"), fitsCard("NAXIS", "2"),
		fitsCard("NAXIS1", fmt.Sprint(width)), fitsCard("NAXIS2", fmt.Sprint(height)),
		fitsCard("BZERO", "32768"), fitsCard("OBJECT", "'SKYFED-SYNTHETIC'"),
		fitsCard("SEED", fmt.Sprint(seed)), fmt.Sprintf("%-80s", "END"),
	}
	header := strings.Join(cards, "")
	header += strings.Repeat(" ", padTo(len(header)))
	bw.WriteString(header)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	type star struct{ x, y, flux, sigma float64 }
	stars := make([]star, 40+rng.IntN(80))
	for i := range stars {
		stars[i] = star{rng.Float64() * float64(width), rng.Float64() * float64(height), 2000 + rng.Float64()*20000, 1 + rng.Float64()*2.5}
	}
	var sample [2]byte
	for y := range height {
		for x := range width {
			v := 1000 + 0.2*float64(x) + 0.1*float64(y) + rng.NormFloat64()*12
			for _, s := range stars {
				dx, dy := float64(x)-s.x, float64(y)-s.y
				if d2 := dx*dx + dy*dy; d2 < 100*s.sigma*s.sigma {
					v += s.flux * math.Exp(-d2/(2*s.sigma*s.sigma))
				}
			}
			u := uint16(math.Max(0, math.Min(65535, v)))
			binary.BigEndian.PutUint16(sample[:], u-32768)
			bw.Write(sample[:])
		}
	}
	bw.Write(make([]byte, padTo(width*height*2)))
	return bw.Flush()
}

func fitsCard(key, value string) string {
	return fmt.Sprintf("%-8s= %20s%50s", key, value, "")
}

func padTo(n int) int {
	if r := n % fitsBlock; r != 0 {
		return fitsBlock - r
	}
	return 0
}

// FindFITS returns the FITS files of at least minSize bytes under dir,
// sorted by path, judged by their first header card.
func FindFITS(dir string, minSize int64) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil || info.Size() < minSize || !info.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		head := make([]byte, 30)
		if _, err := io.ReadFull(f, head); err == nil && bytes.HasPrefix(head, []byte("SIMPLE  =")) && bytes.Contains(head, []byte("T")) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find FITS under %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no FITS files of %d+ bytes under %s: %w", minSize, dir, fs.ErrNotExist)
	}
	return out, nil
}

// dataStart returns the offset where the first HDU's data starts (after
// the header's END card, rounded up to a FITS block).
func dataStart(frame []byte) (int, error) {
	for off := 0; off+80 <= len(frame); off += 80 {
		if bytes.Equal(bytes.TrimRight(frame[off:off+80], " "), []byte("END")) {
			end := off + 80
			return end + padTo(end), nil
		}
	}
	return 0, errors.New("no END card in FITS header")
}

// VaryFrame returns a copy of a real frame whose data samples are
// perturbed in their lowest bits, differently for each copy, so that
// repeated copies are unique content with the statistics of real data.
func VaryFrame(frame []byte, copyIndex uint64) ([]byte, error) {
	start, err := dataStart(frame)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(frame)
	rng := rand.New(rand.NewPCG(copyIndex, 0xf175))
	for i := start + 1; i < len(out); i += 2 {
		out[i] ^= byte(rng.Uint32() & 0x3)
	}
	return out, nil
}
