package site

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/testlab/liar"
)

// A dialer re-sends its hello while unanswered, and the acceptor reads
// hellos on their own subject: one can come after the proof that brought
// the link up. Such a stale hello must leave the link up (the dialer,
// up already, ignores the answer and sends no proof); a hello whose
// answer the dialer proves starts a new session.
func TestStaleHelloLeavesTheLinkUp(t *testing.T) {
	b, _ := startLoggedSite(t, "beta")
	xkey := newKey(t)
	trustKey(t, b, "xray", xkey.PublicKey(), "gloria.eu")
	p, err := liar.Dial(liar.Config{URL: natsURL(b), Site: "xray", Acceptor: "beta", Key: xkey, AcceptorKey: b.Key()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	waitLinkUp(t, b, "xray", forward.DirIn)
	first := linkRow(b.Links(), "xray", forward.DirIn).Since
	offerAnswered := func(what string) {
		t.Helper()
		answers, err := p.Offer(ctx, wire.LaneBulk, []chunk.ID{chunk.Sum([]byte(what))})
		if err != nil || len(answers) != 1 || answers[0] != wire.AnswerWant {
			t.Fatalf("%s: offer answered %v, %v; want one want", what, answers, err)
		}
	}
	offerAnswered("before the stale hello")

	if err := p.SendHello(p.Honest()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AwaitHelloAck(ctx); err != nil {
		t.Fatal(err)
	}
	r := linkRow(b.Links(), "xray", forward.DirIn)
	if r == nil || r.State != forward.StateUp || !r.Since.Equal(first) {
		t.Fatalf("after a stale hello beta's link from xray is %+v, want up since %v", r, first)
	}
	offerAnswered("after the stale hello")

	if err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a new session on beta's link from xray", func() error {
		r := linkRow(b.Links(), "xray", forward.DirIn)
		if r == nil || r.State != forward.StateUp || !r.Since.After(first) {
			return fmt.Errorf("link %+v, want up since after %v", r, first)
		}
		return nil
	})
	offerAnswered("in the new session")

	// A dialer whose hello went unanswered for a while sent it again: its
	// proof of the first answer still starts the new session.
	second := linkRow(b.Links(), "xray", forward.DirIn).Since
	first1, again := p.Honest(), p.Honest()
	for _, h := range []*wire.Hello{first1, again} {
		if err := p.SendHello(h); err != nil {
			t.Fatal(err)
		}
	}
	ack, err := p.AwaitHelloAck(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AwaitHelloAck(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Proof(xkey, liar.ProofMessage(ack.Nonce, "xray", "beta", liar.RoleDialer)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a new session from the proof of the first of two hellos", func() error {
		r := linkRow(b.Links(), "xray", forward.DirIn)
		if r == nil || r.State != forward.StateUp || !r.Since.After(second) {
			return fmt.Errorf("link %+v, want up since after %v", r, second)
		}
		return nil
	})
	offerAnswered("in the session of the first hello's proof")
}
