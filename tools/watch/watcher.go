package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skyfed/skyfed/site/client"
)

// watcher runs one watch: the scheduler (run's goroutine), the inotify
// reader, and two pools of workers: puts, and asks for holders (which
// may wait at the site, and must not hold puts back).
type watcher struct {
	o        Options
	abs      string // o.Dir, absolute
	stateAbs string
	st       *State
	m        *metrics
	notify   *notifier // nil where inotify is missing
	listed   map[string]client.ListEntry

	outMu sync.Mutex

	mu      sync.Mutex
	due     map[string]time.Time // paths to look at, and when
	tries   map[string]int       // failures (or asks for holders) in a row
	waiting map[string]bool      // paths not done: the pending gauge
	holding map[string]bool      // paths waiting for holders: served by the held pool
	closed  map[string][2]int64  // size and mtime an inotify close or rename saw
	busy    map[string]bool
	again   map[string]bool // touched by an event while busy
	kick    chan struct{}   // a worker finished: dispatch again
}

func newWatcher(o Options) (*watcher, error) {
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", o.Dir, err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrBadOptions, o.Dir)
	}
	stateAbs, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("watch state %s: %w", o.StateDir, err)
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("watch metrics: %w", err)
	}
	st, err := OpenState(stateAbs)
	if err != nil {
		return nil, err
	}
	return &watcher{o: o, abs: abs, stateAbs: stateAbs, st: st, m: m,
		due: map[string]time.Time{}, tries: map[string]int{}, waiting: map[string]bool{}, holding: map[string]bool{},
		closed: map[string][2]int64{}, busy: map[string]bool{}, again: map[string]bool{}, kick: make(chan struct{}, 1)}, nil
}

func (w *watcher) run(ctx context.Context) error {
	if !w.listPrefix(ctx) {
		return nil // stopped before the site ever answered
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rescanNow := make(chan struct{}, 1)
	if n, err := newNotifier(); err != nil {
		w.o.Log.Warn("no inotify: new files are found by the rescan alone", "rescan", w.o.Rescan, "err", err)
	} else {
		w.notify = n
		wg.Go(func() {
			if err := n.run(ctx, func(dir string, ev event) { w.onEvent(dir, ev, rescanNow) }); err != nil {
				w.fail("inotify", err)
				w.o.Log.Warn("inotify stopped: new files are found by the rescan alone", "rescan", w.o.Rescan)
			}
		})
	}
	puts, helds := make(chan string, w.o.Jobs), make(chan string, w.o.Jobs)
	for range w.o.Jobs {
		wg.Go(func() { w.worker(ctx, puts) })
		wg.Go(func() { w.worker(ctx, helds) })
	}
	w.rescan()
	tick := time.NewTicker(min(max(w.o.Settle/4, 10*time.Millisecond), 250*time.Millisecond))
	defer tick.Stop()
	rescan := time.NewTicker(w.o.Rescan)
	defer rescan.Stop()
	for {
		w.dispatch(puts, helds)
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		case <-tick.C:
		case <-rescan.C:
			w.rescan()
		case <-rescanNow:
			w.rescan()
		}
	}
}

// listPrefix reads the latest version of every name under the prefix,
// trying until the site answers: a file with no record whose name
// already holds its bytes (put by put -r, or before the state was lost)
// is not put again. It returns false if ctx ended first.
func (w *watcher) listPrefix(ctx context.Context) bool {
	for try := 1; ; try++ {
		listed, err := listAll(ctx, w.o.Site, w.o.Prefix)
		if err == nil {
			w.listed = listed
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.fail("list "+w.o.Prefix, err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(Backoff(try, w.o.RetryMin, w.o.RetryMax)):
		}
	}
}

func listAll(ctx context.Context, s Site, prefix string) (map[string]client.ListEntry, error) {
	out := map[string]client.ListEntry{}
	after := ""
	for {
		page, err := s.List(ctx, prefix, after, 0)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Objects {
			out[e.Name] = e
		}
		if page.Next == "" || page.Next == after {
			return out, nil
		}
		after = page.Next
	}
}

// worker processes the paths it is handed until ctx ends.
func (w *watcher) worker(ctx context.Context, paths <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case rel := <-paths:
			next, held, err := w.process(ctx, rel)
			if ctx.Err() != nil {
				w.done(rel, time.Now(), false, nil) // looked at again after a restart
				continue
			}
			w.done(rel, next, held, err)
		}
	}
}

// touch schedules rel to be looked at now: always after an event
// (force), else unless it already waits for something.
func (w *watcher) touch(rel string, force bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy[rel] {
		if force {
			w.again[rel] = true
		}
		return
	}
	if _, ok := w.due[rel]; ok && !force {
		return
	}
	w.due[rel] = time.Now()
}

// done records how a look at rel ended: next is when to look again
// (zero: nothing left to do), held that it waits for holders, err a
// failure to try again after a backoff.
func (w *watcher) done(rel string, next time.Time, held bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.busy, rel)
	switch {
	case err != nil:
		w.tries[rel]++
		next = time.Now().Add(Backoff(w.tries[rel], w.o.RetryMin, w.o.RetryMax))
		w.m.errors.Inc()
		w.o.Log.Error("watch: will try again", "path", rel, "in", time.Until(next).Round(time.Millisecond), "err", err)
	case held:
		w.tries[rel]++
		next = time.Now().Add(Backoff(w.tries[rel], w.o.RetryMin, w.o.RetryMax))
	default:
		delete(w.tries, rel)
	}
	if held {
		w.holding[rel] = true
	} else {
		delete(w.holding, rel)
	}
	if w.again[rel] {
		delete(w.again, rel)
		next = time.Now()
	}
	if next.IsZero() {
		delete(w.waiting, rel)
		delete(w.closed, rel)
	} else {
		w.waiting[rel] = true
		w.due[rel] = next
	}
	w.m.pending.Set(float64(len(w.waiting)))
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// dispatch hands the paths that are due to the workers of their pool,
// as many as the pool has room for; the others stay due (a worker that
// finishes kicks the next dispatch), so that files waiting for holders
// never hold back files to put.
func (w *watcher) dispatch(puts, helds chan<- string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for rel, at := range w.due {
		if at.After(now) {
			continue
		}
		pool := puts
		if w.holding[rel] {
			pool = helds
		}
		select {
		case pool <- rel:
			delete(w.due, rel)
			w.busy[rel] = true
		default: // that pool is busy
		}
	}
}

// rescan walks the tree: every directory is watched, every file looked
// at unless it already waits, and every record whose file is gone too.
func (w *watcher) rescan() {
	seen := map[string]bool{}
	err := filepath.WalkDir(w.abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			w.fail("rescan "+p, err)
			return nil
		}
		if d.IsDir() {
			if p == w.stateAbs {
				return filepath.SkipDir
			}
			w.watchDir(p)
			return nil
		}
		if rel, ok := w.relOf(p); ok && d.Type().IsRegular() {
			seen[rel] = true
			w.touch(rel, false)
		}
		return nil
	})
	if err != nil {
		w.fail("rescan", err)
	}
	err = w.st.Paths(func(rel string) error {
		if !seen[rel] {
			w.touch(rel, false)
		}
		return nil
	})
	if err != nil {
		w.fail("rescan", err)
	}
}

// relOf returns the path under the watched directory, with slashes, of
// a file that is watched.
func (w *watcher) relOf(p string) (string, bool) {
	rel, err := filepath.Rel(w.abs, p)
	if err != nil || !filepath.IsLocal(rel) || !w.o.included(filepath.Base(p)) {
		return "", false
	}
	if strings.HasPrefix(p, w.stateAbs+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

func (w *watcher) watchDir(p string) {
	if w.notify == nil {
		return
	}
	rel, err := filepath.Rel(w.abs, p)
	if err == nil {
		err = w.notify.add(p, filepath.ToSlash(rel))
	}
	if err != nil {
		w.fail("watch "+p, err)
	}
}

// onEvent handles one inotify event in directory dir (relative).
func (w *watcher) onEvent(dir string, ev event, rescanNow chan<- struct{}) {
	if ev.mask&evOverflow != 0 {
		w.o.Log.Warn("inotify queue overflowed: rescanning")
		select {
		case rescanNow <- struct{}{}:
		default:
		}
		return
	}
	if ev.name == "" {
		if ev.mask&evDirGone != 0 && dir == "" {
			w.o.Log.Warn("the watched directory itself is gone; rescans look for it", "dir", w.abs)
		}
		return
	}
	p := filepath.Join(w.abs, filepath.FromSlash(dir), ev.name)
	if ev.mask&evIsDir != 0 {
		if ev.mask&(evCreate|evClosed) != 0 && p != w.stateAbs {
			w.addTree(p) // a new directory: watch it, and take what was written before the watch
		}
		return
	}
	rel, ok := w.relOf(p)
	if !ok {
		return
	}
	if ev.mask&evClosed != 0 {
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
			w.mu.Lock()
			w.closed[rel] = [2]int64{st.Size(), st.ModTime().UnixNano()}
			w.mu.Unlock()
		}
	}
	if ev.mask&(evClosed|evGone) != 0 {
		w.touch(rel, true)
	}
}

// addTree watches a new directory and everything under it, and looks at
// the files already there.
func (w *watcher) addTree(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // gone again, most likely; the rescan will tell
		case d.IsDir():
			w.watchDir(p)
		case d.Type().IsRegular():
			if rel, ok := w.relOf(p); ok {
				w.touch(rel, true)
			}
		}
		return nil
	})
}

// fail logs and counts a failure outside any one file's processing.
func (w *watcher) fail(what string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	w.m.errors.Inc()
	w.o.Log.Error("watch: "+what, "err", err)
}

// line prints one summary line.
func (w *watcher) line(format string, args ...any) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	fmt.Fprintf(w.o.Out, format+"\n", args...)
}
