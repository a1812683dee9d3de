package forward

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// winLink simulates a bottleneck of rate bytes/s and one-way delay in
// front of a bulkWindow, on a simulated clock: frames leave the sender
// when the window and pacing let them, queue at the bottleneck, and each
// payload's ack comes back a one-way delay after its last byte crossed.
type winLink struct {
	t     *testing.T
	w     *bulkWindow
	now   time.Time
	rate  float64
	delay time.Duration
	busy  time.Time // when the bottleneck is free again
	acks  []pendingAck
	maxQ  time.Duration // the longest wait any frame met at the bottleneck
	ids   int           // payloads sent so far, for their IDs
	// storing, if set, is how long the receiver takes to store and ack
	// each payload (a loaded machine, group commits).
	storing func() time.Duration
}

type pendingAck struct {
	id chunk.ID
	at time.Time
}

func newWinLink(t *testing.T, rate float64, rtt time.Duration) *winLink {
	start := time.Unix(1000, 0)
	return &winLink{t: t, w: newBulkWindow(), now: start, rate: rate, delay: rtt / 2, busy: start}
}

// run sends payloads of size bytes in frames until n were acked, and
// returns how long that took.
func (s *winLink) run(n int, size int) time.Duration {
	start := s.now
	next, acked := 0, 0
	frame := 0
	// The engine's first offer measures the round trip.
	s.w.offer(1, s.now)
	s.w.answered(1, s.now.Add(2*s.delay))
	for {
		// Deliver the acks due.
		for len(s.acks) > 0 && !s.acks[0].at.After(s.now) {
			a := s.acks[0]
			s.acks = s.acks[1:]
			s.w.acked([][32]byte{a.id}, []wire.AckStatus{wire.AckStored}, s.now)
			acked++
		}
		if acked >= n {
			break
		}
		ok, wait := s.w.gate(s.now)
		if ok && next < n {
			fn := min(wire.FrameSize, size-frame)
			id := chunk.Sum([]byte{byte(s.ids), byte(s.ids >> 8)})
			last := frame+fn == size
			s.w.sent(id, fn, last, s.now)
			// The frame queues at the bottleneck, crosses it, then the delay.
			begin := maxTime(s.now, s.busy)
			s.maxQ = max(s.maxQ, begin.Sub(s.now))
			s.busy = begin.Add(seconds(float64(fn) / s.rate))
			if last {
				at := s.busy.Add(2 * s.delay)
				if s.storing != nil {
					at = at.Add(s.storing())
				}
				s.acks = append(s.acks, pendingAck{id: id, at: at})
				slices.SortStableFunc(s.acks, func(a, b pendingAck) int { return a.at.Compare(b.at) })
				next++
				s.ids++
				frame = 0
			} else {
				frame += fn
			}
			continue
		}
		switch {
		case wait > 0 && next < n && (len(s.acks) == 0 || s.now.Add(wait).Before(s.acks[0].at)):
			s.now = s.now.Add(wait)
		case len(s.acks) > 0:
			s.now = s.acks[0].at
		default:
			s.t.Fatalf("window stalled: nothing in flight, gate closed, %d of %d acked", acked, n)
		}
	}
	return s.now.Sub(start)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestBulkWindowFillsLongFatLink: on a simulated 100 Mbit/s, 100 ms
// link the window keeps the bottleneck busy (the transfer takes about
// what the bytes need at the rate) while what waits there stays small,
// and the window settles near twice the bandwidth-delay product and
// winChunks chunks.
func TestBulkWindowFillsLongFatLink(t *testing.T) {
	const rate, chunks, size = 12.5e6, 200, 1 << 20
	s := newWinLink(t, rate, 100*time.Millisecond)
	took := s.run(chunks, size)
	ideal := seconds(chunks*size/rate) + 100*time.Millisecond
	if took > ideal*11/10 {
		t.Errorf("200 chunks took %s of simulated time; the pipe needs %s (more than 1.1×)", took, ideal)
	}
	st := s.w.status()
	t.Logf("took %s (pipe needs %s); longest wait at the bottleneck %s; window %+v", took, ideal, s.maxQ, st)
	bdp := 2 * rate * 0.1
	if want := bdp + winChunks*size; st.Bytes < int64(want)*9/10 || st.Bytes > int64(want)*11/10 {
		t.Errorf("window %d bytes; want about 2×BDP + %d chunks (%.0f)", st.Bytes, winChunks, want)
	}
	if st.DeliveryRate < 0.9*rate || st.DeliveryRate > 1.1*rate {
		t.Errorf("delivery rate %.0f B/s, link %.0f", st.DeliveryRate, rate)
	}
	if st.MinRTTSeconds < 0.1 || st.MinRTTSeconds > 0.2 {
		t.Errorf("min RTT %.3fs; the link's is 0.1s", st.MinRTTSeconds)
	}
	if s.maxQ > 2*time.Second {
		t.Errorf("a frame waited %s at the bottleneck", s.maxQ)
	}
}

// TestBulkWindowBusyReceiver: a receiver that takes up to 300 ms to
// store and ack (a loaded machine) adds to the round trips the window
// sees; the pipe must stay full all the same.
func TestBulkWindowBusyReceiver(t *testing.T) {
	const rate, chunks, size = 12.5e6, 300, 1 << 20
	s := newWinLink(t, rate, 100*time.Millisecond)
	rng := rand.New(rand.NewPCG(1, 2))
	s.storing = func() time.Duration { return time.Duration(rng.Int64N(int64(300 * time.Millisecond))) }
	took := s.run(chunks, size)
	ideal := seconds(chunks*size/rate) + 100*time.Millisecond
	t.Logf("took %s (pipe needs %s); longest wait at the bottleneck %s; window %+v", took, ideal, s.maxQ, s.w.status())
	if took > ideal*11/10 {
		t.Errorf("%d chunks took %s of simulated time; the pipe needs %s (more than 1.1×)", chunks, took, ideal)
	}
}

// TestBulkWindowThinLinkQueueStaysShort: on a 1 Mbit/s, 600 ms link,
// after the first chunk (sent before anything is measured) what waits at
// the bottleneck stays within a few frames' time, so a name sent behind
// bulk is not stuck for the seconds a chunk takes; and the lane never
// stalls although a chunk is many times the bandwidth-delay product.
func TestBulkWindowThinLinkQueueStaysShort(t *testing.T) {
	const rate, size = 125e3, 1 << 20
	s := newWinLink(t, rate, 600*time.Millisecond)
	s.run(2, size) // the first chunks measure the link
	s.maxQ = 0
	took := s.run(10, size)
	ideal := seconds(10 * size / rate)
	if took > ideal*12/10 {
		t.Errorf("10 chunks took %s of simulated time; the link needs %s", took, ideal)
	}
	frameTime := seconds(wire.FrameSize / rate)
	t.Logf("took %s (link needs %s); longest wait at the bottleneck %s; window %+v", took, ideal, s.maxQ, s.w.status())
	if s.maxQ > 4*frameTime {
		t.Errorf("a frame waited %s at the bottleneck (a frame takes %s)", s.maxQ, frameTime)
	}
}

// TestBulkWindowPayloadGoesOutWhole: with the window full, a payload
// already started still goes out whole; a new one waits for an ack.
func TestBulkWindowPayloadGoesOutWhole(t *testing.T) {
	w := newBulkWindow()
	now := time.Unix(1000, 0)
	a, b := chunk.Sum([]byte("a")), chunk.Sum([]byte("b"))
	for i := range 8 {
		if ok, _ := w.gate(now); !ok {
			t.Fatalf("frame %d of the first payload held back", i)
		}
		w.sent(a, wire.FrameSize, i == 7, now)
	}
	if ok, wait := w.gate(now); ok || wait != 0 {
		t.Fatalf("a new payload may start with %d bytes in flight (window %d)", w.status().InFlight, w.status().Bytes)
	}
	w.acked([][32]byte{a}, []wire.AckStatus{wire.AckStored}, now.Add(time.Second))
	select {
	case <-w.wake:
	default:
		t.Fatal("the ack did not wake the sender")
	}
	if st := w.status(); st.InFlight != 0 || st.DeliveryRate == 0 {
		t.Fatalf("after the ack: %+v", st)
	}
	if ok, _ := w.gate(now.Add(time.Second)); !ok {
		t.Fatal("nothing in flight, yet the window is closed")
	}
	w.sent(b, wire.FrameSize, true, now.Add(time.Second))
	// Offered again without an ack: a timeout, taken out of flight.
	if n := w.offered([][32]byte{b, a}); n != 1 {
		t.Errorf("offered again: %d timeouts, want 1", n)
	}
	if st := w.status(); st.InFlight != 0 {
		t.Errorf("in flight after the timeout: %d", st.InFlight)
	}
}

// A new session of the link measures afresh: a trickle measured before
// (a peer that was dying, or slowly catching up) must not pace the new
// session, which starts unpaced in startup with the least round trip kept.
func TestBulkWindowNewSessionForgetsItsRate(t *testing.T) {
	w := newBulkWindow()
	now := time.Unix(1000, 0)
	a := chunk.Sum([]byte("a"))
	w.sent(a, 6000, true, now)
	w.acked([][32]byte{a}, []wire.AckStatus{wire.AckStored}, now.Add(20*time.Second)) // 300 B/s
	w.fullPipe = true
	if st := w.status(); st.PacingRate == 0 || st.PacingRate > 1000 {
		t.Fatalf("before: pacing %v B/s, want a trickle", st.PacingRate)
	}
	w.reset()
	st := w.status()
	if st.PacingRate != 0 || st.DeliveryRate != 0 || st.MinRTTSeconds != 20 || w.fullPipe {
		t.Fatalf("after a new session: %+v (startup over: %v); want unpaced, no rate, the round trip kept, startup again", st, w.fullPipe)
	}
	if ok, _ := w.gate(now.Add(21 * time.Second)); !ok {
		t.Fatal("the new session may not send")
	}
}
