package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// Event is one input of the engine. Every event carries the time at
// which it happened; the engine never reads a clock.
type Event interface {
	at() time.Time
	String() string
}

// Tick lets timeouts fire.
type Tick struct{ Now time.Time }

// LinkUp: a link's handshake completed.
type LinkUp struct {
	Now  time.Time
	Link LinkID
	Mode Mode
	// Recon says the peer takes reconciliation messages (wire.CapRecon).
	Recon bool
	// Space says the peer takes MsgSpace (wire.CapSpace): it is told
	// when this site's disk is full and when it has room again.
	Space bool
	// Held says the peer takes wire.QueryHeld (wire.CapHeld): held
	// queries go to it and are passed on to it.
	Held bool
	// Beacon says the peer takes wire.MsgBeacon (wire.CapBeacon).
	Beacon bool
}

// LinkDown: a link's connection ended or its peer fell silent; what was
// in flight on it is lost.
type LinkDown struct {
	Now  time.Time
	Link LinkID
}

// Received: a message arrived on a link, decoded and validated.
type Received struct {
	Now  time.Time
	Link LinkID
	Msg  *wire.Message
}

// LogGrew: entries were appended to the arrival log by a local put.
type LogGrew struct{ Now time.Time }

// StoreResult is the outcome of a Store.
type StoreResult byte

// Outcomes of a store.
const (
	Stored    StoreResult = iota + 1 // verified and durably stored (and logged)
	Duplicate                        // it was already stored
	Rejected                         // it failed verification: not stored, not relayed
	Failed                           // a local failure that says nothing about the payload
)

var storeResultNames = [...]string{"", "stored", "duplicate", "rejected", "failed"}

func (r StoreResult) String() string { return storeResultNames[r] }

// StoreDone: a Store of Ready finished.
type StoreDone struct {
	Now    time.Time
	Link   LinkID
	Lane   wire.Lane
	Kind   Kind
	ID     chunk.ID
	Result StoreResult
	Reason string // Rejected: why
}

// ShipSent: the last frame of a Ship left on its link.
type ShipSent struct {
	Now  time.Time
	Link LinkID
	Lane wire.Lane
	Kind Kind
	ID   chunk.ID
}

// ShipFailed: a Ship could not be read here (gone, or corrupt).
type ShipFailed struct {
	Now  time.Time
	Link LinkID
	Lane wire.Lane
	Kind Kind
	ID   chunk.ID
}

// Ask: a lookup asked at this site; the answer comes as a QueryDone.
type Ask struct {
	Now      time.Time
	Req      uint64
	Kind     wire.QueryKind
	Key      [32]byte
	Deadline time.Time
}

// Fetch: a chunk wanted here now; the answer comes as a FetchDone.
type Fetch struct {
	Now      time.Time
	Req      uint64
	ID       chunk.ID
	Deadline time.Time
}

// Cancel: the asker of a query or fetch gave up.
type Cancel struct {
	Now time.Time
	Req uint64
}

// Reconcile: reconcile this site's inventory with a peer's now, over
// an up link to it (the one this site dialed if there are two); the
// answer comes as a ReconEnded with Req. What either side lacks is then
// offered at bulk priority.
type Reconcile struct {
	Now   time.Time
	Req   uint64
	Peer  string
	Names bool // the result names the versions that differ
}

// SpaceChanged: this site's disk became full (below its reserve) or
// has room again. While full, the engine answers "later" to offers of
// what it lacks and tells the peers that take it (LinkUp.Space); when
// room comes back it tells them, and they offer at once.
type SpaceChanged struct {
	Now  time.Time
	Full bool
}

// Track: a manifest became known here from elsewhere (a lookup stored
// it); confirm it to the federation once all its chunks are here.
type Track struct {
	Now time.Time
	ID  chunk.ID
}

func (e Tick) at() time.Time         { return e.Now }
func (e LinkUp) at() time.Time       { return e.Now }
func (e LinkDown) at() time.Time     { return e.Now }
func (e Received) at() time.Time     { return e.Now }
func (e LogGrew) at() time.Time      { return e.Now }
func (e StoreDone) at() time.Time    { return e.Now }
func (e ShipSent) at() time.Time     { return e.Now }
func (e ShipFailed) at() time.Time   { return e.Now }
func (e Ask) at() time.Time          { return e.Now }
func (e Fetch) at() time.Time        { return e.Now }
func (e Cancel) at() time.Time       { return e.Now }
func (e Track) at() time.Time        { return e.Now }
func (e Reconcile) at() time.Time    { return e.Now }
func (e SpaceChanged) at() time.Time { return e.Now }

func (e Tick) String() string     { return "tick" }
func (e LinkUp) String() string   { return fmt.Sprintf("link-up %s %s", e.Link, e.Mode) }
func (e LinkDown) String() string { return "link-down " + e.Link.String() }
func (e Received) String() string { return "recv " + e.Link.String() + " " + FormatMessage(e.Msg) }
func (e LogGrew) String() string  { return "log-grew" }
func (e StoreDone) String() string {
	return fmt.Sprintf("stored %s %s %s %s %s", e.Link, e.Lane, e.Kind, e.ID.Short(), e.Result)
}
func (e ShipSent) String() string {
	return fmt.Sprintf("ship-sent %s %s %s", e.Link, e.Lane, e.ID.Short())
}
func (e ShipFailed) String() string {
	return fmt.Sprintf("ship-failed %s %s %s", e.Link, e.Lane, e.ID.Short())
}
func (e Ask) String() string {
	return fmt.Sprintf("ask #%d kind=%d key=%x", e.Req, e.Kind, e.Key[:6])
}
func (e Fetch) String() string        { return fmt.Sprintf("fetch #%d %s", e.Req, e.ID.Short()) }
func (e Cancel) String() string       { return fmt.Sprintf("cancel #%d", e.Req) }
func (e Track) String() string        { return "track " + e.ID.Short() }
func (e SpaceChanged) String() string { return fmt.Sprintf("space full=%v", e.Full) }
func (e Reconcile) String() string {
	return fmt.Sprintf("reconcile #%d %s names=%v", e.Req, e.Peer, e.Names)
}

// FormatMessage renders a message in one line for traces.
func FormatMessage(m *wire.Message) string {
	var b strings.Builder
	b.WriteString(m.Type.String())
	switch m.Type {
	case wire.MsgOffer:
		fmt.Fprintf(&b, " %s b%d", m.Offer.Lane, m.Offer.Batch)
		writeIDs(&b, m.Offer.IDs)
	case wire.MsgAnswer:
		fmt.Fprintf(&b, " %s b%d %v", m.Answer.Lane, m.Answer.Batch, m.Answer.Answers)
	case wire.MsgData:
		d := m.Data
		fmt.Fprintf(&b, " %s %x %d+%d/%d", d.Lane, d.ID[:4], d.Offset, len(d.Payload), d.Total)
	case wire.MsgAck:
		fmt.Fprintf(&b, " %s %v", m.Ack.Lane, m.Ack.Status)
		writeIDs(&b, m.Ack.IDs)
	case wire.MsgQuery:
		q := m.Query
		fmt.Fprintf(&b, " %x k%d h%d %s %x", q.ID[:4], q.Kind, q.Hops, q.Origin, q.Key[:4])
	case wire.MsgRecon:
		fmt.Fprintf(&b, " s%x %dB op%d", m.Recon.Session, len(m.Recon.Body), m.Recon.Body[0])
	case wire.MsgSpace:
		fmt.Fprintf(&b, " full=%v", m.Space.Full)
	case wire.MsgReply:
		p := m.Reply
		fmt.Fprintf(&b, " %x %s fan%d found=%v seen=%v m%d", p.ID[:4], p.Site, p.Fanout, p.Found, p.Seen, len(p.Manifests))
	}
	return b.String()
}

func writeIDs(b *strings.Builder, ids [][32]byte) {
	for _, id := range ids {
		fmt.Fprintf(b, " %x", id[:4])
	}
}
