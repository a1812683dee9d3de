package engine

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/skyfed/skyfed/forward/wire"
)

// Status beacons: each site floods a small signed status of itself
// (its totals and links, an opaque body the shell makes) on the control
// lane, by the same map-free rule as everything else: a site keeps the
// highest sequence number it heard of each origin and passes on only
// what is newer, over every other link whose peer takes beacons. So
// every site learns the state of every site it can reach, with no map
// and no central collector. Beacons are never logged, never offered and
// never reconciled; only those signed by a key this site trusts are
// kept and passed on (the others are refused and counted).

// SendBeacon: the shell's status of this site, to be signed and flooded.
type SendBeacon struct {
	Now  time.Time
	Body []byte
}

func (e SendBeacon) at() time.Time  { return e.Now }
func (e SendBeacon) String() string { return "send-beacon" }

// HeardBeacon is what this site holds of a site's beacons.
type HeardBeacon struct {
	Latest wire.Beacon // the newest heard
	Full   wire.Beacon // the newest that carried its body (Seq 0: none heard yet)
	Heard  time.Time   // when Latest arrived here (was made, for this site's own)
	From   LinkID      // the link it came on; Local for this site's own
}

// Body returns the site's status body as its latest beacon has it, or
// nil while the body that beacon repeats has not arrived here.
func (h *HeardBeacon) Body() []byte {
	if h.Latest.Same == 0 {
		return h.Latest.Body
	}
	if h.Full.Seq == h.Latest.Same {
		return h.Full.Body
	}
	return nil
}

// maxBeaconSites bounds the sites whose beacons a site keeps.
const maxBeaconSites = 1024

// beaconFullEvery is how often a site's beacon carries its body even
// when the body did not change, so that a site that missed it (a lost
// message, a link down) learns it within this.
const beaconFullEvery = time.Minute

type beacons struct {
	seq    uint64 // of this site's last beacon
	latest map[string]*HeardBeacon
}

func newBeacons() beacons { return beacons{latest: map[string]*HeardBeacon{}} }

// sendBeacon signs body as this site's next beacon and floods it.
func (e *Engine) sendBeacon(ev SendBeacon) {
	// Wall-clock milliseconds keep the sequence rising across restarts
	// (peers drop what is not newer than what they hold).
	e.bc.seq = max(e.bc.seq+1, uint64(max(ev.Now.UnixMilli(), 1)))
	b := &wire.Beacon{Origin: e.cfg.Site, Seq: e.bc.seq, At: ev.Now.UnixMilli(), Body: ev.Body}
	own := e.bc.latest[e.cfg.Site]
	if own != nil && bytes.Equal(own.Full.Body, ev.Body) && ev.Now.Sub(time.UnixMilli(own.Full.At)) < beaconFullEvery {
		b.Same, b.Body = own.Full.Seq, nil
	}
	b.Sig = e.cfg.Sign(wire.BeaconMessage(b))
	e.keepBeacon(b, Local)
	e.floodBeacon(b, Local)
}

// onBeacon keeps a beacon newer than what this site holds of its
// origin and passes it on; older and repeated ones stop here.
func (e *Engine) onBeacon(l *link, b *wire.Beacon) {
	if b.Origin == e.cfg.Site {
		return // our own, back by another path
	}
	prev := e.bc.latest[b.Origin]
	if prev != nil && b.Seq <= prev.Latest.Seq {
		return
	}
	if ok, known := e.cfg.Verify(b.Origin, wire.BeaconMessage(b), b.Sig); !ok || !known {
		e.reject(l.id, "beacon")
		if known {
			e.note(true, l.id, "forged status beacon refused from "+b.Origin, [32]byte{}, nil)
		}
		return
	}
	if prev == nil && len(e.bc.latest) >= maxBeaconSites {
		return
	}
	e.keepBeacon(b, l.id)
	e.floodBeacon(b, l.id)
}

// keepBeacon records b as its origin's latest (and its full one, if it
// carries its body).
func (e *Engine) keepBeacon(b *wire.Beacon, from LinkID) {
	h := e.bc.latest[b.Origin]
	if h == nil {
		h = &HeardBeacon{}
		e.bc.latest[b.Origin] = h
	}
	h.Latest, h.Heard, h.From = *b, e.now, from
	if b.Same == 0 {
		h.Full = *b
	}
}

// floodBeacon sends b over every link up but skip whose peer takes beacons.
func (e *Engine) floodBeacon(b *wire.Beacon, skip LinkID) {
	for _, id := range e.Up() {
		if id != skip && e.links[id].beacon {
			e.send(id, wire.LaneControl, &wire.Message{Type: wire.MsgBeacon, Beacon: b})
		}
	}
}

// beaconLinkUp gives a new link every beacon this site holds, so that a
// joining site (or one back from a cut) knows the federation at once
// rather than after a round of beacons.
func (e *Engine) beaconLinkUp(l *link) {
	if !l.beacon {
		return
	}
	for _, origin := range slices.Sorted(maps.Keys(e.bc.latest)) {
		h := e.bc.latest[origin]
		if h.Full.Seq != 0 {
			full := h.Full
			e.send(l.id, wire.LaneControl, &wire.Message{Type: wire.MsgBeacon, Beacon: &full})
		}
		if h.Latest.Seq != h.Full.Seq {
			latest := h.Latest
			e.send(l.id, wire.LaneControl, &wire.Message{Type: wire.MsgBeacon, Beacon: &latest})
		}
	}
}

// Beacons returns the latest beacon of every site this site heard of,
// itself included, by site ID.
func (e *Engine) Beacons() []HeardBeacon {
	out := make([]HeardBeacon, 0, len(e.bc.latest))
	for _, h := range e.bc.latest {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b HeardBeacon) int { return strings.Compare(a.Latest.Origin, b.Latest.Origin) })
	return out
}
