package chunk

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DefaultPackSize is the size past which the store starts a new pack file.
const DefaultPackSize = 1 << 30

var errClosed = errors.New("chunk store is closed")

// maxRetiredRetries bounds how often a read looks a chunk up again after
// compaction moved it: once is enough unless compaction runs back to back.
const maxRetiredRetries = 4

// Stats of a store. Counters are cumulative since Open; the sizes cover
// everything stored.
type Stats struct {
	Chunks       int64 // unique chunks stored
	StoredBytes  int64 // payload bytes on disk for them (after compression)
	RawBytes     int64 // raw bytes of them
	CorruptReads int64 // reads that failed verification
	// LostAtOpen counts index entries Open dropped because their pack
	// file was missing or too short to hold their record (a pack lost
	// with a disk, or restored from an older copy).
	LostAtOpen int64
}

// Options for Open.
type Options struct {
	// Packs is where pack files go; nil → DirPacks over FS and Dir.
	Packs    Packs
	FS       vfs.FS       // nil → vfs.Default; pack files go through it
	Dir      string       // directory for pack files (created), unless Packs is set
	PackSize int64        // start a new pack file past this size; 0 → DefaultPackSize
	Logger   *slog.Logger // nil → slog.Default()
}

// Store keeps chunk payloads in append-only pack files and their index in a
// Pebble DB the caller opened and shares with other packages; the store uses
// only keys starting with the byte 'c'. Open one Store per DB and directory.
// All methods are safe for concurrent use.
type Store struct {
	db       *pebble.DB
	where    Packs
	packSize int64
	log      *slog.Logger

	// closeMu is held shared by everything that touches pack files and
	// exclusively by Close, so no file is closed under a reader.
	closeMu sync.RWMutex
	closed  bool

	appendMu sync.Mutex // guards active, nextPack, wbuf
	active   *packFile
	nextPack uint32
	wbuf     []byte

	packsMu sync.RWMutex
	packs   map[uint32]*packFile
	retired map[uint32]bool // packs compaction removed (packsMu)

	// pins are chunks a reader or an open batch relies on: a sweep
	// leaves them alone (heal.go).
	pinMu sync.Mutex
	pins  map[ID]int
	guard map[ID]struct{} // chunks pinned since GuardReuse (nil: off)

	commitMu  sync.Mutex // serializes index commits so Stats count each chunk once
	compactMu sync.Mutex // one Compact at a time

	// uploads are syncs of full packs started in the background
	// (syncFullPack); Close waits for them.
	uploads sync.WaitGroup

	openBatches atomic.Int64 // writers' Batches not yet committed or aborted (batch.go)
	lastWrite   atomic.Int64 // unix ns when openBatches last fell to 0

	chunks, storedBytes, rawBytes, corruptReads atomic.Int64
	lostAtOpen                                  int64 // set once by Open
}

// Open opens the chunk store: it creates Dir, scans the 'c' index once to
// rebuild the Stats sizes, and starts a new pack file (it never appends to a
// file that may end in a torn write from a crash).
func Open(db *pebble.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("open chunk store: nil Pebble DB")
	}
	if opts.Dir == "" && opts.Packs == nil {
		return nil, errors.New("open chunk store: Options.Dir is empty")
	}
	s := &Store{
		db:       db,
		where:    opts.Packs,
		packSize: opts.PackSize,
		log:      opts.Logger,
		packs:    make(map[uint32]*packFile),
		retired:  make(map[uint32]bool),
		pins:     make(map[ID]int),
	}
	if s.packSize <= 0 {
		s.packSize = DefaultPackSize
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.where == nil {
		dp, err := NewDirPacks(opts.FS, opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("open chunk store: %w", err)
		}
		s.where = dp
	}
	sizes, err := s.where.List()
	if err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	topIndexed, err := s.scanIndex(sizes)
	if err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	var topFile uint32
	for n := range sizes {
		topFile = max(topFile, n)
	}
	s.nextPack = max(topIndexed, topFile) + 1
	s.appendMu.Lock()
	err = s.rotateLocked()
	s.appendMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	return s, nil
}

// scanIndex reads every index entry once to rebuild the size counters and
// returns the highest pack number the index refers to. Malformed entries are
// logged and skipped here; reading such a chunk reports ErrCorrupt. Entries
// whose pack file is gone, or too short to hold their record, are dropped
// from the index (logged, counted in Stats.LostAtOpen): the chunk is not
// here any more, and saying so lets the site fetch it again from its peers
// (reconciliation finds it missing) instead of failing every read of it.
func (s *Store) scanIndex(sizes map[uint32]int64) (uint32, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{keyPrefix},
		UpperBound: []byte{keyPrefix + 1},
	})
	if err != nil {
		return 0, fmt.Errorf("scan chunk index: %w", err)
	}
	var top uint32
	var bad int
	var lost [][]byte
	lostPacks := map[uint32]int{}
	for it.First(); it.Valid(); it.Next() {
		e, err := decodeEntry(it.Value())
		if err != nil || len(it.Key()) != 1+len(ID{}) {
			bad++
			continue
		}
		// Compared without the sum, which an offset near 2^63 would overflow.
		if size, ok := sizes[e.pack]; !ok || e.offset > size-headerSize-int64(e.storedLen) {
			lost = append(lost, append([]byte(nil), it.Key()...))
			lostPacks[e.pack]++
			continue
		}
		top = max(top, e.pack)
		s.chunks.Add(1)
		s.storedBytes.Add(int64(e.storedLen))
		s.rawBytes.Add(int64(e.rawLen))
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("scan chunk index: %w", err)
	}
	if bad > 0 {
		s.log.Error("chunk store: malformed index entries skipped; those chunks will read as corrupt", "count", bad)
	}
	if len(lost) > 0 {
		if err := s.forget(lost); err != nil {
			return 0, fmt.Errorf("scan chunk index: drop entries of lost packs: %w", err)
		}
		for num, n := range lostPacks {
			s.log.Warn("chunk store: pack file missing or truncated; its chunks are forgotten here and will come back from peers (skyfed diff PEER shows what is missing)",
				"pack", packName(num), "chunks", n)
		}
		s.lostAtOpen = int64(len(lost))
	}
	return top, nil
}

// forget deletes index keys in one synced batch.
func (s *Store) forget(keys [][]byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// Close closes the pack files (not the DB). Later calls that need pack files fail.
func (s *Store) Close() error {
	s.uploads.Wait()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.packsMu.Lock()
	defer s.packsMu.Unlock()
	var errs []error
	for num, p := range s.packs {
		if err := p.close(); err != nil {
			errs = append(errs, fmt.Errorf("close pack %s: %w", packName(num), err))
		}
	}
	s.packs = nil
	return errors.Join(errs...)
}

// Has reports whether the chunk is stored (committed).
func (s *Store) Has(id ID) (bool, error) {
	_, closer, err := s.db.Get(indexKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up chunk %s: %w", id, err)
	}
	_ = closer.Close()
	return true, nil
}

// lookup returns the index entry of id.
func (s *Store) lookup(id ID) (entry, error) {
	v, closer, err := s.db.Get(indexKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return entry{}, ErrNotFound
	}
	if err != nil {
		return entry{}, fmt.Errorf("look up index: %w", err)
	}
	e, err := decodeEntry(v)
	_ = closer.Close()
	if err != nil {
		return entry{}, fmt.Errorf("%v: %w", err, ErrCorrupt)
	}
	return e, nil
}

// Get returns the raw bytes of a chunk, appended into dst[:0]. The bytes are
// always verified: if they do not decode or hash to id, Get logs it, counts a
// corrupt read and returns an error wrapping ErrCorrupt. A chunk not stored
// gives ErrNotFound.
func (s *Store) Get(id ID, dst []byte) ([]byte, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return dst[:0], fmt.Errorf("get chunk %s: %w", id, errClosed)
	}
	var e entry
	var err error
	for range maxRetiredRetries {
		if e, err = s.lookup(id); err == nil {
			dst, err = s.readVerified(id, e, dst)
		}
		if !errors.Is(err, errRetired) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			s.noteCorrupt(id, e, err)
		}
		return dst[:0], fmt.Errorf("get chunk %s: %w", id, err)
	}
	return dst, nil
}

// readVerified reads, decodes and hashes the chunk e points at.
func (s *Store) readVerified(id ID, e entry, dst []byte) ([]byte, error) {
	if e.codec == CodecRaw {
		raw, err := s.readRecord(id, e, dst, false)
		if err != nil {
			return raw, err
		}
		return raw, verify(id, raw)
	}
	payload := getScratch(0)
	defer putScratch(payload)
	p, err := s.readRecord(id, e, *payload, false)
	*payload = p[:0]
	if err != nil {
		return dst[:0], err
	}
	raw, err := Decode(e.codec, p, dst, int(e.rawLen))
	if errors.Is(err, ErrTooLarge) {
		err = fmt.Errorf("%v: %w", err, ErrCorrupt)
	}
	if err != nil {
		return raw[:0], err
	}
	if len(raw) != int(e.rawLen) {
		return raw[:0], fmt.Errorf("decoded %d bytes, index says %d: %w", len(raw), e.rawLen, ErrCorrupt)
	}
	return raw, verify(id, raw)
}

// verify checks that raw hashes to id.
func verify(id ID, raw []byte) error {
	if got := ID(sha256.Sum256(raw)); got != id {
		return fmt.Errorf("bytes hash to %s: %w", got.Short(), ErrCorrupt)
	}
	return nil
}

// noteCorrupt counts and logs a read that failed verification.
func (s *Store) noteCorrupt(id ID, e entry, err error) {
	s.corruptReads.Add(1)
	s.log.Error("chunk store: corrupt chunk", "chunk", id.String(),
		"pack", packName(e.pack), "offset", e.offset, "err", err)
}

// GetStored returns the stored payload of a chunk as it is (to ship it
// compressed), appended into dst[:0], with its codec and raw length. The
// payload is checked only against the record's CRC-32C, NOT hashed: whoever
// decodes it must verify the ID. Damage found is counted and wraps ErrCorrupt.
func (s *Store) GetStored(id ID, dst []byte) (Codec, []byte, uint32, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return 0, dst[:0], 0, fmt.Errorf("get stored chunk %s: %w", id, errClosed)
	}
	var e entry
	var err error
	for range maxRetiredRetries {
		if e, err = s.lookup(id); err == nil {
			dst, err = s.readRecord(id, e, dst, true)
		}
		if !errors.Is(err, errRetired) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			s.noteCorrupt(id, e, err)
		}
		return 0, dst[:0], 0, fmt.Errorf("get stored chunk %s: %w", id, err)
	}
	return e.codec, dst, e.rawLen, nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Chunks:       s.chunks.Load(),
		StoredBytes:  s.storedBytes.Load(),
		RawBytes:     s.rawBytes.Load(),
		CorruptReads: s.corruptReads.Load(),
		LostAtOpen:   s.lostAtOpen,
	}
}

// ForEach calls fn with the ID of every stored chunk, in ID order.
func (s *Store) ForEach(fn func(ID) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyPrefix}, UpperBound: []byte{keyPrefix + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var id ID
		if len(it.Key()) != 1+len(id) {
			return fmt.Errorf("chunk index key %x: %w", it.Key(), ErrCorrupt)
		}
		copy(id[:], it.Key()[1:])
		if err := fn(id); err != nil {
			return err
		}
	}
	return it.Error()
}

// FindPrefix returns a stored chunk whose ID starts with prefix and its
// raw length (reconciliation names chunks by their first ID bytes); ok
// is false when there is none. Of several, it returns the lowest ID.
func (s *Store) FindPrefix(prefix []byte) (id ID, rawLen uint32, ok bool, err error) {
	p := append([]byte{keyPrefix}, prefix...)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: []byte{keyPrefix + 1}})
	if err != nil {
		return ID{}, 0, false, err
	}
	defer it.Close()
	if !it.First() || len(it.Key()) != 1+len(id) || string(it.Key()[:len(p)]) != string(p) {
		return ID{}, 0, false, it.Error()
	}
	e, err := decodeEntry(it.Value())
	if err != nil {
		return ID{}, 0, false, fmt.Errorf("chunk %x: %w", it.Key()[1:], err)
	}
	copy(id[:], it.Key()[1:])
	return id, e.rawLen, true, nil
}
