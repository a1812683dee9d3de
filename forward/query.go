package forward

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
)

// Answer is what a flooded query brought back.
type Answer struct {
	// Replies holds one reply per site that answered ("seen" replies,
	// from sites that answered by another path, are left out).
	Replies []*wire.Reply
	// Answered is the number of sites that answered: len(Replies).
	Answered int
	// Asked is the number of sites the query was sent towards: those
	// that answered, plus one for every send of the query (by this site,
	// or passed on by a site that answered, as its reply's fan-out says)
	// that was unanswered when the query ended. A send to a site that
	// answered by another path counts again if its "seen" never came,
	// and sites behind a silent one are unknown, so Asked is what the
	// query is known to have reached or been sent towards.
	// Asked == Answered exactly when the answer is complete.
	Asked int
}

// Ask floods a query and collects the replies until every reached site
// has answered (or, for a manifest fetch, one found it), or ctx ends:
// then it returns what came with an error wrapping ErrIncomplete.
func (n *Node) Ask(ctx context.Context, kind wire.QueryKind, key [32]byte) (Answer, error) {
	req, ch := n.request()
	n.postCtx(ctx, engine.Ask{Now: time.Now(), Req: req, Kind: kind, Key: key, Deadline: engineDeadline(ctx)})
	select {
	case v := <-ch:
		d := v.(engine.QueryDone)
		a := Answer{Replies: d.Replies, Answered: len(d.Replies), Asked: len(d.Replies)}
		var ie *engine.IncompleteError
		if errors.As(d.Err, &ie) {
			a.Asked = ie.Asked()
		}
		return a, d.Err
	case <-ctx.Done():
		// The engine's answer is lost with the request: the query went
		// out, but who answered is unknown. One send, at least, is.
		n.forget(req)
		return Answer{Asked: 1}, fmt.Errorf("query: %w", ErrIncomplete)
	}
}

// Fetch makes a chunk local: if it is not stored here it asks the
// federation who holds it and pulls it from the nearest holder; every
// site it passes through keeps it.
func (n *Node) Fetch(ctx context.Context, id chunk.ID) error {
	req, ch := n.request() // the engine answers at once if the chunk is here
	n.postCtx(ctx, engine.Fetch{Now: time.Now(), Req: req, ID: id, Deadline: engineDeadline(ctx)})
	select {
	case v := <-ch:
		err := v.(engine.FetchDone).Err
		if errors.Is(err, engine.ErrNoHolder) {
			return fmt.Errorf("%w: %w", err, chunk.ErrNotFound)
		}
		if errors.Is(err, engine.ErrDeadline) {
			return fmt.Errorf("%w: %w", err, context.DeadlineExceeded)
		}
		return err
	case <-ctx.Done():
		n.forget(req)
		return fmt.Errorf("fetch chunk %s: %w", id.Short(), ctx.Err())
	}
}
