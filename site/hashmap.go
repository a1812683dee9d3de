package site

// Hashmap puts over HTTP (naming/hashmap.go has the store's side):
// PUT /o/{name}?hashmap with the chunk list as JSON answers 201 with the
// usual put JSON when this site holds every chunk, or 409 with
// {missing: [hex IDs]}; PUT /c/{id} stores one chunk, checked against
// its ID.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// maxHashmapBody bounds a hashmap's JSON: about 230,000 chunks (230 GB
// of 1 MiB chunks).
const maxHashmapBody = 16 << 20

// parseHashmap decodes a hashmap put's body (client.Hashmap, which is
// also the answer of GET /o/{name}?hashmap).
func parseHashmap(b []byte) (naming.Hashmap, string, error) {
	var j client.Hashmap
	if err := json.Unmarshal(b, &j); err != nil {
		return naming.Hashmap{}, "", fmt.Errorf("hashmap: %w", err)
	}
	hm := naming.Hashmap{ChunkSize: j.ChunkSize, Size: j.Size, Chunks: make([]chunk.ID, len(j.Chunks))}
	if sum, err := hex.DecodeString(j.SHA256); err != nil || len(sum) != len(hm.SHA256) {
		return naming.Hashmap{}, "", fmt.Errorf("hashmap: sha256 %q is not 64 hex digits", j.SHA256)
	} else {
		copy(hm.SHA256[:], sum)
	}
	for i, c := range j.Chunks {
		id, err := chunk.ParseID(c)
		if err != nil {
			return naming.Hashmap{}, "", fmt.Errorf("hashmap: chunk %d: %w", i, err)
		}
		hm.Chunks[i] = id
	}
	return hm, j.ContentType, nil
}

const hashmapHint = "send each missing chunk with PUT /c/{id}, then the hashmap again (skyfed put does)"

func (s *Site) servePutHashmap(w http.ResponseWriter, r *http.Request, name naming.Name) {
	opts, want, timeout, ok := s.putRequest(w, r, "put")
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHashmapBody))
	if err != nil {
		s.fail(w, r, "put", err)
		return
	}
	hm, ct, err := parseHashmap(body)
	if err != nil {
		s.fail(w, r, "put", badRequest(err, `{"chunk_size": N, "size": N, "sha256": "HEX", "chunks": ["HEX", ...]}`))
		return
	}
	opts.ContentType = ct
	m, err := s.objects.PutHashmap(r.Context(), name, hm, opts)
	var missing *naming.MissingChunksError
	switch {
	case errors.As(err, &missing):
		ids := make([]string, len(missing.IDs))
		for i, id := range missing.IDs {
			ids[i] = id.String()
		}
		s.metrics.requests.WithLabelValues("put", "409").Inc()
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "hint": hashmapHint, "missing": ids})
		return
	case errors.Is(err, naming.ErrBadHashmap):
		s.fail(w, r, "put", badRequest(err, fmt.Sprintf("cut the file into chunks of chunk_size %d bytes (the site's) and list them in order", s.Config().ChunkSize)))
		return
	case err != nil:
		s.fail(w, r, "put", err)
		return
	}
	s.metrics.ingestObjs.Inc()
	s.metrics.hashmapPuts.Inc()
	s.answerPut(w, r, m, want, timeout)
}

// servePutChunk stores one chunk of a hashmap put: the bytes must hash
// to the ID in the path.
func (s *Site) servePutChunk(w http.ResponseWriter, r *http.Request) {
	id, err := chunk.ParseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, "chunk", badRequest(err, "chunk IDs are 64 hex digits"))
		return
	}
	if err := s.mayPut(); err != nil {
		s.fail(w, r, "chunk", err)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.Config().ChunkSize)))
	if err != nil {
		s.fail(w, r, "chunk", err)
		return
	}
	isNew, err := s.objects.StoreChunk(id, raw)
	switch {
	case errors.Is(err, chunk.ErrCorrupt):
		s.metrics.rejected.WithLabelValues("chunk_hash").Inc()
		s.fail(w, r, "chunk", badRequest(err, "a chunk's ID is the SHA-256 of its bytes"))
		return
	case err != nil:
		s.fail(w, r, "chunk", err)
		return
	}
	status := http.StatusOK
	if isNew {
		status = http.StatusCreated
		s.metrics.ingestBytes.Add(float64(len(raw)))
		s.metrics.hashmapChunks.Inc()
	}
	s.ok(w, "chunk", status, map[string]any{"id": id.String(), "new": isNew})
}
