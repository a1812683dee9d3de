package chunk

// Layout tells a codec what a chunk's bytes hold, as the put path found
// them in a FITS file: which byte range is image samples, of what type,
// and where the chunk sits in an image row. The zero Layout means
// nothing is known and only the generic codecs are tried. A Layout is a
// hint for compression only: decoding never needs it (a codec that uses
// it records what it used in its payload), and a wrong hint costs bytes,
// never correctness, because the chunk ID is the hash of the raw bytes.
type Layout struct {
	// Bitpix is the FITS BITPIX of the samples: 8, 16, 32 or 64
	// (big-endian two's complement), -32 or -64 (big-endian IEEE
	// floats); 0 when the chunk holds no known image data.
	Bitpix int
	// DataStart and DataEnd bound the bytes of the chunk that are image
	// samples, [DataStart, DataEnd); DataStart is a sample boundary.
	DataStart, DataEnd int
	// Row is the number of samples per image row (NAXIS1), 0 if unknown.
	Row int
	// RowPhase is the index within its row of the sample at DataStart.
	RowPhase int
}

// Known reports whether the layout names image samples.
func (l Layout) Known() bool { return l.Bitpix != 0 && l.DataEnd > l.DataStart }
