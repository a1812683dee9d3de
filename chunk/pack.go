package chunk

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// packCategory tags pack writes in the FS's disk statistics.
const packCategory vfs.DiskWriteCategory = "skyfed-chunk-pack"

// packFile is one open pack file. Pack files written by this Store are open
// read-write and appended under Store.appendMu; older ones are read-only.
// Reads use ReadAt and run concurrently.
type packFile struct {
	num uint32
	w   PackWriter // nil for a pack opened to read

	readMu sync.Mutex
	r      PackReader // opened at the first read (readMu)

	written atomic.Int64 // bytes appended by this Store (writable packs)
	broken  atomic.Bool  // a write or sync failed: append no more to this file

	syncMu  sync.Mutex
	synced  int64 // bytes known durable (syncMu)
	syncErr error // sticky: after a failed fsync the file's state is unknown (syncMu)

	// inflight counts batches that wrote here and have not committed
	// or aborted: their index entries are still to come, so compaction
	// leaves the pack alone. Raised under Store.appendMu while the pack
	// is active, so a pack that is no longer active gains no new ones.
	inflight atomic.Int32

	// useMu is held shared by reads and exclusively by compaction when
	// it retires the pack, so the file is never closed under a read.
	useMu   sync.RWMutex
	retired bool // useMu
}

// errRetired says that compaction removed the pack a read looked for:
// the chunk moved, and a fresh index look-up finds where.
var errRetired = errors.New("pack retired by compaction")

// reader returns what reads the pack: the writer itself when it can
// read (a file), else a reader from Packs.Open (an object, once synced).
func (p *packFile) reader(where Packs) (PackReader, error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if p.r != nil {
		return p.r, nil
	}
	if r, ok := p.w.(PackReader); ok {
		p.r = r
		return r, nil
	}
	r, err := where.Open(p.num)
	if err != nil {
		return nil, err
	}
	p.r = r
	return r, nil
}

// close closes the writer and the reader, once each.
func (p *packFile) close() error {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	var errs []error
	if p.r != nil && any(p.r) != any(p.w) {
		errs = append(errs, p.r.Close())
	}
	if p.w != nil {
		errs = append(errs, p.w.Close())
	}
	p.r, p.w = nil, nil
	return errors.Join(errs...)
}

// syncTo makes at least the first end bytes of pack p durable. Concurrent
// batches share syncs: a sync covers everything appended before it began.
// The writer must allow Sync concurrently with Write. Where a sync seals
// the pack (an object), the pack stops taking appends first, so that what
// the sync covers is all the pack will ever hold.
func (s *Store) syncTo(p *packFile, end int64) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	if p.syncErr != nil {
		return p.syncErr
	}
	if p.synced >= end {
		return nil
	}
	if s.where.SealOnSync() {
		s.appendMu.Lock()
		p.broken.Store(true) // no more appends: the next one starts a new pack
		s.appendMu.Unlock()
	}
	return p.syncLocked()
}

// syncLocked syncs everything written so far; p.syncMu is held.
func (p *packFile) syncLocked() error {
	target := p.written.Load()
	if err := p.w.Sync(); err != nil {
		p.broken.Store(true)
		p.syncErr = fmt.Errorf("sync pack %s: %w", packName(p.num), err)
		return p.syncErr
	}
	p.synced = target
	return nil
}

// syncFullPack starts the sync of a pack that just filled up, sealed
// (s.appendMu is held): where a sync uploads the pack whole, the upload
// then overlaps the writes into the next pack, and the commits that
// wait for it find it done or under way. Its error stays with the pack
// for those commits.
func (s *Store) syncFullPack(p *packFile) {
	p.broken.Store(true)
	s.uploads.Add(1)
	go func() {
		defer s.uploads.Done()
		p.syncMu.Lock()
		defer p.syncMu.Unlock()
		if p.syncErr == nil && p.synced < p.written.Load() {
			_ = p.syncLocked()
		}
	}()
}

// writebackEvery is how often (in bytes appended) a pack's dirty pages
// are handed to the disk, as Pebble's and RocksDB's bytes_per_sync do: a
// large put then streams to disk as it goes instead of leaving its whole
// size for the commit's fsync, which stays the durability point.
const writebackEvery = 8 << 20

// startWriteback starts writing back the pack up to end when the record
// [start, end) crossed a writebackEvery boundary. It is only a hint: its
// errors are left to the commit's fsync to report.
func (p *packFile) startWriteback(start, end int64) {
	if start/writebackEvery == end/writebackEvery {
		return
	}
	p.w.Writeback(end)
}

// packName returns the file name of pack number num.
func packName(num uint32) string {
	return fmt.Sprintf("pack-%06d.dat", num)
}

// parsePackName returns the number of a pack file name.
func parsePackName(name string) (uint32, bool) {
	digits, ok := strings.CutPrefix(name, "pack-")
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, ".dat")
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

// packSizes returns the size of every pack file in dir by number.
func packSizes(fsys vfs.FS, dir string) (map[uint32]int64, error) {
	names, err := fsys.List(dir)
	if err != nil {
		return nil, fmt.Errorf("list pack dir %s: %w", dir, err)
	}
	sizes := make(map[uint32]int64, len(names))
	for _, name := range names {
		n, ok := parsePackName(name)
		if !ok {
			continue
		}
		fi, err := fsys.Stat(fsys.PathJoin(dir, name))
		if err != nil {
			return nil, fmt.Errorf("stat pack %s: %w", name, err)
		}
		sizes[n] = fi.Size()
	}
	return sizes, nil
}

// mkdirAllSynced creates dir and makes its entry (and those of any parents it
// created) durable, so pack files created in it survive a crash.
func mkdirAllSynced(fsys vfs.FS, dir string) error {
	var missing []string
	for d := dir; ; d = fsys.PathDir(d) {
		if _, err := fsys.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		missing = append(missing, d)
		if fsys.PathDir(d) == d {
			break
		}
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create pack dir %s: %w", dir, err)
	}
	for _, d := range missing {
		if err := syncDir(fsys, fsys.PathDir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory so the entries created in it are durable.
func syncDir(fsys vfs.FS, dir string) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("close dir %s: %w", dir, err)
	}
	return nil
}

// packFor returns the open pack file number num, opening it read-only the
// first time. A pack file that is missing is reported as ErrCorrupt: the
// index refers to it, so its chunks are lost.
func (s *Store) packFor(num uint32) (*packFile, error) {
	s.packsMu.RLock()
	p := s.packs[num]
	s.packsMu.RUnlock()
	if p != nil {
		return p, nil
	}
	s.packsMu.Lock()
	defer s.packsMu.Unlock()
	if p := s.packs[num]; p != nil {
		return p, nil
	}
	if s.retired[num] {
		return nil, errRetired
	}
	r, err := s.where.Open(num)
	if errors.Is(err, ErrPackMissing) {
		return nil, fmt.Errorf("%w: %w", err, ErrCorrupt)
	}
	if err != nil {
		return nil, err
	}
	p = &packFile{num: num, r: r}
	s.packs[num] = p
	return p, nil
}

// rotateLocked starts a new pack file and makes its directory entry durable
// before anything is written to it. s.appendMu must be held.
func (s *Store) rotateLocked() error {
	num := s.nextPack
	s.nextPack++ // never reuse a number, even if creating this one fails
	w, err := s.where.Create(num)
	if err != nil {
		return err
	}
	p := &packFile{num: num, w: w}
	s.packsMu.Lock()
	s.packs[num] = p
	s.packsMu.Unlock()
	s.active = p
	s.log.Debug("chunk store: new pack", "pack", packName(num), "in", s.where.Where())
	return nil
}

// appendRecord appends one record (header + payload) to the active pack
// file, starting a new one first when the active one is full or broken.
// It returns where the record went; the bytes are not yet durable.
func (s *Store) appendRecord(id ID, c Codec, payload []byte, rawLen uint32) (entry, *packFile, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	size := int64(headerSize + len(payload))
	if a := s.active; a == nil || a.broken.Load() || (a.written.Load() > 0 && a.written.Load()+size > s.packSize) {
		if a != nil && !a.broken.Load() && s.where.SealOnSync() {
			s.syncFullPack(a)
		}
		if err := s.rotateLocked(); err != nil {
			return entry{}, nil, err
		}
	}
	p := s.active
	h := header{id: id, codec: c, storedLen: uint32(len(payload)), rawLen: rawLen,
		payloadCRC: crc32.Checksum(payload, castagnoli)}
	// One Write per record, from a buffer the FS may scribble on (vfs.File.Write may modify it).
	s.wbuf = append(s.wbuf[:0], make([]byte, headerSize)...)
	h.put(s.wbuf)
	s.wbuf = append(s.wbuf, payload...)
	if _, err := p.w.Write(s.wbuf); err != nil {
		p.broken.Store(true) // the file may hold a torn tail now; start a new one next time
		return entry{}, nil, fmt.Errorf("append chunk %s to pack %s: %w", id, packName(p.num), err)
	}
	p.inflight.Add(1) // the batch releases it when it commits or aborts
	if cap(s.wbuf) > 2*DefaultSize+headerSize {
		s.wbuf = nil // do not pin a huge buffer after one oversized chunk
	}
	off := p.written.Add(size) - size
	e := entry{pack: p.num, offset: off, storedLen: h.storedLen, rawLen: rawLen, codec: c}
	return e, p, nil
}

// readRecord reads the payload of the record e points at into dst[:0] and
// checks its header against id and e. With checkCRC it also checks the
// payload's CRC-32C. Damage is reported as ErrCorrupt.
func (s *Store) readRecord(id ID, e entry, dst []byte, checkCRC bool) ([]byte, error) {
	p, err := s.packFor(e.pack)
	if err != nil {
		return dst[:0], err
	}
	p.useMu.RLock()
	defer p.useMu.RUnlock()
	if p.retired {
		return dst[:0], errRetired
	}
	r, err := p.reader(s.where)
	if errors.Is(err, ErrPackMissing) {
		return dst[:0], fmt.Errorf("%w: %w", err, ErrCorrupt)
	}
	if err != nil {
		return dst[:0], err
	}
	var hb [headerSize]byte
	if err := readFull(r, hb[:], e.offset); err != nil {
		return dst[:0], fmt.Errorf("read record header in %s at %d: %w", packName(e.pack), e.offset, err)
	}
	h, err := decodeHeader(hb[:])
	if err != nil {
		return dst[:0], fmt.Errorf("pack %s at %d: %v: %w", packName(e.pack), e.offset, err, ErrCorrupt)
	}
	if !h.matches(id, e) {
		return dst[:0], fmt.Errorf("pack %s at %d holds chunk %s, not the indexed one: %w", packName(e.pack), e.offset, h.id.Short(), ErrCorrupt)
	}
	dst = grow(dst[:0], int(e.storedLen))
	if err := readFull(r, dst, e.offset+headerSize); err != nil {
		return dst[:0], fmt.Errorf("read payload in %s at %d: %w", packName(e.pack), e.offset, err)
	}
	if checkCRC && crc32.Checksum(dst, castagnoli) != h.payloadCRC {
		return dst[:0], fmt.Errorf("pack %s at %d: payload checksum mismatch: %w", packName(e.pack), e.offset, ErrCorrupt)
	}
	return dst, nil
}

// readFull reads len(b) bytes at off; a file too short is ErrCorrupt.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("short read (%d of %d bytes): %w", n, len(b), ErrCorrupt)
	}
	return err
}
