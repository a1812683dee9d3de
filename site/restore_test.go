package site

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/naming"
)

// Restoring a version makes a new latest version over its bytes, content
// type and meta, moving no data; a delete or an unknown version is
// refused. Status says the build.
func TestRestore(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	name := "gloria.eu/restore/m31.fits"
	put := func(body []byte, meta string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, ts.base+"/o/"+name, bytes.NewReader(body))
		req.Header.Set("Content-Type", "image/fits")
		req.Header.Set("X-Skyfed-Meta-Filter", meta)
		code, answer := ts.sendReq(t, req)
		if code != http.StatusCreated {
			t.Fatalf("put: %d %v", code, answer)
		}
		return answer
	}
	first := put(seeded(51, 300<<10), "R")
	put(seeded(52, 100<<10), "V")
	stored := ts.chunks.Stats().StoredBytes

	code, answer := ts.send(t, http.MethodPost, "/o/"+name+"?restore="+first["version"].(string), nil)
	if code != http.StatusCreated || answer["sha256"] != first["sha256"] || answer["version"] == first["version"] {
		t.Fatalf("restore: %d %v, want a new version with the first's SHA-256 %v", code, answer, first["sha256"])
	}
	m, err := ts.objects.Latest(naming.MustParseName(name))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(ts.objects.NewReader(m, 0, m.Size))
	if !bytes.Equal(got, seeded(51, 300<<10)) || m.ContentType != "image/fits" || len(m.Meta) != 1 || m.Meta[0].Value != "R" || m.Version() != answer["version"] {
		t.Errorf("latest after restore: %d bytes, type %q, meta %v, version %s", len(got), m.ContentType, m.Meta, m.Version())
	}
	if ts.chunks.Stats().StoredBytes != stored {
		t.Error("restoring wrote chunk bytes")
	}

	code, del := ts.send(t, http.MethodDelete, "/o/"+name, nil)
	if code != http.StatusOK {
		t.Fatalf("delete: %d %v", code, del)
	}
	if code, answer := ts.send(t, http.MethodPost, "/o/"+name+"?restore="+del["version"].(string), nil); code != http.StatusBadRequest {
		t.Errorf("restore of a delete: %d %v, want 400", code, answer)
	}
	if code, _ := ts.send(t, http.MethodPost, "/o/"+name+"?restore=1763765000000.0000.alpha", nil); code != http.StatusNotFound {
		t.Errorf("restore of an unknown version: %d, want 404", code)
	}
	if code, _ := ts.send(t, http.MethodPost, "/o/"+name+"?restore=yesterday", nil); code != http.StatusBadRequest {
		t.Errorf("restore of a malformed version: %d, want 400", code)
	}
	code, st := ts.send(t, http.MethodGet, "/api/status", nil)
	if build, _ := st["build"].(string); code != http.StatusOK || !strings.Contains(build, "go1.") {
		t.Errorf("status build %q", st["build"])
	}
}

// Status says since when the site process counts (counters_since): link
// counters and rates start from zero at each start.
func TestStatusCountersSince(t *testing.T) {
	before := time.Now()
	ts := startSite(t, "127.0.0.1")
	code, st := ts.send(t, http.MethodGet, "/api/status", nil)
	s, _ := st["counters_since"].(string)
	since, err := time.Parse(time.RFC3339Nano, s)
	if code != http.StatusOK || err != nil || since.Before(before) || since.After(time.Now()) {
		t.Errorf("status counters_since %q (%v), want a time since the test started at %s", s, err, before)
	}
}
