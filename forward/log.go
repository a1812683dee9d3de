package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
)

// Kind says which log an arrival is in (the engine's kinds).
type Kind = engine.Kind

// The two logs.
const (
	KindManifest = engine.KindManifest
	KindChunk    = engine.KindChunk
)

// FromLocal marks arrivals that were put at this site.
const FromLocal = "local"

// Key prefixes in the site's Pebble DB owned by forward.
const (
	prefixArrival = 'a' // 'a' + kind + seq(8) → arrival
	prefixCursor  = 'k' // 'k' + kind + link name → seq(8)
)

// Arrival is one entry of the arrival log.
type Arrival struct {
	Seq  uint64
	Kind Kind
	ID   chunk.ID
	From string    // link name it arrived on, or FromLocal
	At   time.Time // when it was stored here
	// Through is the raw bytes of every arrival of this kind up to and
	// including this one (a running total, so the bytes between two
	// sequence numbers are a subtraction); HasThrough is false for
	// entries logged before the total was kept.
	Through    uint64
	HasThrough bool
}

// Log is the per-site append-only arrival log: sequence number → what
// arrived, of which kind, on which link. Appends happen inside the
// store's serialized index commits, so sequence order is commit order.
type Log struct {
	db   *pebble.DB
	mu   sync.Mutex
	head map[Kind]uint64
	// through is the running byte total of the newest staged entry.
	through map[Kind]uint64
	// notify is closed and replaced whenever entries are committed.
	notify chan struct{}
}

// OpenLog opens the arrival log kept in db.
func OpenLog(db *pebble.DB) (*Log, error) {
	l := &Log{db: db, head: map[Kind]uint64{}, through: map[Kind]uint64{}, notify: make(chan struct{})}
	for _, k := range []Kind{KindManifest, KindChunk} {
		seq, err := l.lastSeq(k)
		if err != nil {
			return nil, fmt.Errorf("open arrival log: %w", err)
		}
		l.head[k] = seq
		// A log from before running totals starts its total at 0: spans
		// reaching back into the old entries have no byte count.
		if l.through[k], _, err = l.BytesThrough(k, seq); err != nil {
			return nil, fmt.Errorf("open arrival log: %w", err)
		}
	}
	return l, nil
}

func arrivalKey(k Kind, seq uint64) []byte {
	key := []byte{prefixArrival, byte(k), 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(key[2:], seq)
	return key
}

func (l *Log) lastSeq(k Kind) (uint64, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: arrivalKey(k, 0), UpperBound: []byte{prefixArrival, byte(k) + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	return binary.BigEndian.Uint64(it.Key()[2:]), nil
}

// Head returns the newest sequence number of kind k (0 when empty).
func (l *Log) Head(k Kind) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head[k]
}

// Changed returns a channel closed at the next commit of new entries.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}

// Stage adds arrivals to pb, which the caller commits inside the chunk
// store's serialized commit; then it must call Committed. size gives the
// raw bytes of each, for the running total (a link's backlog in bytes).
// A commit that fails leaves a gap in the sequence numbers, and its
// bytes in the totals after it: byte spans across such a gap overstate.
func (l *Log) Stage(pb *pebble.Batch, k Kind, ids []chunk.ID, size func(chunk.ID) uint64, from string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	l.mu.Lock()
	seq := l.head[k]
	throughs := make([]uint64, len(ids))
	for i, id := range ids {
		l.through[k] += size(id)
		throughs[i] = l.through[k]
	}
	l.head[k] += uint64(len(ids))
	l.mu.Unlock()
	for i, id := range ids {
		if err := pb.Set(arrivalKey(k, seq+uint64(i)+1), encodeArrival(id, from, at, throughs[i]), nil); err != nil {
			return fmt.Errorf("stage arrival %s: %w", id.Short(), err)
		}
	}
	return nil
}

// Tip returns the newest sequence number of kind k and the running
// byte total through it, both as staged (a commit in flight included).
func (l *Log) Tip(k Kind) (head, through uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head[k], l.through[k]
}

// BytesThrough returns the running byte total of kind k at sequence seq:
// that of the newest entry at or before seq (0 before the first), and
// false if that entry predates running totals.
func (l *Log) BytesThrough(k Kind, seq uint64) (uint64, bool, error) {
	if seq == 0 {
		return 0, true, nil
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: arrivalKey(k, 0), UpperBound: arrivalKey(k, seq+1)})
	if err != nil {
		return 0, false, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error() == nil, it.Error()
	}
	a, err := decodeArrival(k, it.Key(), it.Value())
	if err != nil {
		return 0, false, err
	}
	return a.Through, a.HasThrough, nil
}

// Committed wakes the pumps after a commit that staged arrivals.
func (l *Log) Committed() {
	l.mu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

// An arrival's value: ID(32), at in Unix ms(8), then, since running
// totals are kept, throughMark(1) and the total(8), then the link name.
// Link names never start with a 0 byte, so an older value (the name
// right after the time) reads unambiguously.
const throughMark = 0

func encodeArrival(id chunk.ID, from string, at time.Time, through uint64) []byte {
	v := make([]byte, 0, 32+8+9+len(from))
	v = append(v, id[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixMilli()))
	v = append(v, throughMark)
	v = binary.BigEndian.AppendUint64(v, through)
	return append(v, from...)
}

var errBadArrival = errors.New("malformed arrival log entry")

func decodeArrival(k Kind, key, v []byte) (Arrival, error) {
	if len(key) != 10 || len(v) < 40 {
		return Arrival{}, fmt.Errorf("%w: key %x", errBadArrival, key)
	}
	a := Arrival{Seq: binary.BigEndian.Uint64(key[2:]), Kind: k}
	copy(a.ID[:], v[:32])
	a.At = time.UnixMilli(int64(binary.BigEndian.Uint64(v[32:40])))
	rest := v[40:]
	if len(rest) > 0 && rest[0] == throughMark {
		if len(rest) < 9 {
			return Arrival{}, fmt.Errorf("%w: key %x: short running total", errBadArrival, key)
		}
		a.Through, a.HasThrough = binary.BigEndian.Uint64(rest[1:9]), true
		rest = rest[9:]
	}
	a.From = string(rest)
	return a, nil
}

// Read returns up to max arrivals of kind k with sequence > after.
func (l *Log) Read(k Kind, after uint64, max int) ([]Arrival, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: arrivalKey(k, after+1), UpperBound: []byte{prefixArrival, byte(k) + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Arrival
	for it.First(); it.Valid() && len(out) < max; it.Next() {
		a, err := decodeArrival(k, it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, it.Error()
}

// At returns the arrival with sequence seq, if present.
func (l *Log) At(k Kind, seq uint64) (Arrival, bool, error) {
	v, closer, err := l.db.Get(arrivalKey(k, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return Arrival{}, false, nil
	}
	if err != nil {
		return Arrival{}, false, err
	}
	defer closer.Close()
	a, err := decodeArrival(k, arrivalKey(k, seq), v)
	return a, err == nil, err
}

func cursorKey(k Kind, link string) []byte {
	return append([]byte{prefixCursor, byte(k)}, link...)
}

// Cursor returns the last sequence of kind k the link's neighbour confirmed.
func (l *Log) Cursor(k Kind, link string) (uint64, error) {
	v, closer, err := l.db.Get(cursorKey(k, link))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("cursor of %s: %w", link, errBadArrival)
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetCursor records the link's confirmed position. It is not synced: a
// cursor lost in a crash only makes the pump offer again, and the
// neighbour answers "have".
func (l *Log) SetCursor(k Kind, link string, seq uint64) error {
	return l.db.Set(cursorKey(k, link), binary.BigEndian.AppendUint64(nil, seq), pebble.NoSync)
}

// Recent returns up to n of the newest arrivals of kind k, newest first.
func (l *Log) Recent(k Kind, n int) ([]Arrival, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: arrivalKey(k, 0), UpperBound: []byte{prefixArrival, byte(k) + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Arrival
	for it.Last(); it.Valid() && len(out) < n; it.Prev() {
		a, err := decodeArrival(k, it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, it.Error()
}
