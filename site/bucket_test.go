package site

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/testlab/seaweed"
)

// startSeaweed runs a real SeaweedFS cluster with a bucket "skyfed" for
// the test, or skips without a weed binary (fails instead under
// CI_REQUIRE_SEAWEED=1, which .ci/run sets after building it).
func startSeaweed(t *testing.T) *seaweed.Cluster {
	t.Helper()
	bin, err := seaweed.Binary()
	if err != nil {
		if os.Getenv("CI_REQUIRE_SEAWEED") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	c, err := seaweed.Start(t.Context(), seaweed.Options{Binary: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := c.CreateBucket(t.Context(), "skyfed"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSiteOnBucket: a site whose payload lives in a SeaweedFS bucket
// takes puts, replicates both ways with a site on local packs, serves
// reads from the bucket after a restart, and reports the bucket in its
// status and metrics, never its secret.
func TestSiteOnBucket(t *testing.T) {
	c := startSeaweed(t)
	dir := t.TempDir()
	store := fmt.Sprintf("s3://skyfed/sites/alpha?endpoint=%s&region=%s", c.Endpoint, c.Region)
	if _, err := Init(dir, Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: freeAddr(t), NATSTLS: TLSOn, ChunkSize: 64 << 10,
		Store: store, StoreAccessKey: c.AccessKey, StoreSecretKey: c.SecretKey}); err != nil {
		t.Fatal(err)
	}
	a := runSite(t, dir)
	b := startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	waitFor(t, "link up", func() bool {
		ls := a.node.Links()
		return len(ls) == 1 && ls[0].State == forward.StateUp
	})
	dataA, dataB := seeded(21, 700<<10), seeded(22, 300<<10)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/a.fits", bytes.NewReader(dataA)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	if resp, body := b.do(t, "PUT", "/o/gloria.eu/b.fits", bytes.NewReader(dataB)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/a.fits", dataA)
	waitObject(t, a, "gloria.eu/b.fits", dataB)
	if _, err := os.Stat(dir + "/packs"); err == nil {
		t.Errorf("a bucket site made a packs dir in its data dir")
	}

	resp, body := a.do(t, "GET", "/api/status", nil)
	st := decode[Status](t, body)
	if resp.StatusCode != 200 || st.Store.Kind != "s3" || st.Store.Requests == 0 || st.Store.Where != store {
		t.Errorf("status store = %+v, want s3 at %s with requests", st.Store, store)
	}
	_, metrics := a.do(t, "GET", "/metrics", nil)
	if !bytes.Contains(metrics, []byte(`skyfed_bucket_requests_total{op="put"}`)) {
		t.Errorf("metrics lack skyfed_bucket_requests_total{op=\"put\"}")
	}
	raw, _ := json.Marshal(st)
	if bytes.Contains(raw, []byte(c.SecretKey)) || bytes.Contains(metrics, []byte(c.SecretKey)) {
		t.Errorf("the bucket's secret shows in the status or metrics")
	}

	// Restarted, the site reads its chunks back from the bucket.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	a = runSite(t, dir)
	for name, want := range map[string][]byte{"gloria.eu/a.fits": dataA, "gloria.eu/b.fits": dataB} {
		resp, got := a.do(t, "GET", "/o/"+name, nil)
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Errorf("after restart, GET %s: %d, %d bytes (want %d)", name, resp.StatusCode, len(got), len(want))
		}
	}
}
