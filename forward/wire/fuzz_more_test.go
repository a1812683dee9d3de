package wire

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzEncodeMessage builds messages of every type from fuzzed field
// values (rather than fuzzed bytes, so that the fuzzer reaches every
// field validator without first finding the framing) and checks the
// contract documented on Encode: a message that passes Validate
// encodes to at most MaxMessage bytes and decodes to itself; one that
// fails Validate encodes to bytes DecodeMessage rejects with
// ErrBadMessage (but for a Proof, whose encoding keeps only Sig).
func FuzzEncodeMessage(f *testing.F) {
	// typ, lane, batch, n, site, caps, mode, rate, clock, sigLen, codec, rawLen, total, offset, payload, flag, kind, hops, fanout
	f.Add(byte(MsgHello), byte(0), uint64(0), uint16(0), "gloria-eu", uint32(CapClock), byte(1), uint64(125000), int64(1_790_000_000_000), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgHelloAck), byte(0), uint64(0), uint16(0), "z", uint32(0), byte(0), uint64(0), int64(0), byte(64), byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgProof), byte(0), uint64(0), uint16(0), "", uint32(0), byte(0), uint64(0), int64(0), byte(64), byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgOffer), byte(LaneBulk), uint64(7), uint16(3), "", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgAnswer), byte(LaneManifest), uint64(1), uint16(2), "", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte{1, 2, 3}, false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgData), byte(LaneBulk), uint64(0), uint16(0), "", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(1), uint32(1<<20), uint32(100), uint32(4), []byte("abcdef"), true, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgData), byte(LaneManifest), uint64(0), uint16(0), "", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(3), uint32(3), uint32(0), []byte("man"), false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgAck), byte(LaneControl), uint64(0), uint16(2), "", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte{1, 4}, false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgPing), byte(0), uint64(1<<64-1), uint16(0), "", uint32(0), byte(0), uint64(0), int64(1_790_000_000_123), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), false, byte(0), byte(0), uint16(0))
	for kind := byte(QueryLatest); kind <= byte(QueryHeld)+1; kind++ {
		sig := byte(0)
		if QueryKind(kind) == QueryConfirm {
			sig = 64
		}
		f.Add(byte(MsgQuery), byte(0), uint64(0), uint16(0), "alpha", uint32(0), byte(0), uint64(0), int64(0), sig, byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), false, kind, byte(8), uint16(0))
	}
	f.Add(byte(MsgReply), byte(0), uint64(0), uint16(2), "beta", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte{1, 2, 3}, true, byte(0), byte(0), uint16(3))
	f.Add(byte(MsgReply), byte(0), uint64(0), uint16(0), "gamma", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), false, byte(0), byte(1), uint16(0))
	f.Add(byte(MsgRecon), byte(0), uint64(0xfeedface), uint16(0), "", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte{1, 1, 0, 0}, false, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgSpace), byte(0), uint64(0), uint16(0), "", uint32(0), byte(0), uint64(0), int64(0), byte(0), byte(0), uint32(0), uint32(0), uint32(0), []byte(nil), true, byte(0), byte(0), uint16(0))
	f.Add(byte(MsgBeacon), byte(0), uint64(7), uint16(0), "alpha", uint32(0), byte(0), uint64(0), int64(1_790_000_000_123), byte(64), byte(0), uint32(0), uint32(0), uint32(0), []byte(`{"versions":1}`), false, byte(0), byte(0), uint16(0))
	f.Add(byte(0), byte(9), uint64(0), uint16(MaxBatch+1), "A", uint32(0), byte(7), uint64(0), int64(-1), byte(63), byte(9), uint32(1), uint32(0), uint32(9), []byte{0}, false, byte(0), byte(MaxHops+1), uint16(0))

	f.Fuzz(func(t *testing.T, typ, lane byte, batch uint64, n uint16, site string, caps uint32, mode byte, rate uint64, clock int64,
		sigLen, codec byte, rawLen, total, offset uint32, payload []byte, flag bool, kind, hops byte, fanout uint16) {
		m := buildMessage(MsgType(typ%14), Lane(lane), batch, int(n%(MaxBatch+2)), site, caps, mode, rate, clock,
			int(sigLen), codec, rawLen, total, offset, payload, flag, QueryKind(kind), hops, fanout)
		b := m.Encode()
		got, err := DecodeMessage(b)
		if verr := m.Validate(); verr != nil {
			if err == nil && m.Type != MsgProof {
				t.Fatalf("%s fails Validate (%v) but its encoding decodes", m.Type, verr)
			}
			if err != nil && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if len(b) > MaxMessage {
			t.Fatalf("%s: a valid message encodes to %d bytes, over MaxMessage", m.Type, len(b))
		}
		if err != nil {
			t.Fatalf("%s passes Validate but its encoding does not decode: %v", m.Type, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("round trip of %s:\n got %+v\nwant %+v", m.Type, describe(got), describe(m))
		}
		if again := got.Encode(); !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoding differs", m.Type)
		}
	})
}

// buildMessage makes a message of type typ from fuzzed values; the
// sub-struct matching typ is always set.
func buildMessage(typ MsgType, lane Lane, batch uint64, n int, site string, caps uint32, mode byte, rate uint64, clock int64,
	sigLen int, codec byte, rawLen, total, offset uint32, payload []byte, flag bool, kind QueryKind, hops byte, fanout uint16) *Message {
	ids := make([][32]byte, n)
	for i := range ids {
		ids[i][0], ids[i][31] = byte(i), byte(i>>8)
	}
	sig := bytes.Repeat([]byte{0x5a}, sigLen)
	at := func(i int) byte {
		if len(payload) == 0 {
			return 1
		}
		return payload[i%len(payload)]
	}
	m := &Message{Type: typ}
	switch typ {
	case MsgHello, MsgHelloAck, MsgProof:
		m.Hello = &Hello{Site: site, Proto: uint16(batch), Caps: caps, Nonce: [32]byte{1}, Key: [32]byte{2}, Mode: mode, MaxRate: rate, Sig: sig, Clock: clock}
		if typ == MsgProof {
			m.Hello = &Hello{Sig: sig}
			if flag {
				m.Hello.Clock = clock
			}
		}
	case MsgOffer:
		m.Offer = &Offer{Lane: lane, Batch: batch, IDs: ids}
	case MsgAnswer:
		as := make([]Answer, n)
		for i := range as {
			as[i] = Answer(at(i))
		}
		m.Answer = &AnswerMsg{Lane: lane, Batch: batch, Answers: as}
	case MsgData:
		m.Data = &Data{Lane: lane, ID: [32]byte{3}, Codec: codec, RawLen: rawLen, Total: total, Offset: offset, Flood: flag, Payload: payload}
	case MsgAck:
		st := make([]AckStatus, n)
		for i := range st {
			st[i] = AckStatus(at(i))
		}
		if flag && n > 0 {
			st = st[1:] // lengths differ
		}
		m.Ack = &Ack{Lane: lane, IDs: ids, Status: st}
	case MsgPing:
		m.Ping = &Ping{Seq: batch, Clock: clock}
	case MsgQuery:
		var key [32]byte
		copy(key[:], payload)
		m.Query = &Query{ID: [16]byte{byte(batch)}, Hops: hops, Kind: kind, Key: key, Origin: site, Sig: sig}
	case MsgReply:
		var mans [][]byte
		for i := 0; i < n && i < 300; i++ {
			mans = append(mans, payload)
		}
		m.Reply = &Reply{ID: [16]byte{byte(batch)}, Site: site, Fanout: fanout, Found: flag, Seen: hops&1 == 1, Manifests: mans}
	case MsgRecon:
		m.Recon = &Recon{Session: batch, Body: payload}
	case MsgSpace:
		m.Space = &Space{Full: flag}
	case MsgBeacon:
		m.Beacon = &Beacon{Origin: site, Seq: batch, At: clock, Same: uint64(offset), Body: payload, Sig: sig}
	default:
		m.Ping = &Ping{Seq: batch}
	}
	return m
}

// normalize maps empty slices to nil so that DeepEqual compares what
// the wire can carry.
func normalize(m *Message) *Message {
	c := *m
	if c.Hello != nil {
		h := *c.Hello
		if len(h.Sig) == 0 {
			h.Sig = nil
		}
		c.Hello = &h
	}
	if c.Data != nil {
		d := *c.Data
		if len(d.Payload) == 0 {
			d.Payload = nil
		}
		c.Data = &d
	}
	if c.Query != nil {
		q := *c.Query
		if len(q.Sig) == 0 {
			q.Sig = nil
		}
		c.Query = &q
	}
	if c.Reply != nil {
		r := *c.Reply
		if len(r.Manifests) == 0 {
			r.Manifests = nil
		}
		c.Reply = &r
	}
	if c.Recon != nil {
		r := *c.Recon
		if len(r.Body) == 0 {
			r.Body = nil
		}
		c.Recon = &r
	}
	return &c
}

func describe(m *Message) string {
	return fmt.Sprintf("%s hello=%+v offer=%+v answer=%+v data=%+v ack=%+v ping=%+v query=%+v reply=%+v recon=%+v space=%+v",
		m.Type, m.Hello, m.Offer, m.Answer, m.Data, m.Ack, m.Ping, m.Query, m.Reply, m.Recon, m.Space)
}

// moreWireSeeds are valid messages of the kinds the corpus of
// FuzzDecodeMessage lacked: reconciliation steps, every query kind and
// reply variants. SKYFED_WRITE_SEEDS=1 go test -run TestMoreWireSeeds
// (re)writes them under testdata/fuzz/FuzzDecodeMessage/.
func moreWireSeeds() map[string]*Message {
	sig := bytes.Repeat([]byte{0x5a}, wireSigLen)
	q := func(kind QueryKind, origin string, sig []byte) *Message {
		return &Message{Type: MsgQuery, Query: &Query{ID: [16]byte{9, 8, 7}, Hops: 8, Kind: kind, Key: [32]byte{0xab, 0xcd}, Origin: origin, Sig: sig}}
	}
	return map[string]*Message{
		"valid-recon":                {Type: MsgRecon, Recon: &Recon{Session: 0xfeedface, Body: []byte{1, 1, 0, 0}}},
		"valid-query-versions":       q(QueryVersions, "alpha", nil),
		"valid-query-content":        q(QueryContent, "beta-2", nil),
		"valid-query-fetch-chunk":    q(QueryFetchChunk, "gamma", nil),
		"valid-query-fetch-manifest": q(QueryFetchManifest, "delta", nil),
		"valid-query-confirm":        q(QueryConfirm, "alpha", sig),
		"valid-query-pull":           q(QueryPull, "holder-1", nil),
		"valid-query-held":           q(QueryHeld, "telescope", nil),
		"valid-reply-seen":           {Type: MsgReply, Reply: &Reply{ID: [16]byte{1}, Site: "gamma", Seen: true}},
		"valid-reply-manifests":      {Type: MsgReply, Reply: &Reply{ID: [16]byte{1}, Site: "beta", Fanout: 3, Found: true, Manifests: [][]byte{{1, 2}, {3}}}},
		"valid-data-lookup":          {Type: MsgData, Data: &Data{Lane: LaneLookup, ID: [32]byte{5}, Codec: 1, RawLen: 100, Total: 8, Offset: 0, Payload: []byte("zstdzstd")}},
		"valid-ack-resend":           {Type: MsgAck, Ack: &Ack{Lane: LaneBulk, IDs: [][32]byte{{1}}, Status: []AckStatus{AckResend}}},
	}
}

// TestMoreWireSeeds keeps the checked-in corpus valid for every query
// kind and for reconciliation steps (TestWireFuzzSeeds covers the other
// message types).
func TestMoreWireSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeMessage")
	for name, m := range moreWireSeeds() {
		if err := m.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path := filepath.Join(dir, name)
		if os.Getenv("SKYFED_WRITE_SEEDS") == "1" {
			text := "go test fuzz v1\n[]byte(" + strconv.Quote(string(m.Encode())) + ")\n"
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (SKYFED_WRITE_SEEDS=1 writes it)", err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(text)), "go test fuzz v1\n[]byte(")
		b, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if !ok || err != nil {
			t.Fatalf("%s: not a []byte seed: %v", path, err)
		}
		got, err := DecodeMessage([]byte(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("%s decodes to %s", path, describe(got))
		}
	}
}
