package naming

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound  = errors.New("not found")
	ErrDeleted   = errors.New("deleted")   // the latest version is a tombstone or has expired
	ErrForbidden = errors.New("forbidden") // the signer may not write under the name's domain
	ErrUntrusted = errors.New("untrusted") // the signer is not in the trust store
	ErrRevoked   = errors.New("revoked")   // (with ErrUntrusted) the signer was taken out of the trust store recently
	ErrConflict  = errors.New("conflict")  // a different manifest holds the same name and stamp
	ErrFuture    = errors.New("stamp too far in the future")
	ErrCollected = errors.New("collected") // the manifest was garbage-collected here and is refused for good
)

// Journal records, inside the commit that makes them visible, the chunks
// and the manifest that became new at this site and where they came from
// (the forwarding layer's arrival log).
type Journal interface {
	// Stage logs what a commit made new.
	Stage(pb *pebble.Batch, a Arrived) error
	// Committed is called after a commit that staged entries.
	Committed()
}

// Arrived is what one commit made new at this site.
type Arrived struct {
	Chunks []chunk.ID
	// ChunkSize gives each chunk's raw bytes (the committing batch's
	// RawSize), for the log's running byte totals.
	ChunkSize func(chunk.ID) uint64
	// Manifest is zero when the commit made only chunks new.
	Manifest     chunk.ID
	ManifestSize int
	From         string // the link it came on, or FromLocal
}

// ManifestSink keeps manifests durable outside the index.
type ManifestSink interface {
	// Put returns once the manifest is durable there.
	Put(id chunk.ID, enc []byte) error
	// Collected records manifests garbage collection removed.
	Collected(ids []chunk.ID) error
}

// FromLocal is the origin recorded for versions put at this site.
const FromLocal = "local"

// Trust says which keys may write which domains.
type Trust interface {
	// MayWrite reports whether key is trusted at all and whether it may
	// sign versions under domain.
	MayWrite(key manifest.PublicKey, domain string) (known, allowed bool)
}

// Revocations is an optional part of a Trust: keys taken out of the
// trust store recently. A version such a key signed is refused with
// ErrRevoked beside ErrUntrusted, which tells "not now" from "never".
type Revocations interface {
	Revoked(key manifest.PublicKey) bool
}

// Config is what a Store needs besides its storage.
type Config struct {
	Signer    manifest.Signer
	Clock     *manifest.Clock
	Trust     Trust
	ChunkSize int
	Now       func() time.Time // for expiry; nil → time.Now
	Journal   Journal          // nil: nothing is logged
	// FlushBytes is how much of a large put is made durable and shipped
	// at a time (0: 8 MiB); a site whose packs go to a bucket uses more,
	// each flush being a PUT.
	FlushBytes int
	// Manifests, if set, keeps every new manifest durable outside the
	// index before its commit, and hears of those garbage collection
	// removed (a bucket site's manifest log, for a rebuild).
	Manifests ManifestSink
	// MaxSkew is how far into the future a received stamp may be; 0 → 5 minutes.
	MaxSkew time.Duration
	// Layouts hears, for each chunk a put stages, where the chunk's FITS
	// image samples are (chunk.FITSScanner), so that a compressor can
	// use chunk.CompressLayout. nil: objects are not scanned.
	Layouts LayoutSink
	// FITSKeywords are the header keywords (upper case) a put of a FITS
	// object copies into its manifest's meta, as "fits.<keyword lower
	// case>", so that they replicate and are verified with it. nil: none.
	FITSKeywords []string
}

// LayoutSink is told the layout of the image samples in chunks as a put
// stages them. Only known layouts are reported (a chunk not reported has
// the zero Layout). A note may come for a put that then fails, and may
// repeat a chunk already stored: it is a hint, never a promise. Called
// on the put's goroutine: it must be quick and must not block.
type LayoutSink interface {
	NoteLayout(id chunk.ID, l chunk.Layout)
}

// Store is a site's object layer: versions of named objects over the
// chunk store, indexed in the shared Pebble DB.
type Store struct {
	db       *pebble.DB
	chunks   *chunk.Store
	cfg      Config
	versions atomic.Int64
	track    tracker // versions lacking chunks here (incomplete.go)

	gcMu      sync.Mutex   // one CollectHidden at a time (gc.go)
	collected atomic.Int64 // 'g' keys committed
	gcLimits  gcLimits

	hashes *uploadHashes // in-order hashes of multipart uploads (upload_hash.go)
	fits   fitsCounts    // puts of FITS objects (fitsmeta.go)
	bufs   chunkBuffers  // chunk buffers of puts (stageChunks)
}

// PutOptions are the optional fields of a new version.
type PutOptions struct {
	ContentType string
	Meta        []manifest.Meta
	Expires     time.Time // zero: never
	// MetaAfter, if set, is called once the body has been read whole and
	// before the version is signed; the pairs it returns join Meta (what
	// only the body tells, such as the MD5 an S3 ETag is).
	MetaAfter func() []manifest.Meta
}

// Close stops the store's background work (the hashers of multipart
// uploads, upload_hash.go) and waits for it; the caller closes db and
// chunks after.
func (s *Store) Close() { s.hashes.close() }

// Open returns the object layer over db and chunks.
func Open(db *pebble.DB, chunks *chunk.Store, cfg Config) (*Store, error) {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = chunk.DefaultSize
	}
	if cfg.ChunkSize > chunk.MaxSize {
		return nil, fmt.Errorf("chunk size %d exceeds %d", cfg.ChunkSize, chunk.MaxSize)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	s := &Store{db: db, chunks: chunks, cfg: cfg, gcLimits: defaultGCLimits, hashes: newUploadHashes()}
	n, err := s.countPrefix([]byte{prefixManifest})
	if err != nil {
		return nil, fmt.Errorf("count versions: %w", err)
	}
	s.versions.Store(n)
	if n, err = s.countPrefix([]byte{prefixCollected}); err != nil {
		return nil, fmt.Errorf("count collected versions: %w", err)
	}
	s.collected.Store(n)
	if err := s.openIncomplete(); err != nil {
		return nil, fmt.Errorf("load incomplete versions: %w", err)
	}
	if err := s.openFind(); err != nil {
		return nil, fmt.Errorf("index header values for find: %w", err)
	}
	return s, nil
}

func (s *Store) countPrefix(p []byte) (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	var n int64
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n, errors.Join(it.Error(), it.Close())
}

// Put streams r into chunks and records a new signed version of name.
// The version becomes visible only once its chunks and manifest are durable.
func (s *Store) Put(ctx context.Context, name Name, r io.Reader, opts PutOptions) (*manifest.Manifest, error) {
	if err := s.checkWriter(s.cfg.Signer.PublicKey(), name.Domain()); err != nil {
		return nil, err
	}
	b := s.chunks.NewBatch()
	committed := false
	defer func() {
		if !committed {
			b.Abort()
		}
	}()
	m := &manifest.Manifest{Name: name.String(), ChunkSize: uint32(s.cfg.ChunkSize), ContentType: opts.ContentType, Meta: opts.Meta}
	if !opts.Expires.IsZero() {
		m.Expires = opts.Expires.UnixMilli()
	}
	scan := s.newScanner() // reads only header cards: no copy of the data
	sum, err := s.stageChunks(ctx, chunk.NewSplitter(r, s.cfg.ChunkSize), b, m, scan)
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", name, err)
	}
	m.SHA256 = sum
	m.Meta = s.withFITSMeta(m.Meta, scan)
	if opts.MetaAfter != nil {
		m.Meta = mergeMeta(m.Meta, opts.MetaAfter())
	}
	if err := s.commit(b, m); err != nil {
		return nil, fmt.Errorf("put %s: %w", name, err)
	}
	committed = true
	return m, nil
}

// mergeMeta returns meta with extra's pairs added (replacing those of
// the same key), sorted by key as a manifest keeps them.
func mergeMeta(meta, extra []manifest.Meta) []manifest.Meta {
	out := slices.Clone(meta)
	for _, kv := range extra {
		if i := slices.IndexFunc(out, func(o manifest.Meta) bool { return o.Key == kv.Key }); i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	slices.SortFunc(out, func(a, b manifest.Meta) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// MayPut reports (nil) whether this site's key may write under domain.
func (s *Store) MayPut(domain string) error {
	return s.checkWriter(s.cfg.Signer.PublicKey(), domain)
}

// Copy makes a new version of name over the bytes of src, without
// reading or writing them: the new manifest lists src's chunks (as
// Pithos+ copies), with opts' content type and meta. Chunks of src this
// site lacks arrive as for any version whose manifest came first.
func (s *Store) Copy(ctx context.Context, src *manifest.Manifest, name Name, opts PutOptions) (*manifest.Manifest, error) {
	if err := s.checkWriter(s.cfg.Signer.PublicKey(), name.Domain()); err != nil {
		return nil, err
	}
	if src.Tombstone {
		return nil, fmt.Errorf("copy %s to %s: %w", src.Name, name, ErrDeleted)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &manifest.Manifest{Name: name.String(), ChunkSize: src.ChunkSize, Chunks: slices.Clone(src.Chunks), Size: src.Size,
		SHA256: src.SHA256, ContentType: opts.ContentType, Meta: opts.Meta}
	if opts.MetaAfter != nil {
		m.Meta = mergeMeta(m.Meta, opts.MetaAfter())
	}
	if !opts.Expires.IsZero() {
		m.Expires = opts.Expires.UnixMilli()
	}
	b := s.chunks.NewBatch()
	unpin := s.chunks.Pin(m.Chunks) // not collected between the look and the commit
	defer unpin()
	if err := s.commit(b, m); err != nil {
		b.Abort()
		return nil, fmt.Errorf("copy %s to %s: %w", src.Name, name, err)
	}
	return m, nil
}

// putBuffers is how many chunk buffers one put cycles through.
const putBuffers = 3

// chunkBuffers pools the chunk-sized buffers of puts.
type chunkBuffers struct{ pool sync.Pool }

func (c *chunkBuffers) get(size int) []byte {
	if b, ok := c.pool.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:size]
	}
	return make([]byte, size)
}

func (c *chunkBuffers) put(b []byte) { c.pool.Put(&b) }

// A put flushes its chunks to the index and the arrival log once
// putFlushBytes are waiting, so links ship a large object's chunks while
// the rest is still arriving; each flush costs a pack fsync, so after
// the first one it waits until putFlushEvery has passed since the last
// (a put arriving at disk speed would otherwise pay an fsync per 8 MiB,
// about 7 % of its throughput here, while a put arriving over a WAN
// takes longer than that per 8 MiB anyway).
const (
	putFlushBytes = 8 << 20
	putFlushEvery = 250 * time.Millisecond
)

func (s *Store) flushBytes() int {
	if s.cfg.FlushBytes > 0 {
		return s.cfg.FlushBytes
	}
	return putFlushBytes
}

// flushChunks makes the chunks b staged so far visible and logs them,
// so that links start shipping them; the version itself stays invisible
// until its manifest commits.
func (s *Store) flushChunks(b *chunk.Batch) error {
	a := localArrival{s: s, b: b}
	if err := b.Flush(a.stage); err != nil {
		return err
	}
	a.done()
	return nil
}

// localArrival records chunks that became new at this site, outside a
// version's commit (a put's flushes, multipart parts): stage, as the
// extra of a chunk batch's commit, tracks them for the versions waiting
// for them and logs them for the links; done applies that once the
// commit is through. A commit that had nothing new calls no extra, and
// done then does nothing.
type localArrival struct {
	s      *Store
	b      *chunk.Batch
	apply  func()
	logged bool
}

func (a *localArrival) stage(pb *pebble.Batch, added []chunk.ID) error {
	apply, err := a.s.StageChunksArrived(pb, added)
	if err != nil {
		return err
	}
	a.apply = apply
	if a.s.cfg.Journal == nil || len(added) == 0 {
		return nil
	}
	a.logged = true
	return a.s.cfg.Journal.Stage(pb, Arrived{Chunks: added, ChunkSize: a.b.RawSize, From: FromLocal})
}

func (a *localArrival) done() {
	if a.apply != nil {
		a.apply()
	}
	if a.logged {
		a.s.cfg.Journal.Committed()
	}
}

// stageChunks reads the stream chunk by chunk into b, recording the chunk
// IDs and size in m, and returns the whole-object SHA-256. The
// whole-object hash runs on its own goroutine, beside the chunk hashing
// and pack writes of this one, so a put uses two cores; at most
// putBuffers chunks are in memory.
func (s *Store) stageChunks(ctx context.Context, sp *chunk.Splitter, b *chunk.Batch, m *manifest.Manifest, scan *chunk.FITSScanner) ([32]byte, error) {
	// Buffers come from the store's pool as the object needs them: a
	// small object takes one, not putBuffers chunk-sized allocations.
	free := make(chan []byte, putBuffers)
	var owned [][]byte
	defer func() {
		for _, buf := range owned {
			s.bufs.put(buf)
		}
	}()
	take := func() []byte {
		select {
		case buf := <-free:
			return buf
		default:
		}
		if len(owned) < putBuffers {
			owned = append(owned, s.bufs.get(sp.Size()))
			return owned[len(owned)-1]
		}
		return <-free
	}
	toHash := make(chan []byte, putBuffers)
	var sum [32]byte
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		whole := sha256.New()
		for raw := range toHash {
			whole.Write(raw)
			free <- raw
		}
		whole.Sum(sum[:0])
	}()
	unflushed := 0
	var lastFlush time.Time // zero: the first flush goes at once
	err := func() error {
		defer close(toHash)
		for {
			raw, err := sp.NextInto(take())
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			id := chunk.Sum(raw)
			if _, err := b.Add(id, raw); err != nil {
				return err
			}
			s.scanChunk(scan, id, raw)
			m.Chunks = append(m.Chunks, id)
			m.Size += int64(len(raw))
			unflushed += len(raw)
			toHash <- raw
			if unflushed >= s.flushBytes() && time.Since(lastFlush) >= putFlushEvery {
				unflushed, lastFlush = 0, time.Now()
				if err := s.flushChunks(b); err != nil {
					return err
				}
			}
		}
	}()
	<-hashed
	return sum, err
}

// Delete records a tombstone version of name.
func (s *Store) Delete(ctx context.Context, name Name) (*manifest.Manifest, error) {
	if err := s.checkWriter(s.cfg.Signer.PublicKey(), name.Domain()); err != nil {
		return nil, err
	}
	if _, err := s.Latest(name); err != nil {
		return nil, err // names the object already
	}
	b := s.chunks.NewBatch()
	m := &manifest.Manifest{Name: name.String(), ChunkSize: uint32(s.cfg.ChunkSize), Tombstone: true}
	if err := s.commit(b, m); err != nil {
		b.Abort()
		return nil, fmt.Errorf("delete %s: %w", name, err)
	}
	return m, nil
}

// commit stamps and signs m and makes it durable with b's chunks.
func (s *Store) commit(b *chunk.Batch, m *manifest.Manifest) error {
	m.Stamp = s.cfg.Clock.Now()
	m.Sign(s.cfg.Signer)
	if err := m.Validate(); err != nil {
		return err
	}
	_, err := s.commitVersion(b, m, FromLocal)
	return err
}

// commitVersion makes m visible with b's chunks in one commit, logging
// what became new and updating the incomplete-version tracker for both.
// It reports whether m was new: under the commit mutex it checks again
// that m is not indexed yet (two receivers may Accept one manifest at
// once) and that no other manifest holds its name and stamp.
func (s *Store) commitVersion(b *chunk.Batch, m *manifest.Manifest, from string) (bool, error) {
	enc := m.Encode()
	id := chunk.ID(sha256.Sum256(enc))
	var d delta
	var isNew, logged bool
	if s.cfg.Manifests != nil {
		// Outside the commit mutex (a bucket round trip), while the
		// chunks are made durable: a manifest whose chunks then fail to
		// commit is in the bucket without them, and a rebuild leaves out
		// this site's own such versions. Both callers hold a manifest
		// the index lacked a moment ago (a fresh put, or Accept after its
		// check); one two receivers accept at once is put twice, which a
		// rebuild reads once.
		b.BeforeIndex(func() error { return s.cfg.Manifests.Put(id, enc) })
	}
	err := b.Commit(func(pb *pebble.Batch, added []chunk.ID) error {
		d = s.track.begin()
		if err := s.stageArrived(pb, added, &d); err != nil {
			return err
		}
		known, err := s.HasManifest(id)
		if err != nil {
			return err
		}
		if !known {
			// Again under the mutex: a collection may have removed m
			// since Accept looked.
			if err := s.checkCollected(id); err != nil {
				return err
			}
			if err := s.checkStamp(m, id); err != nil {
				return err
			}
			if err := stageVersion(pb, m, enc); err != nil {
				return err
			}
			if err := s.stageMissing(pb, m, id, added, &d); err != nil {
				return err
			}
		}
		isNew = !known
		logID := id
		if known {
			logID = chunk.ID{} // logged once, by the commit that indexed it
		}
		if s.cfg.Journal == nil || (known && len(added) == 0) {
			return nil
		}
		logged = true
		return s.cfg.Journal.Stage(pb, Arrived{Chunks: added, ChunkSize: b.RawSize, Manifest: logID, ManifestSize: len(enc), From: from})
	})
	if err != nil {
		return false, err
	}
	s.track.apply(d)
	if isNew {
		s.versions.Add(1)
	}
	if logged {
		s.cfg.Journal.Committed()
	}
	return isNew, nil
}

// checkStamp refuses m if another manifest holds its name and stamp.
func (s *Store) checkStamp(m *manifest.Manifest, id chunk.ID) error {
	name, err := ParseName(m.Name)
	if err != nil {
		return err
	}
	v, ok, err := getValue(s.db, versionKey(name.Hash(), m.Stamp))
	if err != nil || !ok || bytes.Equal(v, id[:]) {
		return err
	}
	other, err := manifestIDFrom(v)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s version %s already held by manifest %s", ErrConflict, m.Name, m.Stamp, other.Short())
}

// Accept verifies a manifest that came from elsewhere (from names the
// link) and indexes it. It reports whether the manifest was new. Its
// chunks may arrive later.
// A manifest collected here before is refused with ErrCollected, before
// its signature is checked.
func (s *Store) Accept(m *manifest.Manifest, from string) (bool, error) {
	id := m.ID()
	if err := s.checkCollected(id); err != nil {
		return false, err
	}
	if err := s.Verify(m); err != nil {
		return false, err
	}
	if limit := s.cfg.Now().Add(s.cfg.MaxSkew); m.Stamp.Time().After(limit) {
		return false, fmt.Errorf("%w: %s version %s is beyond this site's clock + %s", ErrFuture, m.Name, m.Stamp, s.cfg.MaxSkew)
	}
	if ok, err := s.HasManifest(id); err != nil || ok {
		return false, err
	}
	name, _ := ParseName(m.Name) // Verify parsed it
	if other, err := s.Version(name, m.Stamp); err == nil && other.ID() != id {
		return false, fmt.Errorf("%w: %s version %s already held by manifest %s", ErrConflict, m.Name, m.Stamp, other.ID().Short())
	}
	s.cfg.Clock.Observe(m.Stamp)
	isNew, err := s.commitVersion(s.chunks.NewBatch(), m, from)
	if err != nil {
		return false, fmt.Errorf("index manifest %s: %w", id.Short(), err)
	}
	return isNew, nil
}

// Verify checks m's structure, signature and that its signer may write
// under its name's domain.
func (s *Store) Verify(m *manifest.Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	name, err := ParseName(m.Name)
	if err != nil {
		return fmt.Errorf("%w: %w", manifest.ErrMalformed, err)
	}
	if err := m.Verify(); err != nil {
		return err
	}
	return s.checkWriter(m.Signer, name.Domain())
}

func (s *Store) checkWriter(key manifest.PublicKey, domain string) error {
	known, allowed := s.cfg.Trust.MayWrite(key, domain)
	if !known {
		if r, ok := s.cfg.Trust.(Revocations); ok && r.Revoked(key) {
			return fmt.Errorf("%w: %w: key %s was taken out of the trust store (skyfed site trust takes it back)", ErrUntrusted, ErrRevoked, key)
		}
		return fmt.Errorf("%w: key %s is not in the trust store (add it with skyfed site trust)", ErrUntrusted, key)
	}
	if !allowed {
		return fmt.Errorf("%w: key %s may not write under domain %q", ErrForbidden, key, domain)
	}
	return nil
}

// Manifest loads and decodes the manifest with the given ID.
func (s *Store) Manifest(id chunk.ID) (*manifest.Manifest, error) {
	enc, err := s.ManifestBytes(id)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Decode(enc)
	if err != nil {
		return nil, fmt.Errorf("load manifest %s: %w", id.Short(), err)
	}
	return m, nil
}

// ManifestBytes returns the canonical encoding of the manifest with the
// given ID as stored (what links ship; receivers decode and verify it).
func (s *Store) ManifestBytes(id chunk.ID) ([]byte, error) {
	enc, ok, err := getValue(s.db, manifestKey(id))
	if err != nil {
		return nil, fmt.Errorf("load manifest %s: %w", id.Short(), err)
	}
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w", id.Short(), ErrNotFound)
	}
	return enc, nil
}

// HasManifest reports whether the manifest with the given ID is indexed.
func (s *Store) HasManifest(id chunk.ID) (bool, error) {
	_, ok, err := getValue(s.db, manifestKey(id))
	return ok, err
}

// Versions returns the number of versions indexed.
func (s *Store) Versions() int64 { return s.versions.Load() }

func manifestIDFrom(v []byte) (chunk.ID, error) {
	var id chunk.ID
	if len(v) != len(id) {
		return id, fmt.Errorf("%w: index value of %d bytes", chunk.ErrCorrupt, len(v))
	}
	copy(id[:], v)
	return id, nil
}

// ForEachManifest calls fn with the ID of every indexed manifest, in ID order.
func (s *Store) ForEachManifest(fn func(chunk.ID) error) error {
	p := []byte{prefixManifest}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		id, err := manifestIDFrom(it.Key()[1:])
		if err != nil {
			return err
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	return it.Error()
}
