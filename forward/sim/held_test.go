package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
)

// TestHeldQueryReconfirms: the confirmations a site heard are lost when
// it restarts; a held query has every site that holds the version with
// all its chunks answer found and confirm it again (signed), so the
// asker counts the holders anew. A manifest no site holds is found
// nowhere and confirmed by none.
func TestHeldQueryReconfirms(t *testing.T) {
	var mid chunk.ID
	unknown := chunk.Sum([]byte("no such manifest"))
	want := []string{"s1", "s2"}
	type step struct {
		name  string
		found []string
		err   error
	}
	var steps []step
	_, err := Run(Options{Seed: 7, Sites: 3, Edges: [][2]int{{0, 1}, {1, 2}}, HealAt: 40 * time.Second,
		Scenario: func(w *World) {
			w.After(time.Second, func() { mid = w.PutSized(0, 4, 2000) })
			w.After(15*time.Second, func() {
				if got := w.Confirmed(0, mid); !slices.Equal(got, want) {
					t.Errorf("confirmations at s0 before its restart: %v, want %v", got, want)
				}
			})
			w.Crash(0, 20*time.Second, time.Second)
			w.After(25*time.Second, func() {
				if got := w.Confirmed(0, mid); len(got) != 0 {
					t.Errorf("confirmations at s0 right after its restart: %v, want none (they are volatile)", got)
				}
				w.AskHeld(0, mid, 5*time.Second, func(found []string, err error) {
					steps = append(steps, step{"held", found, err})
				})
				w.AskHeld(0, unknown, 5*time.Second, func(found []string, err error) {
					steps = append(steps, step{"unknown", found, err})
				})
			})
			w.After(32*time.Second, func() {
				if got := w.Confirmed(0, mid); !slices.Equal(got, want) {
					t.Errorf("confirmations at s0 after the held query: %v, want %v", got, want)
				}
				if got := w.Confirmed(0, unknown); len(got) != 0 {
					t.Errorf("confirmations of a manifest no site holds: %v", got)
				}
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 {
		t.Fatalf("%d held queries ended, want 2", len(steps))
	}
	for _, s := range steps {
		if s.err != nil {
			t.Errorf("%s query: %v", s.name, s.err)
		}
	}
	if s := steps[0]; s.name != "held" || !slices.Equal(s.found, want) {
		t.Errorf("held query found at %v, want %v", s.found, want)
	}
	if s := steps[1]; s.name != "unknown" || len(s.found) != 0 {
		t.Errorf("query for an unknown manifest found at %v, want nowhere", s.found)
	}
}
