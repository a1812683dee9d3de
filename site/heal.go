package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/tools/heal"
)

// healing is the site's self-healing: the repairer that reads, relays
// and scrubs call on, and the scrub and garbage collection passes, run
// in the background and on request, one of each at a time.
type healing struct {
	repair *forward.Repairer
	passes *heal.Site

	scrubMu sync.Mutex // held while a scrub runs
	gcMu    sync.Mutex // held while a collection runs

	mu        sync.Mutex
	lastScrub *heal.ScrubReport // the last scrub finished, or the one running
	lastGC    *heal.GCReport
	bgScrub   context.CancelFunc // stops the background scrub, if one runs
	totals    healTotals

	// Passes asked for over HTTP run under ctx too: stopHealing cancels
	// it and waits for them, so none touches the stores once closed.
	ctx     context.Context
	cancel  context.CancelFunc
	running sync.WaitGroup
}

// begin registers a pass; its context ends with ctx or at shutdown.
func (h *healing) begin(ctx context.Context) (context.Context, func()) {
	h.running.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		h.running.Done()
	}
}

// stopHealing ends the passes and repairs under way and waits for them.
func (s *Site) stopHealing() {
	if s.heal == nil {
		return
	}
	s.heal.cancel()
	s.heal.running.Wait()
	s.heal.repair.Close()
}

// healTotals are the passes' cumulative counts, for metrics.
type healTotals struct {
	scrubRuns, scrubChunks, scrubBytes, scrubCorrupt, scrubMissing int64
	scrubUnclean                                                   int64
	scrubDoneAt                                                    time.Time
	gcRuns, gcVersions, gcChunks, gcReclaimed                      int64
	gcDoneAt                                                       time.Time
}

// ErrBusy says a pass of the same kind is running already.
var ErrBusy = errors.New("already running")

// registerHealing sets up repair (once per site) and adds the scrub and
// gc endpoints.
func (s *Site) registerHealing(mux *http.ServeMux) {
	if s.heal == nil {
		rep, err := forward.NewRepairer(s.db, s.stores, s.inv, s.node.Fetch, s.log)
		if err != nil {
			s.log.Error("repair: the list of unrepairable chunks could not be read in full", "err", err)
		}
		s.stores.SetRepairer(rep)
		s.opts.Registry.MustRegister(rep)
		s.heal = &healing{repair: rep, passes: &heal.Site{
			DB: s.db, Chunks: s.chunks, Objects: s.objects, Arrivals: s.arrivals,
			Repairer: rep, Inventory: s.inv, Log: s.log,
		}}
		s.heal.ctx, s.heal.cancel = context.WithCancel(context.Background())
		s.opts.Registry.MustRegister(healCollector{s.heal})
	}
	mux.HandleFunc("POST /api/scrub", s.serveScrub)
	mux.HandleFunc("GET /api/scrub", s.serveLastScrub)
	mux.HandleFunc("POST /api/gc", s.serveGC)
	mux.HandleFunc("GET /api/gc", s.serveLastGC)
}

// Scrub runs a scrub now (see heal.Site.Scrub); it fails with ErrBusy
// while another runs.
func (s *Site) Scrub(ctx context.Context, opts heal.ScrubOptions) (heal.ScrubReport, error) {
	h := s.heal
	ctx, done := h.begin(ctx)
	defer done()
	if !h.scrubMu.TryLock() {
		return heal.ScrubReport{}, fmt.Errorf("scrub: %w", ErrBusy)
	}
	defer h.scrubMu.Unlock()
	progress := opts.Progress
	opts.Progress = func(r heal.ScrubReport) {
		h.mu.Lock()
		h.lastScrub = &r
		h.mu.Unlock()
		if progress != nil {
			progress(r)
		}
	}
	rep, err := h.passes.Scrub(ctx, opts)
	h.mu.Lock()
	t := &h.totals
	t.scrubChunks += rep.Chunks
	t.scrubBytes += rep.Bytes
	t.scrubCorrupt += rep.Corrupt
	t.scrubMissing += rep.Missing
	if err == nil {
		t.scrubRuns++
		t.scrubDoneAt = time.Now()
		if !rep.Clean() {
			t.scrubUnclean++
		}
	}
	h.mu.Unlock()
	return rep, err
}

// GC runs a garbage collection now (see heal.Site.GC) with the config's
// grace period unless opts sets one; it fails with ErrBusy while another
// runs.
func (s *Site) GC(ctx context.Context, opts heal.GCOptions) (heal.GCReport, error) {
	h := s.heal
	ctx, done := h.begin(ctx)
	defer done()
	if !h.gcMu.TryLock() {
		return heal.GCReport{}, fmt.Errorf("gc: %w", ErrBusy)
	}
	defer h.gcMu.Unlock()
	if opts.Now == nil {
		opts.Now = s.now
	}
	progress := opts.Progress
	opts.Progress = func(r heal.GCReport) {
		h.mu.Lock()
		h.lastGC = &r
		h.mu.Unlock()
		if progress != nil {
			progress(r)
		}
	}
	rep, err := h.passes.GC(ctx, opts)
	h.mu.Lock()
	t := &h.totals
	t.gcVersions += rep.VersionsCollected
	t.gcChunks += rep.ChunksCollected
	t.gcReclaimed += rep.Reclaimed
	if err == nil {
		t.gcRuns++
		t.gcDoneAt = time.Now()
	}
	h.mu.Unlock()
	return rep, err
}

// serveScrub is POST /api/scrub[?rate=50MB/s]: NDJSON lines of progress,
// the last the report with "done": true. Off loopback it needs the
// bearer token, as it reads the whole store.
func (s *Site) serveScrub(w http.ResponseWriter, r *http.Request) {
	var opts heal.ScrubOptions
	if v := r.URL.Query().Get("rate"); v != "" {
		rate, err := forward.ParseRate(v)
		if err != nil {
			s.fail(w, r, "scrub", badRequest(err, "rates look like 50MB/s; 0 or absent: as fast as the disk goes"))
			return
		}
		opts.Rate = rate
	}
	// One asked for now takes over from the background pass.
	s.heal.mu.Lock()
	if s.heal.bgScrub != nil {
		s.heal.bgScrub()
	}
	s.heal.mu.Unlock()
	locked := false
	for range 50 {
		if locked = s.heal.scrubMu.TryLock(); locked {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !locked {
		s.fail(w, r, "scrub", busyError("scrub"))
		return
	}
	s.heal.scrubMu.Unlock()
	streamPass(s, w, r, "scrub", func(ctx context.Context, progress func(heal.ScrubReport)) (heal.ScrubReport, error) {
		opts.Progress = progress
		return s.Scrub(ctx, opts)
	})
}

// serveGC is POST /api/gc[?grace=168h]: NDJSON progress, the last line
// the report. Off loopback it needs the bearer token.
func (s *Site) serveGC(w http.ResponseWriter, r *http.Request) {
	cfg := s.Config()
	opts := heal.GCOptions{Grace: cfg.Grace()}
	if v := r.URL.Query().Get("grace"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.fail(w, r, "gc", badRequest(fmt.Errorf("grace %q is not a duration", v), "such as 168h; gc_grace in "+ConfigFile+" sets the default"))
			return
		}
		opts.Grace = d
	}
	if !s.heal.gcMu.TryLock() {
		s.fail(w, r, "gc", busyError("gc"))
		return
	}
	s.heal.gcMu.Unlock()
	streamPass(s, w, r, "gc", func(ctx context.Context, progress func(heal.GCReport)) (heal.GCReport, error) {
		opts.Progress = progress
		return s.GC(ctx, opts)
	})
}

func busyError(what string) error {
	return &apiError{status: http.StatusConflict, err: fmt.Errorf("a %s is running already", what),
		hint: "wait for it; GET /api/" + what + " shows its progress"}
}

// streamPass answers with NDJSON: progress lines at most every half
// second, then the final report. The pass stops if the client goes away.
func streamPass[R any](s *Site, w http.ResponseWriter, r *http.Request, op string, run func(context.Context, func(R)) (R, error)) {
	s.metrics.requests.WithLabelValues(op, "200").Inc()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	write := func(v R) {
		_ = enc.Encode(v)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	var last time.Time
	rep, err := run(r.Context(), func(p R) {
		if time.Since(last) >= 500*time.Millisecond {
			last = time.Now()
			write(p)
		}
	})
	if err != nil && !errors.Is(err, ErrBusy) {
		s.log.Warn(op+" ended early", "err", err)
	}
	write(rep)
}

func (s *Site) serveLastScrub(w http.ResponseWriter, r *http.Request) {
	s.heal.mu.Lock()
	rep := s.heal.lastScrub
	s.heal.mu.Unlock()
	if rep == nil {
		s.fail(w, r, "scrub", &apiError{status: http.StatusNotFound, err: errors.New("no scrub has run since the site started"), hint: "skyfed tools scrub runs one"})
		return
	}
	s.ok(w, "scrub", http.StatusOK, rep)
}

func (s *Site) serveLastGC(w http.ResponseWriter, r *http.Request) {
	s.heal.mu.Lock()
	rep := s.heal.lastGC
	s.heal.mu.Unlock()
	if rep == nil {
		s.fail(w, r, "gc", &apiError{status: http.StatusNotFound, err: errors.New("no garbage collection has run since the site started"), hint: "skyfed tools gc runs one"})
		return
	}
	s.ok(w, "gc", http.StatusOK, rep)
}

// startHealing starts the background passes: a scrub every
// scrub_interval at scrub_rate, a garbage collection every gc_interval,
// a retry of unrepairable chunks now and then, and, if packs were found
// lost at start-up, a check of every version's chunks right away.
func (s *Site) startHealing(ctx context.Context) {
	if s.heal == nil {
		return // no HTTP handler was made (a site opened only to be inspected)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.scrubLoop(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.gcLoop(ctx)
	}()
}

// Background timing.
const (
	healStartDelay = time.Minute      // let links come up and catch up first
	retryEvery     = 10 * time.Minute // unrepairable chunks asked for again
	healCheckEvery = time.Minute      // how often the loops look at the clock and the config
)

func (s *Site) scrubLoop(ctx context.Context) {
	if lost := s.chunks.Stats().LostAtOpen; lost > 0 {
		s.log.Warn("chunks of lost or truncated packs were dropped at start-up; checking every version's chunks and fetching them from peers", "chunks", lost)
		if !sleepCtx(ctx, 5*time.Second) {
			return
		}
		if _, err := s.Scrub(ctx, heal.ScrubOptions{ManifestsOnly: true}); err != nil && ctx.Err() == nil {
			s.log.Error("checking versions after lost packs failed", "err", err)
		}
	}
	if !sleepCtx(ctx, healStartDelay) {
		return
	}
	var last time.Time
	for {
		cfg := s.Config()
		if every := cfg.ScrubEvery(); every > 0 && time.Since(last) >= every {
			last = time.Now()
			bg, cancel := context.WithCancel(ctx)
			s.heal.mu.Lock()
			s.heal.bgScrub = cancel
			s.heal.mu.Unlock()
			_, err := s.Scrub(bg, heal.ScrubOptions{Rate: cfg.ScrubBytesPerSecond()})
			s.heal.mu.Lock()
			s.heal.bgScrub = nil
			s.heal.mu.Unlock()
			cancel()
			switch {
			case err == nil, ctx.Err() != nil, errors.Is(err, ErrBusy):
			case bg.Err() != nil:
				s.log.Info("background scrub gave way to one asked for; it starts again after scrub_interval")
			default:
				s.log.Error("background scrub failed", "err", err)
			}
		}
		if !sleepCtx(ctx, healCheckEvery) {
			return
		}
	}
}

func (s *Site) gcLoop(ctx context.Context) {
	if !sleepCtx(ctx, healStartDelay) {
		return
	}
	var lastGC, lastRetry time.Time
	for {
		cfg := s.Config()
		if time.Since(lastRetry) >= retryEvery {
			lastRetry = time.Now()
			s.heal.repair.Retry(ctx)
		}
		if _, err := s.heal.passes.NameUnrepairable(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("naming the objects of unrepairable chunks failed", "err", err)
		}
		if every := cfg.GCEvery(); every > 0 && time.Since(lastGC) >= every {
			lastGC = time.Now()
			_, err := s.GC(ctx, heal.GCOptions{Grace: cfg.Grace(), Rate: cfg.ScrubBytesPerSecond()})
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrBusy) {
				s.log.Error("background garbage collection failed", "err", err)
			}
		}
		if !sleepCtx(ctx, healCheckEvery) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
