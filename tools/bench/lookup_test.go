package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestLookupSmall runs the lookup bench on a small federation and checks
// the table's rows and the samples' accounting, never the times.
func TestLookupSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("lookup bench in -short mode")
	}
	res, err := RunLookup(context.Background(), LookupConfig{Sites: 4, Topology: "ring-chords", Latency: 2 * time.Millisecond,
		Lookups: 20, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]LookupRow{}
	gets := 0
	for _, r := range res.Rows {
		if r.Detail {
			continue
		}
		rows[r.Name] = r
		if r.Name != RowFreshLookup && r.Name != RowLocalLookup {
			gets += r.Samples
		}
	}
	for _, name := range []string{RowFreshLookup, RowLocalLookup} {
		if r := rows[name]; r.Samples != 20 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("row %q: %+v, want 20 samples with p50 ≤ p99", name, r)
		}
	}
	// Ring 0–1–2–3–0 with the chord 0–2: sites 0 and 2 see all others
	// at 1 hop, sites 1 and 3 at up to 2.
	if r := rows[RowFreshLookup]; r.MinHops != 1 || r.MaxHops != 2 || r.RatioP50 <= 0 {
		t.Errorf("fresh lookups on a ring of 4 with a chord: hops %d–%d, ratio %v; want 1–2 (the sites' eccentricities)", r.MinHops, r.MaxHops, r.RatioP50)
	}
	if gets != 20 {
		t.Errorf("gets after a put: %d samples over the rows, want 20", gets)
	}
	if n := rows[RowReadThrough].Samples + rows[RowFetchOnly].Samples; res.Fetched < int64(n) {
		t.Errorf("%d chunks fetched for %d read-through samples", res.Fetched, n)
	}
	if res.Incomplete != 0 {
		t.Errorf("%d lookups ended at their deadline with every link up", res.Incomplete)
	}
	if r := res.Rows[1]; !r.Detail || r.MinHops != 1 || r.Samples != 10 {
		t.Errorf("second row %+v, want the 10 fresh lookups at sites 0 and 2 (1 hop)", r)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{RowFreshLookup, RowLocalLookup, "hops×RTT", "p50÷bound", "ring-chords", "diameter 2"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	t.Log("\n" + buf.String())
}

func TestClassifyAndPercentile(t *testing.T) {
	for _, tc := range []struct {
		indexed, fetched bool
		want             string
		hops             int
	}{
		{false, true, RowReadThrough, 5},
		{true, true, RowFetchOnly, 2},
		{false, false, RowReplicatedFirst, 3},
		{true, false, RowLocalLookup, 0},
	} {
		if got, hops := classify(tc.indexed, tc.fetched, 3, 2); got != tc.want || hops != tc.hops {
			t.Errorf("classify(indexed %v, fetched %v) = %q, %d; want %q, %d", tc.indexed, tc.fetched, got, hops, tc.want, tc.hops)
		}
	}
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p50, p99 := percentile(sorted, 50), percentile(sorted, 99); p50 != 5 || p99 != 10 {
		t.Errorf("percentiles of 1..10: p50 %v p99 %v, want 5 and 10", p50, p99)
	}
	if percentile([]float64{}, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
	d := graphDistances(4, [][2]int{{0, 1}, {1, 2}, {2, 3}})
	if d[0][3] != 3 || d[3][0] != 3 || d[1][2] != 1 {
		t.Errorf("distances on a line of 4: %v", d)
	}
}
