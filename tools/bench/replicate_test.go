package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestReplicateSmall runs the replication bench on a small federation and
// checks the table's structure and the counters' invariants, not times.
func TestReplicateSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("replication bench in -short mode")
	}
	res, err := RunReplicate(context.Background(), ReplicateConfig{
		Topologies: []string{"ring"}, Sites: 4, Size: 3 << 20, Dir: t.TempDir(), RateLink: "8MB/s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("rows %d, want offer and flood", len(res.Rows))
	}
	offer, flood := res.Rows[0], res.Rows[1]
	if offer.UniqueChunks == 0 || offer.Receipts != offer.UniqueChunks*3 {
		t.Errorf("offer: %d receipts for %d unique chunks on 4 sites, want exactly 3 per chunk", offer.Receipts, offer.UniqueChunks)
	}
	if flood.Receipts <= flood.UniqueChunks*3 {
		t.Errorf("flood: %d receipts for %d chunks; a ring floods duplicates", flood.Receipts, flood.UniqueChunks)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"transfers/chunk/site", "ring", "offer", "flood", "rate-limited link"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	t.Log("\n" + buf.String())
}
