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
}

// Log is the per-site append-only arrival log: sequence number → what
// arrived, of which kind, on which link. Appends happen inside the
// store's serialized index commits, so sequence order is commit order.
type Log struct {
	db   *pebble.DB
	mu   sync.Mutex
	head map[Kind]uint64
	// notify is closed and replaced whenever entries are committed.
	notify chan struct{}
}

// OpenLog opens the arrival log kept in db.
func OpenLog(db *pebble.DB) (*Log, error) {
	l := &Log{db: db, head: map[Kind]uint64{}, notify: make(chan struct{})}
	for _, k := range []Kind{KindManifest, KindChunk} {
		seq, err := l.lastSeq(k)
		if err != nil {
			return nil, fmt.Errorf("open arrival log: %w", err)
		}
		l.head[k] = seq
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
// store's serialized commit; then it must call Committed or Abandoned.
func (l *Log) Stage(pb *pebble.Batch, k Kind, ids []chunk.ID, from string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	l.mu.Lock()
	seq := l.head[k]
	l.head[k] += uint64(len(ids))
	l.mu.Unlock()
	for _, id := range ids {
		seq++
		if err := pb.Set(arrivalKey(k, seq), encodeArrival(id, from, at), nil); err != nil {
			return fmt.Errorf("stage arrival %s: %w", id.Short(), err)
		}
	}
	return nil
}

// Committed wakes the pumps after a commit that staged arrivals.
func (l *Log) Committed() {
	l.mu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

func encodeArrival(id chunk.ID, from string, at time.Time) []byte {
	v := make([]byte, 0, 32+8+len(from))
	v = append(v, id[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixMilli()))
	return append(v, from...)
}

var errBadArrival = errors.New("malformed arrival log entry")

func decodeArrival(k Kind, key, v []byte) (Arrival, error) {
	if len(key) != 10 || len(v) < 40 {
		return Arrival{}, fmt.Errorf("%w: key %x", errBadArrival, key)
	}
	a := Arrival{Seq: binary.BigEndian.Uint64(key[2:]), Kind: k, From: string(v[40:])}
	copy(a.ID[:], v[:32])
	a.At = time.UnixMilli(int64(binary.BigEndian.Uint64(v[32:40])))
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
