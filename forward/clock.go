package forward

import (
	"fmt"
	"time"

	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
)

// DefaultMaxSkew is how far a peer's stamps may run ahead of this
// site's clock before its manifests are refused; naming's default too.
const DefaultMaxSkew = 5 * time.Minute

// skewHold is how long a manifest refused as stamped in the future keeps
// a link in ReasonClockSkew after the last such refusal.
const skewHold = time.Minute

// now is the site's wall clock: what its stamps and expiry use, and
// what it sends peers to measure the clock offset against.
func (n *Node) now() time.Time { return n.cfg.Now() }

// clockForPeer returns this site's clock in unix ms for a hello, hello-ack
// or ping, or 0 (absent) when the peer did not announce that it reads
// it: a site from before the field refuses trailing bytes.
func (l *Link) clockForPeer() int64 {
	l.mu.Lock()
	caps := l.health.peerCaps
	l.mu.Unlock()
	if caps&wire.CapClock == 0 {
		return 0
	}
	return l.node.now().UnixMilli()
}

// setPeerCaps records the capabilities the peer announced.
func (l *Link) setPeerCaps(caps uint32) {
	l.mu.Lock()
	l.health.peerCaps = caps
	l.mu.Unlock()
}

// measureClock records the peer's clock offset from peerMS, the peer's
// clock when it sent a message that arrives now, and rtt, the round trip
// when known (the dialer's handshake): the peer read its clock about
// half a round trip ago. Without a round trip (pings, the acceptor's
// handshake) the latest round trip known here corrects it; the error is
// then at most a one-way delay, far below any skew that matters.
func (l *Link) measureClock(peerMS int64, rtt time.Duration) {
	local := l.node.now()
	l.mu.Lock()
	if rtt > 0 {
		l.health.rtt = rtt
	}
	l.health.offset = time.UnixMilli(peerMS).Sub(local) + l.health.rtt/2
	l.health.measured = true
	off := l.health.offset
	l.mu.Unlock()
	if max(off, -off) > l.node.maxSkew() {
		l.log.Warn("peer's clock differs from this site's beyond the allowed skew; manifests will be refused", "peer", l.id.Peer, "offset", off.Round(time.Millisecond), "allowed", l.node.maxSkew())
	}
}

// refusedFuture records a manifest from the peer refused as stamped too
// far in the future: the link shows ReasonClockSkew while that lasts.
func (l *Link) refusedFuture(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.health.skewUntil = time.Now().Add(skewHold)
	what := "not measured (the peer does not send its clock)"
	if l.health.measured {
		what = describeOffset(l.health.offset)
	}
	l.health.lastErr = fmt.Sprintf("peer's clock offset: %s; its manifests are refused as stamped beyond this site's clock + %s (fix the clock that is wrong, with NTP): %v",
		what, l.node.maxSkew(), err)
}

func (n *Node) maxSkew() time.Duration {
	if n.cfg.MaxSkew > 0 {
		return n.cfg.MaxSkew
	}
	return DefaultMaxSkew
}

// describeOffset says a peer's clock offset in words.
func describeOffset(off time.Duration) string {
	off = off.Round(time.Second)
	switch {
	case off > 0:
		return fmt.Sprintf("%s ahead of this site's", off)
	case off < 0:
		return fmt.Sprintf("%s behind this site's", -off)
	}
	return "in step with this site's"
}

// healthNow is the link's health as status shows it: the reason, which
// for an up link is ReasonClockSkew while the peer's clock is off by
// more than the allowed skew or one of its manifests was refused as
// stamped in the future within skewHold, else "".
func (l *Link) healthNow() (st linkState, h linkHealth) {
	l.mu.Lock()
	st, h = l.state, l.health
	l.mu.Unlock()
	skew := l.node.maxSkew()
	offBeyond := h.measured && max(h.offset, -h.offset) > skew
	if st == linkUp && (offBeyond || time.Now().Before(h.skewUntil)) {
		h.reason = ReasonClockSkew
		if offBeyond && !time.Now().Before(h.skewUntil) {
			h.lastErr = fmt.Sprintf("peer's clock is %s, beyond the allowed skew of %s: the site whose clock is behind refuses the other's manifests as stamped in the future (fix the clock that is wrong, with NTP)",
				describeOffset(h.offset), skew)
		}
	}
	return st, h
}

// PeerClockOffsets returns, per peer with an up link whose clock was
// measured, the peer's clock minus this site's (positive: the peer is
// ahead). With links both ways to a peer, the dialed one counts: its
// measurement is corrected by the handshake's round trip.
func (n *Node) PeerClockOffsets() map[string]time.Duration {
	n.mu.Lock()
	links := make([]*Link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.Unlock()
	out := map[string]time.Duration{}
	for _, l := range links {
		st, h := l.healthNow()
		if st != linkUp || !h.measured {
			continue
		}
		if _, seen := out[l.id.Peer]; seen && l.id.Dir == engine.DirIn {
			continue
		}
		out[l.id.Peer] = h.offset
	}
	return out
}
