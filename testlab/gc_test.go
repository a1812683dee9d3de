package testlab_test

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/testlab"
)

// dirBytes sums the sizes of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// gcReport runs skyfed tools gc --json at site i.
func gcReport(t *testing.T, f *testlab.ProcessFederation, i int, args ...string) map[string]any {
	t.Helper()
	out, stderr, code := cli(t, f, i, append([]string{"tools", "gc", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("skyfed tools gc at %s: exit %d: %s", f.ID(i), code, stderr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("gc --json: %v: %s", err, out)
	}
	return rep
}

// abortedPut sends the head and part of a PUT's body, then drops the
// connection, as a killed client does.
func abortedPut(t *testing.T, base, name string, size, sent int) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /o/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", name, u.Host, size)
	if _, err := io.Copy(c, testlab.RandomStream(uint64(len(name)), int64(sent))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the site store what came before the cut
}

// TestGCReclaimsAbortedUploads kills 50 uploads mid-body: their pack
// bytes are garbage that a restart keeps and gc gives back.
func TestGCReclaimsAbortedUploads(t *testing.T) {
	f := reconFed(t, testlab.FedOptions{N: 1, Topology: "line", ChunkSize: 256 << 10})
	keep, err := f.PutRandom(0, "gc/keep.fits", 2<<20, 7)
	if err != nil {
		t.Fatal(err)
	}
	packs := filepath.Join(f.Dir(0), "packs")
	base := dirBytes(t, packs)
	for i := range 50 {
		abortedPut(t, f.URL(0), fmt.Sprintf("lab.test/gc/aborted-%02d.fits", i), 4<<20, 1<<20+i*4096)
	}
	waitUntil(t, 30*time.Second, "the aborted bodies to reach the packs", func() bool {
		return dirBytes(t, packs) >= base+40<<20
	})
	if got := statusField(t, f, 0, "chunks"); got != float64(len(keep.Chunks)) {
		t.Fatalf("status counts %v chunks; the aborted uploads stored none, want %d", got, len(keep.Chunks))
	}
	garbage := dirBytes(t, packs)
	if err := f.Stop(0); err != nil { // a restart alone reclaims nothing
		t.Fatal(err)
	}
	if err := f.Start(0); err != nil {
		t.Fatal(err)
	}
	rep := gcReport(t, f, 0)
	after := dirBytes(t, packs)
	t.Logf("packs: %d B with 50 aborted uploads, %d B after gc (reclaimed %v, live %d B)", garbage, after, rep["reclaimed_bytes"], base)
	if after > base+256<<10 {
		t.Fatalf("after gc the packs hold %d B, want about the %d B of the one object kept", after, base)
	}
	if status, sum, err := getSHA(f.URL(0), keep.Name); err != nil || status != 200 || sum != fmt.Sprintf("%x", keep.SHA256) {
		t.Fatalf("the kept object after gc: %d %v", status, err)
	}
}

// TestRmAllThenGCGivesSpaceBack puts 1,000 objects of 1 MiB, removes
// them all and collects: the data dir returns to its size before the
// puts plus at most 5 % of the bytes put. The versions collected never
// come back, though a peer that was offline meanwhile still holds them.
func TestRmAllThenGCGivesSpaceBack(t *testing.T) {
	const n, size = 1000, 1 << 20
	f := reconFed(t, testlab.FedOptions{N: 2, Topology: "line", ChunkSize: 1 << 20})
	before := dirBytes(t, f.Dir(0))
	var names []string
	for i := range n {
		o, err := f.PutRandom(0, fmt.Sprintf("rm/%04d.fits", i), size, uint64(1000+i))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, o.Name)
	}
	if err := f.WaitConverged(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	full := dirBytes(t, f.Dir(0))
	if err := f.Stop(1); err != nil { // s1 keeps every version, offline
		t.Fatal(err)
	}
	for _, name := range names {
		req, _ := http.NewRequest(http.MethodDelete, f.URL(0)+"/o/"+name, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("rm %s: %s", name, resp.Status)
		}
	}
	// Within the grace period nothing goes.
	if rep := gcReport(t, f, 0); rep["versions_collected"].(float64) != 0 {
		t.Fatalf("gc within the grace period collected %v versions", rep["versions_collected"])
	}
	time.Sleep(1100 * time.Millisecond)
	rep := gcReport(t, f, 0, "--grace", "1s")
	after := dirBytes(t, f.Dir(0))
	t.Logf("data dir: %d B before, %d B with %d×1 MiB, %d B after rm + gc (%v versions, %v chunks collected, %v B reclaimed)",
		before, full, n, after, rep["versions_collected"], rep["chunks_collected"], rep["reclaimed_bytes"])
	if rep["versions_collected"].(float64) != n {
		t.Errorf("collected %v versions, want %d", rep["versions_collected"], n)
	}
	if limit := before + n*size/20; after > int64(limit) {
		t.Fatalf("data dir %d B after rm + gc, want at most %d (before + 5%% of the bytes put)", after, limit)
	}

	// s1 comes back with every version: none of them comes back to s0.
	if err := f.Start(1); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "s0 and s1 to reconcile", func() bool {
		d := diffOf(t, f, 0, "s1")
		return d["in_sync"] == true || refusedVersions(d) > 0
	})
	versions := statusField(t, f, 0, "versions")
	if versions != n { // the tombstones
		t.Errorf("s0 holds %v versions after s1 came back, want its %d tombstones only", versions, n)
	}
	if grown := dirBytes(t, f.Dir(0)); grown > int64(before+n*size/20) {
		t.Errorf("s0's data dir grew back to %d B after s1 came back", grown)
	}
	for _, name := range names[:5] {
		resp, err := http.Get(f.URL(0) + "/o/" + name + "?versions")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Count(string(b), `"version"`) != 1 {
			t.Errorf("%s at s0 lists %s; want only its tombstone", name, b)
		}
	}
}

func refusedVersions(d map[string]any) float64 {
	r, _ := d["refused"].(map[string]any)
	v, _ := r["versions"].(float64)
	return v
}
