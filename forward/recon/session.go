package recon

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Item is one entry of an inventory.
type Item struct {
	Kind byte // KindManifest or KindChunk
	ID   [32]byte
}

// Info describes an item this side holds: Bytes is its raw size (a
// chunk's raw length, a manifest's encoding length); Name and Version are
// set for manifests.
type Info struct {
	Bytes         int64
	Name, Version string
}

// Local is what a session reads of its own site.
type Local interface {
	// Table is this side's current table. A session copies what it needs
	// of it when it first needs it and never keeps it across steps.
	Table() *Table
	// Resolve returns the item this side holds with key k (any kind).
	Resolve(k Key) (Item, Info, bool)
	// Refuses reports whether this side refuses the manifest with key k
	// for good (its signer is not trusted for its domain).
	Refuses(k Key) bool
}

// Options tune a session.
type Options struct {
	Names    bool // the result lists names and versions of manifests that differ
	MaxItems int  // bound on decoded differences per session (0 → DefaultMaxItems)
}

// DefaultMaxItems is Options.MaxItems when zero.
const DefaultMaxItems = 200000

// Counts counts items of a difference.
type Counts struct{ Versions, Chunks, Bytes int64 }

// Zero reports whether c counts nothing.
func (c Counts) Zero() bool { return c == Counts{} }

func (c *Counts) add(kind byte, bytes int64) {
	if kind == KindManifest {
		c.Versions++
	} else {
		c.Chunks++
	}
	c.Bytes += bytes
}

// Diff is one name line: "lacks-there NAME VERSION" (the peer lacks a
// version this side holds) or "lacks-here NAME VERSION".
type Diff struct {
	LacksHere     bool
	Name, Version string
}

// Result is the outcome of a finished session, from one side's view.
type Result struct {
	InSync     bool   // nothing differs except refused versions
	PeerLacks  Counts // what the peer lacks that this side holds (refused excluded)
	LocalLacks Counts // what this side lacks that the peer holds (what this side refuses excluded)
	Refused    int64  // versions one side refuses for good
	Send       []Item // items to offer the peer now (PeerLacks, resolved), sorted by kind then ID
	Names      []Diff // with Options.Names (or, at the responder, when the initiator asked): sorted by name, version, direction
	Symbols    int    // coded symbols exchanged
	RoundTrips int    // request/response exchanges the session took (the initiator's count)

	SentBytes, ReceivedBytes int64 // body bytes
}

// Tuning of the first batch of symbols: m = ceil(firstC·d̂) + firstK,
// where d̂ is the estimated difference. Rateless IBLTs need about 1.35·d
// symbols on average for large d (more, relatively, for small d: about
// 1.6·d + 15 at the 99th percentile for d ≤ 100) and the estimate is off by
// about 8.8 % (one standard deviation). Measured with `skyfed bench
// reconcile`: d = 1000 split both ways decodes from the first batch in
// about 97 % of sessions and stays under 64 KiB everything counted.
const (
	firstC = 1.6
	firstK = 32
	// snapshotFactor and minSnapshot size the responder's snapshot: the
	// symbols a session can ever get, for the More rounds.
	snapshotFactor = 32
	minSnapshot    = 8192
)

// firstBatchFor is firstBatch; tests replace it to force More rounds.
var firstBatchFor = firstBatch

// firstBatch returns the size of the first batch of symbols for an
// estimated difference of est items, and the snapshot size.
func firstBatch(est int64) (m, limit int) {
	f := math.Ceil(firstC*float64(est)) + firstK
	m = int(min(f, TableSymbols))
	if est <= 1 {
		// The estimate is exact for one difference, which the first
		// symbol holds alone.
		m = 1
	}
	limit = min(TableSymbols, max(snapshotFactor*m, minSnapshot))
	return m, limit
}

func maxItems(o Options) int {
	if o.MaxItems <= 0 {
		return DefaultMaxItems
	}
	return o.MaxItems
}

// appendParts splits entries over bodies ≤ maxBody: enc appends a body
// holding entries [i, j) to dst (last when j is the end), size bounds the
// encoding of entry i.
func splitParts(n int, size func(i int) int, enc func(i, j int, last bool) []byte) [][]byte {
	var out [][]byte
	const room = maxBody - 64
	i := 0
	for {
		j, used := i, 0
		for j < n && used+size(j) <= room {
			used += size(j)
			j++
		}
		if j == i && j < n {
			j++ // an entry never exceeds room; keep progress anyway
		}
		out = append(out, enc(i, j, j >= n))
		if j >= n {
			return out
		}
		i = j
	}
}

func abortCode(err error) byte {
	switch {
	case errors.Is(err, ErrTooManyDifferences):
		return abortTooMany
	case errors.Is(err, ErrBadEncoding):
		return abortEncoding
	default:
		return abortProtocol
	}
}

func abortErr(code byte) error {
	switch code {
	case abortTooMany:
		return fmt.Errorf("%w: the peer gave up", ErrTooManyDifferences)
	case abortEncoding:
		return fmt.Errorf("%w: the peer could not decode a body", ErrBadEncoding)
	default:
		return fmt.Errorf("%w: the peer aborted the session", ErrProtocol)
	}
}

func sortItems(items []Item) {
	slices.SortFunc(items, func(a, b Item) int {
		if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
}

func sortNames(names []Diff) {
	slices.SortFunc(names, func(a, b Diff) int {
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		switch {
		case a.LacksHere == b.LacksHere:
			return 0
		case a.LacksHere:
			return 1
		default:
			return -1
		}
	})
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
