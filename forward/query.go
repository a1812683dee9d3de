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

// Ask floods a query and collects the replies until every reached site
// has answered (or, for a manifest fetch, one found it), or ctx ends:
// then it returns what came with ErrIncomplete.
func (n *Node) Ask(ctx context.Context, kind wire.QueryKind, key [32]byte) ([]*wire.Reply, error) {
	req, ch := n.request()
	n.postCtx(ctx, engine.Ask{Now: time.Now(), Req: req, Kind: kind, Key: key, Deadline: engineDeadline(ctx)})
	select {
	case v := <-ch:
		d := v.(engine.QueryDone)
		return d.Replies, d.Err
	case <-ctx.Done():
		n.forget(req)
		return nil, fmt.Errorf("query: %w", ErrIncomplete)
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
