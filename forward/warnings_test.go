package forward

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/manifest"
)

// TestNotesRateLimited feeds a node the flood one misbehaving peer
// caused (5,838 "too many payloads in flight" notes in 40 s) plus a few
// of another kind and on another link: the log keeps one line per kind
// and link per 10 s, the lines say how many they stand for, and the
// counter has every note.
func TestNotesRateLimited(t *testing.T) {
	defer goleak.VerifyNone(t)
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n := NewNode(NodeConfig{Site: "alpha", Signer: key, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	defer n.Close()
	clock := time.Unix(1_790_000_000, 0)
	n.warnings.now = func() time.Time { return clock }

	bad := engine.LinkID{Peer: "beta", Dir: engine.DirIn}
	other := engine.LinkID{Peer: "gamma", Dir: engine.DirOut}
	const flood = 5838
	step := 40 * time.Second / flood
	for i := range flood {
		n.carryOut(engine.Ready{Notes: []engine.Note{{Warn: true, Link: bad, ID: chunk.ID{byte(i), 1},
			Msg: "too many payloads in flight; frame dropped (the sender offers it again)"}}}, nil)
		clock = clock.Add(step)
	}
	for range 3 {
		n.carryOut(engine.Ready{Notes: []engine.Note{
			{Warn: true, Link: bad, Msg: "payload refused (manifest: bad signature); not stored, not relayed"},
			{Warn: true, Link: other, Msg: "too many payloads in flight; frame dropped (the sender offers it again)"},
		}}, nil)
	}
	// Another reason is another message (logged at once), of the same kind.
	n.carryOut(engine.Ready{Notes: []engine.Note{{Warn: true, Link: bad, Msg: "payload refused (chunk: corrupt); not stored, not relayed"}}}, nil)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	count := map[string]int{}
	repeated := 0
	for _, line := range lines {
		switch {
		case strings.Contains(line, "too many payloads") && strings.Contains(line, "link=in:beta"):
			count["flood"]++
			if strings.Contains(line, "repeated=") {
				repeated++
			}
		case strings.Contains(line, "payload refused"):
			count["refused"]++
		case strings.Contains(line, "link=out:gamma"):
			count["other"]++
		}
	}
	// 40 s of notes: the first line, then one per 10 s after it.
	if count["flood"] < 1 || count["flood"] > 5 {
		t.Errorf("%d log lines for %d notes in 40 s, want 1 to 5:\n%s", count["flood"], flood, buf.String())
	}
	if repeated != count["flood"]-1 {
		t.Errorf("%d of %d lines after the first say repeated=", repeated, count["flood"]-1)
	}
	if count["refused"] != 2 || count["other"] != 1 {
		t.Errorf("other messages: %d lines of 2 refusal reasons, %d lines on another link; want 2 and 1 (the first of each is logged)", count["refused"], count["other"])
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(n)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "skyfed_link_warnings_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["direction"]+":"+labels["peer"]+"/"+labels["kind"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"in:beta/too many payloads in flight":   flood,
		"in:beta/payload refused":               4,
		"out:gamma/too many payloads in flight": 3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("skyfed_link_warnings_total %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// TestNoteLimiterBounded checks that messages embedding IDs, each new,
// do not grow the limiter without bound while the counter keeps them all.
func TestNoteLimiterBounded(t *testing.T) {
	w := newNoteLimiter(warnEvery)
	clock := time.Unix(1_790_000_000, 0)
	w.now = func() time.Time { return clock }
	link := engine.LinkID{Peer: "beta", Dir: engine.DirIn}
	for i := range 3 * maxNoteLogs {
		msg := fmt.Sprintf("payload refused (manifest %d arrived as another); not stored", i)
		if ok, _ := w.allow(link, msg); !ok {
			t.Fatalf("note %d, a new message, was not logged", i)
		}
		if len(w.logs) > maxNoteLogs {
			t.Fatalf("%d messages remembered, bound %d", len(w.logs), maxNoteLogs)
		}
		clock = clock.Add(time.Millisecond)
	}
	if got := w.counted(); len(got) != 1 || got[0].total != 3*maxNoteLogs || got[0].kind != "payload refused" {
		t.Errorf("counted %+v, want one kind with %d", got, 3*maxNoteLogs)
	}
}
