package liar

import (
	"context"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// FloodKind is one kind of garbage Flood sends.
type FloodKind int

// The kinds of frames Flood sends. None of them can be stored; each is
// refused by the acceptor in its own way.
const (
	// FloodGarbage: random bytes, 1 B to 1 MiB, on a random lane.
	FloodGarbage FloodKind = iota
	// FloodTruncated: a valid data, offer or ack message cut short.
	FloodTruncated
	// FloodOversized: a data message whose frame exceeds wire.FrameSize,
	// up to the NATS max payload (1 MiB) in all.
	FloodOversized
	// FloodPartial: the first frame (wire.FrameSize bytes) of a payload
	// that announces up to chunk.MaxSize and is never finished.
	FloodPartial
	// FloodContinue: the next frame of an earlier partial payload, to
	// grow its assembly; never its last.
	FloodContinue
	// FloodBogus: a whole payload (one frame) whose bytes do not hash to
	// its ID, pushed unasked.
	FloodBogus
	floodKinds
)

func (k FloodKind) String() string {
	return [...]string{"garbage", "truncated", "oversized", "partial", "continue", "bogus"}[k]
}

// floodMix is the share of each kind, in frames out of 100.
var floodMix = [floodKinds]int{
	FloodGarbage: 25, FloodTruncated: 15, FloodOversized: 15,
	FloodPartial: 20, FloodContinue: 20, FloodBogus: 5,
}

// FloodConfig says how long and how hard Flood floods.
type FloodConfig struct {
	Duration time.Duration // how long to flood
	Seed     uint64        // picks the frames
	// FlushEvery is how many frames are published between flushes
	// (round trips to the server), so the liar sends as fast as the site
	// takes them, not as fast as it can buffer; 0 → 16.
	FlushEvery int
}

// FloodStats counts what Flood sent.
type FloodStats struct {
	Frames int64
	Bytes  int64
	ByKind [floodKinds]int64
}

func (s FloodStats) String() string {
	out := fmt.Sprintf("%d frames, %d MiB:", s.Frames, s.Bytes>>20)
	for k := range floodKinds {
		out += fmt.Sprintf(" %s %d", k, s.ByKind[k])
	}
	return out
}

// partial is an unfinished payload Flood started.
type partial struct {
	lane   wire.Lane
	id     chunk.ID
	total  uint32
	offset uint32 // of the next frame
}

// Flood publishes, for cfg.Duration or until ctx ends, a mix of
// malformed, truncated and oversized messages and of payload frames that
// start or grow assemblies and are never finished, on the link's lanes,
// as fast as the acceptor's server takes them. It returns what it sent;
// an error only if the connection failed.
func (p *Peer) Flood(ctx context.Context, cfg FloodConfig) (FloodStats, error) {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 16
	}
	rng := mrand.New(mrand.NewPCG(cfg.Seed, 0x5eed))
	var st FloodStats
	var open []partial
	lanes := wire.Lanes
	dataLanes := []wire.Lane{wire.LaneManifest, wire.LaneLookup, wire.LaneBulk}
	randID := func() chunk.ID {
		var id chunk.ID
		for i := 0; i < len(id); i += 8 {
			binary.LittleEndian.PutUint64(id[i:], rng.Uint64())
		}
		return id
	}
	randBytes := func(n int) []byte {
		b := make([]byte, n+8)
		for i := 0; i < n; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
		}
		return b[:n]
	}
	frame := func(d *wire.Data) []byte { return (&wire.Message{Type: wire.MsgData, Data: d}).Encode() }
	end := time.Now().Add(cfg.Duration)
	for time.Now().Before(end) && ctx.Err() == nil {
		kind := pickKind(rng)
		lane := lanes[rng.IntN(len(lanes))]
		var body []byte
		switch kind {
		case FloodGarbage:
			// Log-uniform sizes: many small, some up to 1 MiB.
			n := 1 << rng.IntN(21)
			body = randBytes(min(wire.MaxMessage, n+rng.IntN(n)))
		case FloodTruncated:
			var whole []byte
			switch rng.IntN(3) {
			case 0:
				lane = dataLanes[rng.IntN(len(dataLanes))]
				n := 1 + rng.IntN(wire.FrameSize)
				whole = frame(&wire.Data{Lane: lane, ID: randID(), RawLen: uint32(n), Total: uint32(n), Payload: randBytes(n)})
			case 1:
				lane = wire.LaneControl
				ids := make([][32]byte, 1+rng.IntN(wire.MaxBatch))
				for i := range ids {
					ids[i] = randID()
				}
				whole = (&wire.Message{Type: wire.MsgOffer, Offer: &wire.Offer{Lane: wire.LaneBulk, Batch: rng.Uint64(), IDs: ids}}).Encode()
			default:
				lane = wire.LaneControl
				ids := make([][32]byte, 1+rng.IntN(64))
				st := make([]wire.AckStatus, len(ids))
				for i := range ids {
					ids[i], st[i] = randID(), wire.AckStored
				}
				whole = (&wire.Message{Type: wire.MsgAck, Ack: &wire.Ack{Lane: wire.LaneBulk, IDs: ids, Status: st}}).Encode()
			}
			body = whole[:1+rng.IntN(len(whole)-1)]
		case FloodOversized:
			lane = dataLanes[rng.IntN(len(dataLanes))]
			n := wire.FrameSize + 1 + rng.IntN(wire.MaxMessage-wire.FrameSize-128)
			body = frame(&wire.Data{Lane: lane, ID: randID(), RawLen: uint32(n), Total: uint32(n), Payload: randBytes(n)})
		case FloodPartial, FloodContinue:
			if kind == FloodContinue && len(open) > 0 {
				i := rng.IntN(len(open))
				pt := &open[i]
				lane = pt.lane
				body = frame(&wire.Data{Lane: lane, ID: pt.id, RawLen: pt.total, Total: pt.total, Offset: pt.offset, Payload: randBytes(wire.FrameSize)})
				pt.offset += wire.FrameSize
				if pt.offset+wire.FrameSize >= pt.total { // never the last frame
					open[i] = open[len(open)-1]
					open = open[:len(open)-1]
				}
				break
			}
			kind = FloodPartial
			lane = dataLanes[rng.IntN(len(dataLanes))]
			total := uint32(2*wire.FrameSize + rng.IntN(chunk.MaxSize-2*wire.FrameSize))
			pt := partial{lane: lane, id: randID(), total: total, offset: wire.FrameSize}
			body = frame(&wire.Data{Lane: lane, ID: pt.id, RawLen: total, Total: total, Payload: randBytes(wire.FrameSize)})
			open = append(open, pt)
			if len(open) > 256 {
				open = open[1:]
			}
		case FloodBogus:
			lane = []wire.Lane{wire.LaneBulk, wire.LaneLookup}[rng.IntN(2)]
			n := 1 + rng.IntN(wire.FrameSize)
			body = frame(&wire.Data{Lane: lane, ID: randID(), RawLen: uint32(n), Total: uint32(n), Flood: true, Payload: randBytes(n)})
		}
		if err := p.Publish(p.pair().UpLane(lane), body); err != nil {
			return st, err
		}
		st.Frames++
		st.Bytes += int64(len(body))
		st.ByKind[kind]++
		if st.Frames%int64(cfg.FlushEvery) == 0 {
			if err := p.conn.FlushTimeout(10 * time.Second); err != nil {
				return st, fmt.Errorf("liar flood: flush: %w", err)
			}
		}
	}
	if err := p.conn.FlushTimeout(10 * time.Second); err != nil {
		return st, fmt.Errorf("liar flood: flush: %w", err)
	}
	return st, nil
}

func pickKind(rng *mrand.Rand) FloodKind {
	n := rng.IntN(100)
	for k := range floodKinds {
		if n < floodMix[k] {
			return k
		}
		n -= floodMix[k]
	}
	return FloodGarbage
}
