package sim

import (
	"math/rand/v2"
	"time"

	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/wire"
)

// Full disks: a site's disk fills up for a while. Its stores fail
// (engine.Failed, as ENOSPC does) and its engine hears SpaceChanged, as
// the site's space watcher tells it; the disk stays full across a crash.

// setFull fills or frees s's disk and tells its engine.
func (s *site) setFull(full bool) {
	if s.full == full {
		return
	}
	s.full = full
	s.w.trace("%s disk full=%v", s.name, full)
	if s.up {
		s.step(engine.SpaceChanged{Now: s.w.now, Full: full})
	}
}

// Fill makes site i's disk full from start for d.
func (w *World) Fill(i int, start, d time.Duration) {
	s := w.sites[i]
	w.after(start, func() { w.faulty = true; w.res.Full = true; s.setFull(true) })
	w.after(start+d, func() { s.setFull(false) })
}

// planFull draws the full-disk faults of a random run: in one run of
// five, one to three sites fill up for 1–8 s. The draws come from a
// generator of their own, so the rest of a seed's run stays as it was
// before this fault existed (regression seeds keep their meaning).
func (w *World) planFull() {
	r := rand.New(rand.NewPCG(w.opts.Seed, 0xf011d15c))
	if r.IntN(5) != 0 {
		return
	}
	w.res.Full = true
	for range 1 + r.IntN(3) {
		s := w.sites[r.IntN(len(w.sites))]
		start := time.Duration(r.Int64N(int64(workload)))
		length := time.Duration(1+r.IntN(8)) * time.Second
		w.after(start, func() { w.faulty = true; s.setFull(true) })
		w.after(start+length, func() { s.setFull(false) })
	}
}

// checkFullAnswer: a full site never wants a payload.
func (s *site) checkFullAnswer(m *wire.Message) {
	if !s.full || m.Type != wire.MsgAnswer {
		return
	}
	for _, a := range m.Answer.Answers {
		if a == wire.AnswerWant {
			s.w.failf("%s: answered want with a full disk", s.name)
			return
		}
	}
}

// OldPeer makes link i a link between sites of which one predates
// wire.MsgSpace: only "later" answers pause it.
func (w *World) OldPeer(i int) { w.links[i].space = false }

// LinkStats returns the engine's counters of site i's end of link j.
func (w *World) LinkStats(i, j int) engine.LinkStats {
	s, l := w.sites[i], w.links[j]
	id := l.idOf[0]
	if l.b == s {
		id = l.idOf[1]
	}
	return s.eng.Stats(id)
}
