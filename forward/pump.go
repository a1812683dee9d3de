package forward

import (
	"context"
	"errors"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/naming"
)

var kinds = []Kind{KindManifest, KindChunk}

func laneOf(k Kind) wire.Lane {
	if k == KindManifest {
		return wire.LaneManifest
	}
	return wire.LaneBulk
}

func kindOf(l wire.Lane) (Kind, bool) {
	switch l {
	case wire.LaneManifest:
		return KindManifest, true
	case wire.LaneBulk:
		return KindChunk, true
	}
	return 0, false
}

// pumpLoop sends this site's arrivals to the peer while the link is up:
// load from the log past the cursor, offer (or push, in flood mode), ship
// what is wanted, advance the cursor over what is confirmed.
//
// Each kind has its own pump goroutine, so a pump blocked on a full bulk
// lane never holds back names.
func (l *Link) pumpLoop(ctx context.Context, k Kind) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		changed := l.node.stores.Log.Changed()
		if l.State() == StateUp {
			if err := l.pump(ctx, k); err != nil && ctx.Err() == nil {
				l.log.Error("pump", "kind", k, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-l.wakeOf(k):
		case <-tick.C:
		}
	}
}

func (l *Link) pump(ctx context.Context, k Kind) error {
	if err := l.fill(k); err != nil {
		return err
	}
	l.offer(k)
	if err := l.ship(ctx, k); err != nil {
		return err
	}
	return l.advance(k)
}

// fill loads arrivals past what the window holds.
func (l *Link) fill(k Kind) error {
	l.mu.Lock()
	w := l.windows[k]
	room, after := maxLoaded-w.Len(), w.Loaded()
	l.mu.Unlock()
	if room <= 0 || after >= l.node.stores.Log.Head(k) {
		return nil
	}
	as, err := l.node.stores.Log.Read(k, after, room)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.windows[k] == w {
		w.Load(as, time.Now())
	}
	l.mu.Unlock()
	return nil
}

// offer asks the peer which loaded entries it wants (flood: pushes them).
func (l *Link) offer(k Kind) {
	batchMax, awaitMax := chunkOfferBatch, maxAwaitingChunks
	if k == KindManifest {
		batchMax, awaitMax = manifestOfferBatch, maxAwaitingMani
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[k]
	room := awaitMax - w.Outstanding()
	if room <= 0 {
		return
	}
	now := time.Now()
	if l.mode == ModeFlood {
		ids := w.NextPush(room, now)
		l.toSend[k] = append(l.toSend[k], ids...)
		return
	}
	batch, ids := w.NextOffer(min(room, batchMax), now)
	if len(ids) == 0 {
		return
	}
	raw := make([][32]byte, len(ids))
	for i, id := range ids {
		raw[i] = id
	}
	l.c.offered.Add(int64(len(ids)))
	l.sendControl(&wire.Message{Type: wire.MsgOffer, Offer: &wire.Offer{Lane: laneOf(k), Batch: batch, IDs: raw}})
}

// ship sends the payloads the peer wants, framed to wire.FrameSize.
func (l *Link) ship(ctx context.Context, k Kind) error {
	l.mu.Lock()
	ids := l.toSend[k]
	l.toSend[k] = nil
	l.mu.Unlock()
	for i, id := range ids {
		if l.State() != StateUp {
			return nil // the windows are reset when the link comes back
		}
		if err := l.shipOne(ctx, k, id); err != nil {
			l.mu.Lock()
			l.toSend[k] = append(ids[i+1:], l.toSend[k]...)
			l.mu.Unlock()
			return err
		}
	}
	return nil
}

// goShipFetched ships a fetched chunk on a goroutine the link owns.
func (l *Link) goShipFetched(id chunk.ID) {
	if l.ctx == nil || l.ctx.Err() != nil {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.shipFetched(id)
	}()
}

// shipFetched sends a chunk someone asked for by query, on the lookup
// lane, ahead of bulk.
func (l *Link) shipFetched(id chunk.ID) {
	if err := l.shipOn(l.ctx, KindChunk, wire.LaneLookup, id); err != nil && l.ctx.Err() == nil {
		l.log.Warn("fetched chunk not sent", "id", id.Short(), "err", err)
	}
}

// sendLookup queues a query or reply on the lookup lane without blocking
// the receiver; when the lane is full it is dropped and the asker's
// deadline bounds the wait.
func (l *Link) sendLookup(msg *wire.Message) {
	select {
	case l.queues[wire.LaneLookup] <- outMsg{lane: wire.LaneLookup, body: msg.Encode()}:
	default:
		l.log.Warn("lookup lane full; message dropped", "type", msg.Type)
	}
}

func (l *Link) shipOne(ctx context.Context, k Kind, id chunk.ID) error {
	return l.shipOn(ctx, k, laneOf(k), id)
}

func (l *Link) shipOn(ctx context.Context, k Kind, lane wire.Lane, id chunk.ID) error {
	codec, payload, rawLen, err := l.node.stores.Payload(k, id)
	if errors.Is(err, chunk.ErrNotFound) || errors.Is(err, naming.ErrNotFound) || errors.Is(err, chunk.ErrCorrupt) {
		// Nothing sendable: confirm it so the cursor can pass, and say so.
		l.log.Error("cannot ship; skipping (run skyfed tools scrub)", "kind", k, "id", id.Short(), "err", err)
		l.mu.Lock()
		l.windows[k].OnAck([]chunk.ID{id})
		l.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	total := len(payload)
	for off := 0; off < total || off == 0; off += wire.FrameSize {
		end := min(off+wire.FrameSize, total)
		d := &wire.Data{Lane: lane, ID: id, Codec: byte(codec), RawLen: rawLen, Total: uint32(total),
			Offset: uint32(off), Flood: l.mode == ModeFlood && lane != wire.LaneLookup, Payload: payload[off:end]}
		m := outMsg{lane: lane, body: (&wire.Message{Type: wire.MsgData, Data: d}).Encode(), kind: k, last: end == total, raw: int64(rawLen), payload: end - off}
		if err := l.send(ctx, m); err != nil {
			return err
		}
		if total == 0 {
			break
		}
	}
	return nil
}

// advance persists the cursor when the confirmed prefix grew.
func (l *Link) advance(k Kind) error {
	l.mu.Lock()
	w := l.windows[k]
	moved := w.Advance()
	cur := w.Cursor()
	l.mu.Unlock()
	if !moved {
		return nil
	}
	return l.node.stores.Log.SetCursor(k, l.name, cur)
}

// onAnswer applies the peer's answers to an offer.
func (l *Link) onAnswer(a *wire.AnswerMsg) {
	k, ok := kindOf(a.Lane)
	if !ok {
		return
	}
	l.mu.Lock()
	send := l.windows[k].OnAnswer(a.Batch, a.Answers, time.Now())
	l.toSend[k] = append(l.toSend[k], send...)
	l.mu.Unlock()
	l.c.wanted.Add(int64(len(send)))
	l.pokeKind(k)
}

// onAck confirms payloads the peer stored (or refused).
func (l *Link) onAck(a *wire.Ack) {
	k, ok := kindOf(a.Lane)
	if !ok {
		return
	}
	var done, again []chunk.ID
	for i, id := range a.IDs {
		if a.Status[i] == wire.AckResend {
			again = append(again, id)
		} else {
			done = append(done, id)
		}
	}
	l.mu.Lock()
	l.windows[k].OnAck(done)
	l.windows[k].Requeue(again)
	l.mu.Unlock()
	l.pokeKind(k)
}
