package wire

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// The link protocol. Every NATS message body on a link is one Message,
// encoded as one type byte followed by the fields of that type in a fixed
// order: integers fixed-width big-endian, variable-length fields prefixed by
// their length as a minimal uvarint. The encoding is canonical: DecodeMessage
// accepts only what Encode produces, so the two are exact inverses.
//
// The layout of Hello must never change: peers of different versions read
// each other's Hello to find the protocol version and refuse politely.
//
//	Hello, HelloAck  site(uvarint len + bytes) proto(u16) caps(u32) nonce[32] key[32] mode(u8) maxRate(u64) sig(uvarint len + bytes) [clock(u64)]
//	Proof            sig[64]
//	Offer            lane(u8) batch(u64) n(uvarint) n×id[32]
//	Answer           lane(u8) batch(u64) n(uvarint) n×answer(u8)
//	Data             lane(u8) id[32] codec(u8) rawLen(u32) total(u32) offset(u32) flags(u8: bit 0 flood) payload(uvarint len + bytes)
//	Ack              lane(u8) n(uvarint) n×id[32] n×status(u8)
//	Ping             seq(u64) [clock(u64)]
//	Space            flags(u8: bit 0 full)
//
// A field in brackets is optional and trailing: absent when its value is
// zero. Decoders of this package accept it present or absent, but
// decoders older than it refuse any trailing byte, so a site sends it
// only to a peer that announced CapClock (see CapClock).

// Protocol limits.
const (
	ProtocolVersion uint16 = 1
	// MaxMessage bounds an encoded message. NATS max payload is 1 MiB here
	// and 1 MB on a stock server: callers keep frames ≤ FrameSize, which
	// keeps every valid message far below either.
	MaxMessage = 1 << 20
	// FrameSize bounds the payload bytes of one Data message: on thin
	// links, small frames beat the server's write deadline.
	FrameSize = 128 << 10
	// MaxBatch bounds the IDs of one Offer, Answer or Ack.
	MaxBatch = 1024
)

// Capability bits of Hello.Caps.
const (
	// CapClock says the sender reads the optional trailing clock of
	// Hello, HelloAck and Ping. A site sends that field only to peers
	// that announced it: a site from before the field refuses a message
	// with trailing bytes as malformed, so old and new sites interoperate
	// (without clock measurement) under protocol version 1.
	CapClock uint32 = 1 << 0
	// CapRecon says the sender takes MsgRecon: sessions of inventory
	// reconciliation are only started with peers that announced it.
	CapRecon uint32 = 1 << 1
	// CapSpace says the sender takes MsgSpace: a site tells only peers
	// that announced it when its disk is full and when it has room
	// again. A peer without it still learns by "later" answers.
	CapSpace uint32 = 1 << 2
	// CapHeld says the sender takes QueryHeld queries: a site sends and
	// passes them on only over links whose peer announced it (a site from
	// before the kind refuses the whole message as malformed).
	CapHeld uint32 = 1 << 3
	// CapBeacon says the sender takes MsgBeacon: status beacons go to,
	// and are passed on to, only peers that announced it.
	CapBeacon uint32 = 1 << 4
)

// ErrBadMessage reports a link message that does not decode or breaks a
// protocol limit. It is returned wrapped with the reason.
var ErrBadMessage = errors.New("malformed link message")

// MsgType is the first byte of every link message.
type MsgType byte

// Message types. The numbers are sent on the wire: never renumber.
const (
	MsgHello    MsgType = 1 + iota // dialer → acceptor: who I am
	MsgHelloAck                    // acceptor → dialer: who I am + proof of my key over the dialer's nonce
	MsgProof                       // dialer → acceptor: proof of the dialer's key over the acceptor's nonce
	MsgOffer                       // sender → receiver: IDs available
	MsgAnswer                      // receiver → sender: per offered ID want/have/later
	MsgData                        // sender → receiver: one frame of a chunk or manifest payload
	MsgAck                         // receiver → sender: IDs durably stored (or rejected)
	MsgPing                        // keepalive / liveness both ways
	MsgQuery                       // a request flooded map-free: lookup, fetch or confirmation (wire_query.go)
	MsgReply                       // the answer to a query, routed back the way the query came
	MsgRecon                       // one step of an inventory reconciliation (body encoded by forward/recon); only to peers with CapRecon
	MsgSpace                       // receiver → sender: this site's disk is full (hold offers) or has room again (offer now); only to peers with CapSpace
	MsgBeacon                      // a site's signed status, flooded on the control lane (beacon.go); only to peers with CapBeacon
)

var wireTypeNames = [...]string{
	MsgHello: "hello", MsgHelloAck: "hello-ack", MsgProof: "proof", MsgOffer: "offer",
	MsgAnswer: "answer", MsgData: "data", MsgAck: "ack", MsgPing: "ping", MsgQuery: "query", MsgReply: "reply",
	MsgRecon: "recon", MsgSpace: "space", MsgBeacon: "beacon",
}

func (t MsgType) String() string {
	if t >= MsgHello && t <= MsgBeacon {
		return wireTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Lane is a priority lane of a link. A pump sends control first, then
// manifests, then lookups and fetches, then bulk chunks.
type Lane byte

// Lanes, in order of priority. The numbers are sent on the wire.
const (
	LaneControl  Lane = 0
	LaneManifest Lane = 1
	LaneLookup   Lane = 2
	LaneBulk     Lane = 3
)

var wireLaneNames = [...]string{LaneControl: "control", LaneManifest: "manifest", LaneLookup: "lookup", LaneBulk: "bulk"}

// Valid reports whether l is one of the defined lanes.
func (l Lane) Valid() bool { return l <= LaneBulk }

func (l Lane) String() string {
	if l.Valid() {
		return wireLaneNames[l]
	}
	return fmt.Sprintf("lane(%d)", byte(l))
}

// Answer is a receiver's reply to one offered ID.
type Answer byte

// Answers. The numbers are sent on the wire.
const (
	AnswerWant  Answer = 1 // send it
	AnswerHave  Answer = 2 // already stored here
	AnswerLater Answer = 3 // being received on another link: offer it again
)

// Valid reports whether a is one of the defined answers.
func (a Answer) Valid() bool { return a >= AnswerWant && a <= AnswerLater }

func (a Answer) String() string {
	switch a {
	case AnswerWant:
		return "want"
	case AnswerHave:
		return "have"
	case AnswerLater:
		return "later"
	}
	return fmt.Sprintf("answer(%d)", byte(a))
}

// AckStatus is a receiver's outcome for one received ID.
type AckStatus byte

// Ack statuses. The numbers are sent on the wire.
const (
	AckStored    AckStatus = 1 // verified and durably stored
	AckDuplicate AckStatus = 2 // was already stored
	AckRejected  AckStatus = 3 // failed verification: not stored, not relayed
	AckResend    AckStatus = 4 // frames were lost: offer it again
)

// Valid reports whether s is one of the defined statuses.
func (s AckStatus) Valid() bool { return s >= AckStored && s <= AckResend }

func (s AckStatus) String() string {
	switch s {
	case AckStored:
		return "stored"
	case AckDuplicate:
		return "duplicate"
	case AckRejected:
		return "rejected"
	case AckResend:
		return "resend"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

// Hello opens a link (MsgHello from the dialer, MsgHelloAck from the
// acceptor). MsgProof reuses it with only Sig set.
type Hello struct {
	Site    string   // [a-z0-9-]{1,32}
	Proto   uint16   // ProtocolVersion of the sender (checked by the handshake, not the codec)
	Caps    uint32   // capability bits
	Nonce   [32]byte // fresh random nonce the peer must sign
	Key     [32]byte // ed25519 public key of the sender's site
	Mode    byte     // 0 offer, 1 flood
	MaxRate uint64   // bytes/s announced by the dialer, 0 unlimited
	Sig     []byte   // empty in Hello; 64 bytes in HelloAck and Proof: sender's signature over the peer's nonce
	// Clock is the sender's wall clock in unix milliseconds when it sent
	// the message, for the peer to measure the clock offset; 0 means
	// absent (optional trailing field; only to peers with CapClock).
	Clock int64
}

// Offer announces IDs available on a lane; Batch pairs it with its Answer.
type Offer struct {
	Lane  Lane
	Batch uint64
	IDs   [][32]byte // 1..MaxBatch
}

// AnswerMsg answers one Offer, one Answer per offered ID in the same order.
type AnswerMsg struct {
	Lane    Lane
	Batch   uint64
	Answers []Answer // 1..MaxBatch, each valid
}

// Data carries one frame of a chunk or manifest payload, as stored.
type Data struct {
	Lane    Lane
	ID      [32]byte
	Codec   byte   // chunk codec (0 raw, 1 zstd, 2 zstd+shuffle16, 3 FITS); 0 on LaneManifest
	RawLen  uint32 // raw length of the whole payload's decoded bytes (≤ chunk.MaxSize; = Total for codec 0)
	Total   uint32 // whole stored payload length (≤ chunk.MaxSize)
	Offset  uint32 // this frame's offset in the stored payload; Offset+len(Payload) ≤ Total
	Flood   bool   // pushed unasked (flood mode)
	Payload []byte // ≤ FrameSize; empty only when Total is 0. Aliases the decoded buffer.
}

// Ack reports the outcome of received IDs: Status[i] is for IDs[i].
type Ack struct {
	Lane   Lane
	IDs    [][32]byte  // 1..MaxBatch
	Status []AckStatus // same length as IDs, each valid
}

// Ping is a keepalive; the peer echoes Seq.
type Ping struct {
	Seq uint64
	// Clock is as in Hello: the sender's wall clock in unix ms, 0 absent.
	Clock int64
}

// Message is one link message: exactly one of the pointers is non-nil,
// matching Type (Hello for MsgHello, MsgHelloAck and MsgProof).
type Message struct {
	Type   MsgType
	Hello  *Hello
	Offer  *Offer
	Answer *AnswerMsg
	Data   *Data
	Ack    *Ack
	Ping   *Ping
	Query  *Query
	Reply  *Reply
	Recon  *Recon
	Space  *Space
	Beacon *Beacon
}

// Space tells the peer whether this site's disk is full: while it is,
// offers would only be answered "later", so the peer holds them; when
// it has room again the peer offers at once what waited, rather than
// after its timeouts.
type Space struct {
	Full bool
}

// Recon carries one step of a reconciliation session between the two
// ends of a link. The wire only frames it: Session pairs the steps of one
// session, Body is decoded (strictly, and fuzzed) by forward/recon.
type Recon struct {
	Session uint64
	Body    []byte // 1..MaxReconBody bytes
}

// MaxReconBody bounds a Recon body: reconciliation streams its symbols
// in several messages rather than one large one.
const MaxReconBody = 64 << 10

const wireSigLen = ed25519.SignatureSize

// Encode returns the canonical encoding of m. A Message that fails Validate
// encodes to bytes that DecodeMessage rejects (or, for a Proof with fields
// other than Sig, to the Proof without them): call Validate first when m was
// not built by this package.
func (m *Message) Encode() []byte {
	return m.AppendEncode(make([]byte, 0, m.sizeHint()))
}

// AppendEncode appends the canonical encoding of m to dst.
func (m *Message) AppendEncode(dst []byte) []byte {
	dst = append(dst, byte(m.Type))
	switch {
	case m.Type == MsgProof && m.Hello != nil:
		dst = append(dst, m.Hello.Sig...)
	case (m.Type == MsgHello || m.Type == MsgHelloAck) && m.Hello != nil:
		dst = m.Hello.appendTo(dst)
	case m.Type == MsgOffer && m.Offer != nil:
		o := m.Offer
		dst = binary.BigEndian.AppendUint64(append(dst, byte(o.Lane)), o.Batch)
		dst = binary.AppendUvarint(dst, uint64(len(o.IDs)))
		for _, id := range o.IDs {
			dst = append(dst, id[:]...)
		}
	case m.Type == MsgAnswer && m.Answer != nil:
		a := m.Answer
		dst = binary.BigEndian.AppendUint64(append(dst, byte(a.Lane)), a.Batch)
		dst = binary.AppendUvarint(dst, uint64(len(a.Answers)))
		for _, v := range a.Answers {
			dst = append(dst, byte(v))
		}
	case m.Type == MsgData && m.Data != nil:
		dst = m.Data.appendTo(dst)
	case m.Type == MsgAck && m.Ack != nil:
		dst = binary.AppendUvarint(append(dst, byte(m.Ack.Lane)), uint64(len(m.Ack.IDs)))
		for _, id := range m.Ack.IDs {
			dst = append(dst, id[:]...)
		}
		for _, s := range m.Ack.Status {
			dst = append(dst, byte(s))
		}
	case m.Type == MsgPing && m.Ping != nil:
		dst = binary.BigEndian.AppendUint64(dst, m.Ping.Seq)
		dst = appendClock(dst, m.Ping.Clock)
	case m.Type == MsgQuery && m.Query != nil:
		dst = m.Query.appendTo(dst)
	case m.Type == MsgReply && m.Reply != nil:
		dst = m.Reply.appendTo(dst)
	case m.Type == MsgRecon && m.Recon != nil:
		dst = binary.BigEndian.AppendUint64(dst, m.Recon.Session)
		dst = binary.AppendUvarint(dst, uint64(len(m.Recon.Body)))
		dst = append(dst, m.Recon.Body...)
	case m.Type == MsgSpace && m.Space != nil:
		var flags byte
		if m.Space.Full {
			flags = wireFlagFull
		}
		dst = append(dst, flags)
	case m.Type == MsgBeacon && m.Beacon != nil:
		dst = m.Beacon.appendTo(dst)
	}
	return dst
}

func (h *Hello) appendTo(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(h.Site)))
	dst = append(dst, h.Site...)
	dst = binary.BigEndian.AppendUint16(dst, h.Proto)
	dst = binary.BigEndian.AppendUint32(dst, h.Caps)
	dst = append(dst, h.Nonce[:]...)
	dst = append(dst, h.Key[:]...)
	dst = append(dst, h.Mode)
	dst = binary.BigEndian.AppendUint64(dst, h.MaxRate)
	dst = binary.AppendUvarint(dst, uint64(len(h.Sig)))
	dst = append(dst, h.Sig...)
	return appendClock(dst, h.Clock)
}

// appendClock appends the optional trailing clock field: nothing for 0.
func appendClock(dst []byte, ms int64) []byte {
	if ms == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint64(dst, uint64(ms))
}

func (d *Data) appendTo(dst []byte) []byte {
	dst = append(dst, byte(d.Lane))
	dst = append(dst, d.ID[:]...)
	dst = append(dst, d.Codec)
	dst = binary.BigEndian.AppendUint32(dst, d.RawLen)
	dst = binary.BigEndian.AppendUint32(dst, d.Total)
	dst = binary.BigEndian.AppendUint32(dst, d.Offset)
	var flags byte
	if d.Flood {
		flags = wireFlagFlood
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(d.Payload)))
	return append(dst, d.Payload...)
}

// sizeHint returns an upper bound of the encoded size of a valid m.
func (m *Message) sizeHint() int {
	const fixed = 128 // type, fixed-width fields and length prefixes of any type
	switch {
	case m.Data != nil:
		return fixed + len(m.Data.Payload)
	case m.Offer != nil:
		return fixed + 32*len(m.Offer.IDs)
	case m.Answer != nil:
		return fixed + len(m.Answer.Answers)
	case m.Ack != nil:
		return fixed + 32*len(m.Ack.IDs) + len(m.Ack.Status)
	case m.Hello != nil:
		return fixed + len(m.Hello.Site) + len(m.Hello.Sig)
	case m.Reply != nil:
		return fixed + m.Reply.size()
	case m.Recon != nil:
		return fixed + len(m.Recon.Body)
	}
	return fixed
}

const wireFlagFlood = 1

const wireFlagFull = 1

// DecodeMessage decodes one link message. It is strict: it accepts exactly
// the canonical encodings of messages that pass Validate, so re-encoding
// the result gives b back. Errors wrap ErrBadMessage with the reason. It
// never allocates much more than len(b). The returned Data.Payload aliases
// b: the caller must not reuse b while it needs the payload.
func DecodeMessage(b []byte) (*Message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadMessage)
	}
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadMessage, len(b), MaxMessage)
	}
	m := &Message{Type: MsgType(b[0])}
	r := &wireReader{b: b[1:]}
	switch m.Type {
	case MsgHello, MsgHelloAck:
		m.Hello = r.hello()
	case MsgProof:
		m.Hello = &Hello{Sig: r.copyBytes(wireSigLen)}
	case MsgOffer:
		m.Offer = &Offer{Lane: Lane(r.byte()), Batch: r.uint64(), IDs: r.ids(r.count(32))}
	case MsgAnswer:
		m.Answer = r.answer()
	case MsgData:
		m.Data = r.data()
	case MsgAck:
		m.Ack = r.ack()
	case MsgPing:
		m.Ping = &Ping{Seq: r.uint64()}
		m.Ping.Clock = r.clock()
	case MsgQuery:
		m.Query = r.query()
	case MsgReply:
		m.Reply = r.reply()
	case MsgRecon:
		m.Recon = &Recon{Session: r.uint64()}
		m.Recon.Body = r.copyBytes(r.length(MaxReconBody))
	case MsgSpace:
		m.Space = &Space{}
		switch flags := r.byte(); flags {
		case 0:
		case wireFlagFull:
			m.Space.Full = true
		default:
			r.fail("unknown flags %#x", flags)
		}
	case MsgBeacon:
		m.Beacon = r.beacon()
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrBadMessage, b[0])
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadMessage, m.Type, r.err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// wireReader consumes an encoded message. The first failure sticks: later
// reads return zero values, so decoders read straight through and check
// the error once.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// take returns the next n bytes, aliasing the input.
func (r *wireReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("truncated: need %d bytes, have %d", n, len(r.b))
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

// copyBytes returns a copy of the next n bytes, nil when n is 0.
func (r *wireReader) copyBytes(n int) []byte {
	p := r.take(n)
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (r *wireReader) byte() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *wireReader) uint16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *wireReader) uint32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *wireReader) uint64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *wireReader) id() (id [32]byte) {
	copy(id[:], r.take(32))
	return id
}

// uvarint reads a minimally encoded uvarint.
func (r *wireReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n == 0:
		r.fail("truncated length")
		return 0
	case n < 0:
		r.fail("length overflows 64 bits")
		return 0
	case n > 1 && r.b[n-1] == 0:
		r.fail("length not minimally encoded")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// length reads a uvarint length of at most limit and checks that that many
// bytes remain.
func (r *wireReader) length(limit int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(limit) {
		r.fail("length %d exceeds %d", n, limit)
		return 0
	}
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("truncated: length %d, %d bytes left", n, len(r.b))
		return 0
	}
	return int(n)
}

// count reads the element count of a batch (1..MaxBatch) of elements of
// elemSize bytes each, checking they fit in what remains before anyone
// allocates for them.
func (r *wireReader) count(elemSize int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n == 0 || n > MaxBatch {
		r.fail("%d entries, want 1..%d", n, MaxBatch)
		return 0
	}
	if n*uint64(elemSize) > uint64(len(r.b)) {
		r.fail("truncated: %d entries of %d bytes, %d bytes left", n, elemSize, len(r.b))
		return 0
	}
	return int(n)
}

func (r *wireReader) ids(n int) [][32]byte {
	if r.err != nil || n == 0 {
		return nil
	}
	ids := make([][32]byte, n)
	for i := range ids {
		ids[i] = r.id()
	}
	return ids
}

func (r *wireReader) hello() *Hello {
	h := &Hello{Site: string(r.take(r.length(wireSiteIDMax)))}
	h.Proto = r.uint16()
	h.Caps = r.uint32()
	h.Nonce = r.id()
	h.Key = r.id()
	h.Mode = r.byte()
	h.MaxRate = r.uint64()
	h.Sig = r.copyBytes(r.length(wireSigLen))
	h.Clock = r.clock()
	return h
}

// clock reads the optional trailing clock field: absent when no bytes
// are left. A present zero would re-encode as absent, so it is refused.
func (r *wireReader) clock() int64 {
	if r.err != nil || len(r.b) == 0 {
		return 0
	}
	ms := int64(r.uint64())
	if r.err == nil && ms == 0 {
		r.fail("clock field present but zero")
	}
	return ms
}

// wireSiteIDMax is the longest site ID manifest.ValidSiteID accepts.
const wireSiteIDMax = 32

func (r *wireReader) data() *Data {
	d := &Data{Lane: Lane(r.byte()), ID: r.id(), Codec: r.byte()}
	d.RawLen = r.uint32()
	d.Total = r.uint32()
	d.Offset = r.uint32()
	switch flags := r.byte(); flags {
	case 0:
	case wireFlagFlood:
		d.Flood = true
	default:
		r.fail("unknown flags %#x", flags)
	}
	if p := r.take(r.length(FrameSize)); len(p) > 0 {
		d.Payload = p
	}
	return d
}

func (r *wireReader) answer() *AnswerMsg {
	a := &AnswerMsg{Lane: Lane(r.byte()), Batch: r.uint64()}
	if p := r.take(r.count(1)); len(p) > 0 {
		a.Answers = make([]Answer, len(p))
		for i, v := range p {
			a.Answers[i] = Answer(v)
		}
	}
	return a
}

func (r *wireReader) ack() *Ack {
	a := &Ack{Lane: Lane(r.byte())}
	n := r.count(33)
	a.IDs = r.ids(n)
	if p := r.take(n); len(p) > 0 {
		a.Status = make([]AckStatus, len(p))
		for i, v := range p {
			a.Status[i] = AckStatus(v)
		}
	}
	return a
}

// Validate reports why m breaks the protocol, wrapping ErrBadMessage, or nil.
// A valid Message survives Encode and DecodeMessage unchanged.
func (m *Message) Validate() error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrBadMessage)
	}
	if err := m.validate(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadMessage, m.Type, err)
	}
	return nil
}

func (m *Message) validate() error {
	set := 0
	for _, isSet := range []bool{m.Hello != nil, m.Offer != nil, m.Answer != nil, m.Data != nil, m.Ack != nil, m.Ping != nil, m.Query != nil, m.Reply != nil, m.Recon != nil, m.Space != nil, m.Beacon != nil} {
		if isSet {
			set++
		}
	}
	var want bool
	switch m.Type {
	case MsgHello, MsgHelloAck, MsgProof:
		want = m.Hello != nil
	case MsgOffer:
		want = m.Offer != nil
	case MsgAnswer:
		want = m.Answer != nil
	case MsgData:
		want = m.Data != nil
	case MsgAck:
		want = m.Ack != nil
	case MsgPing:
		want = m.Ping != nil
	case MsgQuery:
		want = m.Query != nil
	case MsgReply:
		want = m.Reply != nil
	case MsgRecon:
		want = m.Recon != nil
	case MsgSpace:
		want = m.Space != nil
	case MsgBeacon:
		want = m.Beacon != nil
	default:
		return errors.New("unknown type")
	}
	if !want || set != 1 {
		return errors.New("want exactly the body matching the type")
	}
	switch m.Type {
	case MsgHello, MsgHelloAck:
		return m.Hello.validate(m.Type)
	case MsgProof:
		return m.Hello.validateProof()
	case MsgOffer:
		return validateWireBatch(m.Offer.Lane, len(m.Offer.IDs))
	case MsgAnswer:
		return m.Answer.validate()
	case MsgData:
		return m.Data.validate()
	case MsgAck:
		return m.Ack.validate()
	case MsgQuery:
		return m.Query.validate()
	case MsgReply:
		return m.Reply.validate()
	case MsgRecon:
		if n := len(m.Recon.Body); n == 0 || n > MaxReconBody {
			return fmt.Errorf("recon body of %d bytes, want 1..%d", n, MaxReconBody)
		}
	case MsgBeacon:
		return m.Beacon.validate()
	}
	return nil
}

func (h *Hello) validate(t MsgType) error {
	if !manifest.ValidSiteID(h.Site) {
		return fmt.Errorf("site %q is not [a-z0-9-]{1,32}", wireClip(h.Site))
	}
	if h.Mode > 1 {
		return fmt.Errorf("mode %d, want 0 (offer) or 1 (flood)", h.Mode)
	}
	wantSig := 0
	if t == MsgHelloAck {
		wantSig = wireSigLen
	}
	if len(h.Sig) != wantSig {
		return fmt.Errorf("signature of %d bytes, want %d", len(h.Sig), wantSig)
	}
	return nil
}

func (h *Hello) validateProof() error {
	if len(h.Sig) != wireSigLen {
		return fmt.Errorf("signature of %d bytes, want %d", len(h.Sig), wireSigLen)
	}
	if h.Site != "" || h.Proto != 0 || h.Caps != 0 || h.Nonce != [32]byte{} ||
		h.Key != [32]byte{} || h.Mode != 0 || h.MaxRate != 0 || h.Clock != 0 {
		return errors.New("a proof carries only a signature")
	}
	return nil
}

func wireClip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func validateWireBatch(l Lane, n int) error {
	if !l.Valid() {
		return fmt.Errorf("unknown %s", l)
	}
	if n < 1 || n > MaxBatch {
		return fmt.Errorf("%d entries, want 1..%d", n, MaxBatch)
	}
	return nil
}

func (a *AnswerMsg) validate() error {
	if err := validateWireBatch(a.Lane, len(a.Answers)); err != nil {
		return err
	}
	for i, v := range a.Answers {
		if !v.Valid() {
			return fmt.Errorf("entry %d: unknown %s", i, v)
		}
	}
	return nil
}

func (a *Ack) validate() error {
	if err := validateWireBatch(a.Lane, len(a.IDs)); err != nil {
		return err
	}
	if len(a.Status) != len(a.IDs) {
		return fmt.Errorf("%d statuses for %d IDs", len(a.Status), len(a.IDs))
	}
	for i, s := range a.Status {
		if !s.Valid() {
			return fmt.Errorf("entry %d: unknown %s", i, s)
		}
	}
	return nil
}

func (d *Data) validate() error {
	switch {
	case !d.Lane.Valid():
		return fmt.Errorf("unknown %s", d.Lane)
	case !chunk.Codec(d.Codec).Valid():
		return fmt.Errorf("unknown codec %d", d.Codec)
	case d.Lane == LaneManifest && d.Codec != 0:
		return fmt.Errorf("manifest with codec %d, want 0", d.Codec)
	case d.Total > chunk.MaxSize || d.RawLen > chunk.MaxSize:
		return fmt.Errorf("payload of %d bytes (%d raw) exceeds %d", d.Total, d.RawLen, chunk.MaxSize)
	case d.Codec == 0 && d.RawLen != d.Total:
		return fmt.Errorf("raw payload with raw length %d != total %d", d.RawLen, d.Total)
	case len(d.Payload) > FrameSize:
		return fmt.Errorf("frame of %d bytes exceeds %d", len(d.Payload), FrameSize)
	case uint64(d.Offset)+uint64(len(d.Payload)) > uint64(d.Total):
		return fmt.Errorf("frame %d+%d beyond total %d", d.Offset, len(d.Payload), d.Total)
	case len(d.Payload) == 0 && d.Total > 0:
		return fmt.Errorf("empty frame of a %d-byte payload", d.Total)
	}
	return nil
}
