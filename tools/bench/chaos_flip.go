package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/skyfed/skyfed/chunk"
)

// The flip fault damages a site's pack files the way bit rot does: it
// walks the record headers of the site's packs (the format of
// chunk/index.go, read here from the outside as a disk would be), picks a
// pack and some of its chunk records, and flips bytes of their payloads
// (and now and then of a header) in place, under the running site or
// while it is stopped. Only chunks another site holds are damaged, so
// every one of them can be repaired.

// Pack record header: magic "SKC1", chunk ID, codec, stored and raw
// length, CRC-32C of the payload, CRC-32C of the header's first 49 bytes
// (chunk/index.go).
const (
	packHeaderSize = 53
	packGlob       = "pack-*.dat"
)

var (
	packMagic      = []byte("SKC1")
	packCastagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// packRecord is one chunk record found in a pack file.
type packRecord struct {
	Pack      string // the pack file's path
	Offset    int64  // of the record header
	ID        chunk.ID
	StoredLen uint32 // payload bytes after the header
}

// scanPack walks the record headers of one pack file from its start. It
// stops at the end of the file, at a torn tail or at the first header
// that does not check (a record damaged earlier hides the ones after it).
func scanPack(path string) ([]packRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var out []packRecord
	var hb [packHeaderSize]byte
	for off := int64(0); off+packHeaderSize <= fi.Size(); {
		if _, err := f.ReadAt(hb[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return out, err
		}
		if string(hb[0:4]) != string(packMagic) || crc32.Checksum(hb[:49], packCastagnoli) != binary.LittleEndian.Uint32(hb[49:53]) {
			break
		}
		n := binary.LittleEndian.Uint32(hb[37:41])
		if off+packHeaderSize+int64(n) > fi.Size() {
			break // torn: the payload is not all there
		}
		out = append(out, packRecord{Pack: path, Offset: off, ID: chunk.ID(hb[4:36]), StoredLen: n})
		off += packHeaderSize + int64(n)
	}
	return out, nil
}

// dataDirPacks lists the pack files of a site's data dir, oldest first.
func dataDirPacks(dataDir string) ([]string, error) {
	packs, err := filepath.Glob(filepath.Join(dataDir, "packs", packGlob))
	sort.Strings(packs) // numbered with six digits, never reused
	return packs, err
}

// flipChoice is what a flip may damage: the chunk records of one site.
type flipChoice struct {
	records []packRecord
	count   map[chunk.ID]int // records of each chunk ID over all packs
}

// scanSitePacks walks every pack of a data dir. skipNewest leaves out the
// newest pack: for a site just killed, its tail may hold records of a
// commit that never happened.
func scanSitePacks(dataDir string, skipNewest bool) (flipChoice, error) {
	packs, err := dataDirPacks(dataDir)
	if err != nil {
		return flipChoice{}, err
	}
	c := flipChoice{count: map[chunk.ID]int{}}
	for k, p := range packs {
		recs, err := scanPack(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) { // compaction may remove a pack meanwhile
			return flipChoice{}, err
		}
		for _, r := range recs {
			c.count[r.ID]++
		}
		if skipNewest && k == len(packs)-1 {
			continue
		}
		c.records = append(c.records, recs...)
	}
	return c, nil
}

// choose picks up to n records to damage, all in one pack: records of a
// chunk found once over all packs (so, as far as the files tell, the one
// the index points at), with a payload, not in avoid, and for which ok
// says yes (the site holds the chunk, another site holds a good copy).
// It tries the packs in a random order until one yields a record.
func (c flipChoice) choose(rng *rand.Rand, n int, avoid map[chunk.ID]bool, ok func(chunk.ID) bool) []packRecord {
	byPack := map[string][]packRecord{}
	var packs []string
	for _, r := range c.records {
		if c.count[r.ID] != 1 || r.StoredLen == 0 || avoid[r.ID] {
			continue
		}
		if byPack[r.Pack] == nil {
			packs = append(packs, r.Pack)
		}
		byPack[r.Pack] = append(byPack[r.Pack], r)
	}
	rng.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
	for _, p := range packs {
		recs := slices.Clone(byPack[p])
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		var out []packRecord
		for _, r := range recs {
			if len(out) == n {
				break
			}
			if ok == nil || ok(r.ID) {
				out = append(out, r)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// flipRecord flips 1 to 4 bytes of the record's payload in place, and
// with header one byte of its header's ID, lengths or payload CRC too.
// It returns the file offsets it changed.
func flipRecord(rec packRecord, rng *rand.Rand, header bool) ([]int64, error) {
	f, err := os.OpenFile(rec.Pack, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	var offs []int64
	for range 1 + rng.IntN(4) {
		offs = append(offs, rec.Offset+packHeaderSize+rng.Int64N(int64(rec.StoredLen)))
	}
	if header {
		offs = append(offs, rec.Offset+4+rng.Int64N(45)) // [4:49]: ID, codec, lengths, payload CRC
	}
	slices.Sort(offs)
	offs = slices.Compact(offs)
	var b [1]byte
	for _, off := range offs {
		if _, err = f.ReadAt(b[:], off); err != nil {
			break
		}
		b[0] ^= byte(1 + rng.IntN(255))
		if _, err = f.WriteAt(b[:], off); err != nil {
			break
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("flip bytes in %s: %w", filepath.Base(rec.Pack), err)
	}
	return offs, nil
}
