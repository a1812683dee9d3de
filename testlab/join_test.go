package testlab_test

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/skyfed/skyfed/testlab"
)

// TestNewSiteJoins links a new site by one link to a federation that
// already holds many versions of 1 MiB and more: it converges, the
// bytes it receives on the wire (control included) are within 2 % of
// the stored bytes it lacks, and no chunk crosses into it twice, with
// the log's catch-up and the reconciliation at link-up running together.
// SKYFED_JOIN_VERSIONS sets the versions (default 120; the goal
// run is 10000).
func TestNewSiteJoins(t *testing.T) {
	versions := 120
	if v, err := strconv.Atoi(os.Getenv("SKYFED_JOIN_VERSIONS")); err == nil && v > 0 {
		versions = v
	}
	timeout := 2*time.Minute + time.Duration(versions)*100*time.Millisecond
	opts := testlab.FedOptions{N: 2, ChunkSize: 1 << 20}
	if path := os.Getenv("SKYFED_JOIN_LOG"); path != "" {
		lf, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer lf.Close()
		opts.Logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f, err := testlab.StartFederation(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range versions {
		// 1 MiB and more: one or two chunks, the second of any size.
		size := int64(1<<20 + (i*7919)%(1<<20))
		if _, err := f.PutRandom(0, fmt.Sprintf("archive/%05d.fits", i), size, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	err = testlab.PollUntil(timeout, func() error {
		if got := f.Site(1).Chunks().Stats().Chunks; got < f.Site(0).Chunks().Stats().Chunks {
			time.Sleep(time.Second)
			return fmt.Errorf("s1 holds %d chunks", got)
		}
		return nil
	})
	if err == nil {
		err = f.WaitConverged(timeout)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d versions put and replicated in %s", versions, time.Since(start).Round(time.Millisecond))
	holder := f.Site(1).Chunks().Stats()
	var manifestBytes int64
	for _, o := range f.Puts() {
		enc, err := f.Site(1).Objects().ManifestBytes(o.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		manifestBytes += int64(len(enc))
	}
	lacks := holder.StoredBytes + manifestBytes

	start = time.Now()
	k, err := f.AddSite(1)
	if err != nil {
		t.Fatal(err)
	}
	// Counts first, once a second: a full convergence check reads every
	// name at every site, which at 10,000 versions would cost more CPU
	// than the transfer it waits for.
	err = testlab.PollUntil(timeout, func() error {
		got := f.Site(k).Chunks().Stats().Chunks
		if v := f.Site(k).Objects().Versions(); got < holder.Chunks || v < int64(versions) {
			time.Sleep(time.Second)
			return fmt.Errorf("the new site holds %d of %d chunks, %d of %d versions", got, holder.Chunks, v, versions)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if err := f.WaitConverged(timeout); err != nil {
		t.Fatal(err)
	}
	links, err := f.Links(k)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 {
		t.Fatalf("the new site has %d links, want 1", len(links))
	}
	l := links[0]
	ratio := float64(l.ReceivedWireBytes) / float64(lacks)
	t.Logf("new site: %d versions, %d chunks, %d stored bytes lacked; received %d wire bytes (%.4f×) and sent %d in %s; %d chunks and %d manifests received, %d duplicates (%d chunks)",
		versions, holder.Chunks, lacks, l.ReceivedWireBytes, ratio, l.SentWireBytes, took.Round(time.Millisecond), l.ReceivedChunks, l.ReceivedManifests, l.Duplicates, l.DuplicateChunks)
	if ratio > 1.02 {
		t.Errorf("received %d wire bytes for %d stored bytes lacked: %.4f×, want ≤ 1.02×", l.ReceivedWireBytes, lacks, ratio)
	}
	if l.Duplicates != 0 || l.ReceivedChunks != holder.Chunks {
		t.Errorf("received %d chunks with %d duplicates; want each of the %d chunks once", l.ReceivedChunks, l.Duplicates, holder.Chunks)
	}
}
