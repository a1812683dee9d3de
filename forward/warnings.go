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

// noteKey is what repeats: one kind of note on one link.
type noteKey struct {
	link engine.LinkID
	kind string
}

type noteCount struct {
	total      int64     // every note of this kind on this link
	suppressed int64     // notes not logged since the last line
	logged     time.Time // when the last line was written
}

// noteLimiter decides which of the engine's notes are logged (the first
// of each kind per link, then at most one per interval, saying how many
// it stands for) and counts them all for skyfed_link_warnings_total.
type noteLimiter struct {
	every time.Duration
	now   func() time.Time // the real clock; a test may step its own

	mu     sync.Mutex
	counts map[noteKey]*noteCount
}

func newNoteLimiter(every time.Duration) *noteLimiter {
	return &noteLimiter{every: every, now: time.Now, counts: map[noteKey]*noteCount{}}
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
// notes of its kind on its link went unlogged since the last line.
func (w *noteLimiter) allow(link engine.LinkID, kind string) (ok bool, repeated int64) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	k := noteKey{link, kind}
	c := w.counts[k]
	if c == nil {
		c = &noteCount{}
		w.counts[k] = c
	}
	c.total++
	if !c.logged.IsZero() && now.Sub(c.logged) < w.every {
		c.suppressed++
		return false, 0
	}
	repeated, c.suppressed, c.logged = c.suppressed, 0, now
	return true, repeated
}

// noteTotal is one row of the counter.
type noteTotal struct {
	link  engine.LinkID
	kind  string
	total int64
}

func (w *noteLimiter) totals() []noteTotal {
	w.mu.Lock()
	out := make([]noteTotal, 0, len(w.counts))
	for k, c := range w.counts {
		out = append(out, noteTotal{k.link, k.kind, c.total})
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
	ok, repeated := n.warnings.allow(note.Link, noteKind(note.Msg))
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
	for _, t := range n.warnings.totals() {
		peer, dir := t.link.Peer, t.link.Dir.String()
		if t.link.IsLocal() {
			peer, dir = "local", ""
		}
		ch <- prometheus.MustNewConstMetric(descWarnings, prometheus.CounterValue, float64(t.total), peer, dir, t.kind)
	}
}
