package sim

import (
	"time"

	"github.com/skyfed/skyfed/forward/engine"
)

// SendBeacons has every site that is up send a status beacon with
// body(i) now and every `every` after.
func (w *World) SendBeacons(every time.Duration, body func(i int) []byte) {
	for _, s := range w.sites {
		if s.up {
			s.step(engine.SendBeacon{Now: w.now, Body: body(s.idx)})
		}
	}
	w.after(every, func() { w.SendBeacons(every, body) })
}

// Beacons returns what site i holds of every site's beacons (nil while
// it is down).
func (w *World) Beacons(i int) []engine.HeardBeacon {
	s := w.sites[i]
	if !s.up || s.eng == nil {
		return nil
	}
	return s.eng.Beacons()
}

// Bytes returns the bytes of every message sent so far, and of the
// status beacons among them.
func (w *World) Bytes() (all, beacons int64) { return w.res.WireBytes, w.res.BeaconBytes }

// Traffic is what crossed the links so far, by kind (Result's fields).
type Traffic struct{ Wire, Beacons, Data, Payload int64 }

// Traffic returns the bytes sent so far: all, beacons, data frames, and
// the payload those frames carry.
func (w *World) Traffic() Traffic {
	return Traffic{w.res.WireBytes, w.res.BeaconBytes, w.res.DataBytes, w.res.PayloadBytes}
}

// BeaconMessages returns the beacon messages sent so far.
func (w *World) BeaconMessages() int { return w.res.BeaconMessages }

// Links returns the number of links.
func (w *World) Links() int { return len(w.links) }
