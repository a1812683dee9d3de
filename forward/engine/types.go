package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// Kind says which log an arrival is in: manifests and chunks keep
// separate logs and cursors, so bulk data never holds back names.
type Kind byte

// The two logs. The bytes are stored in the arrival log's keys.
const (
	KindManifest Kind = 'm'
	KindChunk    Kind = 'c'
)

// Kinds lists both logs, manifests first.
var Kinds = []Kind{KindManifest, KindChunk}

func (k Kind) String() string {
	if k == KindManifest {
		return "manifest"
	}
	return "chunk"
}

// Lane is the lane a kind's payloads travel on when they are replicated.
func (k Kind) Lane() wire.Lane {
	if k == KindManifest {
		return wire.LaneManifest
	}
	return wire.LaneBulk
}

// Index is 0 for manifests and 1 for chunks, for arrays by kind.
func (k Kind) Index() int {
	if k == KindManifest {
		return 0
	}
	return 1
}

// KindOfLane returns the kind a replication lane carries.
func KindOfLane(l wire.Lane) (Kind, bool) {
	switch l {
	case wire.LaneManifest:
		return KindManifest, true
	case wire.LaneBulk:
		return KindChunk, true
	}
	return 0, false
}

// Direction says which side dialed a link.
type Direction byte

// Directions of a link, as seen from this site.
const (
	DirOut Direction = 1 // this site dialed
	DirIn  Direction = 2 // the peer dialed
)

func (d Direction) String() string {
	switch d {
	case DirOut:
		return "out"
	case DirIn:
		return "in"
	}
	return "none"
}

// Mode is how a link moves payloads. The numbers are sent in the hello.
type Mode byte

// Modes of a link.
const (
	ModeOffer Mode = 0 // offer IDs, send what the peer wants
	ModeFlood Mode = 1 // push everything, the peer drops duplicates
)

func (m Mode) String() string {
	if m == ModeFlood {
		return "flood"
	}
	return "offer"
}

// ErrBadMode reports a mode name that is neither offer nor flood.
var ErrBadMode = errors.New("link mode must be offer or flood")

// ParseMode reads "offer" or "flood"; empty means offer.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "offer":
		return ModeOffer, nil
	case "flood":
		return ModeFlood, nil
	}
	return 0, fmt.Errorf("%w, not %q", ErrBadMode, s)
}

// LinkID names one end of a link: the peer and who dialed. The zero
// LinkID is Local, the origin of what was put at this site.
type LinkID struct {
	Peer string
	Dir  Direction
}

// Local is the From of arrivals put at this site.
var Local = LinkID{}

// IsLocal reports whether l is Local.
func (l LinkID) IsLocal() bool { return l == Local }

// String is the link's name in the arrival log and cursor keys:
// "out:<peer>", "in:<peer>" or "local".
func (l LinkID) String() string {
	if l.IsLocal() {
		return "local"
	}
	return l.Dir.String() + ":" + l.Peer
}

// ErrBadLink reports a link name that does not parse.
var ErrBadLink = errors.New("malformed link name")

// ParseLinkID reads what String wrote.
func ParseLinkID(s string) (LinkID, error) {
	if s == "local" {
		return Local, nil
	}
	dir, peer, ok := strings.Cut(s, ":")
	if !ok || !manifest.ValidSiteID(peer) {
		return Local, fmt.Errorf("%w: %q", ErrBadLink, s)
	}
	switch dir {
	case "out":
		return LinkID{Peer: peer, Dir: DirOut}, nil
	case "in":
		return LinkID{Peer: peer, Dir: DirIn}, nil
	}
	return Local, fmt.Errorf("%w: %q", ErrBadLink, s)
}

// Arrival is one entry of a site's arrival log.
type Arrival struct {
	Seq  uint64
	Kind Kind
	ID   chunk.ID
	From LinkID    // the link it arrived on, or Local
	At   time.Time // when it was stored here
}

// Timing holds the engine's timeouts.
type Timing struct {
	LaterDelay    time.Duration // a "later" waits this long before it is offered again
	AnswerTimeout time.Duration // an offer unanswered this long is offered again
	AckTimeout    time.Duration // a payload sent in full and unacked this long is offered again
	ClaimTTL      time.Duration // a want holds off other links at most this long without progress
	AssemblyIdle  time.Duration // frames silent this long on a lane with wanted payloads: lost
	QueryTTL      time.Duration // a query ID is remembered this long (dedupe, reply routes)
	PullPatience  time.Duration // a fetch waits at least this long for a holder before the next
	ConfirmPoll   time.Duration // how often incomplete manifests are checked for completeness
	// Reconciliation (zero fields take the defaults below, so older
	// configurations need not set them).
	ReconInterval time.Duration // between automatic reconciliations of a link (10 min)
	ReconDelay    time.Duration // from a link coming up to its first reconciliation (2 s)
	ReconIdle     time.Duration // a session silent this long has failed (30 s)
	// SpaceRepeat is how often a full site repeats "full" to its peers
	// (10 s; zero takes the default). A peer holds its offers for
	// SpaceHolds × SpaceRepeat after the last "full" it heard, so a lost
	// "room again" costs at most that.
	SpaceRepeat time.Duration
}

// SpaceHolds is how many SpaceRepeat periods a sender holds its offers
// after the last "full" its peer sent.
const SpaceHolds = 3

// withReconDefaults fills the reconciliation and space timings left
// zero, so configurations older than them need not set them.
func (t Timing) withReconDefaults() Timing {
	d := DefaultTiming()
	if t.ReconInterval <= 0 {
		t.ReconInterval = d.ReconInterval
	}
	if t.ReconDelay <= 0 {
		t.ReconDelay = d.ReconDelay
	}
	if t.ReconIdle <= 0 {
		t.ReconIdle = d.ReconIdle
	}
	if t.SpaceRepeat <= 0 {
		t.SpaceRepeat = d.SpaceRepeat
	}
	return t
}

// DefaultTiming suits WAN links.
func DefaultTiming() Timing {
	return Timing{
		LaterDelay:    300 * time.Millisecond,
		AnswerTimeout: 10 * time.Second,
		AckTimeout:    10 * time.Second,
		ClaimTTL:      time.Minute,
		AssemblyIdle:  10 * time.Second,
		QueryTTL:      2 * time.Minute,
		PullPatience:  2 * time.Second,
		ConfirmPoll:   200 * time.Millisecond,
		ReconInterval: 10 * time.Minute,
		ReconDelay:    2 * time.Second,
		ReconIdle:     30 * time.Second,
		SpaceRepeat:   10 * time.Second,
	}
}

// Storage is what the engine reads of its site. Implementations answer
// from durable state: Has is true only once a payload is durably stored.
type Storage interface {
	Has(k Kind, id chunk.ID) (bool, error)
	// Head is the newest sequence of the log of kind k (0 when empty).
	Head(k Kind) uint64
	// ReadLog returns up to max arrivals of kind k after sequence after.
	ReadLog(k Kind, after uint64, max int) ([]Arrival, error)
	// Cursor returns the persisted cursor of link for kind k.
	Cursor(k Kind, link LinkID) (uint64, error)
	// Lookup answers a lookup query (latest, versions, content, fetch
	// manifest) from what this site holds: canonical manifest encodings.
	// For a held query it returns the manifest only if this site holds
	// it with every one of its chunks, durably.
	Lookup(kind wire.QueryKind, key [32]byte) ([][]byte, error)
	// ManifestChunks returns the chunk IDs of a stored manifest.
	ManifestChunks(id chunk.ID) ([]chunk.ID, error)
}

// Limits bound what the engine keeps in flight.
type Limits struct {
	FrameSize          int // payload bytes per Data frame
	MaxLoaded          int // log entries loaded into one window at a time
	ChunkOfferBatch    int
	ManifestOfferBatch int
	MaxAwaitingChunks  int // chunk payloads wanted and not yet acked, per link
	MaxAwaitingMani    int
	// MaxAssemblies and MaxAssemblyBytes bound the unfinished payloads
	// per link that this site did not ask that link for (pushed unasked
	// on an offer link, or lies). What it asked for (wanted, pulled, or
	// pushed on a flood link's lane) is bounded by the protocol instead:
	// one payload at a time per lane, one per pull, ≤ chunk.MaxSize.
	MaxAssemblies    int
	MaxAssemblyBytes int
	MaxIncomplete    int // manifests tracked for confirmation
}

// DefaultLimits suit WAN links and 1 MiB chunks.
func DefaultLimits() Limits {
	return Limits{
		FrameSize: wire.FrameSize, MaxLoaded: 4096,
		ChunkOfferBatch: 16, ManifestOfferBatch: 256,
		MaxAwaitingChunks: 32, MaxAwaitingMani: 512,
		MaxAssemblies: 16, MaxAssemblyBytes: 4 << 20,
		MaxIncomplete: 100000,
	}
}

// DefaultHops is the hop limit of queries this site asks.
const DefaultHops = 16

// Sentinel errors of queries and fetches, for callers to branch on.
var (
	// ErrIncomplete: a query ended (deadline) before every reached site answered.
	ErrIncomplete = errors.New("not every site answered in time")
	// ErrNoHolder: no reachable site holds the chunk.
	ErrNoHolder = errors.New("no reachable site holds it")
	// ErrDeadline: a fetch reached its deadline.
	ErrDeadline = errors.New("deadline reached")
	// ErrNoLink: no link to that peer is up.
	ErrNoLink = errors.New("no link to that peer")
	// ErrCannotReconcile: the peer's link is up but the peer runs a
	// skyfed from before reconciliation (no wire.CapRecon).
	ErrCannotReconcile = errors.New("the peer does not reconcile (it runs an older skyfed)")
	// ErrReconTimeout: a reconciliation session went silent.
	ErrReconTimeout = errors.New("reconciliation timed out")
	// ErrLinkDown: the link went down during a reconciliation.
	ErrLinkDown = errors.New("link went down")
)
