package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Affected is a version that uses a chunk a pass found damaged or missing.
type Affected struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Chunk    string `json:"chunk"`
	Repaired bool   `json:"repaired"`
}

// ScrubReport is one line of POST /api/scrub: progress, and last the
// report with Done set.
type ScrubReport struct {
	Phase        string     `json:"phase"`
	Chunks       int64      `json:"chunks"`
	Bytes        int64      `json:"bytes"`
	TotalBytes   int64      `json:"total_bytes"`
	Corrupt      int64      `json:"corrupt"`
	Missing      int64      `json:"missing"`
	Repaired     int64      `json:"repaired"`
	Unrepairable int64      `json:"unrepairable"`
	Manifests    int64      `json:"manifests"`
	BadManifests int64      `json:"bad_manifests"`
	Untrusted    int64      `json:"untrusted_manifests"`
	Affected     []Affected `json:"affected"`
	Started      time.Time  `json:"started"`
	Seconds      float64    `json:"seconds"`
	Done         bool       `json:"done"`
	Error        string     `json:"error,omitempty"`
}

// GCReport is one line of POST /api/gc.
type GCReport struct {
	Phase             string    `json:"phase"`
	VersionsCollected int64     `json:"versions_collected"`
	VersionBytes      int64     `json:"version_bytes"`
	ChunksCollected   int64     `json:"chunks_collected"`
	ChunkBytes        int64     `json:"chunk_bytes"`
	OrphansWaiting    int64     `json:"orphans_waiting"`
	Kept              int64     `json:"kept_in_use"`
	PacksRemoved      int       `json:"packs_removed"`
	PacksRewritten    int       `json:"packs_rewritten"`
	ChunksMoved       int64     `json:"chunks_moved"`
	PackBytes         int64     `json:"pack_bytes_before"`
	PackBytesAfter    int64     `json:"pack_bytes_after"`
	Reclaimed         int64     `json:"reclaimed_bytes"`
	Repaired          int64     `json:"repaired"`
	Unrepairable      int64     `json:"unrepairable"`
	Started           time.Time `json:"started"`
	Seconds           float64   `json:"seconds"`
	Done              bool      `json:"done"`
	Error             string    `json:"error,omitempty"`
}

// Scrub asks the site to scrub its store now (rate: bytes per second,
// "" for as fast as its disk goes), calling progress with each line; it
// returns the final report.
func (c *Client) Scrub(ctx context.Context, rate string, progress func(ScrubReport)) (ScrubReport, error) {
	q := url.Values{}
	if rate != "" {
		q.Set("rate", rate)
	}
	var last ScrubReport
	err := c.stream(ctx, "/api/scrub", q, func(line []byte) (bool, error) {
		var r ScrubReport
		if err := json.Unmarshal(line, &r); err != nil {
			return false, err
		}
		if r.Done {
			last = r
			return true, nil
		}
		if progress != nil {
			progress(r)
		}
		return false, nil
	})
	if err != nil {
		return ScrubReport{}, fmt.Errorf("scrub: %w", err)
	}
	return last, nil
}

// GC asks the site to collect garbage now (grace: "" for the site's
// gc_grace), calling progress with each line; it returns the report.
func (c *Client) GC(ctx context.Context, grace string, progress func(GCReport)) (GCReport, error) {
	q := url.Values{}
	if grace != "" {
		q.Set("grace", grace)
	}
	var last GCReport
	err := c.stream(ctx, "/api/gc", q, func(line []byte) (bool, error) {
		var r GCReport
		if err := json.Unmarshal(line, &r); err != nil {
			return false, err
		}
		if r.Done {
			last = r
			return true, nil
		}
		if progress != nil {
			progress(r)
		}
		return false, nil
	})
	if err != nil {
		return GCReport{}, fmt.Errorf("gc: %w", err)
	}
	return last, nil
}

// stream POSTs to path and hands each NDJSON line to line until it
// says the last one came.
func (c *Client) stream(ctx context.Context, path string, q url.Values, line func([]byte) (bool, error)) error {
	req, err := c.newRequest(ctx, http.MethodPost, path, q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxJSONBytes)
	for sc.Scan() {
		done, err := line(sc.Bytes())
		if err != nil {
			return fmt.Errorf("decode progress: %w", err)
		}
		if done {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("the site ended the answer early")
}
