package wire

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// wireID returns a distinct test ID.
func wireID(n byte) (id [32]byte) {
	for i := range id {
		id[i] = n + byte(i)
	}
	return id
}

func wireIDs(n int) [][32]byte {
	ids := make([][32]byte, n)
	for i := range ids {
		ids[i] = wireID(byte(i))
	}
	return ids
}

func wireSig() []byte { return bytes.Repeat([]byte{0x5a}, wireSigLen) }

// wireSamples returns one or more valid messages of every type.
func wireSamples() map[string]*Message {
	hello := Hello{Site: "gloria-eu", Proto: ProtocolVersion, Caps: 0xdeadbeef,
		Nonce: wireID(1), Key: wireID(2), Mode: 1, MaxRate: 125000}
	ack := hello
	ack.Site, ack.Mode, ack.MaxRate, ack.Sig = "z", 0, 0, wireSig()
	helloClock, ackClock := hello, ack
	helloClock.Caps, helloClock.Clock = CapClock, 1_790_000_000_000
	ackClock.Caps, ackClock.Clock = CapClock, -1 // any non-zero value survives
	statuses := []AckStatus{AckStored, AckDuplicate, AckRejected}
	frame := bytes.Repeat([]byte("fits"), FrameSize/4)
	return map[string]*Message{
		"hello":           {Type: MsgHello, Hello: &hello},
		"recon":           {Type: MsgRecon, Recon: &Recon{Session: 0xfeedface, Body: []byte{1, 1, 0, 0}}},
		"hello-ack":       {Type: MsgHelloAck, Hello: &ack},
		"proof":           {Type: MsgProof, Hello: &Hello{Sig: wireSig()}},
		"offer":           {Type: MsgOffer, Offer: &Offer{Lane: LaneBulk, Batch: 7, IDs: wireIDs(3)}},
		"offer-max":       {Type: MsgOffer, Offer: &Offer{Lane: LaneManifest, Batch: 1 << 63, IDs: wireIDs(MaxBatch)}},
		"answer":          {Type: MsgAnswer, Answer: &AnswerMsg{Lane: LaneBulk, Batch: 7, Answers: []Answer{AnswerWant, AnswerHave, AnswerLater}}},
		"data-raw":        {Type: MsgData, Data: &Data{Lane: LaneBulk, ID: wireID(3), RawLen: 10, Total: 10, Offset: 4, Payload: []byte("abcdef")}},
		"data-zstd":       {Type: MsgData, Data: &Data{Lane: LaneBulk, ID: wireID(4), Codec: 2, RawLen: 1 << 20, Total: 300000, Offset: 2 * FrameSize, Flood: true, Payload: frame[:300000-2*FrameSize]}},
		"data-frame":      {Type: MsgData, Data: &Data{Lane: LaneLookup, ID: wireID(5), Codec: 1, RawLen: 64 << 20, Total: 64 << 20, Offset: 64<<20 - FrameSize, Payload: frame}},
		"data-manifest":   {Type: MsgData, Data: &Data{Lane: LaneManifest, ID: wireID(6), RawLen: 3, Total: 3, Payload: []byte("man")}},
		"data-empty":      {Type: MsgData, Data: &Data{Lane: LaneBulk, ID: wireID(7)}},
		"ack":             {Type: MsgAck, Ack: &Ack{Lane: LaneControl, IDs: wireIDs(3), Status: statuses}},
		"ping":            {Type: MsgPing, Ping: &Ping{Seq: 1<<64 - 1}},
		"ping-clock":      {Type: MsgPing, Ping: &Ping{Seq: 3, Clock: 1_790_000_000_123}},
		"hello-clock":     {Type: MsgHello, Hello: &helloClock},
		"hello-ack-clock": {Type: MsgHelloAck, Hello: &ackClock},
		"space-full":      {Type: MsgSpace, Space: &Space{Full: true}},
		"space-free":      {Type: MsgSpace, Space: &Space{}},
		"beacon":          {Type: MsgBeacon, Beacon: &Beacon{Origin: "alpha", Seq: 1_790_000_000_001, At: 1_790_000_000_000, Body: []byte(`{"versions":3}`), Sig: make([]byte, 64)}},
		"beacon-empty":    {Type: MsgBeacon, Beacon: &Beacon{Origin: "b", Seq: 1, Sig: make([]byte, 64)}},
		"beacon-same":     {Type: MsgBeacon, Beacon: &Beacon{Origin: "gamma", Seq: 1_790_000_010_000, Same: 1_790_000_000_001, At: 1_790_000_010_000, Sig: make([]byte, 64)}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for name, m := range wireSamples() {
		t.Run(name, func(t *testing.T) {
			if err := m.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			b := m.Encode()
			if len(b) > MaxMessage {
				t.Fatalf("encoded %d bytes, over MaxMessage", len(b))
			}
			got, err := DecodeMessage(b)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
			if again := got.Encode(); !bytes.Equal(again, b) {
				t.Fatal("re-encoding differs")
			}
			prefix := []byte("prefix")
			if app := m.AppendEncode(prefix); !bytes.Equal(app, append([]byte("prefix"), b...)) {
				t.Fatal("AppendEncode differs from prefix + Encode")
			}
		})
	}
}

func TestWirePayloadAliases(t *testing.T) {
	b := wireSamples()["data-raw"].Encode()
	m, err := DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'X'
	if got := string(m.Data.Payload); got != "abcdeX" {
		t.Fatalf("payload %q does not alias the input", got)
	}
	if cap(m.Data.Payload) != len(m.Data.Payload) {
		t.Fatal("payload capacity reaches past the frame: an append would overwrite the input")
	}
}

// wireBad lists invalid messages: Validate must reject them with why in
// the error, and DecodeMessage their encoding with decodeWhy (if set) or why.
var wireBad = []struct {
	name      string
	m         *Message
	why       string
	decodeWhy string
}{
	{"hello bad site", &Message{Type: MsgHello, Hello: &Hello{Site: "Gloria"}}, "site", ""},
	{"hello empty site", &Message{Type: MsgHello, Hello: &Hello{}}, "site", ""},
	{"hello long site", &Message{Type: MsgHello, Hello: &Hello{Site: strings.Repeat("a", 33)}}, "site", "length 33 exceeds 32"},
	{"hello mode", &Message{Type: MsgHello, Hello: &Hello{Site: "a", Mode: 2}}, "mode 2", ""},
	{"hello with sig", &Message{Type: MsgHello, Hello: &Hello{Site: "a", Sig: wireSig()}}, "signature of 64 bytes, want 0", ""},
	{"hello-ack without sig", &Message{Type: MsgHelloAck, Hello: &Hello{Site: "a"}}, "signature of 0 bytes, want 64", ""},
	{"hello-ack short sig", &Message{Type: MsgHelloAck, Hello: &Hello{Site: "a", Sig: wireSig()[1:]}}, "signature of 63 bytes", ""},
	{"hello-ack long sig", &Message{Type: MsgHelloAck, Hello: &Hello{Site: "a", Sig: append(wireSig(), 0)}}, "signature of 65 bytes, want 64", "length 65 exceeds 64"},
	{"proof short sig", &Message{Type: MsgProof, Hello: &Hello{Sig: wireSig()[1:]}}, "signature of 63 bytes", "truncated"},
	{"proof long sig", &Message{Type: MsgProof, Hello: &Hello{Sig: append(wireSig(), 0)}}, "signature of 65 bytes", "1 trailing bytes"},
	{"offer 1025 IDs", &Message{Type: MsgOffer, Offer: &Offer{IDs: wireIDs(MaxBatch + 1)}}, "1025 entries", ""},
	{"offer no IDs", &Message{Type: MsgOffer, Offer: &Offer{}}, "0 entries", ""},
	{"offer bad lane", &Message{Type: MsgOffer, Offer: &Offer{Lane: 4, IDs: wireIDs(1)}}, "lane(4)", ""},
	{"answer bad lane", &Message{Type: MsgAnswer, Answer: &AnswerMsg{Lane: 255, Answers: []Answer{AnswerWant}}}, "lane(255)", ""},
	{"answer zero", &Message{Type: MsgAnswer, Answer: &AnswerMsg{Answers: []Answer{AnswerWant, 0}}}, "entry 1: unknown answer(0)", ""},
	{"answer four", &Message{Type: MsgAnswer, Answer: &AnswerMsg{Answers: []Answer{4}}}, "answer(4)", ""},
	{"answer none", &Message{Type: MsgAnswer, Answer: &AnswerMsg{}}, "0 entries", ""},
	{"answer 1025", &Message{Type: MsgAnswer, Answer: &AnswerMsg{Answers: make([]Answer, MaxBatch+1)}}, "1025 entries", ""},
	{"ack fewer statuses", &Message{Type: MsgAck, Ack: &Ack{IDs: wireIDs(2), Status: []AckStatus{AckStored}}}, "1 statuses for 2 IDs", "truncated: 2 entries of 33 bytes"},
	{"ack more statuses", &Message{Type: MsgAck, Ack: &Ack{IDs: wireIDs(1), Status: []AckStatus{AckStored, AckStored}}}, "2 statuses for 1 IDs", "1 trailing bytes"},
	{"ack bad status", &Message{Type: MsgAck, Ack: &Ack{IDs: wireIDs(1), Status: []AckStatus{5}}}, "status(5)", ""},
	{"ack bad lane", &Message{Type: MsgAck, Ack: &Ack{Lane: 9, IDs: wireIDs(1), Status: []AckStatus{AckStored}}}, "lane(9)", ""},
	{"ack 1025", &Message{Type: MsgAck, Ack: &Ack{IDs: wireIDs(MaxBatch + 1), Status: make([]AckStatus, MaxBatch+1)}}, "1025 entries", ""},
	{"data bad lane", &Message{Type: MsgData, Data: &Data{Lane: 4}}, "lane(4)", ""},
	{"data bad codec", &Message{Type: MsgData, Data: &Data{Codec: 4, Total: 1, RawLen: 1, Payload: []byte{1}}}, "codec 4", ""},
	{"data compressed manifest", &Message{Type: MsgData, Data: &Data{Lane: LaneManifest, Codec: 1, Total: 1, RawLen: 1, Payload: []byte{1}}}, "manifest with codec 1", ""},
	{"data payload over FrameSize", &Message{Type: MsgData, Data: &Data{Total: 1 << 20, RawLen: 1 << 20, Payload: make([]byte, FrameSize+1)}}, "exceeds 131072", ""},
	{"data beyond total", &Message{Type: MsgData, Data: &Data{Total: 10, RawLen: 10, Offset: 5, Payload: make([]byte, 6)}}, "frame 5+6 beyond total 10", ""},
	{"data offset overflow", &Message{Type: MsgData, Data: &Data{Total: 10, RawLen: 10, Offset: 1<<32 - 1, Payload: make([]byte, 2)}}, "beyond total", ""},
	{"data total too large", &Message{Type: MsgData, Data: &Data{Total: 64<<20 + 1, RawLen: 64<<20 + 1, Payload: []byte{1}}}, "exceeds 67108864", ""},
	{"data raw len too large", &Message{Type: MsgData, Data: &Data{Codec: 1, Total: 1, RawLen: 64<<20 + 1, Payload: []byte{1}}}, "exceeds 67108864", ""},
	{"data raw lengths differ", &Message{Type: MsgData, Data: &Data{Total: 2, RawLen: 3, Payload: []byte{1}}}, "raw length 3 != total 2", ""},
	{"data empty frame", &Message{Type: MsgData, Data: &Data{Total: 2, RawLen: 2}}, "empty frame", ""},
	{"no body", &Message{Type: MsgPing}, "exactly the body", "truncated"},
	{"wrong body", &Message{Type: MsgPing, Offer: &Offer{IDs: wireIDs(1)}}, "exactly the body", "truncated"},
	{"unknown type", &Message{Type: 99, Ping: &Ping{}}, "unknown type", ""},
	{"zero type", &Message{Ping: &Ping{}}, "unknown type", ""},
}

func TestWireRejects(t *testing.T) {
	for _, tc := range wireBad {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Validate(); !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Validate = %v, want ErrBadMessage mentioning %q", err, tc.why)
			}
			why := tc.why
			if tc.decodeWhy != "" {
				why = tc.decodeWhy
			}
			m, err := DecodeMessage(tc.m.Encode())
			if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), why) {
				t.Fatalf("DecodeMessage = %+v, %v; want ErrBadMessage mentioning %q", m, err, why)
			}
		})
	}
}

func TestWireValidateExtraBody(t *testing.T) {
	m := wireSamples()["ping"]
	m.Ack = &Ack{}
	if err := m.Validate(); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("Validate with two bodies = %v", err)
	}
	if err := (*Message)(nil).Validate(); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("Validate(nil) = %v", err)
	}
}

func TestWireProofCarriesOnlySig(t *testing.T) {
	m := &Message{Type: MsgProof, Hello: &Hello{Site: "a", Sig: wireSig()}}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "only a signature") {
		t.Fatalf("Validate = %v, want a proof-only-signature error", err)
	}
	got, err := DecodeMessage(m.Encode())
	if err != nil || got.Hello.Site != "" || !bytes.Equal(got.Hello.Sig, wireSig()) {
		t.Fatalf("DecodeMessage = %+v, %v; want the bare proof", got, err)
	}
}

// TestWireRejectsBytes covers encodings no Message produces.
func TestWireRejectsBytes(t *testing.T) {
	offer := wireSamples()["offer"].Encode() // type lane batch(8) n(1) ids
	data := wireSamples()["data-raw"].Encode()
	const dataFlags = 1 + 1 + 32 + 1 + 12
	cases := []struct {
		name string
		b    []byte
		why  string
	}{
		{"empty", nil, "empty"},
		{"type 0", []byte{0}, "unknown type 0"},
		{"type 99", []byte{99, 0}, "unknown type 99"},
		{"too large", append([]byte{byte(MsgPing)}, make([]byte, MaxMessage)...), "exceeds 1048576"},
		{"trailing byte", append(wireSamples()["ping"].Encode(), 0), "truncated: need 8 bytes"}, // read as a cut clock
		{"trailing past clock", append(wireSamples()["ping-clock"].Encode(), 0), "1 trailing bytes"},
		{"offer trailing", append(bytes.Clone(offer), 0), "trailing"},
		{"offer count short", offer[:len(offer)-1], "truncated: 3 entries of 32 bytes"},
		{"offer count non-minimal", append(append(bytes.Clone(offer[:10]), 0x83, 0x00), offer[11:]...), "not minimally encoded"},
		{"offer count overflow", append(bytes.Clone(offer[:10]), bytes.Repeat([]byte{0xff}, 11)...), "overflows"},
		{"offer count huge", append(bytes.Clone(offer[:10]), 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), "34359738368 entries"},
		{"offer count truncated varint", append(bytes.Clone(offer[:10]), 0x80), "truncated length"},
		{"offer max count few bytes", append(bytes.Clone(offer[:10]), 0x80, 0x08, 1, 2), "truncated: 1024 entries"},
		{"data flags", wireSet(data, dataFlags, 2), "unknown flags 0x2"},
		{"data payload length short", wireSet(data, dataFlags+1, 7), "truncated: length 7"},
		{"data payload length long", wireSet(data, dataFlags+1, 5), "1 trailing bytes"},
		{"answer count vs bytes", []byte{byte(MsgAnswer), 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 1}, "truncated: 3 entries of 1 bytes"},
		{"answer extra bytes", []byte{byte(MsgAnswer), 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1}, "trailing"},
		{"space empty", []byte{byte(MsgSpace)}, "truncated: need 1 bytes"},
		{"space flags", []byte{byte(MsgSpace), 2}, "unknown flags 0x2"},
		{"space trailing", []byte{byte(MsgSpace), 1, 0}, "1 trailing bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage(tc.b)
			if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("DecodeMessage = %+v, %v; want ErrBadMessage mentioning %q", m, err, tc.why)
			}
		})
	}
}

// wireSet returns a copy of b with b[i] = v.
func wireSet(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

func TestWireRejectsTruncation(t *testing.T) {
	for name, m := range wireSamples() {
		t.Run(name, func(t *testing.T) {
			b := m.Encode()
			optional := withoutClock(m) // a message cut exactly before its optional clock is the message without it
			for n := range b {
				if n == optional {
					continue
				}
				if n > 300 && n < len(b)-40 && n%997 != 0 {
					continue // large samples: the start, the end and a stride
				}
				if got, err := DecodeMessage(b[:n]); !errors.Is(err, ErrBadMessage) {
					t.Fatalf("DecodeMessage of %d/%d bytes = %+v, %v", n, len(b), got, err)
				}
			}
		})
	}
}

// withoutClock returns the length of m's encoding without its optional
// trailing clock, or -1 when m carries none.
func withoutClock(m *Message) int {
	switch {
	case m.Hello != nil && m.Hello.Clock != 0, m.Ping != nil && m.Ping.Clock != 0:
		return len(m.Encode()) - 8
	}
	return -1
}

// TestWireDecodeAllocBound checks that decoding allocates in proportion to
// the input, whatever counts the input claims.
func TestWireDecodeAllocBound(t *testing.T) {
	inputs := map[string][]byte{
		"claims 1024 IDs":  {byte(MsgOffer), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x08},
		"claims max frame": append(wireSamples()["data-raw"].Encode()[:48], 0x80, 0x80, 0x08),
	}
	for name, m := range wireSamples() {
		inputs[name] = m.Encode()
	}
	for name, b := range inputs {
		t.Run(name, func(t *testing.T) {
			const runs = 20
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				_, _ = DecodeMessage(b)
			}
			runtime.ReadMemStats(&after)
			if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > uint64(2*len(b))+1024 {
				t.Errorf("DecodeMessage of %d bytes allocated %d bytes", len(b), per)
			}
		})
	}
}

func TestWireStrings(t *testing.T) {
	cases := []struct{ got, want string }{
		{MsgHello.String(), "hello"}, {MsgPing.String(), "ping"}, {MsgType(0).String(), "type(0)"},
		{LaneControl.String(), "control"}, {LaneBulk.String(), "bulk"}, {Lane(4).String(), "lane(4)"},
		{AnswerWant.String(), "want"}, {AnswerHave.String(), "have"}, {AnswerLater.String(), "later"},
		{AckStored.String(), "stored"}, {AckDuplicate.String(), "duplicate"}, {AckRejected.String(), "rejected"},
		{MsgSpace.String(), "space"}, {MsgType(14).String(), "type(14)"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range wireSamples() {
		if b := m.Encode(); len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatal("Encode(DecodeMessage(b)) != b")
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("DecodeMessage accepted a message that fails Validate: %v", err)
		}
	})
}

// TestWireFuzzSeeds keeps every message type's accept path in the
// checked-in corpus.
func TestWireFuzzSeeds(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodeMessage", "valid-*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no valid seeds: %v", err)
	}
	seen := map[MsgType]bool{}
	for _, path := range paths {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(text)), "go test fuzz v1\n[]byte(")
		b, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if !ok || err != nil {
			t.Fatalf("%s: not a []byte seed: %v", path, err)
		}
		m, err := DecodeMessage([]byte(b))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		seen[m.Type] = true
	}
	for _, typ := range []MsgType{MsgHello, MsgHelloAck, MsgProof, MsgOffer, MsgAnswer, MsgData, MsgAck, MsgPing, MsgQuery, MsgReply, MsgSpace} {
		if !seen[typ] {
			t.Errorf("no valid seed of type %s", typ)
		}
	}
}

func TestWireQueryReplyRoundTrip(t *testing.T) {
	msgs := []*Message{
		{Type: MsgQuery, Query: &Query{ID: [16]byte{1}, Hops: 8, Kind: QueryLatest, Key: [32]byte{2}, Origin: "alpha"}},
		{Type: MsgQuery, Query: &Query{ID: [16]byte{3}, Hops: 1, Kind: QueryConfirm, Key: [32]byte{4}, Origin: "c-9", Sig: make([]byte, 64)}},
		{Type: MsgReply, Reply: &Reply{ID: [16]byte{1}, Site: "beta", Fanout: 3, Found: true, Manifests: [][]byte{{1, 2}, {3}}}},
		{Type: MsgReply, Reply: &Reply{ID: [16]byte{1}, Site: "gamma", Seen: true}},
	}
	for _, m := range msgs {
		b := m.Encode()
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
		if string(got.Encode()) != string(b) {
			t.Fatalf("%s: round trip differs", m.Type)
		}
	}
	bad := []*Message{
		{Type: MsgRecon, Recon: &Recon{Session: 1}},
		{Type: MsgRecon, Recon: &Recon{Session: 1, Body: make([]byte, MaxReconBody+1)}},
		{Type: MsgQuery, Query: &Query{Hops: 0, Kind: QueryLatest, Origin: "a"}},
		{Type: MsgQuery, Query: &Query{Hops: MaxHops + 1, Kind: QueryLatest, Origin: "a"}},
		{Type: MsgQuery, Query: &Query{Hops: 1, Kind: QueryHeld + 1, Origin: "a"}},
		{Type: MsgQuery, Query: &Query{Hops: 1, Kind: QueryConfirm, Origin: "a"}},
		{Type: MsgQuery, Query: &Query{Hops: 1, Kind: QueryLatest, Origin: "a", Sig: make([]byte, 64)}},
		{Type: MsgQuery, Query: &Query{Hops: 1, Kind: QueryLatest, Origin: "A"}},
		{Type: MsgReply, Reply: &Reply{Site: "b", Seen: true, Found: true}},
		{Type: MsgReply, Reply: &Reply{Site: "b", Manifests: [][]byte{{}}}},
	}
	for i, m := range bad {
		if _, err := DecodeMessage(m.Encode()); err == nil {
			t.Errorf("bad message %d decoded", i)
		}
	}
}

func TestSubjects(t *testing.T) {
	p := Pair{Dialer: "alpha", Acceptor: "beta"}
	for got, want := range map[string]string{
		p.Hello():               "sf.alpha.beta.up.hello",
		p.UpLane(LaneBulk):      "sf.alpha.beta.up.bulk",
		p.DownLane(LaneControl): "sf.alpha.beta.dn.ctl",
		HelloWildcard("beta"):   "sf.*.beta.up.hello",
		p.DownLane(LaneLookup):  "sf.alpha.beta.dn.look",
		p.UpLane(LaneManifest):  "sf.alpha.beta.up.man",
	} {
		if got != want {
			t.Errorf("subject %q, want %q", got, want)
		}
	}
	pub, sub := p.Permissions()
	if pub[0] != "sf.alpha.beta.up.>" || sub[0] != "sf.alpha.beta.dn.>" {
		t.Errorf("permissions %v %v", pub, sub)
	}
	for subject, want := range map[string]string{"sf.alpha.beta.up.hello": "alpha", "sf..beta.up.hello": "", "nats.x": "", "sf.": ""} {
		got, ok := DialerOfHello(subject)
		if got != want || ok != (want != "") {
			t.Errorf("DialerOfHello(%q) = %q, %v", subject, got, ok)
		}
	}
}
