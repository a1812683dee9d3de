package site

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
)

// TestIncompleteVersionsWhileChunksTrickle: over a slow link the
// manifest overtakes the chunks, so the receiving site knows a version
// it cannot read yet. /api/status says so (with its link backlog
// possibly already 0) until the last chunk is in, then says exactly
// 0 versions and 0 bytes, as do the metrics.
func TestIncompleteVersionsWhileChunksTrickle(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "256kB/s", "") // 1 MiB takes seconds; the manifest goes first
	waitFor(t, "link up", func() bool {
		ls := a.node.Links()
		return len(ls) == 1 && ls[0].State == forward.StateUp
	})
	const name = "gloria.eu/slow/img-0001.fits"
	data := seeded(21, 1<<20+1000) // 17 chunks of 64 KiB, the last short; random bytes do not compress
	putObject(t, a, name, data)
	hc := &http.Client{Timeout: 10 * time.Second}

	var seen Status
	eventually(t, 30*time.Second, "beta knows the version before its bytes", func() error {
		st, err := fetchStatus(hc, b.base)
		if err != nil {
			return err
		}
		if st.IncompleteVersions == 0 {
			return fmt.Errorf("incomplete_versions 0 (chunks %d)", st.Chunks)
		}
		seen = st
		return nil
	})
	t.Logf("beta while chunks trickle: %d versions, %d bytes incomplete, %d chunks", seen.IncompleteVersions, seen.IncompleteBytes, seen.Chunks)
	if seen.IncompleteVersions != 1 || seen.IncompleteBytes <= 0 || seen.IncompleteBytes > int64(len(data)) {
		t.Errorf("while chunks trickle: %d versions, %d bytes; want 1 version, 1..%d bytes",
			seen.IncompleteVersions, seen.IncompleteBytes, len(data))
	}

	eventually(t, 60*time.Second, "beta holds every chunk", func() error {
		st, err := fetchStatus(hc, b.base)
		if err != nil {
			return err
		}
		if st.IncompleteVersions != 0 || st.IncompleteBytes != 0 {
			return fmt.Errorf("%d versions, %d bytes still incomplete", st.IncompleteVersions, st.IncompleteBytes)
		}
		return nil
	})
	m, err := b.Objects().Latest(naming.MustParseName(name))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range m.Chunks {
		if has, err := b.chunks.Has(id); err != nil || !has {
			t.Fatalf("incomplete 0 but chunk %s is not at beta (%v)", id.Short(), err)
		}
	}
	got, err := io.ReadAll(b.Objects().NewReader(m, 0, m.Size))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read at beta: %d bytes, %v", len(got), err)
	}
	for _, s := range []*testSite{a, b} {
		st, err := fetchStatus(hc, s.base)
		if err != nil {
			t.Fatal(err)
		}
		if st.IncompleteVersions != 0 || st.IncompleteBytes != 0 {
			t.Errorf("%s after convergence: %d versions, %d bytes incomplete", s.Config().ID, st.IncompleteVersions, st.IncompleteBytes)
		}
		for _, g := range []string{"skyfed_incomplete_versions", "skyfed_incomplete_bytes"} {
			if v, ok := metricValue(t, s, g); !ok || v != 0 {
				t.Errorf("%s %s = %v (registered %v), want 0", s.Config().ID, g, v, ok)
			}
		}
	}
}
