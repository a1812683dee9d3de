package testlab_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/testlab"
)

// TestFullDiskPausesAndResumes runs two site processes, s0 → s1, with
// s1's data dir on a 64 MiB tmpfs that the test fills to the last byte.
// s1 refuses puts (507; the CLI exits 1 with the hint) and serves
// reads; it restarts on the full disk and serves again; s0's backlog
// towards it pauses with reason "peer full"; when space is freed, s0
// resumes on s1's "room again" signal, which its counters show. The
// time from freeing space to convergence is logged, not asserted.
func TestFullDiskPausesAndResumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for the full disk (run as root; the chaos runs skip it the same way)")
	}
	f := reconFed(t, testlab.FedOptions{N: 2, Topology: "line"})
	s1 := f.ID(1)
	before := []byte(strings.Repeat("observed before the disk filled\n", 20000))
	if _, err := f.Put(0, testlab.Domain+"/full/before.fits", bytes.NewReader(before)); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Move s1's data dir onto a small tmpfs, with a reserve of 4 MiB.
	dir := f.Dir(1)
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	mountSmallDisk(t, dir, "64m")
	if err := site.EditConfig(dir, func(c *site.Config) error { c.DiskReserve = "4MiB"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(1); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	fill := filepath.Join(dir, "fill.bin")
	fillDisk(t, fill)
	waitFor(t, "s1 reports its disk full", func() bool { return metric(t, f.URL(1), "skyfed_disk_full", "") == 1 })

	// Puts are refused before they write: 507 over HTTP, exit 1 and the
	// hint from the CLI.
	req, _ := http.NewRequest(http.MethodPut, f.URL(1)+"/o/"+testlab.Domain+"/full/refused.fits", strings.NewReader("no room"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage || !bytes.Contains(body, []byte("disk_reserve")) {
		t.Fatalf("put on a full disk: %d %s; want 507 naming disk_reserve", resp.StatusCode, body)
	}
	src := filepath.Join(t.TempDir(), "small.fits")
	if err := os.WriteFile(src, []byte("no room"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(procBin(t), "put", "--site", f.URL(1), testlab.Domain+"/full/cli.fits", src).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "disk_reserve") {
		t.Fatalf("skyfed put on a full disk: %v\n%s\nwant exit 1 with the hint", err, out)
	}
	readBack(t, f.URL(1), testlab.Domain+"/full/before.fits", before)

	// What s0 gets now waits: s1 says it is full.
	for i := range 6 {
		if _, err := f.PutRandom(0, fmt.Sprintf("%s/full/after-%d.fits", testlab.Domain, i), 300<<10, uint64(700+i)); err != nil {
			t.Fatal(err)
		}
	}
	waitPeerFull(t, f, s1)

	// A restart on the full disk: s1 opens, serves reads, and tells s0 again.
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(1); err != nil {
		t.Fatalf("restart on a full disk: %v", err)
	}
	readBack(t, f.URL(1), testlab.Domain+"/full/before.fits", before)
	if err := f.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitPeerFull(t, f, s1)
	roomBefore := metric(t, f.URL(0), "skyfed_link_peer_room_signals_total", s1)

	// Space comes back: s1 says so, and s0 offers at once.
	freed := time.Now()
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitConverged(120 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(freed)
	room := metric(t, f.URL(0), "skyfed_link_peer_room_signals_total", s1)
	full := metric(t, f.URL(0), "skyfed_link_peer_full_signals_total", s1)
	resumed := metric(t, f.URL(0), "skyfed_link_resumed_total", s1)
	sent := metric(t, f.URL(1), "skyfed_link_space_signals_sent_total", f.ID(0))
	t.Logf("backlog drained %s after space was freed: s0 heard %v full and %v room signals from s1 (%v entries offered again at once); s1 sent %v (this run)",
		took.Round(time.Millisecond), full, room, resumed, sent)
	if room <= roomBefore || full < 2 || sent < 2 {
		t.Fatalf("s0 heard %v room signals (%v before space was freed) and %v full ones, s1 sent %v: the resume did not come from s1's signal", room, roomBefore, full, sent)
	}
	for _, l := range mustLinks(t, f, 0) {
		if l.Peer == s1 && l.Reason == forward.ReasonPeerFull {
			t.Fatalf("link to %s still shows %q after space came back", s1, l.Reason)
		}
	}
}

// mountSmallDisk puts a tmpfs of size at dir, keeping dir's contents
// (but not a ballast made for the bigger disk), and unmounts it when the
// test ends. It skips the test when mounting is not possible here.
func mountSmallDisk(t *testing.T, dir, size string) {
	t.Helper()
	keep := filepath.Join(t.TempDir(), "keep")
	if out, err := exec.Command("cp", "-a", dir, keep).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", dir, err, out)
	}
	os.Remove(filepath.Join(keep, site.BallastFile))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for the full disk (%v: %s); skipping", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount %s: %v\n%s", dir, err, out)
		}
	})
	if out, err := exec.Command("cp", "-a", keep+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy back %s: %v\n%s", dir, err, out)
	}
}

// fillDisk writes path until the disk has no byte left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 64<<10)
	for len(buf) > 0 {
		if _, err := fh.Write(buf); err != nil {
			buf = buf[:len(buf)/2] // the last blocks, smaller
		}
	}
}

func readBack(t *testing.T, base, name string, want []byte) {
	t.Helper()
	resp, err := http.Get(base + "/o/" + name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("read %s on a full disk: %d, %d bytes, %v; want 200 and the bytes put", name, resp.StatusCode, len(got), err)
	}
}

func mustLinks(t *testing.T, f *testlab.ProcessFederation, i int) []forward.LinkStatus {
	t.Helper()
	ls, err := f.Links(i)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// waitPeerFull waits until s0's link to peer shows "peer full" with a backlog.
func waitPeerFull(t *testing.T, f *testlab.ProcessFederation, peer string) {
	t.Helper()
	waitFor(t, "s0's link to "+peer+" shows \"peer full\" with a backlog", func() bool {
		for _, l := range mustLinks(t, f, 0) {
			if l.Peer == peer && l.State == forward.StateUp && l.Reason == forward.ReasonPeerFull && l.Backlog > 0 {
				return true
			}
		}
		return false
	})
}

// metric returns the value of a site's metric, summed over the series
// whose peer label is peer ("" for a metric without labels).
func metric(t *testing.T, base, name, peer string) float64 {
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
	var sum float64
	for _, m := range families[name].GetMetric() {
		p := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "peer" {
				p = lp.GetValue()
			}
		}
		if p != peer {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}
