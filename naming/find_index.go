package naming

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// The find index: every version's header values (its fits.* meta),
// typed (find_value.go), so that find can range over them, and its
// position on the sky for cone searches. Entries are written in the
// commit that indexes the version and removed with it by garbage
// collection; a data dir older than the index is indexed at open.
const (
	prefixFind = 'q' // 'q' + field + 0 + kind + value (strings: + 0) + manifest ID → nothing
	prefixCone = 'Q' // 'Q' + zone (uint16 BE) + RA + DEC (orderedFloat) + manifest ID → nothing
)

// findMarker holds the index's format; absent or another: reindex at open.
var findMarker = append([]byte{prefixMeta}, "find"...)

const findFormat = 1

// coneZone is the height in degrees of the declination zones the cone
// index is cut into: a cone reads the RA range it spans in each zone.
const coneZone = 0.5

func fieldKindPrefix(field string, kind byte) []byte {
	k := make([]byte, 0, len(field)+3+maxFindValue)
	k = append(k, prefixFind)
	k = append(k, field...)
	return append(k, 0, kind)
}

func zoneOf(dec float64) uint16 {
	z := int(math.Floor((dec + 90) / coneZone))
	return uint16(min(max(z, 0), int(180/coneZone)-1))
}

func conePrefix(zone uint16, ra float64) []byte {
	k := binary.BigEndian.AppendUint16([]byte{prefixCone}, zone)
	return append(k, orderedFloat(ra)...)
}

// findEntries returns the index keys of m, without the manifest ID
// that ends each: none for a tombstone.
func findEntries(m *manifest.Manifest) [][]byte { return findEntriesOf(m, nil) }

// findEntriesOf is findEntries of the keywords in only (nil: all; the
// cone entry needs "ra" and "dec").
func findEntriesOf(m *manifest.Manifest, only map[string]bool) [][]byte {
	if m.Tombstone {
		return nil
	}
	var out [][]byte
	var ra, dec float64
	var haveRA, haveDec bool
	for _, kv := range m.Meta {
		field, ok := strings.CutPrefix(kv.Key, FITSMetaPrefix)
		if !ok || only != nil && !only[field] || !validField(field) || field != strings.ToLower(field) {
			continue
		}
		if s, ok := stringValue(kv.Value); ok {
			out = append(out, append(append(fieldKindPrefix(field, kindString), s...), 0))
		}
		tv, ok := typeValue(field, kv.Value)
		if !ok || tv.kind == kindString {
			continue
		}
		out = append(out, append(fieldKindPrefix(field, tv.kind), tv.enc...))
		if tv.kind == kindNumber {
			switch field {
			case "ra":
				ra, haveRA = floatFrom(tv.enc), true
			case "dec":
				dec, haveDec = floatFrom(tv.enc), true
			}
		}
	}
	if haveRA && haveDec && dec >= -90 && dec <= 90 {
		ra = math.Mod(ra, 360)
		if ra < 0 {
			ra += 360
		}
		out = append(out, append(conePrefix(zoneOf(dec), ra), orderedFloat(dec)...))
	}
	return out
}

// stageFind adds m's index entries to pb.
func stageFind(pb *pebble.Batch, m *manifest.Manifest, id chunk.ID) error {
	for _, e := range findEntries(m) {
		if err := pb.Set(append(e, id[:]...), nil, nil); err != nil {
			return fmt.Errorf("stage find entries of %s: %w", m.Name, err)
		}
	}
	return nil
}

// unstageFind removes m's index entries in pb.
func unstageFind(pb *pebble.Batch, m *manifest.Manifest, id chunk.ID) error {
	for _, e := range findEntries(m) {
		if err := pb.Delete(append(e, id[:]...), nil); err != nil {
			return err
		}
	}
	return nil
}

// openFind indexes every version when the data dir has no find index
// yet (or one of another format). It runs at open, before anything
// else writes.
func (s *Store) openFind() error {
	v, ok, err := getValue(s.db, findMarker)
	if err != nil || ok && bytes.Equal(v, []byte{findFormat}) {
		return err
	}
	for _, p := range []byte{prefixFind, prefixCone} {
		if err := s.db.DeleteRange([]byte{p}, []byte{p + 1}, pebble.NoSync); err != nil {
			return err
		}
	}
	pb := s.db.NewBatch()
	err = s.ForEachManifest(func(id chunk.ID) error {
		m, err := s.Manifest(id)
		if err != nil {
			return err
		}
		if err := stageFind(pb, m, id); err != nil {
			return err
		}
		if pb.Len() < 4<<20 {
			return nil
		}
		if err := pb.Commit(pebble.NoSync); err != nil {
			return err
		}
		pb = s.db.NewBatch()
		return nil
	})
	if err == nil {
		err = pb.Set(findMarker, []byte{findFormat}, nil)
	}
	if err == nil {
		err = pb.Commit(pebble.Sync)
	}
	return err
}

// span is a range [lo, hi) of index keys. An exact span holds the
// entries of one value: lo + a manifest ID.
type span struct {
	lo, hi []byte
	exact  bool
}

func (sp span) holds(k []byte) bool {
	return bytes.Compare(k, sp.lo) >= 0 && (sp.hi == nil || bytes.Compare(k, sp.hi) < 0)
}

// prefixSpan is the span of the keys that start with p.
func prefixSpan(p []byte) span { return span{lo: p, hi: prefixEnd(p)} }

// spans returns the index ranges that hold every version p matches
// (for a cone, a superset: cone entries are checked exactly after),
// sorted and disjoint.
func (p Predicate) spans() ([]span, error) {
	if p.Op == "cone" {
		return p.Cone.spans(), nil
	}
	var out []span
	for _, v := range p.Values {
		sp, err := p.spanOf(v)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	slices.SortFunc(out, func(a, b span) int { return bytes.Compare(a.lo, b.lo) })
	merged := out[:0]
	for _, sp := range out {
		if n := len(merged); n > 0 && bytes.Compare(sp.lo, merged[n-1].hi) <= 0 {
			last := &merged[n-1]
			if bytes.Equal(sp.lo, last.lo) && bytes.Equal(sp.hi, last.hi) {
				continue // the same value twice
			}
			if bytes.Compare(sp.hi, last.hi) > 0 {
				last.hi = sp.hi
			}
			last.exact = false
			continue
		}
		merged = append(merged, sp)
	}
	return merged, nil
}

// spanOf returns the span of the versions whose p.Field compares with v
// as p.Op says.
func (p Predicate) spanOf(v string) (span, error) {
	if p.Op == "prefix" {
		s, _ := stringValue(v)
		return prefixSpan(append(fieldKindPrefix(p.Field, kindString), s...)), nil
	}
	tv, ok := typeValue(p.Field, v)
	if !ok {
		return span{}, fmt.Errorf("%w: value %q of %s cannot be compared", ErrBadQuery, v, strings.ToUpper(p.Field))
	}
	kind := fieldKindPrefix(p.Field, tv.kind)
	all := prefixSpan(kind)
	at := append(bytes.Clone(kind), tv.enc...) // first key of the value
	var past []byte                            // first key after the value
	switch tv.kind {
	case kindString:
		past = append(bytes.Clone(at), 1) // after value + 0 + every ID
		at = append(at, 0)
	case kindTime:
		past = append(bytes.Clone(kind), tv.end...)
	default:
		past = prefixEnd(at)
	}
	switch p.Op {
	case "=", "in":
		return span{lo: at, hi: past, exact: tv.kind != kindTime}, nil
	case "<":
		return span{lo: all.lo, hi: at}, nil
	case "<=":
		return span{lo: all.lo, hi: past}, nil
	case ">":
		return span{lo: past, hi: all.hi}, nil
	case ">=":
		return span{lo: at, hi: all.hi}, nil
	}
	return span{}, fmt.Errorf("%w: unknown comparison %q", ErrBadQuery, p.Op)
}

// spans returns the cone index ranges that hold every position within
// c: per declination zone the RA range the circle spans (two where it
// wraps through 0h, all of it near a pole).
func (c Cone) spans() []span {
	lo, hi := max(-90, c.Dec-c.Radius), min(90, c.Dec+c.Radius)
	halfRA := 180.0
	if math.Abs(c.Dec)+c.Radius < 89.999 {
		rad := math.Pi / 180
		halfRA = math.Asin(math.Min(1, math.Sin(c.Radius*rad)/math.Cos(c.Dec*rad)))/rad + 1e-9
	}
	var out []span
	for z := zoneOf(lo); z <= zoneOf(hi); z++ {
		ras := [][2]float64{{c.RA - halfRA, c.RA + halfRA}}
		switch {
		case halfRA >= 180:
			ras = [][2]float64{{0, 360}}
		case c.RA-halfRA < 0:
			ras = [][2]float64{{0, c.RA + halfRA}, {c.RA - halfRA + 360, 360}}
		case c.RA+halfRA >= 360:
			ras = [][2]float64{{0, c.RA + halfRA - 360}, {c.RA - halfRA, 360}}
		}
		for _, r := range ras {
			out = append(out, span{lo: conePrefix(z, r[0]), hi: prefixEnd(conePrefix(z, r[1]))})
		}
	}
	return out
}

// holds reports whether the cone entry k (without its ID) lies within c.
func (c Cone) holds(k []byte) bool {
	if len(k) != 1+2+16 || k[0] != prefixCone {
		return false
	}
	ra, dec := floatFrom(k[3:11]), floatFrom(k[11:19])
	return angularDistance(c.RA, c.Dec, ra, dec) <= c.Radius+1e-9
}

// angularDistance is the great-circle distance in degrees (haversine).
func angularDistance(ra1, dec1, ra2, dec2 float64) float64 {
	rad := math.Pi / 180
	dra, ddec := (ra2-ra1)*rad, (dec2-dec1)*rad
	h := math.Pow(math.Sin(ddec/2), 2) + math.Cos(dec1*rad)*math.Cos(dec2*rad)*math.Pow(math.Sin(dra/2), 2)
	return 2 * math.Asin(math.Min(1, math.Sqrt(h))) / rad
}
