package chunk

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fitsHDUBytes returns one HDU: its header cards padded to a block, then
// data bytes padded to a block.
func fitsHDUBytes(cards []string, data []byte) []byte {
	var h strings.Builder
	for _, c := range cards {
		fmt.Fprintf(&h, "%-80s", c)
	}
	fmt.Fprintf(&h, "%-80s", "END")
	b := []byte(h.String())
	b = append(b, bytes.Repeat([]byte(" "), int(roundUp(int64(len(b)), fitsBlock))-len(b))...)
	b = append(b, data...)
	return append(b, make([]byte, int(roundUp(int64(len(b)), fitsBlock))-len(b))...)
}

func card(key, val string) string { return fmt.Sprintf("%-8s= %20s / comment", key, val) }

// testFITS is a primary image of 16-bit 300×200 samples, a binary table
// and a float image extension of 50×40. Chunks of 2880 to 8000 bytes hold
// samples of one image at most, so the scanner reports all of them.
func testFITS() (obj []byte, img16, imgF [2]int) {
	p := fitsHDUBytes([]string{card("SIMPLE", "T"), card("BITPIX", "16"), card("NAXIS", "2"),
		card("NAXIS1", "300"), card("NAXIS2", "200"), card("BZERO", "32768")}, samplesLike(1, 16, 300*200, 300))
	img16 = [2]int{fitsBlock, fitsBlock + 2*300*200}
	t := fitsHDUBytes([]string{card("XTENSION", "'BINTABLE'"), card("BITPIX", "8"), card("NAXIS", "2"),
		card("NAXIS1", "20"), card("NAXIS2", "100"), card("PCOUNT", "0"), card("GCOUNT", "1")}, bytes.Repeat([]byte("table row of 20 b..."), 100))
	e := fitsHDUBytes([]string{card("XTENSION", "'IMAGE   '"), card("BITPIX", "-32"), card("NAXIS", "2"),
		card("NAXIS1", "50"), card("NAXIS2", "40"), card("PCOUNT", "0"), card("GCOUNT", "1")}, samplesLike(2, -32, 50*40, 50))
	start := len(p) + len(t) + fitsBlock
	imgF = [2]int{start, start + 4*50*40}
	return append(append(p, t...), e...), img16, imgF
}

func TestFITSScannerLayouts(t *testing.T) {
	obj, img16, imgF := testFITS()
	for _, size := range []int{len(obj), 4096, 2880, 1000, 999, 81, 80, 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := NewFITSScanner()
			covered := map[int]int{} // bitpix → sample bytes found
			for off := 0; off < len(obj); off += size {
				c := obj[off:min(off+size, len(obj))]
				l := s.Next(c)
				if !l.Known() {
					continue
				}
				if l.DataStart < 0 || l.DataEnd > len(c) {
					t.Fatalf("chunk at %d: layout %+v outside the chunk", off, l)
				}
				from, to := off+l.DataStart, off+l.DataEnd
				want := img16
				if l.Bitpix == -32 {
					want = imgF
				}
				if from < want[0] || to > want[1] {
					t.Fatalf("chunk at %d: BITPIX %d samples [%d,%d) outside the image [%d,%d)", off, l.Bitpix, from, to, want[0], want[1])
				}
				w := abs(l.Bitpix) / 8
				if (from-want[0])%w != 0 {
					t.Fatalf("chunk at %d: DataStart %d is not a sample boundary", off, l.DataStart)
				}
				if row := map[int]int{16: 300, -32: 50}[l.Bitpix]; l.Row != row || l.RowPhase != (from-want[0])/w%row {
					t.Fatalf("chunk at %d: row %d phase %d, want %d and %d", off, l.Row, l.RowPhase, row, (from-want[0])/w%row)
				}
				covered[l.Bitpix] += to - from
			}
			if s.HDUs() != 3 || !s.FloatImages() {
				t.Errorf("HDUs = %d, float images %v; want 3 and true", s.HDUs(), s.FloatImages())
			}
			if size >= 2880 && size < 8000 && (covered[16] != img16[1]-img16[0] || covered[-32] != imgF[1]-imgF[0]) {
				t.Errorf("samples covered %v, want all of both images", covered)
			}
		})
	}
}

func TestFITSScannerNotFITS(t *testing.T) {
	obj, _, _ := testFITS()
	cases := map[string][]byte{
		"random":          randomBytes(5, 10000),
		"SIMPLE = F":      bytes.Replace(obj, []byte(card("SIMPLE", "T")), []byte(card("SIMPLE", "F")), 1),
		"bad BITPIX":      bytes.Replace(obj, []byte(card("BITPIX", "16")), []byte(card("BITPIX", "12")), 1),
		"huge NAXIS1":     bytes.Replace(obj, []byte(card("NAXIS1", "300")), []byte(card("NAXIS1", "999999999999999")), 1),
		"negative NAXIS2": bytes.Replace(obj, []byte(card("NAXIS2", "200")), []byte(card("NAXIS2", "-5")), 1),
		"no END":          bytes.Repeat([]byte(fmt.Sprintf("%-80s", card("SIMPLE", "T"))), 200),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			s := NewFITSScanner()
			for off := 0; off < len(b); off += 1000 {
				if l := s.Next(b[off:min(off+1000, len(b))]); l.Known() && off < fitsBlock {
					t.Fatalf("layout %+v in the first chunk", l)
				}
			}
		})
	}
}

// FuzzFITSScanner feeds arbitrary bytes in arbitrary chunk sizes: layouts
// must stay inside their chunk and be sample-aligned, and nothing panics.
func FuzzFITSScanner(f *testing.F) {
	obj, _, _ := testFITS()
	f.Add(obj[:2*fitsBlock+600], 700)
	f.Add(obj, 2880)
	f.Add([]byte(fitsHDUBytes([]string{card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "1"), card("NAXIS1", "10")}, []byte("0123456789"))), 3)
	f.Add([]byte(fitsHDUBytes([]string{card("SIMPLE", "T"), card("BITPIX", "-64"), card("NAXIS", "3"), card("GROUPS", "T"),
		card("NAXIS1", "0"), card("NAXIS2", "4"), card("NAXIS3", "2"), card("GCOUNT", "3"), card("PCOUNT", "1")}, make([]byte, 8*3*9))), 100)
	f.Fuzz(func(t *testing.T, b []byte, size int) {
		size = 1 + abs(size%5000)
		s := NewFITSScanner()
		s.WantKeywords(fitsTestKeywords)
		defer func() {
			seen := map[string]bool{}
			for _, c := range s.Keywords() {
				if !slices.Contains(fitsTestKeywords, c.Key) || seen[c.Key] || len(c.Value) > fitsCard {
					t.Fatalf("kept %+v (keys so far %v)", c, seen)
				}
				seen[c.Key] = true
			}
		}()
		for off := 0; off < len(b); off += size {
			c := b[off:min(off+size, len(b))]
			l := s.Next(c)
			if l == (Layout{}) {
				continue
			}
			w := abs(l.Bitpix) / 8
			if !l.Known() || l.DataStart < 0 || l.DataEnd > len(c) || l.DataEnd-l.DataStart < w || l.RowPhase < 0 || (l.Row > 0 && l.RowPhase >= l.Row) {
				t.Fatalf("bad layout %+v for a chunk of %d bytes", l, len(c))
			}
		}
	})
}

var fitsTestKeywords = []string{"OBJECT", "DATE-OBS", "EXPTIME", "FILTER", "NAXIS1", "BITPIX", "OBSERVER", "SIMPLE"}

// The scanner keeps the first value of each wanted keyword, primary
// header first, strings unquoted; not FITS keeps nothing; a header it
// cannot follow says so.
func TestFITSScannerKeywords(t *testing.T) {
	primary := fitsHDUBytes([]string{card("SIMPLE", "T"), card("BITPIX", "16"), card("NAXIS", "2"),
		card("NAXIS1", "30"), card("NAXIS2", "20"), card("OBJECT", "'M31     '"), card("OBSERVER", "'O''Brien'"),
		card("DATE-OBS", "'2026-12-06T21:04:05.1'"), card("EXPTIME", "30.0"), "COMMENT FILTER = 'nope'"}, samplesLike(1, 16, 30*20, 30))
	ext := fitsHDUBytes([]string{card("XTENSION", "'IMAGE   '"), card("BITPIX", "-32"), card("NAXIS", "2"),
		card("NAXIS1", "5"), card("NAXIS2", "4"), card("PCOUNT", "0"), card("GCOUNT", "1"), card("OBJECT", "'later'"), card("FILTER", "'R'")}, samplesLike(2, -32, 5*4, 5))
	obj := append(primary, ext...)
	want := []Card{{"BITPIX", "16"}, {"NAXIS1", "30"}, {"OBJECT", "M31"}, {"OBSERVER", "O'Brien"},
		{"DATE-OBS", "2026-12-06T21:04:05.1"}, {"EXPTIME", "30.0"}, {"FILTER", "R"}}
	for _, size := range []int{len(obj), 1000, 79, 7} {
		s := NewFITSScanner()
		s.WantKeywords(fitsTestKeywords)
		for off := 0; off < len(obj); off += size {
			s.Next(obj[off:min(off+size, len(obj))])
		}
		if got := s.Keywords(); !slices.Equal(got, want) || s.Damaged() {
			t.Errorf("chunks of %d: kept %v (damaged %v), want %v", size, got, s.Damaged(), want)
		}
	}
	s := NewFITSScanner()
	s.WantKeywords(fitsTestKeywords)
	s.Next([]byte(strings.Repeat("not a FITS file ", 400)))
	if s.Keywords() != nil || s.Damaged() {
		t.Errorf("not FITS: kept %v, damaged %v", s.Keywords(), s.Damaged())
	}
	for what, b := range map[string][]byte{
		"END missing":        primary[:5*fitsCard],
		"a bad NAXIS":        fitsHDUBytes([]string{card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "-3")}, nil),
		"an unending string": fitsHDUBytes([]string{card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), "OBJECT  = 'M31"}, nil),
		"BITPIX not a width": fitsHDUBytes([]string{card("SIMPLE", "T"), card("BITPIX", "12"), card("NAXIS", "0")}, nil),
	} {
		s := NewFITSScanner()
		s.WantKeywords(fitsTestKeywords)
		s.Next(b)
		if !s.Damaged() {
			t.Errorf("%s: not reported damaged (kept %v)", what, s.Keywords())
		}
	}
}
