package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// TestWireClockOptional checks the optional trailing clock of Hello and
// Ping: absent it decodes as 0 (what sites from before it send), present
// it round-trips, and a present zero or a cut field is refused, so the
// encoding stays canonical.
func TestWireClockOptional(t *testing.T) {
	old := &Message{Type: MsgHello, Hello: &Hello{Site: "alpha", Proto: ProtocolVersion, Nonce: wireID(1), Key: wireID(2)}}
	oldBytes := old.Encode()
	m, err := DecodeMessage(oldBytes)
	if err != nil || m.Hello.Clock != 0 {
		t.Fatalf("hello without clock: %v, clock %d", err, m.Hello.Clock)
	}
	withClock := binary.BigEndian.AppendUint64(bytes.Clone(oldBytes), 1_790_000_000_000)
	m, err = DecodeMessage(withClock)
	if err != nil || m.Hello.Clock != 1_790_000_000_000 {
		t.Fatalf("hello with clock: %v, clock %d", err, m.Hello.Clock)
	}
	if !bytes.Equal(m.Encode(), withClock) {
		t.Fatal("hello with clock does not re-encode to the same bytes")
	}
	for name, b := range map[string][]byte{
		"hello zero clock": append(bytes.Clone(oldBytes), make([]byte, 8)...),
		"hello cut clock":  append(bytes.Clone(oldBytes), 1, 2, 3),
		"hello long clock": append(bytes.Clone(withClock), 9),
		"ping zero clock":  append((&Message{Type: MsgPing, Ping: &Ping{Seq: 1}}).Encode(), make([]byte, 8)...),
		"proof with clock": binary.BigEndian.AppendUint64((&Message{Type: MsgProof, Hello: &Hello{Sig: wireSig()}}).Encode(), 5),
	} {
		if _, err := DecodeMessage(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: got %v, want ErrBadMessage", name, err)
		}
	}
	if err := (&Message{Type: MsgProof, Hello: &Hello{Sig: wireSig(), Clock: 5}}).Validate(); err == nil {
		t.Error("a proof with a clock passes Validate")
	}
}
