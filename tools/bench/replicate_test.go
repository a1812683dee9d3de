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

// TestMirrorTree checks the JetStream mirror tree: parents first, and
// cycles refused as leafnodes refuse them.
func TestMirrorTree(t *testing.T) {
	star := [][2]int{{1, 0}, {2, 0}, {3, 0}}
	parent, order, err := mirrorTree(4, star)
	if err != nil || order[0] != 0 || parent[0] != -1 || parent[1] != 0 || parent[3] != 0 {
		t.Errorf("star: parent %v order %v err %v", parent, order, err)
	}
	line := [][2]int{{0, 1}, {1, 2}, {2, 3}}
	if parent, _, err := mirrorTree(4, line); err != nil || parent[3] != 2 || parent[2] != 1 {
		t.Errorf("line: parent %v err %v", parent, err)
	}
	ring := append(line, [2]int{3, 0})
	if _, _, err := mirrorTree(4, ring); err == nil {
		t.Error("a ring was taken for a tree")
	}
	if _, _, err := mirrorTree(4, [][2]int{{0, 1}, {0, 1}, {2, 3}}); err == nil {
		t.Error("links that leave sites out were taken for a tree")
	}
}

// TestReplicateJetStreamSmall runs the convergence comparison on a tiny
// federation and checks what the table must hold, not times: every
// system converged, skyfed's wire bytes are at most JetStream's without
// compression (skyfed compresses; the FITS-like frames compress), and
// JetStream without compression carries the data once per mirror.
func TestReplicateJetStreamSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("replication bench in -short mode")
	}
	res, err := RunReplicate(context.Background(), ReplicateConfig{
		Topologies: []string{"line", "ring"}, Sites: 3, Size: 3 << 20, Runs: 1, Dir: t.TempDir(), Baseline: BaselineJetStream,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Compare
	// Per data set: skyfed line and ring, then 4 JetStream variants on line.
	if c == nil || len(c.Data) != 2 || len(c.Rows) != 2*(2+len(jetStreamVariants)) {
		t.Fatalf("comparison %+v", c)
	}
	for _, d := range c.Data {
		sky, ok1 := c.find(d.Name, "line", nil)
		off, ok2 := c.find(d.Name, "line", &jetStreamVariants[0])
		if !ok1 || !ok2 {
			t.Fatalf("%s: rows missing", d.Name)
		}
		if sky.Converge <= 0 || off.Converge <= 0 || sky.Wire <= 0 || sky.CPU <= 0 || off.CPU <= 0 {
			t.Errorf("%s: skyfed %+v, JetStream %+v", d.Name, sky, off)
		}
		if raw := 2 * d.Bytes; off.Wire < raw {
			t.Errorf("%s: JetStream without compression carried %d bytes, less than the data twice (%d)", d.Name, off.Wire, raw)
		}
		if d.Name == "fits" && sky.Wire >= off.Wire {
			t.Errorf("fits: skyfed carried %d bytes, JetStream without compression %d", sky.Wire, off.Wire)
		}
	}
	if g := c.Goals(); len(g) != 4 { // line and ring, per data set
		t.Errorf("goals %+v", g)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"JetStream s2_fast, default sync", "JetStream off, sync always", "goals", "random"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	t.Log("\n" + buf.String())
}
