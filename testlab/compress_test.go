package testlab_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skyfed/skyfed/testlab"
)

// compressMetrics are a site's compression counters as /metrics shows them.
type compressMetrics struct {
	attempts       int64 // skyfed_compressed_chunks_total, every label
	compressed     int64 // outcome="compressed"
	incompressible int64 // outcome="incompressible"
	backlog        int64 // skyfed_compress_backlog
	storedBytes    int64 // skyfed_stored_bytes
	rawBytes       int64 // skyfed_raw_bytes
}

func scrapeCompress(t *testing.T, base string) compressMetrics {
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
	var out compressMetrics
	fam, ok := families["skyfed_compressed_chunks_total"]
	if !ok {
		t.Fatalf("%s/metrics has no skyfed_compressed_chunks_total", base)
	}
	for _, m := range fam.GetMetric() {
		v := int64(m.GetCounter().GetValue())
		out.attempts += v
		for _, lp := range m.GetLabel() {
			if lp.GetName() != "outcome" {
				continue
			}
			switch lp.GetValue() {
			case "compressed":
				out.compressed += v
			case "incompressible":
				out.incompressible += v
			}
		}
	}
	gauge := func(name string) int64 {
		f, ok := families[name]
		if !ok || len(f.GetMetric()) != 1 {
			t.Fatalf("%s/metrics has no %s", base, name)
		}
		return int64(f.GetMetric()[0].GetGauge().GetValue())
	}
	out.backlog = gauge("skyfed_compress_backlog")
	out.storedBytes = gauge("skyfed_stored_bytes")
	out.rawBytes = gauge("skyfed_raw_bytes")
	return out
}

// FITS frames put at the hub of a 5-site star are compressed once in
// the whole federation: compression attempts summed over every site
// equal the unique chunks put, whether the background pass or a link
// got to a chunk first, and the spokes store what they received
// compressed as it came, without compressing anything themselves.
func TestStarCompressesEachChunkOnce(t *testing.T) {
	labNoLeaks(t)
	f := testlab.NewFederation(t, testlab.FedOptions{N: 5, Topology: "star"})
	if err := f.WaitLinksUp(convergeTimeout); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var frame bytes.Buffer
		if err := testlab.WriteSyntheticFrame(&frame, uint64(40+i), 512, 512); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Put(0, fmt.Sprintf("hub/frame-%d.fits", i), &frame); err != nil {
			t.Fatal(err)
		}
	}
	// Incompressible chunks count as attempts too, once.
	if _, err := f.PutRandom(0, "hub/noise.bin", 256<<10, 7); err != nil {
		t.Fatal(err)
	}
	mustConverge(t, f)
	unique, _ := f.UniqueChunks()

	// Every chunk was shipped, so every one was tried already; wait for
	// the background pass to have looked at them all too, so a second
	// attempt would show.
	hub := f.Site(0).BaseURL()
	deadline := time.Now().Add(convergeTimeout)
	for scrapeCompress(t, hub).backlog > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the hub's background compression never caught up")
		}
		time.Sleep(20 * time.Millisecond)
	}

	var total int64
	for i, s := range f.Sites() {
		m := scrapeCompress(t, s.BaseURL())
		total += m.attempts
		t.Logf("site %d: %d attempts (%d compressed, %d incompressible), %d of %d raw bytes stored",
			i, m.attempts, m.compressed, m.incompressible, m.storedBytes, m.rawBytes)
		if i == 0 {
			if m.compressed == 0 || m.incompressible == 0 {
				t.Errorf("hub: %d compressed, %d incompressible; the data holds both kinds", m.compressed, m.incompressible)
			}
		} else if m.attempts != 0 {
			t.Errorf("spoke %d compressed %d chunks; it must store what arrives as it came", i, m.attempts)
		}
		if m.storedBytes >= m.rawBytes {
			t.Errorf("site %d stores %d bytes for %d raw: not stored compressed", i, m.storedBytes, m.rawBytes)
		}
	}
	if total != int64(unique) {
		t.Fatalf("%d compression attempts across the federation for %d unique chunks put", total, unique)
	}
}
