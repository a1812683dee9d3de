package naming

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// FITSMetaPrefix starts the meta keys a put copies from a FITS object's
// header keywords (Config.FITSKeywords): "fits.object", "fits.date-obs".
const FITSMetaPrefix = "fits."

// DefaultFITSKeywords are the header keywords a site copies into its
// manifests unless its config says otherwise.
var DefaultFITSKeywords = []string{"OBJECT", "DATE-OBS", "MJD-OBS", "TELESCOP", "INSTRUME", "FILTER", "EXPTIME",
	"IMAGETYP", "OBSERVER", "RA", "DEC", "NAXIS1", "NAXIS2", "BITPIX"}

// maxManifestMeta is the most meta pairs a manifest holds.
const maxManifestMeta = 64

// fitsCounts counts the puts of FITS objects: those whose keywords went
// into the manifest, and those whose header could not be followed (the
// put stores the object without them).
type fitsCounts struct{ tagged, skipped atomic.Int64 }

// FITSCounts returns how many puts copied FITS header keywords into
// their manifest, and how many FITS objects had a header that could not
// be read (stored without them).
func (s *Store) FITSCounts() (tagged, skipped int64) {
	return s.fits.tagged.Load(), s.fits.skipped.Load()
}

// newScanner returns the FITS scanner a put feeds its chunks to, or nil
// when nothing would use it.
func (s *Store) newScanner() *chunk.FITSScanner {
	if s.cfg.Layouts == nil && len(s.cfg.FITSKeywords) == 0 {
		return nil
	}
	scan := chunk.NewFITSScanner()
	scan.WantKeywords(s.cfg.FITSKeywords)
	return scan
}

// scanning returns what feeds a read's chunks, in order, to scan and
// notes their layouts (nil when scan is).
func (s *Store) scanning(scan *chunk.FITSScanner) func(int, chunk.ID, []byte) error {
	if scan == nil {
		return nil
	}
	return func(_ int, id chunk.ID, raw []byte) error {
		s.scanChunk(scan, id, raw)
		return nil
	}
}

// scanChunk feeds the object's next chunk to scan (nil: nothing) and
// notes its layout for the compressor.
func (s *Store) scanChunk(scan *chunk.FITSScanner, id chunk.ID, raw []byte) {
	if scan == nil {
		return
	}
	if l := scan.Next(raw); l.Known() && s.cfg.Layouts != nil {
		s.cfg.Layouts.NoteLayout(id, l)
	}
}

// withFITSMetaOf returns meta with the fits.* pairs of from, a version
// of the same bytes, added (addAbsent).
func withFITSMetaOf(meta []manifest.Meta, from *manifest.Manifest) []manifest.Meta {
	var fits []manifest.Meta
	for _, kv := range from.Meta {
		if strings.HasPrefix(kv.Key, FITSMetaPrefix) {
			fits = append(fits, kv)
		}
	}
	return addAbsent(meta, fits)
}

// withFITSMeta returns meta with the wanted header keywords scan kept
// added (addAbsent), as FITSMetaPrefix + the keyword in lower case. A
// damaged header adds nothing (counted).
func (s *Store) withFITSMeta(meta []manifest.Meta, scan *chunk.FITSScanner) []manifest.Meta {
	if scan == nil || len(s.cfg.FITSKeywords) == 0 || scan.Keywords() == nil && !scan.Damaged() {
		return meta
	}
	if scan.Damaged() {
		s.fits.skipped.Add(1)
		return meta
	}
	fits := make([]manifest.Meta, 0, len(scan.Keywords()))
	for _, c := range scan.Keywords() {
		fits = append(fits, manifest.Meta{Key: FITSMetaPrefix + strings.ToLower(c.Key), Value: c.Value})
	}
	s.fits.tagged.Add(1)
	return addAbsent(meta, fits)
}

// addAbsent returns meta with the pairs of extra whose keys meta lacks
// (the put's own pairs win), as many as a manifest may hold, merged as
// mergeMeta does.
func addAbsent(meta, extra []manifest.Meta) []manifest.Meta {
	room := maxManifestMeta - len(meta)
	var add []manifest.Meta
	for _, kv := range extra {
		if len(add) < room && !slices.ContainsFunc(meta, func(o manifest.Meta) bool { return o.Key == kv.Key }) {
			add = append(add, kv)
		}
	}
	return mergeMeta(meta, add)
}
