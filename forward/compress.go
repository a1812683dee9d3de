package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
)

// Compression happens once per chunk in the whole federation, at the
// site where the chunk was put, and never in a put's latency:
//
//   - a background pass (RunCompressor) follows the chunk arrival log
//     and compresses each chunk put here soon after its put commits,
//     replacing its stored raw payload by the compressed one
//     (chunk.Store.Recode); the raw record becomes garbage for
//     compaction;
//   - a link that wants to ship a chunk still stored raw before the pass
//     reached it compresses it on demand (Payload), under a claim per
//     chunk: a second link (or the pass) wanting the same chunk meanwhile
//     waits for that one compression, which takes milliseconds, and
//     ships its result; it never starts its own nor ships raw;
//   - a chunk that does not compress is marked and stays raw; so does
//     a chunk that arrived raw over a link (its origin found it
//     incompressible, or this site lacked its codec): neither is ever
//     tried again here, nor anywhere behind, since what arrives is
//     stored and relayed as it came (Stores.Put → chunk.Batch.AddStored).
//
// Keys in the site's Pebble DB (prefixCompress):
//
//	'z' 'r' + chunk ID → why the chunk stays raw here (rawIncompressible, rawArrived)
//	'z' 'c'            → the background pass's position in the chunk arrival log (seq, 8 bytes BE)
const prefixCompress = 'z'

// Why a chunk stays raw.
const (
	rawIncompressible byte = 1 // compressed here; it saved too little
	rawArrived        byte = 2 // arrived raw over a link
)

func rawMarkKey(id chunk.ID) []byte {
	return append([]byte{prefixCompress, 'r'}, id[:]...)
}

var compressCursorKey = []byte{prefixCompress, 'c'}

// Outcomes of a compression attempt, as metric labels.
const (
	OutcomeCompressed     = "compressed"
	OutcomeIncompressible = "incompressible"
	OutcomeFailed         = "failed"
)

// compressor is the state of compression in Stores. Its zero value is ready.
type compressor struct {
	mu      sync.Mutex
	flights map[chunk.ID]*flight // chunks being compressed now: the claims
	keeps   chan keepJob         // to the keeper while RunCompressor runs (mu)
	hints   layoutTable

	attempts         [2][3]atomic.Int64 // by pass (passShip, passBackground) and outcome (outcomeCompressed…)
	nanos            atomic.Int64       // time spent compressing (wall)
	cpuNanos         atomic.Int64       // CPU time of it (Linux)
	rawIn, storedOut atomic.Int64       // bytes of the chunks compressed, before and after
	waits            atomic.Int64       // Payload calls that waited for another's compression
	downgraded       atomic.Int64       // chunks decoded to raw for a peer without their codec
	cursor           atomic.Uint64      // the background pass's position in the chunk arrival log
}

// Indexes of compressor.attempts.
const (
	passShip, passBackground = 0, 1

	outcomeCompressed, outcomeIncompressible, outcomeFailed = 0, 1, 2
)

var (
	passNames    = [2]string{"ship", "background"}
	outcomeNames = [3]string{OutcomeCompressed, OutcomeIncompressible, OutcomeFailed}
)

// flight is one claimed compression; done is closed when its result is set.
type flight struct {
	done    chan struct{}
	codec   chunk.Codec
	payload []byte
	err     error
}

// claim returns the flight of id and whether the caller leads it (and
// must finish it).
func (c *compressor) claim(id chunk.ID) (*flight, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[id]; ok {
		return f, false
	}
	if c.flights == nil {
		c.flights = map[chunk.ID]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[id] = f
	return f, true
}

// release ends a claim once its result is stored: later callers find
// the chunk compressed (or marked) in the store.
func (c *compressor) release(id chunk.ID) {
	c.mu.Lock()
	delete(c.flights, id)
	c.mu.Unlock()
}

func (c *compressor) noteDowngraded() { c.downgraded.Add(1) }

// CompressStats counts compression at this site since it started.
type CompressStats struct {
	Compressed     int64   // attempts that stored the chunk compressed
	Incompressible int64   // attempts that saved too little: the chunk stays raw, marked
	Failed         int64   // attempts the encoder failed (the chunk is shipped raw this time)
	Background     int64   // of all attempts, those of the background pass
	Seconds        float64 // wall time in the codec
	CPUSeconds     float64 // CPU time in the codec (Linux; 0 elsewhere)
	RawBytes       int64   // raw bytes of the chunks compressed
	StoredBytes    int64   // their bytes once compressed
	Waits          int64   // ships that waited for a compression another had claimed
	DecodedForPeer int64   // chunks shipped raw to a peer that does not decode their codec
	Backlog        int64   // chunk arrivals the background pass has not looked at yet
}

// Attempts is the number of compressions tried, whatever their outcome.
func (st CompressStats) Attempts() int64 { return st.Compressed + st.Incompressible + st.Failed }

// CompressStats returns the compression counters.
func (s *Stores) CompressStats() CompressStats {
	c := &s.compress
	var st CompressStats
	for pass := range c.attempts {
		n := &c.attempts[pass]
		st.Compressed += n[outcomeCompressed].Load()
		st.Incompressible += n[outcomeIncompressible].Load()
		st.Failed += n[outcomeFailed].Load()
		if pass == passBackground {
			st.Background += n[outcomeCompressed].Load() + n[outcomeIncompressible].Load() + n[outcomeFailed].Load()
		}
	}
	st.Seconds = time.Duration(c.nanos.Load()).Seconds()
	st.CPUSeconds = time.Duration(c.cpuNanos.Load()).Seconds()
	st.RawBytes, st.StoredBytes = c.rawIn.Load(), c.storedOut.Load()
	st.Waits, st.DecodedForPeer = c.waits.Load(), c.downgraded.Load()
	if s.Log != nil {
		head := s.Log.Head(KindChunk)
		st.Backlog = int64(head - min(c.cursor.Load(), head))
	}
	return st
}

// chunkPayload returns what to ship for a chunk: its stored payload,
// compressed first (once, under the claim) if it is stored raw and may
// compress.
func (s *Stores) chunkPayload(id chunk.ID) (chunk.Codec, []byte, uint32, error) {
	// GetStored checks the record's CRC (a flipped byte is ErrCorrupt and
	// is repaired from peers); the receiver checks the SHA-256 whatever
	// is sent, so hashing here again cost a pass over every raw chunk
	// shipped and caught nothing the CRC and the receiver do not.
	c, payload, rawLen, err := s.Chunks.GetStored(id, nil)
	if err != nil || c != chunk.CodecRaw {
		return c, payload, rawLen, err
	}
	why, err := s.rawMark(id)
	if err != nil || why != 0 {
		return chunk.CodecRaw, payload, rawLen, err
	}
	r := s.compressOnce(id, payload, false)
	return r.codec, r.payload, rawLen, r.err
}

// compression is what compressOnce did.
type compression struct {
	codec   chunk.Codec
	payload []byte
	err     error         // the payload could not be had (from the store)
	spent   time.Duration // compressing, if this call did
	kept    error         // storing the result failed (it is still good to ship)
}

// compressOnce compresses the raw bytes of chunk id unless another
// caller has claimed it (then it waits for that result) or it was
// compressed or marked meanwhile (then it returns what is stored). The
// leader stores the result: the compressed payload replaces the raw
// one, or the chunk is marked incompressible. If the encoder fails, the
// chunk is shipped raw this time and left unmarked.
func (s *Stores) compressOnce(id chunk.ID, raw []byte, background bool) compression {
	f, lead := s.compress.claim(id)
	if !lead {
		s.compress.waits.Add(1)
		<-f.done
		return compression{codec: f.codec, payload: f.payload, err: f.err}
	}
	handedOff := false
	defer func() {
		if !handedOff {
			s.compress.release(id)
		}
	}()
	var r compression
	switch c, err := s.Chunks.StoredCodec(id); {
	case err == nil && c != chunk.CodecRaw:
		// Compressed by the claim's previous holder, between the
		// caller's read and this claim.
		r.codec, r.payload, _, r.err = s.Chunks.GetStored(id, nil)
	default:
		why, err := s.rawMark(id)
		if err != nil || why != 0 {
			r.codec, r.payload, r.err = chunk.CodecRaw, raw, err
			break
		}
		var cerr error
		r.codec, r.payload, r.spent, cerr = s.compressChunk(id, raw, background)
		if cerr != nil {
			r.codec, r.payload, r.kept = chunk.CodecRaw, raw, cerr
		}
	}
	f.codec, f.payload, f.err = r.codec, r.payload, r.err
	close(f.done) // waiters ship it now; storing it follows, under the claim
	if r.spent == 0 || r.kept != nil {
		return r
	}
	job := keepJob{id: id, codec: r.codec, payload: r.payload, rawLen: uint32(len(raw))}
	if !background && s.compress.handOff(job) {
		handedOff = true // the keeper stores it and releases the claim
		return r
	}
	r.kept = s.keep([]keepJob{job})
	return r
}

// compressChunk runs the codec on raw and counts the attempt.
func (s *Stores) compressChunk(id chunk.ID, raw []byte, background bool) (chunk.Codec, []byte, time.Duration, error) {
	layout := s.compress.hints.take(id)
	start := time.Now()
	var c chunk.Codec
	var payload []byte
	var err error
	cpu, cpuOK := withThreadCPU(func() { c, payload, err = compressLayout(raw, layout) })
	spent := max(time.Since(start), 1)
	cs := &s.compress
	cs.nanos.Add(int64(spent))
	if cpuOK {
		cs.cpuNanos.Add(int64(cpu))
	}
	n := &cs.attempts[passShip]
	if background {
		n = &cs.attempts[passBackground]
	}
	switch {
	case err != nil:
		n[outcomeFailed].Add(1)
		return chunk.CodecRaw, raw, spent, fmt.Errorf("compress chunk %s: %w", id.Short(), err)
	case c == chunk.CodecRaw:
		n[outcomeIncompressible].Add(1)
	default:
		n[outcomeCompressed].Add(1)
		cs.rawIn.Add(int64(len(raw)))
		cs.storedOut.Add(int64(len(payload)))
	}
	return c, payload, spent, nil
}

// keepJob is the outcome of one compression, to store.
type keepJob struct {
	id      chunk.ID
	codec   chunk.Codec // CodecRaw: incompressible
	payload []byte
	rawLen  uint32
}

// keep stores the outcomes of compressions: each compressed payload in
// place of the raw one (one group: one fsync and one index commit), or
// the mark that the chunk stays raw. On failure the chunks stay raw and
// unmarked, so a later ship or the background pass compresses them
// again: a second compression only after a storage failure.
func (s *Stores) keep(jobs []keepJob) error {
	var recode []chunk.Recoding
	var marks []chunk.ID
	for _, j := range jobs {
		if j.codec == chunk.CodecRaw {
			marks = append(marks, j.id)
		} else {
			recode = append(recode, chunk.Recoding{ID: j.id, Codec: j.codec, Payload: j.payload, RawLen: j.rawLen})
		}
	}
	var errs []error
	if len(recode) > 0 {
		if _, err := s.Chunks.RecodeAll(recode); err != nil {
			errs = append(errs, err)
		}
	}
	if len(marks) > 0 {
		if err := s.markRaw(marks, rawIncompressible); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keeperQueue bounds the ship-path outcomes waiting to be stored.
const keeperQueue = 64

// handOff queues a ship-path outcome for the keeper, so the link ships
// without waiting for an fsync; false when no keeper runs or its queue
// is full (then the caller stores it itself).
func (c *compressor) handOff(j keepJob) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keeps == nil {
		return false
	}
	select {
	case c.keeps <- j:
		return true
	default:
		return false
	}
}

// runKeeper stores the outcomes handed off by ships, in groups, and
// releases their claims, until ctx ends; then it stops taking more and
// stores what is queued.
func (s *Stores) runKeeper(ctx context.Context, log *slog.Logger) {
	c := &s.compress
	q := make(chan keepJob, keeperQueue)
	c.mu.Lock()
	c.keeps = q
	c.mu.Unlock()
	store := func(jobs []keepJob) {
		if err := s.keep(jobs); err != nil {
			log.Warn("compression: storing compressed chunks failed; they stay raw and are compressed again later", "chunks", len(jobs), "err", err)
		}
		for _, j := range jobs {
			c.release(j.id)
		}
	}
	drain := func(first keepJob) []keepJob {
		jobs := []keepJob{first}
		for len(jobs) < keeperQueue {
			select {
			case j := <-q:
				jobs = append(jobs, j)
			default:
				return jobs
			}
		}
		return jobs
	}
	for {
		select {
		case j := <-q:
			store(drain(j))
		case <-ctx.Done():
			c.mu.Lock()
			c.keeps = nil // no more hand-offs: every one made is in q
			c.mu.Unlock()
			for {
				select {
				case j := <-q:
					store(drain(j))
				default:
					return
				}
			}
		}
	}
}

// rawMark returns why chunk id stays raw here, or 0.
func (s *Stores) rawMark(id chunk.ID) (byte, error) {
	v, closer, err := s.Log.db.Get(rawMarkKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("raw mark of chunk %s: %w", id.Short(), err)
	}
	defer closer.Close()
	if len(v) != 1 {
		return rawIncompressible, nil // malformed: leave the chunk raw
	}
	return v[0], nil
}

// markRaw records that chunks stay raw. Not synced: the next synced
// commit (every put and every stored arrival) makes it durable; a crash
// before that costs one more attempt on those chunks, never bytes.
func (s *Stores) markRaw(ids []chunk.ID, why byte) error {
	pb := s.Log.db.NewBatch()
	defer pb.Close()
	for _, id := range ids {
		if err := pb.Set(rawMarkKey(id), []byte{why}, nil); err != nil {
			return err
		}
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("mark %d chunks raw: %w", len(ids), err)
	}
	return nil
}

// stageArrivedRaw marks, in the commit that stores them, the chunks
// that arrived raw: they are never compressed here.
func stageArrivedRaw(pb *pebble.Batch, ids []chunk.ID) error {
	for _, id := range ids {
		if err := pb.Set(rawMarkKey(id), []byte{rawArrived}, nil); err != nil {
			return fmt.Errorf("mark chunk %s raw: %w", id.Short(), err)
		}
	}
	return nil
}

// CompressOptions tune the background pass.
type CompressOptions struct {
	// Share is the fraction of one core the pass may use, in (0, 1]:
	// after a compression that took d it pauses d·(1−Share)/Share.
	// 0 → DefaultCompressShare. The pass is one goroutine, so it never
	// takes more than one core whatever Share says.
	Share float64
	// MaxDefer is how long a chunk waits for the writers to be idle: the
	// pass yields while a put or an arrival is being written and for
	// Quiet after the last one, unless the chunk's put committed longer
	// ago than MaxDefer (under a steady stream of puts it then runs at
	// its Share). 0 → DefaultMaxDefer.
	MaxDefer time.Duration
	// Quiet is how long the writers must have been idle: back-to-back
	// puts leave gaps of a round trip between them, too short to
	// compress in without slowing the next put. 0 → DefaultQuiet.
	Quiet  time.Duration
	Logger *slog.Logger // nil → slog.Default()
}

// Defaults of CompressOptions.
const (
	DefaultCompressShare = 0.5
	DefaultMaxDefer      = 30 * time.Second
	DefaultQuiet         = 250 * time.Millisecond
)

// yieldPoll is how often a yielding pass looks whether the writers are done.
const yieldPoll = 20 * time.Millisecond

// logPage bounds the arrivals the pass reads at a time.
const logPage = 256

// RunCompressor runs the background pass until ctx ends: it follows the
// chunk arrival log from where it stopped (kept in Pebble) and
// compresses each chunk put at this site that is still stored raw.
// Chunks that arrived over links are left as they came. On a store
// older than the pass it starts at the beginning of the log, so chunks
// put before it existed are compressed too. Meanwhile a keeper stores
// what links compressed on demand, in groups, so that a link ships
// without waiting for the fsyncs of storing it.
func (s *Stores) RunCompressor(ctx context.Context, opts CompressOptions) {
	if opts.Share <= 0 || opts.Share > 1 {
		opts.Share = DefaultCompressShare
	}
	if opts.MaxDefer <= 0 {
		opts.MaxDefer = DefaultMaxDefer
	}
	if opts.Quiet <= 0 {
		opts.Quiet = DefaultQuiet
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cursor, err := s.loadCompressCursor()
	if err != nil {
		log.Error("background compression: cannot read its position; starting over (chunks done already are skipped)", "err", err)
	}
	s.compress.cursor.Store(cursor)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); s.runKeeper(ctx, log) }()
	for ctx.Err() == nil {
		changed := s.Log.Changed()
		as, err := s.Log.Read(KindChunk, cursor, logPage)
		if err != nil {
			log.Error("background compression: read arrival log", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		if len(as) == 0 {
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		for _, a := range as {
			if ctx.Err() != nil {
				break
			}
			if a.From == FromLocal {
				for s.Chunks.WritersIdle() < opts.Quiet && time.Since(a.At) < opts.MaxDefer && ctx.Err() == nil {
					sleepCtx(ctx, yieldPoll) // never in a put's way
				}
				if ctx.Err() != nil {
					break
				}
				d, err := s.compressStored(a.ID)
				if err != nil {
					log.Warn("background compression: chunk left raw", "id", a.ID.Short(), "err", err)
				}
				if d > 0 && opts.Share < 1 {
					sleepCtx(ctx, time.Duration(float64(d)*(1-opts.Share)/opts.Share))
				}
			}
			cursor = a.Seq
			s.compress.cursor.Store(cursor)
		}
		if err := s.Log.db.Set(compressCursorKey, binary.BigEndian.AppendUint64(nil, cursor), pebble.NoSync); err != nil {
			log.Error("background compression: save position", "err", err)
		}
	}
}

// compressStored compresses a chunk put here if it is still stored raw
// and not marked; it returns the time spent compressing (0 if it did
// not). The raw bytes are read into a new buffer each time: waiters on
// the claim may ship them.
func (s *Stores) compressStored(id chunk.ID) (time.Duration, error) {
	c, err := s.Chunks.StoredCodec(id)
	if errors.Is(err, chunk.ErrNotFound) || (err == nil && c != chunk.CodecRaw) {
		return 0, nil // collected since, or compressed on demand already
	}
	if err != nil {
		return 0, err
	}
	if why, err := s.rawMark(id); err != nil || why != 0 {
		return 0, err
	}
	raw, err := s.Chunks.Get(id, nil)
	if err != nil {
		return 0, err
	}
	r := s.compressOnce(id, raw, true)
	err = r.err
	if err == nil {
		err = r.kept
	}
	return r.spent, err
}

func (s *Stores) loadCompressCursor() (uint64, error) {
	v, closer, err := s.Log.db.Get(compressCursorKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("compression position of %d bytes: %w", len(v), errBadArrival)
	}
	return binary.BigEndian.Uint64(v), nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
