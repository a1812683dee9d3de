package heal

import (
	"testing"
	"time"
)

func TestChunkFate(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	grace := 7 * 24 * time.Hour
	cases := []struct {
		name   string
		freed  bool
		marked bool
		since  time.Time
		want   fate
	}{
		{"its versions were collected now", true, false, time.Time{}, collectNow},
		{"its versions were collected, and it was marked before", true, true, now, collectNow},
		{"first seen unreferenced", false, false, time.Time{}, markOrphan},
		{"unreferenced for a day", false, true, now.Add(-24 * time.Hour), waitGrace},
		{"unreferenced just under the grace period", false, true, now.Add(-grace + time.Millisecond), waitGrace},
		{"unreferenced for exactly the grace period", false, true, now.Add(-grace), collectNow},
		{"unreferenced for a month", false, true, now.Add(-30 * 24 * time.Hour), collectNow},
		{"marked in the future (a clock stepped back)", false, true, now.Add(time.Hour), waitGrace},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := chunkFate(c.freed, c.marked, c.since, now, grace); got != c.want {
				t.Fatalf("chunkFate = %d, want %d", got, c.want)
			}
		})
	}
}
