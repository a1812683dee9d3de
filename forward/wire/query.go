package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/skyfed/skyfed/manifest"
)

// Queries cross the federation by the same map-free rule as data: a site
// answers what it can, passes the query on over its other links with one
// hop less, and drops a query it has seen. Replies go back the way the
// query came. Each reply says over how many links the replying site passed
// the query on (Fanout), so the asker knows when every reached site has
// answered: it expects one reply per link it asked, plus Fanout−1 for each
// reply — loops included, since a site that sees a query again answers
// "seen" with Fanout 0.
//
//	Query  id[16] hops(u8) kind(u8) key[32] origin(uvarint len + bytes) sig(uvarint len + bytes: 64 for confirmations, else 0)
//	Reply  id[16] site(uvarint len + bytes) fanout(u16) flags(u8: bit 0 found, bit 1 seen) n(uvarint) n×(uvarint len + manifest bytes)

// QueryKind says what a query asks.
type QueryKind byte

// Query kinds. The numbers are sent on the wire.
const (
	QueryLatest        QueryKind = 1 // Key is a name hash: the newest version each site holds
	QueryVersions      QueryKind = 2 // Key is a name hash: every version each site holds
	QueryContent       QueryKind = 3 // Key is a whole-object SHA-256: the newest live version with that content
	QueryFetchChunk    QueryKind = 4 // Key is a chunk ID: its payload, sent back as Data on LaneLookup
	QueryFetchManifest QueryKind = 5 // Key is a manifest ID: its encoding, in the reply
	QueryConfirm       QueryKind = 6 // Key is a manifest ID that Origin now holds durably with all its chunks; signed; no reply
	QueryPull          QueryKind = 7 // Key is a chunk ID: routed (not flooded) to the holder Origin that answered fetch query ID; it ships the chunk back
	// QueryHeld: Key is a manifest ID. A site that holds it with all its
	// chunks answers Found (no manifests) and floods a fresh signed
	// QueryConfirm of it, so an asker that lost its confirmations (a
	// restart, an hour gone by) can count the holders again. Sent only
	// over links whose peer announced CapHeld.
	QueryHeld QueryKind = 8
)

// MaxHops bounds a query's hop limit.
const MaxHops = 32

// MaxReplyManifests bounds the manifests of one reply.
const MaxReplyManifests = 256

// Query is one flooded request.
type Query struct {
	ID     [16]byte
	Hops   byte // hops left, 1..MaxHops
	Kind   QueryKind
	Key    [32]byte
	Origin string // the asking site; for confirmations the confirming site; for pulls the holder
	Sig    []byte // confirmations: Origin's signature (ConfirmMessage); empty otherwise
}

// ConfirmMessage is what a site signs to confirm it holds manifest id
// durably with all its chunks.
func ConfirmMessage(origin string, id [32]byte) []byte {
	return []byte("skyfed-confirm-v1\x00" + origin + "\x00" + string(id[:]))
}

// Reply answers a query.
type Reply struct {
	ID        [16]byte
	Site      string
	Fanout    uint16   // links the replying site passed the query on over
	Found     bool     // the site holds what was asked
	Seen      bool     // the site had seen the query already (no answer of its own)
	Manifests [][]byte // canonical manifest encodings (verified by the asker)
}

const (
	replyFound = 1 << iota
	replySeen
)

func (q *Query) appendTo(dst []byte) []byte {
	dst = append(dst, q.ID[:]...)
	dst = append(dst, q.Hops, byte(q.Kind))
	dst = append(dst, q.Key[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(q.Origin)))
	dst = append(dst, q.Origin...)
	dst = binary.AppendUvarint(dst, uint64(len(q.Sig)))
	return append(dst, q.Sig...)
}

func (p *Reply) appendTo(dst []byte) []byte {
	dst = append(dst, p.ID[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(p.Site)))
	dst = append(dst, p.Site...)
	dst = binary.BigEndian.AppendUint16(dst, p.Fanout)
	var flags byte
	if p.Found {
		flags |= replyFound
	}
	if p.Seen {
		flags |= replySeen
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(p.Manifests)))
	for _, m := range p.Manifests {
		dst = binary.AppendUvarint(dst, uint64(len(m)))
		dst = append(dst, m...)
	}
	return dst
}

func (p *Reply) size() int {
	n := 64 + len(p.Site)
	for _, m := range p.Manifests {
		n += 10 + len(m)
	}
	return n
}

func (r *wireReader) query() *Query {
	q := &Query{}
	copy(q.ID[:], r.take(16))
	q.Hops = r.byte()
	q.Kind = QueryKind(r.byte())
	q.Key = r.id()
	q.Origin = string(r.take(r.length(wireSiteIDMax)))
	q.Sig = r.copyBytes(r.length(wireSigLen))
	return q
}

func (r *wireReader) reply() *Reply {
	p := &Reply{}
	copy(p.ID[:], r.take(16))
	p.Site = string(r.take(r.length(wireSiteIDMax)))
	p.Fanout = r.uint16()
	flags := r.byte()
	if flags&^(replyFound|replySeen) != 0 {
		r.fail("unknown reply flags %#x", flags)
	}
	p.Found, p.Seen = flags&replyFound != 0, flags&replySeen != 0
	n := r.uvarint()
	if r.err == nil && (n > MaxReplyManifests || n > uint64(len(r.b))) {
		r.fail("%d manifests in a reply", n)
		return p
	}
	for range n {
		b := r.copyBytes(r.length(MaxMessage))
		if r.err != nil {
			break
		}
		p.Manifests = append(p.Manifests, b)
	}
	return p
}

func (q *Query) validate() error {
	switch {
	case q.Hops < 1 || q.Hops > MaxHops:
		return fmt.Errorf("hops %d not in 1..%d", q.Hops, MaxHops)
	case q.Kind < QueryLatest || q.Kind > QueryHeld:
		return fmt.Errorf("unknown query kind %d", q.Kind)
	case q.Kind == QueryConfirm && len(q.Sig) != wireSigLen:
		return errors.New("a confirmation must be signed")
	case q.Kind != QueryConfirm && len(q.Sig) != 0:
		return errors.New("only confirmations carry a signature")
	case !manifest.ValidSiteID(q.Origin):
		return fmt.Errorf("origin %q is not a site ID", wireClip(q.Origin))
	}
	return nil
}

func (p *Reply) validate() error {
	switch {
	case !manifest.ValidSiteID(p.Site):
		return fmt.Errorf("site %q is not a site ID", wireClip(p.Site))
	case len(p.Manifests) > MaxReplyManifests:
		return fmt.Errorf("%d manifests in a reply", len(p.Manifests))
	case p.Seen && (p.Found || p.Fanout != 0 || len(p.Manifests) != 0):
		return errors.New("a seen reply carries nothing")
	}
	for _, m := range p.Manifests {
		if len(m) == 0 {
			return errors.New("empty manifest in a reply")
		}
	}
	return nil
}
