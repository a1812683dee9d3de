package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/skyfed/skyfed/chunk/bucket"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/testlab/seaweed"
)

// The package's bucket tests share one real SeaweedFS cluster (it
// takes ~17 s to start); TestMain closes it. Each test uses its own
// bucket.
var (
	seaweedOnce    sync.Once
	seaweedCluster *seaweed.Cluster
	seaweedErr     error
	seaweedBuckets atomic.Int64
)

// startSeaweed returns the shared cluster and a new bucket in it, or
// skips without a weed binary (fails instead under CI_REQUIRE_SEAWEED=1,
// which .ci/run sets after building it).
func startSeaweed(t *testing.T) (*seaweed.Cluster, string) {
	t.Helper()
	bin := seaweed.BinaryForTest(t)
	seaweedOnce.Do(func() { seaweedCluster, seaweedErr = seaweed.Start(context.Background(), seaweed.Options{Binary: bin}) })
	if seaweedErr != nil {
		t.Fatal(seaweedErr)
	}
	name := fmt.Sprintf("site-test-%d", seaweedBuckets.Add(1))
	if err := seaweedCluster.CreateBucket(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return seaweedCluster, name
}

// initBucketSite creates site id whose store is the bucket, under
// sites/ID, and returns its dir and store URL.
func initBucketSite(t *testing.T, c *seaweed.Cluster, bucketName, id string) (dir, store string) {
	t.Helper()
	dir = t.TempDir()
	store = fmt.Sprintf("s3://%s/sites/%s?endpoint=%s&region=%s", bucketName, id, c.Endpoint, c.Region)
	if _, err := Init(dir, Config{ID: id, Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: freeAddr(t), NATSTLS: TLSOn, ChunkSize: 64 << 10,
		Store: store, StoreAccessKey: c.AccessKey, StoreSecretKey: c.SecretKey}); err != nil {
		t.Fatal(err)
	}
	return dir, store
}

func closeSeaweed() {
	if seaweedCluster != nil {
		if err := seaweedCluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close the SeaweedFS cluster:", err)
		}
	}
}

// TestSiteOnBucket: a site whose payload lives in a SeaweedFS bucket
// takes puts, replicates both ways with a site on local packs, serves
// reads from the bucket after a restart, and reports the bucket in its
// status and metrics, never its secret.
func TestSiteOnBucket(t *testing.T) {
	c, bucketName := startSeaweed(t)
	dir, store := initBucketSite(t, c, bucketName, "alpha")
	a := runSite(t, dir)
	b := startPeerSite(t, "beta")
	dataA, dataB := replicateBothWays(t, a, b, seeded(21, 700<<10), seeded(22, 300<<10))
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

	// The page shows the bucket: a card with its latency, requests and errors.
	chromium := needTool(t, "chromium", "chromium")
	dom := string(runChromium(t, chromium, "--virtual-time-budget=2000", "--window-size=1600,1200", "--dump-dom", a.base+"/"))
	if !regexp.MustCompile(`data-stat="bucket"[^>]*>.*?Bucket.*? ms.*?\d+ requests, 0 errors`).MatchString(dom) {
		t.Errorf("the page has no bucket card with latency, requests and errors")
	}

	// A second node for the same site (its key and config copied) is
	// refused while the first holds the bucket's lease.
	twin := t.TempDir()
	for _, f := range []string{KeyFile, ConfigFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(twin, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := Open(twin, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); !errors.Is(err, bucket.ErrLeased) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a second node on the bucket: %v, want ErrLeased", err)
	} else {
		t.Logf("second node: %v", err)
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

// TestBucketSiteRebuild: alpha keeps its payload in a SeaweedFS bucket,
// beta and gamma local packs, in a ring. After puts at each and
// convergence, alpha's node goes and its data dir with it; the operator
// restores its key and skyfed.toml, runs Rebuild, and starts it again.
// Alpha serves every object from the bucket, its links catch up with no
// chunk crossing them and little else (at most 1 % of the bytes it
// stores, until reconciliation says in sync), and a later put at gamma
// still reaches it.
func TestBucketSiteRebuild(t *testing.T) {
	c, bucketName := startSeaweed(t)
	dir, _ := initBucketSite(t, c, bucketName, "alpha")
	a, b, g := runSite(t, dir), startPeerSite(t, "beta"), startPeerSite(t, "gamma")
	trustAll(t, a, b, g)
	linkSites(t, a, b, "", "")
	linkSites(t, b, g, "", "")
	linkSites(t, g, a, "", "")
	want := map[string][]byte{}
	for i, s := range []*testSite{a, b, g, a} {
		name := fmt.Sprintf("gloria.eu/night/%d.fits", i)
		want[name] = seeded(uint64(30+i), 3<<20+i*1000)
		if resp, body := s.do(t, "PUT", "/o/"+name, bytes.NewReader(want[name])); resp.StatusCode != 201 {
			t.Fatal(string(body))
		}
	}
	for _, s := range []*testSite{a, b, g} {
		for name, data := range want {
			waitObject(t, s, name, data)
		}
	}
	stored := a.Chunks().Stats().StoredBytes

	// The node goes; the operator keeps the key and skyfed.toml.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	backup := map[string][]byte{}
	for _, f := range []string{KeyFile, ConfigFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		backup[f] = b
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for f, b := range backup {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Started before the rebuild, the site refuses: it would serve nothing.
	if s, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); !errors.Is(err, ErrNeedsRebuild) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a bucket site with no index over a bucket with packs: %v, want ErrNeedsRebuild", err)
	}
	rep, err := Rebuild(t.Context(), dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rebuild: %+v", rep)
	if rep.Manifests != len(want) || rep.Chunks == 0 {
		t.Fatalf("rebuild found %d versions and %d chunks, want %d versions", rep.Manifests, rep.Chunks, len(want))
	}
	if _, err := Rebuild(t.Context(), dir, nil, nil); !errors.Is(err, ErrIndexExists) {
		t.Fatalf("a second rebuild over the new index: %v, want ErrIndexExists", err)
	}

	a = runSite(t, dir)
	for name, data := range want {
		resp, got := a.do(t, "GET", "/o/"+name, nil)
		if resp.StatusCode != 200 || !bytes.Equal(got, data) {
			t.Fatalf("rebuilt alpha: GET %s: %d, %d bytes", name, resp.StatusCode, len(got))
		}
	}
	waitFor(t, "alpha's links up and reconciled in sync", func() bool {
		ls := a.node.Links()
		if len(ls) != 2 {
			return false
		}
		for _, l := range ls {
			if l.State != forward.StateUp || l.InSync == nil || !*l.InSync {
				return false
			}
		}
		return true
	})
	var wire, chunks int64
	for _, l := range a.node.Links() {
		wire += l.SentWireBytes + l.ReceivedWireBytes
		chunks += l.SentChunks + l.ReceivedChunks
	}
	t.Logf("catching up after the rebuild: %d chunks and %d wire bytes over alpha's links, for %d bytes stored (%.3f %%)",
		chunks, wire, stored, 100*float64(wire)/float64(stored))
	if chunks != 0 {
		t.Errorf("%d chunks crossed alpha's links after the rebuild, want none", chunks)
	}
	if float64(wire) > 0.01*float64(stored) {
		t.Errorf("%d bytes crossed alpha's links catching up, more than 1 %% of the %d it stores", wire, stored)
	}
	later := seeded(40, 500<<10)
	if resp, body := g.do(t, "PUT", "/o/gloria.eu/night/later.fits", bytes.NewReader(later)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, a, "gloria.eu/night/later.fits", later)
}

// TestBucketSiteReadsThrough: a name put at alpha behind a bulk backlog
// on alpha's slowed link to beta is read at gamma, whose payload lives in
// a bucket, through a lookup and fetch, while the bulk is still queued;
// the chunks it fetched are then in gamma's bucket.
func TestBucketSiteReadsThrough(t *testing.T) {
	c, bucketName := startSeaweed(t)
	dir, _ := initBucketSite(t, c, bucketName, "gamma")
	g := runSite(t, dir)
	small := readThroughBehindBacklog(t, startPeerSite(t, "alpha"), startPeerSite(t, "beta"), g)
	waitObject(t, g, "gloria.eu/late.fits", small)
	if st := g.storeStatus(); st.Puts == 0 {
		t.Errorf("the bucket site put nothing in its bucket")
	}
}
