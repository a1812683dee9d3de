package site

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// hashmapOf cuts b at size: the JSON of a hashmap put.
func hashmapOf(b []byte, size int) client.Hashmap {
	sum := sha256.Sum256(b)
	hm := client.Hashmap{ChunkSize: size, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Chunks: []string{}}
	for off := 0; off < len(b); off += size {
		hm.Chunks = append(hm.Chunks, chunk.Sum(b[off:min(off+size, len(b))]).String())
	}
	return hm
}

func (s *testSite) send(t *testing.T, method, path string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	return s.sendReq(t, req)
}

// sendReq sends req and returns the status and the JSON answer.
func (s *testSite) sendReq(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &answer)
	return resp.StatusCode, answer
}

func hashmapBytes(t *testing.T, hm client.Hashmap) []byte {
	t.Helper()
	b, err := json.Marshal(hm)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A hashmap put names the chunks the site lacks (409), takes them one
// by one (PUT /c/{id}, checked against the ID), and makes the version
// once all are there; a second name over the same bytes moves only the
// list. Lies are refused: a chunk whose bytes are not its ID, a list cut
// at another size, a SHA-256 that is not the chunks'.
func TestHashmapPut(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	const size = 64 << 10 // the test site's chunk size
	data := seeded(41, 5*size+1234)
	hm := hashmapOf(data, size)

	code, answer := ts.send(t, http.MethodPut, "/o/gloria.eu/hm/a.fits?hashmap", hashmapBytes(t, hm))
	missing, _ := answer["missing"].([]any)
	if code != http.StatusConflict || len(missing) != len(hm.Chunks) {
		t.Fatalf("hashmap of unknown chunks: %d %v, want 409 naming all %d", code, answer, len(hm.Chunks))
	}
	if _, err := ts.objects.Latest(naming.MustParseName("gloria.eu/hm/a.fits")); err == nil {
		t.Fatal("a version was made while chunks were missing")
	}

	// A chunk's bytes must hash to its ID.
	if code, answer := ts.send(t, http.MethodPut, "/c/"+hm.Chunks[1], data[:size]); code != http.StatusBadRequest {
		t.Errorf("chunk under another's ID: %d %v, want 400", code, answer)
	}
	if n := metric(t, ts, "skyfed_rejected_total", "reason", "chunk_hash"); n != 1 {
		t.Errorf("skyfed_rejected_total{reason=chunk_hash} = %v, want 1", n)
	}
	for i, id := range hm.Chunks {
		if i == 2 {
			continue // still missing below
		}
		part := data[i*size : min((i+1)*size, len(data))]
		if code, answer := ts.send(t, http.MethodPut, "/c/"+id, part); code != http.StatusCreated {
			t.Fatalf("chunk %d: %d %v", i, code, answer)
		}
	}
	code, answer = ts.send(t, http.MethodPut, "/o/gloria.eu/hm/a.fits?hashmap", hashmapBytes(t, hm))
	if missing, _ := answer["missing"].([]any); code != http.StatusConflict || len(missing) != 1 || missing[0] != hm.Chunks[2] {
		t.Fatalf("hashmap with one chunk missing: %d %v", code, answer)
	}
	if code, _ := ts.send(t, http.MethodPut, "/c/"+hm.Chunks[2], data[2*size:3*size]); code != http.StatusCreated {
		t.Fatalf("chunk 2: %d", code)
	}
	if code, answer := ts.send(t, http.MethodPut, "/c/"+hm.Chunks[2], data[2*size:3*size]); code != http.StatusOK || answer["new"] != false {
		t.Errorf("a chunk sent again: %d %v, want 200 and new false", code, answer)
	}
	if code, _ := ts.send(t, http.MethodPut, "/c/"+chunk.Sum(make([]byte, size+1)).String(), make([]byte, size+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunk larger than the site's chunk size: %d, want 413", code)
	}
	code, answer = ts.send(t, http.MethodPut, "/o/gloria.eu/hm/a.fits?hashmap", hashmapBytes(t, hm))
	if code != http.StatusCreated || answer["sha256"] != hm.SHA256 || answer["size"] != float64(len(data)) {
		t.Fatalf("complete hashmap: %d %v", code, answer)
	}
	m, err := ts.objects.Latest(naming.MustParseName("gloria.eu/hm/a.fits"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(ts.objects.NewReader(m, 0, m.Size)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), not the object", len(got), err)
	}

	// Another name over the same bytes: only the list moves.
	before := metric(t, ts, "skyfed_hashmap_chunks_total")
	code, answer = ts.send(t, http.MethodPut, "/o/gloria.eu/hm/renamed.fits?hashmap", hashmapBytes(t, hm))
	if code != http.StatusCreated || metric(t, ts, "skyfed_hashmap_chunks_total") != before {
		t.Errorf("hashmap of stored chunks: %d %v", code, answer)
	}

	for what, bad := range map[string]client.Hashmap{
		"another chunk size": func() client.Hashmap { h := hashmapOf(data, 32<<10); return h }(),
		"a SHA-256 not the chunks'": func() client.Hashmap {
			h := hm
			h.SHA256 = strings.Repeat("0", 64)
			return h
		}(),
		"a size the chunks do not hold": func() client.Hashmap { h := hm; h.Size--; return h }(),
		"too few chunks":                func() client.Hashmap { h := hm; h.Chunks = h.Chunks[1:]; return h }(),
	} {
		if code, answer := ts.send(t, http.MethodPut, "/o/gloria.eu/hm/bad.fits?hashmap", hashmapBytes(t, bad)); code != http.StatusBadRequest {
			t.Errorf("%s: %d %v, want 400", what, code, answer)
		}
	}
	if code, _ := ts.send(t, http.MethodPut, "/o/gloria.eu/hm/bad.fits?hashmap", []byte("{not json")); code != http.StatusBadRequest {
		t.Errorf("malformed hashmap: %d, want 400", code)
	}
	if _, err := ts.objects.Latest(naming.MustParseName("gloria.eu/hm/bad.fits")); err == nil {
		t.Error("a refused hashmap made a version")
	}
}

// FuzzParseHashmap: a hashmap put's body never panics the decoder, and
// what it accepts has a SHA-256 and chunk IDs of 32 bytes each, as many
// as listed.
func FuzzParseHashmap(f *testing.F) {
	f.Add([]byte(`{"chunk_size":65536,"size":3,"sha256":"` + strings.Repeat("ab", 32) + `","chunks":["` + strings.Repeat("cd", 32) + `"]}`))
	f.Add([]byte(`{"chunk_size":-1,"size":-5,"sha256":"zz","chunks":[1,2]}`))
	f.Add([]byte(`{"chunks":null,"content_type":"image/fits"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		hm, _, err := parseHashmap(b)
		if err != nil {
			return
		}
		var j client.Hashmap
		if json.Unmarshal(b, &j) != nil || len(hm.Chunks) != len(j.Chunks) {
			t.Fatalf("accepted %q as %d chunks", b, len(hm.Chunks))
		}
		for i, id := range hm.Chunks {
			if !strings.EqualFold(id.String(), j.Chunks[i]) {
				t.Fatalf("chunk %d: %s from %q", i, id, j.Chunks[i])
			}
		}
	})
}
