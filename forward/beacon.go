package forward

import (
	"time"

	"github.com/skyfed/skyfed/forward/engine"
)

// DefaultBeaconEvery is how often a site sends its status beacon
// (engine/beacon.go) unless NodeConfig.BeaconEvery says otherwise.
const DefaultBeaconEvery = 10 * time.Second

// beaconGather is how long a beacon waits after a link changed state,
// so that a burst of changes (a site restarting, a cut) goes as one.
const beaconGather = time.Second

// beaconLoop sends this site's beacon at start, every BeaconEvery, and
// soon after a link changes state, until the node closes.
func (n *Node) beaconLoop() {
	if n.cfg.BeaconBody == nil {
		return
	}
	every := n.cfg.BeaconEvery
	if every <= 0 {
		every = DefaultBeaconEvery
	}
	send := func() { n.post(engine.SendBeacon{Now: time.Now(), Body: n.cfg.BeaconBody()}) }
	send()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.beaconNudge:
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(beaconGather):
			}
		}
		send()
	}
}

// nudgeBeacon asks for a beacon soon (a link changed state).
func (n *Node) nudgeBeacon() {
	select {
	case n.beaconNudge <- struct{}{}:
	default:
	}
}

// Beacons returns the latest status beacon of every site this site
// heard of, itself included, by site ID.
func (n *Node) Beacons() []engine.HeardBeacon {
	n.engMu.Lock()
	defer n.engMu.Unlock()
	return n.eng.Beacons()
}
