package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward/engine"
)

// TestLostFramesResume: a link that stays up but loses every message
// for a while (a slow consumer cut by the server, a blackholed route)
// resumes within twice the assembly idle time of the loss ending, on a
// line (the lossy link is the only path) and on a ring (another path
// offers the same payloads while the lossy link's claims hold them).
func TestLostFramesResume(t *testing.T) {
	bound := 2 * engine.DefaultTiming().AssemblyIdle
	for _, tc := range []struct {
		name  string
		edges [][2]int
	}{
		{"line", [][2]int{{0, 1}}},
		{"ring", [][2]int{{0, 1}, {1, 2}, {2, 0}}},
	} {
		for _, loss := range []struct{ start, length time.Duration }{
			{1100 * time.Millisecond, 3 * time.Second},       // mid-transfer
			{1000 * time.Millisecond, 50 * time.Millisecond}, // offers and answers only
			{1500 * time.Millisecond, 200 * time.Millisecond},
			{2900 * time.Millisecond, 400 * time.Millisecond}, // the last frames and acks
		} {
			t.Run(fmt.Sprintf("%s/lost-from-%s-for-%s", tc.name, loss.start, loss.length), func(t *testing.T) {
				heal := loss.start + loss.length
				res, err := Run(Options{Seed: 1, Sites: 1 + maxSite(tc.edges), Edges: tc.edges,
					Bandwidth: 50_000, Delay: 20 * time.Millisecond, HealAt: heal,
					Scenario: func(w *World) {
						w.After(time.Second, func() { w.PutSized(0, 40, 3000) })
						w.Blackhole(0, loss.start, loss.length)
					}})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("loss %s for %s: converged %s after it ended", loss.start, loss.length, res.Converged)
				if res.Converged > bound {
					t.Errorf("converged %s after the loss ended, want within %s", res.Converged, bound)
				}
			})
		}
	}
}

func maxSite(edges [][2]int) int {
	m := 0
	for _, e := range edges {
		m = max(m, e[0], e[1])
	}
	return m
}
