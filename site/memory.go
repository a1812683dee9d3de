package site

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
	"time"
)

// The site's memory policy: what a burst (a flood from a peer, a large
// catch-up) leaves behind is handed back to the OS once the site is quiet
// again, instead of whenever the runtime's next forced GC and its slow
// background scavenger get to it (minutes: a flooded site stayed 85 MiB
// above idle). The bounds during a burst come from the limits on what is
// buffered (natslimits.go, forward's subscriptions and assemblies).
const (
	// memoryEvery is how often the policy looks at the heap.
	memoryEvery = 500 * time.Millisecond
	// memoryQuiet is how long allocation must stay below memoryQuietRate
	// before the heap is given back: never in the middle of a burst,
	// when the memory would be taken again at once.
	memoryQuiet     = 2 * time.Second
	memoryQuietRate = 4 << 20 // bytes allocated per second
	// memorySlack is how much the heap may hold above what was live at
	// the last collection before it is worth giving back.
	memorySlack = 8 << 20
	// memoryGap is the least time between two give-backs.
	memoryGap = 5 * time.Second
	// memoryHeadroom is the least room the soft memory limit leaves above
	// what was live at the last collection (and the runtime's own
	// memory); above 32 MiB of live heap it leaves half of it, so a
	// large live heap (the ship cache, big chunks) collects at most
	// about a third more often than GOGC's doubling alone would.
	memoryHeadroom = 16 << 20
)

// pprofEnv, if set to a listen address, makes the site serve
// net/http/pprof there (debugging only: on loopback, with no auth).
const pprofEnv = "SKYFED_DEBUG_PPROF"

// startMemory runs the memory policy (and the pprof listener asked for by
// SKYFED_DEBUG_PPROF) until ctx ends, under s.wg.
func (s *Site) startMemory(ctx context.Context) {
	m := &memoryPolicy{log: s.log}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		m.run(ctx)
	}()
	if addr := os.Getenv(pprofEnv); addr != "" {
		s.servePprof(ctx, addr)
	}
}

// memoryPolicy gives the heap back to the OS after bursts.
type memoryPolicy struct {
	log *slog.Logger

	samples  []rtmetrics.Sample
	lastAll  uint64    // cumulative bytes allocated at the previous look
	quietAt  time.Time // since when allocation has been quiet (zero: not quiet)
	freedAt  time.Time
	freed    int // give-backs so far, for the log
	released uint64
	set      int64 // the soft memory limit set last
}

var memoryMetrics = []string{
	"/gc/heap/allocs:bytes",              // cumulative
	"/gc/heap/live:bytes",                // live after the last GC
	"/memory/classes/heap/objects:bytes", // live and dead objects not yet swept
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes", // free, not yet returned to the OS
	"/memory/classes/heap/released:bytes",
	"/memory/classes/total:bytes",
}

func (m *memoryPolicy) run(ctx context.Context) {
	m.samples = make([]rtmetrics.Sample, len(memoryMetrics))
	for i, name := range memoryMetrics {
		m.samples[i].Name = name
	}
	t := time.NewTicker(memoryEvery)
	defer t.Stop()
	owner := false
	defer func() {
		if owner {
			debug.SetMemoryLimit(math.MaxInt64)
			memoryOwner.Unlock()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !owner {
				owner = memoryOwner.TryLock()
			}
			if owner {
				m.look(now)
			}
		}
	}
}

// memoryOwner is held by the one memory policy that acts: the runtime's
// memory is the process's, and tests and benchmarks run several sites in
// one process; the others take over when it stops.
var memoryOwner sync.Mutex

// look gives the heap back when allocation has been quiet for
// memoryQuiet and the heap holds more than memorySlack above what was
// live at the last collection.
func (m *memoryPolicy) look(now time.Time) {
	rtmetrics.Read(m.samples)
	v := func(i int) uint64 {
		if m.samples[i].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return m.samples[i].Value.Uint64()
	}
	allocs, live := v(0), v(1)
	held := v(2) + v(3) + v(4)
	m.limit(live, v(6)-held-v(5))
	rate := float64(allocs-m.lastAll) / memoryEvery.Seconds()
	first := m.lastAll == 0
	m.lastAll = allocs
	if first || rate > memoryQuietRate {
		m.quietAt = time.Time{}
		return
	}
	if m.quietAt.IsZero() {
		m.quietAt = now
	}
	if now.Sub(m.quietAt) < memoryQuiet || now.Sub(m.freedAt) < memoryGap || held < live+memorySlack {
		return
	}
	debug.FreeOSMemory()
	m.freedAt = now
	m.freed++
	rtmetrics.Read(m.samples)
	after := v(2) + v(3) + v(4)
	if held > after {
		m.released += held - after
	}
	m.log.Debug("memory: heap given back to the OS after a burst", "held_mib", held>>20, "now_mib", after>>20, "times", m.freed)
}

// limit sets the runtime's soft memory limit to what was live at the
// last collection plus the runtime's other memory plus headroom. GOGC
// alone lets the heap double what is live before it collects, and keeps
// what it freed until its scavenger gets to it: under a flood of 1 MiB
// messages (two copies of each, by nats-server and nats.go) that was
// 40 MiB above idle with 20 MiB live. Under the limit the runtime
// collects and returns pages to stay within it; as the limit follows
// what is live, it never makes the runtime collect without end (what is
// live always fits with room to spare).
func (m *memoryPolicy) limit(live, other uint64) {
	if live == 0 {
		return
	}
	want := int64(live + other + max(memoryHeadroom, live/2))
	if d := want - m.set; d > 1<<20 || d < -(1<<20) {
		debug.SetMemoryLimit(want)
		m.set = want
	}
}

// servePprof serves net/http/pprof on addr until ctx ends.
func (s *Site) servePprof(ctx context.Context, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.log.Warn("debug pprof listener not started", "env", pprofEnv, "addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.log.Warn("serving debug pprof: for debugging only", "env", pprofEnv, "addr", ln.Addr().String())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("debug pprof listener", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		srv.Close()
	}()
}
