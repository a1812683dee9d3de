package sim

import (
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward/engine"
)

// TestFullDiskResumesOnSignal: the receiver of a line fills up, before
// the sender's puts or while they are being shipped (stores fail), and
// gets room again. Over a link whose ends take MsgSpace, the sender
// holds its offers and resumes on the receiver's "room again" at once,
// within a tenth of AckTimeout (the transfer itself takes 0.24 s); over a link to a site from
// before MsgSpace it converges too, after its timeouts.
func TestFullDiskResumesOnSignal(t *testing.T) {
	tm := engine.DefaultTiming()
	for _, tc := range []struct {
		name   string
		fullAt time.Duration
		chunks int
		old    bool
	}{
		{"full-before-puts", 500 * time.Millisecond, 40, false},
		{"full-mid-transfer", 1100 * time.Millisecond, 40, false},
		{"full-with-all-in-flight", 1030 * time.Millisecond, 20, false},
		{"full-before-puts/old-peer", 500 * time.Millisecond, 40, true},
		{"full-mid-transfer/old-peer", 1100 * time.Millisecond, 40, true},
		{"full-with-all-in-flight/old-peer", 1030 * time.Millisecond, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const freeAt = 6 * time.Second
			var world *World
			res, err := Run(Options{Seed: 1, Sites: 2, Edges: [][2]int{{0, 1}}, Bandwidth: 500_000, Delay: 20 * time.Millisecond, HealAt: freeAt,
				Scenario: func(w *World) {
					world = w
					if tc.old {
						w.OldPeer(0)
					}
					w.Fill(1, tc.fullAt, freeAt-tc.fullAt)
					w.After(time.Second, func() { w.PutSized(0, tc.chunks, 3000) })
				}})
			if err != nil {
				t.Fatal(err)
			}
			st := world.LinkStats(0, 0)
			t.Logf("converged %s after the disk had room again; sender: %d full and %d room signals heard, %d entries offered again at once",
				res.Converged, st.PeerFullSignals, st.PeerRoomSignals, st.Resumed)
			if tc.old {
				if st.PeerFullSignals+st.PeerRoomSignals != 0 {
					t.Fatalf("an old peer sent space messages: %+v", st)
				}
				return
			}
			if st.PeerFullSignals == 0 || st.PeerRoomSignals == 0 {
				t.Fatalf("sender stats %+v: want full and room signals heard", st)
			}
			if tc.fullAt > time.Second && st.Resumed == 0 {
				t.Fatalf("sender stats %+v: the stores that failed mid-transfer were not offered again on the signal", st)
			}
			if bound := tm.AckTimeout / 10; res.Converged >= bound {
				t.Errorf("converged %s after room came back, want within %s (resumed by the signal, not a timeout)", res.Converged, bound)
			}
		})
	}
}
