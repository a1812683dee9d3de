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

// Lacks counts what one side lacks.
type Lacks struct {
	Versions int64 `json:"versions"`
	Chunks   int64 `json:"chunks"`
	Bytes    int64 `json:"bytes"`
}

// Refused counts versions one side refuses for good.
type Refused struct {
	Versions int64 `json:"versions"`
}

// DiffName is one version that differs.
type DiffName struct {
	Lacks   string `json:"lacks"` // "here" or "there"
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Diff is the answer of GET /api/diff/{peer}: a reconciliation of the
// site's inventory with a linked peer's, made when asked.
type Diff struct {
	Peer         string     `json:"peer"`
	ReconciledAt time.Time  `json:"reconciled_at"`
	InSync       bool       `json:"in_sync"`
	PeerLacks    Lacks      `json:"peer_lacks"`
	LocalLacks   Lacks      `json:"local_lacks"`
	Refused      Refused    `json:"refused"`
	Manifests    int64      `json:"manifests"`
	Chunks       int64      `json:"chunks"`
	Names        []DiffName `json:"names,omitempty"`
}

// Diff reconciles the site with peer now. timeout bounds the site's
// wait for the peer (0: the site's default, 30 s).
func (c *Client) Diff(ctx context.Context, peer string, names bool, timeout time.Duration) (Diff, error) {
	q := url.Values{}
	if names {
		q.Set("names", "1")
	}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	var d Diff
	if err := c.getJSON(ctx, "/api/diff/"+url.PathEscape(peer), q.Encode(), &d); err != nil {
		return Diff{}, fmt.Errorf("diff with %s: %w", peer, err)
	}
	return d, nil
}

// ResyncProgress is one line of POST /api/resync/{peer}.
type ResyncProgress struct {
	Diff
	Done     bool   `json:"done"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Resync asks the site to reconcile with peer until the two are in sync
// or timeout passes, calling progress with each round; it returns the
// last line.
func (c *Client) Resync(ctx context.Context, peer string, timeout time.Duration, progress func(ResyncProgress)) (ResyncProgress, error) {
	q := url.Values{}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/api/resync/"+url.PathEscape(peer), q.Encode(), nil)
	if err != nil {
		return ResyncProgress{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return ResyncProgress{}, fmt.Errorf("resync with %s: %w", peer, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxJSONBytes)
	for sc.Scan() {
		var p ResyncProgress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return ResyncProgress{}, fmt.Errorf("resync with %s: decode progress: %w", peer, err)
		}
		if p.Done {
			return p, nil
		}
		progress(p)
	}
	if err := sc.Err(); err != nil {
		return ResyncProgress{}, fmt.Errorf("resync with %s: %w", peer, err)
	}
	return ResyncProgress{}, fmt.Errorf("resync with %s: the site ended the answer early", peer)
}
