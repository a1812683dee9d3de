package engine

import (
	"fmt"
	"strings"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/forward/wire"
)

// Ready is what the engine asks the shell to do, in order: persist the
// cursors, carry out the stores, send the messages and ships (per link,
// in the order given), deliver the answers.
type Ready struct {
	Messages  []Send
	Ships     []Ship
	Stores    []Store
	Cursors   []CursorMove
	Queries   []QueryDone
	Fetches   []FetchDone
	Confirmed []Confirmation
	Rejects   []Reject
	Notes     []Note
	Recons    []ReconEnded
}

// Empty reports whether there is nothing to do.
func (r *Ready) Empty() bool {
	return len(r.Messages) == 0 && len(r.Ships) == 0 && len(r.Stores) == 0 && len(r.Cursors) == 0 &&
		len(r.Queries) == 0 && len(r.Fetches) == 0 && len(r.Confirmed) == 0 && len(r.Rejects) == 0 && len(r.Notes) == 0 && len(r.Recons) == 0
}

// Send is a message to publish on a link's lane.
type Send struct {
	Link LinkID
	Lane wire.Lane
	Msg  *wire.Message
}

// Ship is a payload to read here and send on a link's lane, framed by
// Frames; report ShipSent when its last frame left, ShipFailed if it
// cannot be read.
type Ship struct {
	Link  LinkID
	Lane  wire.Lane
	Kind  Kind
	ID    chunk.ID
	Flood bool
}

// Store is a payload that arrived whole: verify it, store it durably and
// log it as arrived on Link (which relays it), then report StoreDone.
// Stores of one link must finish in the order given.
type Store struct {
	Link    LinkID
	Lane    wire.Lane
	Kind    Kind
	ID      chunk.ID
	Codec   chunk.Codec
	Payload []byte
	RawLen  uint32
}

// CursorMove persists a link's cursor.
type CursorMove struct {
	Link LinkID
	Kind Kind
	Seq  uint64
}

// QueryDone answers an Ask: every reply but the "seen" ones, and
// ErrIncomplete if the deadline came first.
type QueryDone struct {
	Req     uint64
	Replies []*wire.Reply
	Err     error
}

// FetchDone answers a Fetch: nil once the chunk is stored here.
type FetchDone struct {
	Req uint64
	Err error
}

// Confirmation: Site holds manifest ID and all its chunks durably (a
// verified, signed confirmation; each site at most once per ID).
type Confirmation struct {
	ID   chunk.ID
	Site string
}

// Reject is an input refused, by reason, for counters.
type Reject struct {
	Link   LinkID
	Reason string
}

// ReconEnded is how a reconciliation session ended: the answer to a
// Reconcile (Req), or a session the engine started (Req 0) or the peer
// started (Initiator false). Result is nil when Err is set.
type ReconEnded struct {
	Link      LinkID
	Req       uint64
	Initiator bool
	Result    *recon.Result
	Err       error
	// SentBytes and ReceivedBytes count the session's messages as
	// encoded on the wire, both for errors and results.
	SentBytes, ReceivedBytes int64
}

// Note is something the shell should log.
type Note struct {
	Warn bool
	Link LinkID
	Msg  string
	ID   chunk.ID
	Err  error
}

// String renders the batch for traces, one item a line.
func (r *Ready) String() string {
	var b strings.Builder
	for _, m := range r.Messages {
		fmt.Fprintf(&b, "  send %s %s %s\n", m.Link, m.Lane, FormatMessage(m.Msg))
	}
	for _, s := range r.Ships {
		fmt.Fprintf(&b, "  ship %s %s %s %s flood=%v\n", s.Link, s.Lane, s.Kind, s.ID.Short(), s.Flood)
	}
	for _, s := range r.Stores {
		fmt.Fprintf(&b, "  store %s %s %s %s %dB\n", s.Link, s.Lane, s.Kind, s.ID.Short(), len(s.Payload))
	}
	for _, c := range r.Cursors {
		fmt.Fprintf(&b, "  cursor %s %s %d\n", c.Link, c.Kind, c.Seq)
	}
	for _, q := range r.Queries {
		fmt.Fprintf(&b, "  query-done #%d replies=%d err=%v\n", q.Req, len(q.Replies), q.Err)
	}
	for _, f := range r.Fetches {
		fmt.Fprintf(&b, "  fetch-done #%d err=%v\n", f.Req, f.Err)
	}
	for _, c := range r.Confirmed {
		fmt.Fprintf(&b, "  confirmed %s by %s\n", c.ID.Short(), c.Site)
	}
	for _, x := range r.Rejects {
		fmt.Fprintf(&b, "  reject %s %s\n", x.Link, x.Reason)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note %s %s %s %v\n", n.Link, n.Msg, n.ID.Short(), n.Err)
	}
	for _, x := range r.Recons {
		if x.Err != nil {
			fmt.Fprintf(&b, "  recon-ended %s #%d init=%v err=%v\n", x.Link, x.Req, x.Initiator, x.Err)
			continue
		}
		fmt.Fprintf(&b, "  recon-ended %s #%d init=%v in_sync=%v peer_lacks=%v local_lacks=%v send=%d\n",
			x.Link, x.Req, x.Initiator, x.Result.InSync, x.Result.PeerLacks, x.Result.LocalLacks, len(x.Result.Send))
	}
	return b.String()
}

// Frames splits a payload into the Data messages that carry it, each at
// most frameSize payload bytes; an empty payload is one empty frame.
func Frames(s Ship, codec chunk.Codec, payload []byte, rawLen uint32, frameSize int) []*wire.Data {
	total := len(payload)
	var out []*wire.Data
	for off := 0; off < total || off == 0; off += frameSize {
		end := min(off+frameSize, total)
		out = append(out, &wire.Data{Lane: s.Lane, ID: s.ID, Codec: byte(codec), RawLen: rawLen, Total: uint32(total),
			Offset: uint32(off), Flood: s.Flood, Payload: payload[off:end]})
		if total == 0 {
			break
		}
	}
	return out
}
