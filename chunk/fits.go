package chunk

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
)

// FITS structure: headers are 80-byte cards in 2880-byte blocks, and every
// HDU (header and data) starts on a block boundary.
const (
	fitsBlock = 2880
	fitsCard  = 80
	// fitsMaxAxes is the largest NAXIS the standard allows.
	fitsMaxAxes = 999
	// fitsMaxData bounds the data size a header may declare; anything
	// larger is treated as damage, which also keeps the arithmetic below
	// far from overflow.
	fitsMaxData = 1 << 56
)

// scanState is where a FITSScanner is in the object.
type scanState uint8

const (
	scanHeader scanState = iota // reading header cards
	scanBody                    // skipping header padding, data and data padding
	scanDone                    // not FITS, damaged, or past what it understands
)

// FITSScanner finds the image samples of a FITS object fed to it in
// order, chunk by chunk, and returns each chunk's Layout. It reads only
// header cards (at most one card is buffered when a card spans two
// chunks) and skips data by arithmetic, so its cost and memory do not
// grow with the data. Anything that is not FITS, or a header it cannot
// follow, makes it return zero Layouts from then on: a hint that is
// missing costs bytes, never correctness.
type FITSScanner struct {
	off   int64 // object offset of the next byte fed
	state scanState
	card  [fitsCard]byte
	cardN int   // bytes of card filled while a card spans chunks
	hdus  int   // HDUs whose header was read
	cards int64 // cards read in the current header

	hdu fitsHDU

	// Set at END for the current HDU: its samples lie in
	// [dataStart, dataEnd), and the next HDU starts at next.
	image              bool
	dataStart, dataEnd int64
	next               int64

	floats bool // an image HDU of float samples was seen

	// Header keywords kept for the object's metadata (WantKeywords).
	want    map[string]bool
	kept    []Card
	fits    bool // the object opened with SIMPLE = T
	damaged bool // a header of it could not be followed
}

// Card is a header keyword and its value as the header wrote it: a
// string without its quotes and trailing blanks (a doubled quote read as
// one), other values as the token before any comment.
type Card struct{ Key, Value string }

// maxKeptCards bounds the keywords a scanner keeps.
const maxKeptCards = 64

// WantKeywords makes the scanner keep the first value of each of keys
// (upper case, as in headers) that any header holds, the primary HDU's
// before the extensions'.
func (s *FITSScanner) WantKeywords(keys []string) {
	s.want = make(map[string]bool, len(keys))
	for _, k := range keys {
		s.want[k] = true
	}
}

// Keywords returns the values kept, in the order the headers held them;
// nil for an object that is not FITS.
func (s *FITSScanner) Keywords() []Card {
	if !s.fits {
		return nil
	}
	return s.kept
}

// Damaged reports whether the object opened as FITS but a header of it
// could not be followed (a malformed card, END missing before the
// object ended, sizes that do not add up).
func (s *FITSScanner) Damaged() bool {
	return s.damaged || s.fits && s.state == scanHeader && (s.cards > 0 || s.cardN > 0)
}

// giveUp stops the scan at damage in a header of a FITS object.
func (s *FITSScanner) giveUp() {
	s.state = scanDone
	s.damaged = s.fits
}

// keep records a wanted keyword's value, the first one met.
func (s *FITSScanner) keep(key string, val []byte) {
	if !s.want[key] || len(s.kept) >= maxKeptCards || slices.ContainsFunc(s.kept, func(c Card) bool { return c.Key == key }) {
		return
	}
	v := string(val)
	if len(v) > 0 && v[0] == '\'' {
		if len(v) < 2 || v[len(v)-1] != '\'' {
			s.damaged = true // an unterminated string
			return
		}
		v = strings.TrimRight(strings.ReplaceAll(v[1:len(v)-1], "''", "'"), " ")
	}
	s.kept = append(s.kept, Card{Key: key, Value: v})
}

// fitsHDU is what a header said so far.
type fitsHDU struct {
	xtension string // "" for the primary HDU
	bitpix   int
	naxis    int
	axes     []int64 // NAXISn, n = 1..naxis as read; -1 until seen
	pcount   int64
	gcount   int64
	groups   bool
	bzero    float64 // informational: BZERO does not change how samples are coded
}

// NewFITSScanner returns a scanner at the start of an object.
func NewFITSScanner() *FITSScanner { return &FITSScanner{} }

// Next consumes the object's next chunk and returns the Layout of the
// image samples in it: the largest run of samples of one image HDU that
// the chunk holds, or the zero Layout if it holds none.
func (s *FITSScanner) Next(b []byte) Layout {
	base := s.off
	var best Layout
	pos := 0
	for pos < len(b) && s.state != scanDone {
		switch s.state {
		case scanHeader:
			pos += s.headerBytes(b[pos:])
		case scanBody:
			n := int(min(s.next-s.off, int64(len(b)-pos)))
			if s.image {
				if l := s.layout(base, s.off, s.off+int64(n)); l.DataEnd-l.DataStart > best.DataEnd-best.DataStart {
					best = l
				}
			}
			pos += n
			s.off += int64(n)
			if s.off == s.next {
				s.state, s.hdu, s.cards = scanHeader, fitsHDU{}, 0
			}
		}
	}
	s.off = base + int64(len(b))
	return best
}

// HDUs returns how many HDU headers the scanner has read: 0 for an
// object that is not FITS.
func (s *FITSScanner) HDUs() int { return s.hdus }

// FloatImages reports whether any image HDU read so far holds floats.
func (s *FITSScanner) FloatImages() bool { return s.floats }

// headerBytes reads cards from b and returns how many bytes it used.
func (s *FITSScanner) headerBytes(b []byte) int {
	pos := 0
	for pos < len(b) && s.state == scanHeader {
		if s.cardN == 0 && len(b)-pos >= fitsCard {
			s.off += fitsCard
			s.parseCard(b[pos : pos+fitsCard])
			pos += fitsCard
			continue
		}
		n := copy(s.card[s.cardN:], b[pos:])
		s.cardN += n
		s.off += int64(n)
		pos += n
		if s.cardN == fitsCard {
			s.cardN = 0
			s.parseCard(s.card[:])
		}
	}
	return pos
}

// parseCard interprets one header card ending at s.off.
func (s *FITSScanner) parseCard(c []byte) {
	s.cards++
	key := string(bytes.TrimRight(c[:8], " "))
	if s.cards == 1 {
		if !s.firstCard(key, c) {
			s.state = scanDone // not FITS, or not an extension after the last HDU
		} else if s.hdus == 0 {
			s.fits = true
		}
		return
	}
	val, hasVal := cardValue(c)
	if hasVal && s.want != nil {
		s.keep(key, val)
	}
	h := &s.hdu
	switch {
	case key == "END":
		s.endHeader()
	case !hasVal:
	case key == "BITPIX":
		h.bitpix = int(parseInt(val, -1))
	case key == "NAXIS":
		n := parseInt(val, -1)
		if n < 0 || n > fitsMaxAxes || h.axes != nil {
			s.giveUp()
			return
		}
		h.naxis = int(n)
		h.axes = make([]int64, n)
		for i := range h.axes {
			h.axes[i] = -1
		}
	case len(key) > 5 && key[:5] == "NAXIS":
		i, err := strconv.Atoi(key[5:])
		if err == nil && i >= 1 && i <= len(h.axes) {
			h.axes[i-1] = parseInt(val, -1)
		}
	case key == "PCOUNT":
		h.pcount = parseInt(val, -1)
	case key == "GCOUNT":
		h.gcount = parseInt(val, -1)
	case key == "GROUPS":
		h.groups = bytes.Equal(val, []byte("T"))
	case key == "BZERO":
		if z, err := strconv.ParseFloat(string(val), 64); err == nil {
			h.bzero = z
		}
	}
}

// firstCard checks the card that opens an HDU: SIMPLE = T for the
// first, XTENSION for the others.
func (s *FITSScanner) firstCard(key string, c []byte) bool {
	val, ok := cardValue(c)
	if !ok {
		return false
	}
	s.hdu = fitsHDU{gcount: 1}
	if s.hdus == 0 {
		return key == "SIMPLE" && bytes.Equal(val, []byte("T"))
	}
	if key != "XTENSION" {
		return false
	}
	s.hdu.xtension = string(bytes.TrimRight(bytes.Trim(val, "'"), " "))
	return true
}

// endHeader computes where the HDU's data starts and ends from what the
// header said, or gives up on the object if that does not add up.
func (s *FITSScanner) endHeader() {
	h := &s.hdu
	width := int64(abs(h.bitpix) / 8)
	switch h.bitpix {
	case 8, 16, 32, 64, -32, -64:
	default:
		s.giveUp()
		return
	}
	if h.pcount < 0 || h.gcount < 0 {
		s.giveUp()
		return
	}
	prod := int64(0)
	first := 0
	if h.groups && s.hdus == 0 && h.naxis > 0 && h.axes[0] == 0 {
		first = 1 // random groups: NAXIS1 = 0 is not an axis
	}
	if h.naxis > first {
		prod = 1
		for _, a := range h.axes[first:] {
			if a < 0 || (a > 0 && prod > fitsMaxData/a) {
				s.giveUp()
				return
			}
			prod *= a
		}
	}
	if prod+h.pcount > fitsMaxData/width || (h.gcount > 0 && (prod+h.pcount)*width > fitsMaxData/h.gcount) {
		s.giveUp()
		return
	}
	size := width * h.gcount * (prod + h.pcount)
	s.hdus++
	s.dataStart = roundUp(s.off, fitsBlock)
	s.dataEnd = s.dataStart + size
	s.next = roundUp(s.dataEnd, fitsBlock)
	s.image = first == 0 && size > 0 && h.pcount == 0 && h.gcount == 1 &&
		(s.hdus == 1 || h.xtension == "IMAGE")
	s.floats = s.floats || (s.image && h.bitpix < 0)
	s.state = scanBody
	if s.next == s.off {
		s.state, s.hdu, s.cards = scanHeader, fitsHDU{}, 0
	}
}

// layout returns the Layout of the samples in [from, to) of the object,
// relative to the chunk starting at base.
func (s *FITSScanner) layout(base, from, to int64) Layout {
	w := int64(abs(s.hdu.bitpix) / 8)
	from = max(from, s.dataStart)
	to = min(to, s.dataEnd)
	from = s.dataStart + roundUp(from-s.dataStart, w) // a chunk may split a sample
	if to-from < w {
		return Layout{}
	}
	l := Layout{Bitpix: s.hdu.bitpix, DataStart: int(from - base), DataEnd: int(to - base)}
	if len(s.hdu.axes) > 0 && s.hdu.axes[0] > 0 && s.hdu.axes[0] <= math.MaxInt32 {
		l.Row = int(s.hdu.axes[0])
		l.RowPhase = int(((from - s.dataStart) / w) % s.hdu.axes[0])
	}
	return l
}

// cardValue returns the value field of a card with a value indicator
// ("= " in columns 9-10): a quoted string with its quotes, or the token
// before any comment. ok is false for cards without a value.
func cardValue(c []byte) (val []byte, ok bool) {
	if len(c) < 10 || c[8] != '=' || c[9] != ' ' {
		return nil, false
	}
	v := bytes.TrimLeft(c[10:], " ")
	if len(v) > 0 && v[0] == '\'' {
		for i := 1; i < len(v); i++ {
			if v[i] != '\'' {
				continue
			}
			if i+1 < len(v) && v[i+1] == '\'' {
				i++ // a doubled quote is a quote in the string
				continue
			}
			return v[:i+1], true
		}
		return v, true
	}
	if i := bytes.IndexByte(v, '/'); i >= 0 {
		v = v[:i]
	}
	return bytes.TrimRight(v, " "), true
}

// parseInt parses a FITS integer value, or returns def.
func parseInt(v []byte, def int64) int64 {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return def
	}
	return n
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
