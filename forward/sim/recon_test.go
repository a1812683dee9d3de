package sim

import (
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
)

// TestReconHealsLostState: a site that loses part of what it stored
// (its log and its peers' cursors still say it has it) gets it back by
// reconciliation alone, each lost payload crossing into it once more and
// nothing else crossing twice.
func TestReconHealsLostState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edges [][2]int
		loser int
	}{
		{"line, the loser dials", [][2]int{{2, 1}, {1, 0}}, 2},
		{"line, the loser accepts", [][2]int{{0, 1}, {1, 2}}, 2},
		{"ring, the middle loses", [][2]int{{0, 1}, {1, 2}, {2, 0}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lost map[chunk.ID]bool
			var w *World
			res, err := Run(Options{Seed: 7, Sites: 3, Edges: tc.edges, Bandwidth: 1_000_000, Delay: 30 * time.Millisecond,
				HealAt: 25 * time.Second,
				Scenario: func(world *World) {
					w = world
					w.After(time.Second, func() { w.PutSized(0, 30, 3000) })
					w.After(2*time.Second, func() { w.PutSized(1, 10, 3000) })
					w.After(15*time.Second, func() {
						s := w.sites[tc.loser]
						s.crash()
						w.loseState(s)
						lost = map[chunk.ID]bool{}
						for id := range s.lost {
							lost[id] = true
						}
					})
					w.After(17*time.Second, func() { w.sites[tc.loser].restart() })
				}})
			if err != nil {
				t.Fatal(err)
			}
			if len(lost) == 0 {
				t.Fatal("the scenario lost nothing")
			}
			t.Logf("lost %d payloads; converged %s after the heal", len(lost), res.Converged)
			for id, n := range w.sites[tc.loser].entered {
				want := 1
				if lost[id] {
					want = 2
				}
				if n > want {
					t.Errorf("%s crossed into the loser %d times, want at most %d", id.Short(), n, want)
				}
			}
		})
	}
}

// TestReconDuringCatchUpCrossesOnce: a new site dials a site whose log
// it has not received yet; the reconciliation at link-up finds nearly
// everything missing while the log is still being offered, and still no
// payload crosses into the new site twice.
func TestReconDuringCatchUpCrossesOnce(t *testing.T) {
	var w *World
	_, err := Run(Options{Seed: 3, Sites: 2, Edges: [][2]int{{1, 0}}, Bandwidth: 100_000, Delay: 50 * time.Millisecond,
		HealAt: 5 * time.Second,
		Scenario: func(world *World) {
			w = world
			for range 20 {
				w.PutSized(0, 5, 2000) // before the link is up: a backlog of 200 payloads
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	for id, n := range w.sites[1].entered {
		if n > 1 {
			t.Errorf("%s crossed into the new site %d times", id.Short(), n)
		}
	}
	if got := len(w.sites[1].entered); got < 100 {
		t.Errorf("%d payloads entered the new site, want all of them", got)
	}
}

// TestReconADayOfPeriodicSessions: five sites with nothing missing run a
// simulated day of periodic reconciliation (every 10 minutes per link):
// every session finds them in sync, at ≤ 1 KB per session both ways.
func TestReconADayOfPeriodicSessions(t *testing.T) {
	edges := [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 0}}
	res, err := Run(Options{Seed: 11, Sites: 5, Edges: edges, Bandwidth: 1_000_000, Delay: 40 * time.Millisecond,
		HealAt: 20 * time.Second, Until: 24 * time.Hour,
		Scenario: func(w *World) {
			for i := range 5 {
				w.After(time.Duration(1+i)*time.Second, func() { w.PutSized(i, 3, 2000) })
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	sessions := res.ReconInSync + res.ReconDiffer + res.ReconFailed
	t.Logf("a day: %d sessions (%d in sync, %d differ, %d failed), %d bytes, %.0f bytes per session",
		sessions, res.ReconInSync, res.ReconDiffer, res.ReconFailed, res.ReconBytes, float64(res.ReconBytes)/float64(sessions))
	// One at each link-up and one every 10 minutes after: 5 links × ~145.
	if sessions < 5*140 {
		t.Errorf("%d sessions in a day on 5 links, want about %d", sessions, 5*145)
	}
	if res.ReconFailed != 0 {
		t.Errorf("%d sessions failed", res.ReconFailed)
	}
	if per := res.ReconBytes / int64(sessions); per > 1024 {
		t.Errorf("%d bytes per session, want ≤ 1 KB", per)
	}
}
