package testlab_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skyfed/skyfed/testlab"
)

// reconFed starts a process federation for the reconciliation tests.
func reconFed(t *testing.T, opts testlab.FedOptions) *testlab.ProcessFederation {
	t.Helper()
	procNoLeaks(t)
	opts.Binary = procBin(t)
	if opts.ChunkSize == 0 {
		opts.ChunkSize = 64 << 10
	}
	f, err := testlab.StartProcessFederation(opts)
	if err != nil {
		t.Fatalf("start federation: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("close federation: %v", err)
		}
	})
	if err := f.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return f
}

func reconPut(t *testing.T, f *testlab.ProcessFederation, at int, prefix string, n int, seed uint64) {
	t.Helper()
	for i := range n {
		if _, err := f.PutRandom(at, fmt.Sprintf("%s/%03d.fits", prefix, i), int64(100<<10+i*7919), seed+uint64(i)); err != nil {
			t.Fatalf("put at %s: %v", f.ID(at), err)
		}
	}
}

// diffOf asks site i for a diff with peer over HTTP.
func diffOf(t *testing.T, f *testlab.ProcessFederation, i int, peer string) map[string]any {
	t.Helper()
	resp, err := http.Get(f.URL(i) + "/api/diff/" + peer)
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("diff: decode: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("diff %s→%s: %d %v", f.ID(i), peer, resp.StatusCode, v)
	}
	return v
}

// TestRestoredFromBackupConverges restores a site from an older copy of
// its own data dir: its peers' cursors say it confirmed what it lost, so
// only reconciliation can bring that back.
func TestRestoredFromBackupConverges(t *testing.T) {
	f := reconFed(t, testlab.FedOptions{N: 3, Topology: "line"})
	reconPut(t, f, 0, "before", 4, 100)
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "s1-backup")
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", f.Dir(1), backup).CombinedOutput(); err != nil {
		t.Fatalf("back up s1: %v: %s", err, out)
	}
	if err := f.Start(1); err != nil {
		t.Fatal(err)
	}
	// Traffic flows through s1 both ways after the backup.
	reconPut(t, f, 0, "after-0", 4, 200)
	reconPut(t, f, 2, "after-2", 3, 300)
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(f.Dir(1)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", backup, f.Dir(1)).CombinedOutput(); err != nil {
		t.Fatalf("restore s1: %v: %s", err, out)
	}
	if err := f.Start(1); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitConverged(90 * time.Second); err != nil {
		t.Fatalf("after the restore: %v", err)
	}
	for _, peer := range []string{"s0", "s2"} {
		if d := diffOf(t, f, 1, peer); d["in_sync"] != true {
			t.Errorf("diff s1→%s after convergence: %v", peer, d)
		}
	}
	requireDiffered(t, f, 1)
}

// requireDiffered checks that reconciliation, not something else,
// healed site i: one of its sessions found a difference.
func requireDiffered(t *testing.T, f *testlab.ProcessFederation, i int) {
	t.Helper()
	var differ int64
	for _, m := range scrapeRecon(t, f.URL(i)) {
		differ += m.runs["differ"]
	}
	if differ == 0 {
		t.Errorf("%s: no reconciliation found a difference", f.ID(i))
	}
}

// TestLostPackComesBack deletes a pack file of a stopped site: the
// chunks it held come back from the peer.
func TestLostPackComesBack(t *testing.T) {
	f := reconFed(t, testlab.FedOptions{N: 2})
	reconPut(t, f, 0, "night", 6, 400)
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(f.Dir(1), "packs", "pack-*.dat"))
	sort.Slice(packs, func(i, j int) bool { return size(packs[i]) > size(packs[j]) })
	if len(packs) == 0 || size(packs[0]) == 0 {
		t.Fatalf("no pack with data at s1: %v", packs)
	}
	if err := os.Remove(packs[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(1); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatalf("after losing %s: %v", filepath.Base(packs[0]), err)
	}
	if d := diffOf(t, f, 0, "s1"); d["in_sync"] != true {
		t.Errorf("diff s0→s1 after convergence: %v", d)
	}
	requireDiffered(t, f, 1)
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestPeriodicReconcileCostsLittle runs five sites reconciling every
// second with nothing missing: each session stays within 1 KB on the
// wire, both ways together.
func TestPeriodicReconcileCostsLittle(t *testing.T) {
	f := reconFed(t, testlab.FedOptions{N: 5, Topology: "ring", ReconcileInterval: "1s"})
	reconPut(t, f, 0, "quiet", 3, 500)
	reconPut(t, f, 3, "quiet-3", 2, 600)
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := make([]map[string]reconMetrics, f.N())
	for i := range before {
		before[i] = scrapeRecon(t, f.URL(i))
	}
	time.Sleep(8 * time.Second)
	for i := range f.N() {
		after := scrapeRecon(t, f.URL(i))
		for peer, a := range after {
			b := before[i][peer]
			runs := a.runs["in_sync"] - b.runs["in_sync"]
			if d := a.runs["differ"] - b.runs["differ"]; d != 0 {
				t.Errorf("%s→%s: %d sessions found differences with nothing missing", f.ID(i), peer, d)
			}
			if runs < 2 {
				t.Errorf("%s→%s: %d sessions in 8 s at an interval of 1 s", f.ID(i), peer, runs)
				continue
			}
			per := (a.sent + a.received - b.sent - b.received) / runs
			t.Logf("%s↔%s: %d sessions in sync, %d bytes each both ways", f.ID(i), peer, runs, per)
			if per > 1024 {
				t.Errorf("%s↔%s: %d bytes per session, want ≤ 1 KB", f.ID(i), peer, per)
			}
		}
	}
}

type reconMetrics struct {
	runs           map[string]int64
	sent, received int64
}

// scrapeRecon reads the skyfed_reconcile_* counters of a site by peer.
func scrapeRecon(t *testing.T, base string) map[string]reconMetrics {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics of %s: %v", base, err)
	}
	out := map[string]reconMetrics{}
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			rm, ok := out[labels["peer"]]
			if !ok {
				rm = reconMetrics{runs: map[string]int64{}}
			}
			v := int64(m.GetCounter().GetValue())
			switch name {
			case "skyfed_reconcile_runs_total":
				rm.runs[labels["result"]] = v
			case "skyfed_reconcile_sent_bytes_total":
				rm.sent = v
			case "skyfed_reconcile_received_bytes_total":
				rm.received = v
			default:
				continue
			}
			out[labels["peer"]] = rm
		}
	}
	return out
}
