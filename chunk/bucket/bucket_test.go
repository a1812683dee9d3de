package bucket

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/chunk/packstest"
	"github.com/skyfed/skyfed/testlab/seaweed"
)

// The package's tests share one real SeaweedFS cluster (master, three
// volume servers, filer, S3 gateway with credentials): it takes ~17 s
// to start. TestMain closes it.
var (
	clusterOnce sync.Once
	cluster     *seaweed.Cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		if err := cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close the SeaweedFS cluster:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startCluster returns the shared cluster with a bucket "skyfed", or
// skips when there is no weed binary (fails instead under
// CI_REQUIRE_SEAWEED=1, as .ci/run sets after building it).
func startCluster(t *testing.T) *seaweed.Cluster {
	t.Helper()
	bin := seaweed.BinaryForTest(t)
	clusterOnce.Do(func() { cluster, clusterErr = startSharedCluster(bin) })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return cluster
}

func startSharedCluster(bin string) (*seaweed.Cluster, error) {
	ctx := context.Background()
	c, err := seaweed.Start(ctx, seaweed.Options{Binary: bin}) // its own temp dir, removed by Close
	if err != nil {
		return nil, err
	}
	if err := c.CreateBucket(ctx, "skyfed"); err != nil {
		c.Close()
		return nil, err
	}
	// The bucket's first write grows its volumes (seconds): done here,
	// so that the tests' short leases are not spent on it.
	if _, err := c.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("skyfed"), Key: aws.String("warm-up"),
		Body: strings.NewReader("warm")}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func clusterConfig(c *seaweed.Cluster, prefix, spool string) Config {
	return Config{Bucket: "skyfed", Prefix: prefix, Endpoint: c.Endpoint, Region: c.Region,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey, SpoolDir: spool}
}

func randomPrefix(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "sites/" + hex.EncodeToString(b)
}

// TestBucketPacksContract runs the packs contract (chunk/packstest) on
// a bucket of a real SeaweedFS cluster, each case under its own prefix.
func TestBucketPacksContract(t *testing.T) {
	c := startCluster(t)
	open := func(t *testing.T, cfg Config) chunk.Packs {
		p, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	packstest.Run(t, func(t *testing.T) chunk.Packs { return open(t, clusterConfig(c, randomPrefix(t), t.TempDir())) },
		func(t *testing.T, p chunk.Packs) chunk.Packs {
			cfg := p.(*Packs).Config()
			cfg.SpoolDir = t.TempDir()
			return open(t, cfg)
		})
}

// TestBucketRefusesWrongCredentials: a wrong secret fails at New with
// the bucket's answer, and the secret is not in the error.
func TestBucketRefusesWrongCredentials(t *testing.T) {
	c := startCluster(t)
	cfg := clusterConfig(c, "x", t.TempDir())
	cfg.SecretKey = "not-the-secret-0123456789"
	_, err := New(context.Background(), cfg)
	if err == nil {
		t.Fatal("New with a wrong secret succeeded")
	}
	if s := err.Error(); contains(s, cfg.SecretKey) || contains(s, c.SecretKey) {
		t.Fatalf("the error shows a secret: %v", err)
	}
	t.Logf("wrong secret: %v", err)
}

func contains(s, sub string) bool { return sub != "" && strings.Contains(s, sub) }

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Config
		err  bool
	}{
		{in: "s3://archive/lapalma?endpoint=http://127.0.0.1:8333&region=eu-west-1",
			want: Config{Bucket: "archive", Prefix: "lapalma", Endpoint: "http://127.0.0.1:8333", Region: "eu-west-1"}},
		{in: "s3://archive", want: Config{Bucket: "archive"}},
		{in: "s3://archive/a/b/", want: Config{Bucket: "archive", Prefix: "a/b"}},
		{in: "s3://key:secret@archive/x", err: true},
		{in: "s3:///x", err: true},
		{in: "http://archive/x", err: true},
		{in: "s3://archive/x?endpoint=ftp://h", err: true},
		{in: "s3://archive/x?acl=public", err: true},
	} {
		got, err := ParseURL(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseURL(%q) = %+v, %v", tc.in, got, err)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadURL) {
			t.Errorf("ParseURL(%q) error %v is not ErrBadURL", tc.in, err)
		}
		if !tc.err {
			if back, err := ParseURL(got.URL()); err != nil || back != got {
				t.Errorf("URL round trip of %q: %q → %+v, %v", tc.in, got.URL(), back, err)
			}
		}
	}
}

// TestManifestLogInBucket: manifests put at once share objects (group
// commit), every one is read back once in commit order, and a
// collection recorded later is read after the manifest it removes.
func TestManifestLogInBucket(t *testing.T) {
	c := startCluster(t)
	p, err := New(t.Context(), clusterConfig(c, randomPrefix(t), t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	log := p.Manifests()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- log.Put(chunk.ID{byte(i)}, []byte(fmt.Sprintf("manifest %d", i)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	puts := p.Stats().Puts.Load()
	if err := log.Collected([]chunk.ID{{7}}); err != nil {
		t.Fatal(err)
	}
	seen := map[chunk.ID]string{}
	collectedAfter := false
	err = p.ReadManifests(t.Context(), func(e ManifestEntry) error {
		if e.Collected {
			_, collectedAfter = seen[e.ID]
			return nil
		}
		if _, dup := seen[e.ID]; dup {
			t.Errorf("manifest %x read twice", e.ID[:1])
		}
		seen[e.ID] = string(e.Encoding)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || seen[chunk.ID{3}] != "manifest 3" {
		t.Fatalf("read back %d manifests (manifest 3: %q), want %d", len(seen), seen[chunk.ID{3}], n)
	}
	if !collectedAfter {
		t.Errorf("the collection was not read after the manifest it removes")
	}
	t.Logf("%d manifests put at once in %d objects", n, puts)
	if puts >= n {
		t.Errorf("%d concurrent manifests took %d PUTs: no group commit", n, puts)
	}
}
