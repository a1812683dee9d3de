package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/skyfed/skyfed/forward"
)

// DefaultDiffTimeout bounds a diff that names no timeout.
const DefaultDiffTimeout = 30 * time.Second

// Diff reconciles this site's inventory with a linked peer's now (never
// a stale result); what either side lacks is then moved over the link.
func (s *Site) Diff(ctx context.Context, peer string, names bool) (forward.ReconReport, error) {
	rep, err := s.node.Reconcile(ctx, peer, names)
	if errors.Is(err, forward.ErrNoLink) {
		return rep, fmt.Errorf("no link to %s: %w", peer, err)
	}
	return rep, err
}

// ResyncProgress is one line of a resync's progress.
type ResyncProgress struct {
	forward.ReconReport
	// Done is set on the last line; TimedOut when the deadline came
	// before the two sites were in sync, Error on a failure.
	Done     bool   `json:"done"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Error    string `json:"error,omitempty"`
}

// resyncEvery is how often a resync reconciles again to measure progress.
const resyncEvery = 2 * time.Second

// Resync reconciles with peer again and again, from first (a round
// already made), until the two sites are in sync or ctx ends, reporting
// each round that still differs: each round also moves what it found.
func (s *Site) Resync(ctx context.Context, peer string, first forward.ReconReport, progress func(ResyncProgress)) (forward.ReconReport, error) {
	rep := first
	for !rep.InSync {
		progress(ResyncProgress{ReconReport: rep})
		select {
		case <-ctx.Done():
			return rep, fmt.Errorf("resync with %s: %w", peer, ctx.Err())
		case <-time.After(resyncEvery):
		}
		next, err := s.Diff(ctx, peer, false)
		if err != nil {
			return rep, err // the last round that answered
		}
		rep = next
	}
	return rep, nil
}

// requestTimeout reads ?timeout= (a Go duration), def when absent.
func requestTimeout(r *http.Request, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get("timeout")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &apiError{status: http.StatusBadRequest, err: fmt.Errorf("timeout %q is not a positive duration such as 30s", v)}
	}
	return d, nil
}

// serveDiff is GET /api/diff/{peer}[?names=1&timeout=30s].
func (s *Site) serveDiff(w http.ResponseWriter, r *http.Request) {
	timeout, err := requestTimeout(r, DefaultDiffTimeout)
	if err != nil {
		s.fail(w, r, "diff", err)
		return
	}
	names, _ := strconv.ParseBool(r.URL.Query().Get("names"))
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	rep, err := s.Diff(ctx, r.PathValue("peer"), names)
	if err != nil {
		s.fail(w, r, "diff", err)
		return
	}
	s.ok(w, "diff", http.StatusOK, rep)
}

// serveResync is POST /api/resync/{peer}[?timeout=10m]: NDJSON lines of
// progress, the last with "done": true. It moves data, so off loopback
// it needs the bearer token like writes.
func (s *Site) serveResync(w http.ResponseWriter, r *http.Request) {
	timeout, err := requestTimeout(r, 10*time.Minute)
	if err != nil {
		s.fail(w, r, "resync", err)
		return
	}
	peer := r.PathValue("peer")
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	// The first round decides the status code: a missing link is an
	// error, not a stream.
	first, err := s.Diff(ctx, peer, false)
	if err != nil {
		s.fail(w, r, "resync", err)
		return
	}
	s.metrics.requests.WithLabelValues("resync", "200").Inc()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func(p ResyncProgress) {
		enc.Encode(p)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	rep, err := s.Resync(ctx, peer, first, flush)
	last := ResyncProgress{ReconReport: rep, Done: true}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, forward.ErrReconTimeout):
		last.TimedOut = true
		last.Error = err.Error()
	case err != nil:
		last.Error = err.Error()
	}
	flush(last)
}
