package bench

import (
	"context"
	"strings"
	"testing"
)

func TestReconcileBenchSmall(t *testing.T) {
	res, err := RunReconcile(context.Background(), ReconcileConfig{Items: 20000, Seed: 3, Diffs: []int{0, 1, 1000}, Trials: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 4 {
		t.Fatalf("%d rows, want 4", len(res.Rows))
	}
	for _, row := range res.Rows {
		if row.Sent[0]+row.Sent[1] != row.D {
			t.Errorf("d=%d %s: %d+%d items sent", row.D, row.Layout, row.Sent[0], row.Sent[1])
		}
		if row.D == 0 && (row.TotalRTs != 1 || row.Bytes() > reconGoalSyncBytes) {
			t.Errorf("in sync: %d round trips, %d bytes", row.TotalRTs, row.Bytes())
		}
		if row.D == 1000 && row.FollowBytes < 32*1000 {
			t.Errorf("naming 1000 IDs counted as %d bytes", row.FollowBytes)
		}
	}
	if res.Trials.N != 3 {
		t.Errorf("%d trials", res.Trials.N)
	}
	var sb strings.Builder
	if err := res.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"skyfed bench reconcile: 20000 vs 20000 IDs", "outage", "split", "Toggle", "d=1000 split over 3 more seeds", "Rateless IBLT"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, sb.String())
		}
	}
}
