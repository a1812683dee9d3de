package testlab_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/testlab"
	"github.com/skyfed/skyfed/testlab/seaweed"
)

// TestBucketSiteKilledAndRebuilt: three site processes in a ring, s0's
// payload in a bucket of a real SeaweedFS cluster, s1 and s2 on local
// packs. Puts at each converge. s0's process is SIGKILLed and its data
// dir deleted; its key and skyfed.toml come back from the operator's
// backup, `skyfed site rebuild` makes its index from the bucket, and it
// starts again (at once: the lease's holder was a process of this host
// and data dir that is gone; else after store_lease, 6s here). It
// serves every object; its links catch up with no chunk crossing them
// and other traffic under 1 % of what it stores; a later put at s2
// reaches it.
func TestBucketSiteKilledAndRebuilt(t *testing.T) {
	labNoLeaks(t)
	c, err := seaweed.Start(t.Context(), seaweed.Options{Binary: seaweed.BinaryForTest(t), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // after the federation's (cleanups run last first)
	if err := c.CreateBucket(t.Context(), "lab"); err != nil {
		t.Fatal(err)
	}
	store := fmt.Sprintf("s3://lab/s0?endpoint=%s&region=%s", c.Endpoint, c.Region)
	f := testlab.NewProcessFederation(t, testlab.FedOptions{N: 3, Topology: "ring", ChunkSize: 256 << 10,
		Edit: func(i int, cfg *site.Config) {
			if i == 0 {
				cfg.Store, cfg.StoreAccessKey, cfg.StoreSecretKey, cfg.StoreLease = store, c.AccessKey, c.SecretKey, "6s"
			}
		}})
	var objects []testlab.Object
	for i := range 6 {
		o, err := f.PutRandom(i%3, fmt.Sprintf("frames/%d.fits", i), int64(2<<20+i*1000), uint64(70+i))
		if err != nil {
			t.Fatal(err)
		}
		objects = append(objects, o)
	}
	mustConverge(t, f)
	st, err := f.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Store.Kind != "s3" {
		t.Fatalf("s0's store is %q, not the bucket", st.Store.Kind)
	}

	dir := f.Dir(0)
	if err := f.Kill(0); err != nil {
		t.Fatal(err)
	}
	backup := map[string][]byte{}
	for _, name := range []string{site.KeyFile, site.ConfigFile} {
		if backup[name], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for name, b := range backup {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(f.Binary(), "site", "rebuild", "--dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rebuilt "+dir) || !strings.Contains(string(out), fmt.Sprintf(", %d versions;", len(objects))) {
		t.Fatalf("skyfed site rebuild: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	// The killed node's lease is taken over at once, or runs out within store_lease.
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f.Start(0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("start s0 after its rebuild: %v", err)
		}
		time.Sleep(time.Second)
	}
	for _, o := range objects {
		resp, err := http.Get(f.URL(0) + "/o/" + o.Name)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || sha256.Sum256(body) != o.SHA256 {
			t.Fatalf("rebuilt s0: GET %s: %d, %d bytes, %v", o.Name, resp.StatusCode, len(body), err)
		}
	}
	var links []forward.LinkStatus
	waitFor(t, "s0's links up and reconciled in sync", func() bool {
		if links, err = f.Links(0); err != nil || len(links) != 2 {
			return false
		}
		for _, l := range links {
			if l.State != forward.StateUp || l.InSync == nil || !*l.InSync {
				return false
			}
		}
		return true
	})
	st, err = f.Status(0)
	if err != nil {
		t.Fatal(err)
	}
	var wire, chunks int64
	for _, l := range links {
		wire += l.SentWireBytes + l.ReceivedWireBytes
		chunks += l.SentChunks + l.ReceivedChunks
	}
	t.Logf("s0 after its rebuild: %d chunks and %d wire bytes over its links until in sync, for %d bytes stored (%.3f %%)",
		chunks, wire, st.StoredBytes, 100*float64(wire)/float64(st.StoredBytes))
	if chunks != 0 {
		t.Errorf("%d chunks crossed s0's links after its rebuild, want none", chunks)
	}
	if float64(wire) > 0.01*float64(st.StoredBytes) {
		t.Errorf("s0's links carried %d bytes catching up, more than 1 %% of the %d it stores", wire, st.StoredBytes)
	}
	later, err := f.PutRandom(2, "frames/later.fits", 700<<10, 99)
	if err != nil {
		t.Fatal(err)
	}
	mustConverge(t, f)
	resp, err := http.Get(f.URL(0) + "/o/" + later.Name)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("s0 lacks the later put: %d", resp.StatusCode)
	}
}
