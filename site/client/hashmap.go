package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Hashmap is an object as its chunk list: the site's chunk size, the
// size, the whole SHA-256 and the chunk IDs in order, hex.
type Hashmap struct {
	ChunkSize   int      `json:"chunk_size"`
	Size        int64    `json:"size"`
	SHA256      string   `json:"sha256"`
	Chunks      []string `json:"chunks"`
	ContentType string   `json:"content_type,omitempty"`
}

// PutHashmap asks the site to make a version of name over the chunks hm
// lists. When the site holds them all it answers the put (missing is
// nil); otherwise nothing is made and missing lists the chunks to send
// with PutChunk before asking again.
func (c *Client) PutHashmap(ctx context.Context, name string, hm Hashmap, opts PutOptions) (res PutResult, missing []string, err error) {
	path, err := objectPath(name)
	if err != nil {
		return PutResult{}, nil, err
	}
	body, err := json.Marshal(hm)
	if err != nil {
		return PutResult{}, nil, err
	}
	q := opts.query()
	if q != "" {
		q = "hashmap&" + q
	} else {
		q = "hashmap"
	}
	req, err := c.newRequest(ctx, http.MethodPut, path, q, bytes.NewReader(body))
	if err != nil {
		return PutResult{}, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range opts.Meta {
		if !validMetaKey(k) {
			return PutResult{}, nil, fmt.Errorf("metadata key %q: use letters, digits and '-'", k)
		}
		req.Header.Set(MetaHeaderPrefix+k, v)
	}
	resp, err := c.doAccept(req, http.StatusConflict)
	if err != nil {
		return PutResult{}, nil, fmt.Errorf("put %s by its chunk list: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusConflict {
		var answer struct {
			Missing []string `json:"missing"`
		}
		if err := decodeJSON(io.LimitReader(resp.Body, maxJSONBytes), &answer); err != nil {
			return PutResult{}, nil, fmt.Errorf("put %s by its chunk list: %w", name, err)
		}
		if len(answer.Missing) == 0 {
			return PutResult{}, nil, fmt.Errorf("put %s by its chunk list: the site answered 409 without naming missing chunks", name)
		}
		return PutResult{}, answer.Missing, nil
	}
	if err := decodeJSON(io.LimitReader(resp.Body, maxJSONBytes), &res); err != nil {
		return PutResult{}, nil, fmt.Errorf("put %s by its chunk list: %w", name, err)
	}
	if res.SHA256 != hm.SHA256 || res.Size != hm.Size {
		return PutResult{}, nil, fmt.Errorf("put %s by its chunk list: %w: listed %d bytes with sha256 %s, site made %d bytes with sha256 %q",
			name, ErrVerify, hm.Size, hm.SHA256, res.Size, res.SHA256)
	}
	return res, nil, nil
}

// HasChunk reports whether the site holds chunk id (HEAD /c/{id}).
func (c *Client) HasChunk(ctx context.Context, id string) (bool, error) {
	req, err := c.newRequest(ctx, http.MethodHead, "/c/"+id, "", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.doAccept(req, http.StatusNotFound)
	if err != nil {
		return false, fmt.Errorf("chunk %s: %w", id, err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// PutChunk sends one chunk of a hashmap put; the site checks the bytes
// hash to id.
func (c *Client) PutChunk(ctx context.Context, id string, raw []byte) error {
	req, err := c.newRequest(ctx, http.MethodPut, "/c/"+id, "", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req)
	if err != nil {
		return fmt.Errorf("put chunk %s: %w", id, err)
	}
	resp.Body.Close()
	return nil
}

// HashmapOf cuts the size bytes of f at chunkSize: the chunk list, size
// and SHA-256 a hashmap put sends.
func HashmapOf(f io.ReaderAt, size int64, chunkSize int) (Hashmap, error) {
	hm := Hashmap{ChunkSize: chunkSize}
	whole := sha256.New()
	buf := make([]byte, chunkSize)
	r := io.NewSectionReader(f, 0, size)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			sum := sha256.Sum256(buf[:n])
			hm.Chunks = append(hm.Chunks, hex.EncodeToString(sum[:]))
			whole.Write(buf[:n])
			hm.Size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return hm, err
		}
	}
	hm.SHA256 = hex.EncodeToString(whole.Sum(nil))
	return hm, nil
}

// hashmapMinChunks is the smallest file, in the site's chunks, PutFile
// puts by its chunk list first: below it one streamed request is as
// cheap as asking.
const hashmapMinChunks = 4

// guessChunkSize is the chunk size PutFile assumes until the site has
// said its own (ChunkSizeHeader): site init's default.
const guessChunkSize = 1 << 20

// PutFile puts the size bytes of f as name. A file of hashmapMinChunks
// chunks or more whose first chunk the site already holds (asked with
// HEAD /c/{id}, which also tells the site's chunk size) goes by its
// chunk list first (Pithos+ hashmap put): the site answers which chunks
// it lacks and only those are sent, so re-putting a renamed or copied
// file moves only the list. Other files, a site too old to take chunk
// lists, and a list most of whose chunks are missing are streamed in
// one request. f is read twice at most.
func (c *Client) PutFile(ctx context.Context, name string, f io.ReaderAt, size int64, opts PutOptions) (PutResult, error) {
	stream := func() (PutResult, error) { return c.Put(ctx, name, io.NewSectionReader(f, 0, size), size, opts) }
	chunkSize := int(c.chunkSize.Load())
	if chunkSize == 0 {
		chunkSize = guessChunkSize
	}
	for range 2 { // the second time at the chunk size the site said
		if size < hashmapMinChunks*int64(chunkSize) {
			return stream()
		}
		has, err := c.hasFirstChunk(ctx, f, size, chunkSize)
		said := int(c.chunkSize.Load())
		switch {
		case err != nil || said == 0 || said == chunkSize && !has:
			return stream() // a new file, most likely (its first chunk holds its header and first samples)
		case said == chunkSize:
			return c.putByHashmap(ctx, name, f, size, chunkSize, opts)
		}
		chunkSize = said
	}
	return stream()
}

// hasFirstChunk asks whether the site holds f's first chunk at chunkSize.
func (c *Client) hasFirstChunk(ctx context.Context, f io.ReaderAt, size int64, chunkSize int) (bool, error) {
	first := make([]byte, min(int64(chunkSize), size))
	if _, err := f.ReadAt(first, 0); err != nil && err != io.EOF {
		return false, err
	}
	sum := sha256.Sum256(first)
	return c.HasChunk(ctx, hex.EncodeToString(sum[:]))
}

// putByHashmap puts f by its chunk list, sending the chunks the site
// lacks; it streams f instead when most are missing.
func (c *Client) putByHashmap(ctx context.Context, name string, f io.ReaderAt, size int64, chunkSize int, opts PutOptions) (PutResult, error) {
	hm, err := HashmapOf(f, size, chunkSize)
	if err != nil {
		return PutResult{}, fmt.Errorf("put %s: read: %w", name, err)
	}
	hm.ContentType = opts.ContentType
	for round := 0; ; round++ {
		res, missing, err := c.PutHashmap(ctx, name, hm, opts)
		if err != nil || len(missing) == 0 {
			return res, err
		}
		if round == 0 && 2*len(missing) > len(hm.Chunks) {
			return c.Put(ctx, name, io.NewSectionReader(f, 0, hm.Size), hm.Size, opts)
		}
		if round == 2 {
			return res, fmt.Errorf("put %s: the site still lacks %d chunks after they were sent (collected meanwhile?); put it again", name, len(missing))
		}
		if err := c.sendChunks(ctx, f, hm, missing); err != nil {
			return res, opError("put", name, err)
		}
	}
}

// sendChunks sends the chunks of f that missing names.
func (c *Client) sendChunks(ctx context.Context, f io.ReaderAt, hm Hashmap, missing []string) error {
	want := make(map[string]bool, len(missing))
	for _, id := range missing {
		want[id] = true
	}
	buf := make([]byte, hm.ChunkSize)
	for i, id := range hm.Chunks {
		if !want[id] {
			continue
		}
		delete(want, id) // a chunk listed twice is sent once
		off := int64(i) * int64(hm.ChunkSize)
		n, err := f.ReadAt(buf[:min(int64(hm.ChunkSize), hm.Size-off)], off)
		if err != nil && err != io.EOF {
			return err
		}
		if err := c.PutChunk(ctx, id, buf[:n]); err != nil {
			return err
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("the site asked for %d chunks the file does not hold", len(want))
	}
	return nil
}
