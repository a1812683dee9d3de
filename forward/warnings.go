package forward

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/forward/engine"
)

// warnEvery is the least time between two log lines of one kind of note
// on one link: a misbehaving peer can make the engine note the same
// thing thousands of times a second, and the counter, not the log,
// carries that volume.
const warnEvery = 10 * time.Second

// noteKey is one link and either a note's whole message (what repeats,
// for the log) or its kind (for the counter).
type noteKey struct {
	link engine.LinkID
	msg  string
}

type noteLog struct {
	suppressed int64     // notes not logged since the last line
	logged     time.Time // when the last line was written
}

// maxNoteLogs bounds the messages remembered for rate limiting: some
// messages embed a reason naming IDs, so there is no fixed set of them.
// Past it, entries whose interval has run out are forgotten (their next
// note is logged as a first one, which is what it would be anyway).
const maxNoteLogs = 1024

// noteLimiter decides which of the engine's notes are logged (the first
// of each message per link, then at most one per interval, saying how
// many it stands for) and counts them all by kind for
// skyfed_link_warnings_total.
type noteLimiter struct {
	every time.Duration
	now   func() time.Time // the real clock; a test may step its own

	mu     sync.Mutex
	logs   map[noteKey]*noteLog // by message
	totals map[noteKey]int64    // by kind
}

func newNoteLimiter(every time.Duration) *noteLimiter {
	return &noteLimiter{every: every, now: time.Now, logs: map[noteKey]*noteLog{}, totals: map[noteKey]int64{}}
}

// noteKind is the stable part of a note's message: up to its first
// parenthesis or semicolon, so notes that embed a reason or an ID count
// as one kind and the label set stays small.
func noteKind(msg string) string {
	if i := strings.IndexAny(msg, "(;"); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

// allow counts a note and reports whether to log it, and if so how many
// notes with its message on its link went unlogged since the last line.
func (w *noteLimiter) allow(link engine.LinkID, msg string) (ok bool, repeated int64) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.totals[noteKey{link, noteKind(msg)}]++
	k := noteKey{link, msg}
	c := w.logs[k]
	if c == nil {
		if len(w.logs) >= maxNoteLogs {
			w.prune(now)
		}
		c = &noteLog{}
		w.logs[k] = c
	}
	if !c.logged.IsZero() && now.Sub(c.logged) < w.every {
		c.suppressed++
		return false, 0
	}
	repeated, c.suppressed, c.logged = c.suppressed, 0, now
	return true, repeated
}

// prune forgets messages whose interval ran out; if all are within it,
// it forgets them all rather than grow: the counter keeps every note.
func (w *noteLimiter) prune(now time.Time) {
	for k, c := range w.logs {
		if now.Sub(c.logged) >= w.every {
			delete(w.logs, k)
		}
	}
	if len(w.logs) >= maxNoteLogs {
		clear(w.logs)
	}
}

// noteTotal is one row of the counter.
type noteTotal struct {
	link  engine.LinkID
	kind  string
	total int64
}

func (w *noteLimiter) counted() []noteTotal {
	w.mu.Lock()
	out := make([]noteTotal, 0, len(w.totals))
	for k, total := range w.totals {
		out = append(out, noteTotal{k.link, k.msg, total})
	}
	w.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].link != out[j].link {
			return out[i].link.String() < out[j].link.String()
		}
		return out[i].kind < out[j].kind
	})
	return out
}

// logNote logs one of the engine's notes unless the limiter holds it
// back; a line that stands for held-back ones says how many.
func (n *Node) logNote(note engine.Note) {
	ok, repeated := n.warnings.allow(note.Link, note.Msg)
	if !ok {
		return
	}
	args := []any{"link", note.Link.String()}
	if !note.ID.IsZero() {
		args = append(args, "id", note.ID.Short())
	}
	if note.Err != nil {
		args = append(args, "err", note.Err)
	}
	if repeated > 0 {
		args = append(args, "repeated", repeated, "over", n.warnings.every)
	}
	if note.Warn {
		n.log.Warn(note.Msg, args...)
	} else {
		n.log.Error(note.Msg, args...)
	}
}

var descWarnings = prometheus.NewDesc("skyfed_link_warnings_total",
	"Warnings and errors the forwarding engine noted, by link and kind (the log shows at most one line per kind and link every 10 s).",
	[]string{"peer", "direction", "kind"}, nil)

// collectWarnings sends skyfed_link_warnings_total. Notes not tied to a
// link (local reads, queries) have peer "local" and direction "".
func (n *Node) collectWarnings(ch chan<- prometheus.Metric) {
	for _, t := range n.warnings.counted() {
		peer, dir := t.link.Peer, t.link.Dir.String()
		if t.link.IsLocal() {
			peer, dir = "local", ""
		}
		ch <- prometheus.MustNewConstMetric(descWarnings, prometheus.CounterValue, float64(t.total), peer, dir, t.kind)
	}
}
