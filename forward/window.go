package forward

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
)

// The bulk lane's window keeps the link's pipe full without filling the
// queues along the path: a fixed number of chunks in flight is either
// too few for a long fat link or, on a thin one, enough to stand for
// minutes in the path's buffers, ahead of every name sent after it. So
// the shell measures the link from what it sends: the round trip from
// offers to their answers (small messages, sent first), the delivery
// rate from the acks of the chunks (bytes acked over the time they
// took, never more than the rate they were sent at, as BBR does), and
// the queue the last chunk met (its last frame's send to its ack, less
// the round trip and the frame's own time on the wire). It paces bulk
// frames at the measured rate, in BBR's cycle: twice the rate in
// startup, then a round trip (or a chunk's time, if longer) above it
// (probing for more), one below (draining what that queued) and two at
// it; and below it whenever the queue the acks report exceeds two round
// trips and two frames (and a second). So what waits at the bottleneck stays small, and
// control, manifests and lookups, which the shell sends first, are not
// stuck behind bulk in the path. The window, twice the bandwidth-delay product plus four
// chunks (winChunks) and at most what the peer buffers for the lane, bounds what is
// in flight whatever the pacing does. Only an ack says a chunk was
// delivered (a chunk is acked once whole and stored), hence the
// chunks beyond it; and a chunk whose first frame went out is always sent whole,
// so the lane never stalls on a window smaller than a chunk.
//
// All of this is the shell's: the engine still decides what to send,
// and bounds the payloads wanted per link (Limits.MaxAwaitingChunks);
// the window decides only when the next bulk frame goes out.

// Bounds of the bulk window.
const (
	// winMin is the window until the link is measured: the first chunk
	// goes out whole and its ack measures the link.
	winMin = 2 * wire.FrameSize
	// winMax is the most bulk in flight on one link: what the peer's
	// subscription buffers at most (pendingLimits), so a burst of
	// everything in flight arriving at once is never dropped there.
	winMax = 8 << 20
	// winGain is the window over the bandwidth-delay product.
	winGain = 2
	// rateWindow is how long the max filter keeps delivery-rate samples
	// (or ten chunks' time on the wire, if longer), so that a dip (a
	// receiver busy for a moment) does not slow the pacing down for long;
	// rateSamples bounds how many it keeps.
	rateWindow  = 10 * time.Second
	rateSamples = 256
	// rttMaxAge is how long the least round trip stands: the path rarely
	// changes, and offers sent while bulk fills the path measure more.
	rttMaxAge = 5 * time.Minute
	// flightMaxAge is how long a sent chunk counts in flight without an
	// ack: the engine offers it again after its ack timeout.
	flightMaxAge = 30 * time.Second
	// paceBurst is the most a paced lane may send at once after a pause.
	paceBurst = 2 * wire.FrameSize
	// winChunks is how many chunks the window holds beyond the
	// bandwidth-delay product.
	winChunks = 4
	// minLongQueue is the least queue that makes pacing drain.
	minLongQueue = time.Second
	// offersTracked bounds the offers awaiting an answer remembered for
	// round trips.
	offersTracked = 64
)

// Pacing gains over the measured rate: startup's until the rate stops
// growing (or a queue builds), then the cycle, a phase per round trip;
// drainGain whenever the queue is long.
const (
	startupGain = 2.0
	drainGain   = 0.75
)

// probeGains is the cycle: a phase above the rate, one below (draining
// what that queued), two at it. BBR has six at it; a phase here lasts at
// least a chunk's time on the wire (only acks of whole chunks measure),
// so on a thin link a longer cycle would probe once a minute.
var probeGains = [...]float64{1.25, drainGain, 1, 1}

// bulkFlight is one payload sent on the bulk lane and not acked yet.
type bulkFlight struct {
	bytes       int64
	lastFrame   int64     // payload bytes of its last frame
	first, last time.Time // first and last frame published
	complete    bool      // the last frame went out
	// The link's delivered bytes and time when the first frame went out,
	// and when the newest payload acked then had gone out.
	delivered   int64
	deliveredAt time.Time
	ackedSentAt time.Time
	// appLimited: the lane had nothing to send for a while before this
	// went out, so its sample may show less than the link can carry.
	appLimited bool
}

type rateSample struct {
	bps float64
	at  time.Time
}

// bulkWindow is one link's bulk window; safe for concurrent use (the
// send loop asks and reports sends, subscription callbacks report acks
// and answers).
type bulkWindow struct {
	wake chan struct{} // an ack (or a reset) may have opened the window

	mu          sync.Mutex
	flights     map[chunk.ID]*bulkFlight
	inflight    int64
	current     *bulkFlight // being sent: its first frame went out, not its last
	currentID   chunk.ID
	biggest     int64 // the largest payload sent: the window is never below it
	delivered   int64
	deliveredAt time.Time
	ackedSentAt time.Time    // when the newest payload acked had gone out whole
	appLimited  int64        // delivered bytes up to which sends are app-limited (BBR's C.app_limited)
	roundEnd    int64        // delivered bytes that end the current round trip (BBR's next_round_delivered)
	rates       []rateSample // newest last
	minRTT      time.Duration
	minRTTAt    time.Time
	offers      map[uint64]time.Time // offer batch → when it was queued
	queue       time.Duration        // what the last acked chunk waited in the path
	fullPipe    bool                 // startup is over: the queue grew or the rate stopped growing
	cycle       int                  // phase of probeGains
	cycleAt     time.Time
	grownAt     float64 // the rate startup last saw grow by a quarter
	stalls      int     // samples since it did
	nextSend    time.Time
}

func newBulkWindow() *bulkWindow {
	return &bulkWindow{wake: make(chan struct{}, 1), flights: map[chunk.ID]*bulkFlight{}, offers: map[uint64]time.Time{}}
}

// WindowStatus is a link's bulk window as status shows it.
type WindowStatus struct {
	Bytes         int64   `json:"bytes"`           // what may be in flight now
	InFlight      int64   `json:"in_flight"`       // sent and not acked
	DeliveryRate  float64 `json:"delivery_rate"`   // bytes/s, the max of recent samples (0: not measured yet)
	MinRTTSeconds float64 `json:"min_rtt_seconds"` // least round trip of an offer or a chunk's last frame (0: not measured yet)
	QueueSeconds  float64 `json:"queue_seconds"`   // what the last acked chunk waited in the path
	PacingRate    float64 `json:"pacing_rate"`     // bytes/s bulk frames go out at (0: unpaced)
}

func (w *bulkWindow) status() WindowStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WindowStatus{Bytes: w.cwnd(), InFlight: w.inflight, DeliveryRate: w.rate(), MinRTTSeconds: w.minRTT.Seconds(),
		QueueSeconds: w.queue.Seconds(), PacingRate: w.pacing()}
}

// rate is the max filter of the delivery rate samples; w.mu held.
func (w *bulkWindow) rate() float64 {
	var best float64
	for _, s := range w.rates {
		best = max(best, s.bps)
	}
	return best
}

// dropOldRates forgets the rate samples older than the filter's window,
// keeping the newest whatever its age; w.mu held.
func (w *bulkWindow) dropOldRates(now time.Time) {
	keep := rateWindow
	if bw := w.rate(); bw > 0 {
		keep = max(keep, seconds(10*float64(w.biggest)/bw))
	}
	i := 0
	for i < len(w.rates)-1 && now.Sub(w.rates[i].at) > keep {
		i++
	}
	w.rates = w.rates[i:]
}

// cwnd is the window in bytes; w.mu held: winGain × the
// bandwidth-delay product, plus winChunks chunks. A chunk is acked only
// once whole and stored, so a chunk's time on the wire and the
// receiver's store time (which a loaded machine stretches to hundreds
// of milliseconds) are part of the pipe; the least round trip, measured
// by offers, has neither.
func (w *bulkWindow) cwnd() int64 {
	bw := w.rate()
	if bw == 0 || w.minRTT == 0 {
		return winMin
	}
	return min(winMax, int64(winGain*bw*w.minRTT.Seconds())+winChunks*max(w.biggest, wire.FrameSize))
}

// pacing is the bulk lane's rate in bytes/s (0: unpaced); w.mu held.
func (w *bulkWindow) pacing() float64 { return w.gain() * w.rate() }

// gain is the pacing gain now; w.mu held.
func (w *bulkWindow) gain() float64 {
	switch {
	case !w.fullPipe:
		return startupGain
	case w.queue > w.longQueue():
		return drainGain
	}
	return probeGains[w.cycle]
}

// longQueue is the queue past which pacing drains: two round trips and
// two frames' time on the wire, and never below minLongQueue. A busy
// receiver (a group commit, a scheduler on a loaded machine) adds tens
// to hundreds of milliseconds to a round trip that no queue caused; on
// a fast link the window alone keeps the queue short (2×BDP + 4 chunks
// is half a second at 100 Mbit/s), so the brake matters on thin
// links, where a chunk's time on the wire is seconds; w.mu held.
func (w *bulkWindow) longQueue() time.Duration {
	return max(minLongQueue, 2*w.minRTT+seconds(2*wire.FrameSize/max(w.rate(), 1)))
}

// advanceCycle moves the pacing cycle on a phase each round trip, or
// each chunk's time on the wire if longer: only an ack measures, and a
// chunk is acked whole, so a phase must cover one; w.mu held.
func (w *bulkWindow) advanceCycle(now time.Time) {
	phase := max(w.minRTT, seconds(float64(w.biggest)/max(w.rate(), 1)))
	if w.fullPipe && w.minRTT > 0 && now.Sub(w.cycleAt) >= phase {
		w.cycle = (w.cycle + 1) % len(probeGains)
		w.cycleAt = now
	}
}

// gate says whether the next bulk frame may go now: the window has room
// (or a payload is being sent and must be finished) and the pacing time
// has come. If not, wait > 0 is how long pacing holds it; wait == 0
// means until an ack opens the window (w.wake).
func (w *bulkWindow) gate(now time.Time) (ok bool, wait time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	w.advanceCycle(now)
	if w.current == nil && w.inflight >= w.cwnd() {
		return false, 0
	}
	if d := w.nextSend.Sub(now); d > 0 {
		return false, d
	}
	return true, 0
}

// sent records a bulk frame of n payload bytes of id published; last is
// set on the payload's last frame.
func (w *bulkWindow) sent(id chunk.ID, n int, last bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.current
	if f != nil && w.currentID != id {
		// The rest of that one was never sent (its link went down, or
		// its frames were dropped): let it expire like a lost one.
		f.complete = true
		f = nil
	}
	if f == nil {
		if old := w.flights[id]; old != nil { // sent again: the old one is over
			w.inflight -= old.bytes
		}
		if w.inflight <= 0 {
			w.deliveredAt = now // the link was idle: the sample starts now
		}
		f = &bulkFlight{first: now, delivered: w.delivered, deliveredAt: w.deliveredAt, ackedSentAt: w.ackedSentAt,
			appLimited: w.appLimited > w.delivered}
		if f.ackedSentAt.IsZero() {
			f.ackedSentAt = now
		}
		w.flights[id] = f
		w.current, w.currentID = f, id
	}
	f.bytes += int64(n)
	f.lastFrame = int64(n)
	f.last = now
	w.inflight += int64(n)
	if last {
		f.complete = true
		w.current = nil
		w.biggest = max(w.biggest, f.bytes)
	}
	if bps := w.pacing(); bps > 0 {
		start := w.nextSend
		if earliest := now.Add(-seconds(float64(paceBurst) / bps)); start.Before(earliest) {
			start = earliest
		}
		w.nextSend = start.Add(seconds(float64(n) / bps))
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// idle notes that the lane may send but has nothing queued: what goes
// out until everything in flight now is acked is app-limited.
func (w *bulkWindow) idle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.appLimited = max(w.delivered+w.inflight, 1)
}

// offer notes when an offer of the bulk lane was queued, for the round
// trip its answer measures.
func (w *bulkWindow) offer(batch uint64, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.offers) >= offersTracked {
		for b, at := range w.offers {
			if now.Sub(at) > flightMaxAge || len(w.offers) >= offersTracked {
				delete(w.offers, b)
			}
		}
	}
	w.offers[batch] = now
}

// answered takes the round trip of an offer the peer answered.
func (w *bulkWindow) answered(batch uint64, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at, ok := w.offers[batch]; ok {
		delete(w.offers, batch)
		w.takeRTT(now.Sub(at), now)
	}
}

// takeRTT keeps the least round trip, or a newer one once it is old;
// w.mu held.
func (w *bulkWindow) takeRTT(rtt time.Duration, now time.Time) {
	if rtt > 0 && (w.minRTT == 0 || rtt <= w.minRTT || now.Sub(w.minRTTAt) > rttMaxAge) {
		w.minRTT, w.minRTTAt = rtt, now
	}
}

// acked takes what the peer acked (stored, duplicate or to resend) out
// of flight and samples the link from those it stored.
func (w *bulkWindow) acked(ids [][32]byte, status []wire.AckStatus, now time.Time) {
	w.mu.Lock()
	opened := false
	for i, raw := range ids {
		id := chunk.ID(raw)
		f := w.flights[id]
		if f == nil || !f.complete {
			continue
		}
		delete(w.flights, id)
		w.inflight -= f.bytes
		opened = true
		if status[i] == wire.AckResend {
			continue
		}
		w.delivered += f.bytes
		w.deliveredAt = now
		if f.last.After(w.ackedSentAt) {
			w.ackedSentAt = f.last
		}
		w.sample(f, now)
	}
	w.mu.Unlock()
	if opened {
		w.signal()
	}
}

// sample adds the delivery rate and queue one ack measured; w.mu held.
// The rate is the bytes acked since f went out over the longer of the
// time they took to be acked and the time they took to be sent: acks
// that bunch up (a receiver catching up) never show more than was sent.
func (w *bulkWindow) sample(f *bulkFlight, now time.Time) {
	rtt := now.Sub(f.last)
	w.takeRTT(rtt, now)
	if d := max(now.Sub(f.deliveredAt), f.last.Sub(f.ackedSentAt)); d > 0 {
		// A sample of a lane that had too little to send shows the
		// sender, not the link: kept only if it raises the max.
		if bps := float64(w.delivered-f.delivered) / d.Seconds(); !f.appLimited || bps > w.rate() {
			w.rates = appendBounded(w.rates, rateSample{bps: bps, at: now}, rateSamples)
		}
		w.dropOldRates(now)
	}
	bw := w.rate()
	w.queue = max(0, rtt-w.minRTT-seconds(float64(f.lastFrame)/bw))
	if w.fullPipe {
		return
	}
	// Startup ends once three round trips in a row did not raise the
	// rate by a quarter, or the queue grew long: the pipe is full. A
	// round ends when what was sent after the last one began is acked.
	if w.queue > w.longQueue() {
		w.fullPipe, w.cycle, w.cycleAt = true, 1, now // drain first
		return
	}
	if f.delivered < w.roundEnd {
		return
	}
	w.roundEnd = w.delivered
	switch {
	case bw >= 1.25*w.grownAt:
		w.grownAt, w.stalls = bw, 0
	case !f.appLimited: // a relay waiting for its own input is no plateau
		w.stalls++
	}
	if w.stalls >= 3 {
		w.fullPipe, w.cycle, w.cycleAt = true, 1, now // drain first
	}
}

func appendBounded(s []rateSample, v rateSample, n int) []rateSample {
	if len(s) >= n {
		s = append(s[:0], s[len(s)-n+1:]...)
	}
	return append(s, v)
}

// offered notes that the engine offers ids again on the bulk lane: one
// still in flight here was sent whole and never acked, its ack timed
// out. It takes them out of flight and returns how many there were.
func (w *bulkWindow) offered(ids [][32]byte) int64 {
	w.mu.Lock()
	var n int64
	for _, raw := range ids {
		id := chunk.ID(raw)
		if f := w.flights[id]; f != nil && f.complete {
			delete(w.flights, id)
			w.inflight -= f.bytes
			n++
		}
	}
	w.mu.Unlock()
	if n > 0 {
		w.signal()
	}
	return n
}

// expire forgets flights no ack came for in flightMaxAge; w.mu held.
func (w *bulkWindow) expire(now time.Time) {
	for id, f := range w.flights {
		if f.complete && now.Sub(f.last) > flightMaxAge {
			delete(w.flights, id)
			w.inflight -= f.bytes
		}
	}
}

// reset forgets what was in flight (a new session of the link) and
// the rate it measured, keeping the least round trip (the path is most
// likely the same). The last rate samples may be of a peer that was
// dying or catching up, a trickle; pacing a new session by them held
// it to that trickle, each slow round trip only confirming it (seen as
// a peer restarted mid-replication getting a chunk every few seconds).
// Startup finds the rate again in a few round trips.
func (w *bulkWindow) reset() {
	w.mu.Lock()
	clear(w.flights)
	clear(w.offers)
	w.inflight, w.current = 0, nil
	w.nextSend = time.Time{}
	w.rates, w.queue = nil, 0
	w.fullPipe, w.cycle, w.grownAt, w.stalls = false, 0, 0, 0
	w.roundEnd, w.appLimited = w.delivered, 0
	w.mu.Unlock()
	w.signal()
}

func (w *bulkWindow) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// measure feeds the bulk window what a message from the peer tells of
// the link: acks of bulk payloads, answers to bulk offers.
func (l *Link) measure(msg *wire.Message, now time.Time) {
	switch {
	case msg.Type == wire.MsgAck && msg.Ack.Lane == wire.LaneBulk:
		l.win.acked(msg.Ack.IDs, msg.Ack.Status, now)
	case msg.Type == wire.MsgAnswer && msg.Answer.Lane == wire.LaneBulk:
		l.win.answered(msg.Answer.Batch, now)
	}
}

// watchOut looks at a message the engine sends the peer: offers of bulk
// payloads (round trips; payloads offered again for want of an ack) and
// acks asking the peer to send again because frames stopped arriving.
func (l *Link) watchOut(msg *wire.Message) {
	switch {
	case msg.Type == wire.MsgOffer && msg.Offer.Lane == wire.LaneBulk:
		l.win.offer(msg.Offer.Batch, time.Now())
		if n := l.win.offered(msg.Offer.IDs); n > 0 {
			l.c.frameTimeouts.Add(n)
		}
	case msg.Type == wire.MsgAck:
		for _, st := range msg.Ack.Status {
			if st == wire.AckResend {
				l.c.frameTimeouts.Add(1)
			}
		}
	}
}

var (
	descWindow       = linkDesc("window_bytes", "Bulk bytes the link may have in flight now: about twice the measured bandwidth-delay product.")
	descDeliveryRate = linkDesc("delivery_rate_bytes_per_second", "Bulk delivery rate measured from acks (the max of recent samples); 0 until measured.")
	descMinRTT       = linkDesc("min_rtt_seconds", "Least round trip measured on the link (offers to answers, chunks to acks); 0 until measured.")
)

func collectWindow(ch chan<- prometheus.Metric, w WindowStatus, labels []string) {
	ch <- prometheus.MustNewConstMetric(descWindow, prometheus.GaugeValue, float64(w.Bytes), labels...)
	ch <- prometheus.MustNewConstMetric(descDeliveryRate, prometheus.GaugeValue, w.DeliveryRate, labels...)
	ch <- prometheus.MustNewConstMetric(descMinRTT, prometheus.GaugeValue, w.MinRTTSeconds, labels...)
}
