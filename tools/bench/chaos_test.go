package bench

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/site/client"
)

var testLimits = planLimits{MinSites: 4, MaxSites: 8, Duration: 30 * time.Second, MaxSize: 50_000_000, Frames: 3}

// A schedule is drawn from its seed and number alone: a replay runs the
// same plan.
func TestChaosPlanIsDrawnFromSeedAndNumber(t *testing.T) {
	a, b := newChaosPlan(testLimits, 7, 17), newChaosPlan(testLimits, 7, 17)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed and schedule drew two plans")
	}
	if c := newChaosPlan(testLimits, 7, 18); reflect.DeepEqual(a.Faults, c.Faults) && reflect.DeepEqual(a.Ops, c.Ops) {
		t.Fatal("schedules 17 and 18 drew the same plan")
	}
}

// Every plan is a connected graph with loops, its faults stay within the
// phase, never overlap on one target, and every kind gets drawn.
func TestChaosPlansKeepTheirBounds(t *testing.T) {
	kinds := map[faultKind]bool{}
	ops := map[opKind]bool{}
	for s := 1; s <= 300; s++ {
		p := newChaosPlan(testLimits, 1, s)
		if p.Sites < 4 || p.Sites > 8 {
			t.Fatalf("schedule %d: %d sites", s, p.Sites)
		}
		if len(p.Edges) < p.Sites {
			t.Fatalf("schedule %d: %d links over %d sites: no loop", s, len(p.Edges), p.Sites)
		}
		if !connected(p.Sites, p.Edges) {
			t.Fatalf("schedule %d: graph not connected: %v", s, p.Edges)
		}
		until := map[string]time.Duration{}
		for _, f := range p.Faults {
			kinds[f.Kind] = true
			if f.At < 0 || f.Until < f.At || f.Until > p.Duration {
				t.Fatalf("schedule %d: %s outside the phase of %s", s, f, p.Duration)
			}
			if f.Kind == faultFlip || f.Kind == faultFill {
				if f.At < 0 || f.Until < f.At || f.Until > p.Duration {
					t.Fatalf("schedule %d: %s outside the phase of %s", s, f, p.Duration)
				}
				continue // they share targets with the others by design
			}
			var key string
			if f.Kind.onSite() {
				key = "site" + string(rune('0'+f.Site))
			} else {
				key = "edge" + string(rune('0'+f.Edge[0])) + string(rune('0'+f.Edge[1]))
			}
			if until[key] > f.At {
				t.Fatalf("schedule %d: %s overlaps an earlier fault on the same target", s, f)
			}
			until[key] = f.Until + time.Second
		}
		for _, o := range p.Ops {
			ops[o.Kind] = true
			if o.Size > testLimits.MaxSize {
				t.Fatalf("schedule %d: a put of %d bytes", s, o.Size)
			}
			if o.Kind == opPut2 && o.Site == o.Site2 {
				t.Fatalf("schedule %d: put2 at one site twice", s)
			}
		}
	}
	for _, k := range allFaults {
		if !kinds[k] {
			t.Errorf("no schedule drew a %s fault", k)
		}
	}
	for _, k := range []opKind{opPut, opPut2, opRm, opGet, opFresh, opSHA} {
		if !ops[k] {
			t.Errorf("no schedule drew a %s operation", k)
		}
	}
}

func connected(n int, edges [][2]int) bool {
	seen := map[int]bool{0: true}
	for changed := true; changed; {
		changed = false
		for _, e := range edges {
			if seen[e[0]] != seen[e[1]] {
				seen[e[0]], seen[e[1]] = true, true
				changed = true
			}
		}
	}
	return len(seen) == n
}

func versions(latest string, vs ...client.Version) client.VersionList {
	return client.VersionList{Latest: latest, Versions: vs}
}

// The judge finds each kind of failure the checker exists for.
func TestChaosJudge(t *testing.T) {
	const (
		v1 = "1796393961744.0000.s0"
		v2 = "1796393961757.0000.s1"
		v3 = "1796393961800.0000.s2"
	)
	put1 := client.Version{Version: v1, SHA256: "aa"}
	put2 := client.Version{Version: v2, SHA256: "bb"}
	put3 := client.Version{Version: v3, SHA256: "cc"}
	acks := []ackEntry{{Name: "n", Version: v1, SHA: "aa"}, {Name: "n", Version: v2, SHA: "bb", Site: 1}}
	both := versions(v2, put2, put1)
	view := func(site int, vl client.VersionList) siteView {
		return siteView{Site: site, Chunks: 2, Names: map[string]client.VersionList{"n": vl}}
	}
	cases := []struct {
		name  string
		maybe map[string][]maybeEntry
		views []siteView
		want  verdict // counts only
		text  string  // in the first problem
	}{
		{"converged", nil, []siteView{view(0, both), view(1, both)}, verdict{}, ""},
		{"an acknowledged version missing", nil, []siteView{view(0, both), view(1, versions(v2, put2))}, verdict{Lost: 1}, "lost"},
		{"latests differ", nil, []siteView{view(0, both), view(1, versions(v1, put1))}, verdict{Lost: 1, Divergent: 1}, "lost"},
		{"a version nobody put", nil, []siteView{view(0, versions(v3, put3, put2, put1)), view(1, versions(v3, put3, put2, put1))}, verdict{Unexplained: 2}, "unexplained"},
		{"an unknown outcome that landed", map[string][]maybeEntry{"n": {{SHA: "cc"}}},
			[]siteView{view(0, versions(v3, put3, put2, put1)), view(1, versions(v3, put3, put2, put1))}, verdict{}, ""},
		{"a backlog left", nil, []siteView{view(0, both), {Site: 1, Backlog: 3, Chunks: 2, Names: map[string]client.VersionList{"n": both}}}, verdict{}, "backlog"},
		{"the liar's name visible", nil, []siteView{view(0, both), {Site: 1, Chunks: 2, Liar: []string{"name x"}, Names: map[string]client.VersionList{"n": both}}}, verdict{}, "liar"},
		{"chunk counts differ", nil, []siteView{view(0, both), {Site: 1, Chunks: 1, Names: map[string]client.VersionList{"n": both}}}, verdict{}, "chunk counts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := judge(acks, c.maybe, c.views)
			if got.Lost != c.want.Lost || got.Divergent != c.want.Divergent || got.Unexplained != c.want.Unexplained {
				t.Fatalf("lost %d divergent %d unexplained %d, want %d %d %d: %v", got.Lost, got.Divergent, got.Unexplained,
					c.want.Lost, c.want.Divergent, c.want.Unexplained, got.Problems)
			}
			if c.text == "" {
				if !got.ok() {
					t.Fatalf("problems: %v", got.Problems)
				}
				return
			}
			if got.ok() || !strings.Contains(got.Problems[0], c.text) {
				t.Fatalf("problems %v, want one about %q", got.Problems, c.text)
			}
		})
	}
}

// Duplicates are allowed only where a process or a connection ended with
// payloads in flight.
func TestChaosDuplicatesNeedADisruptiveFault(t *testing.T) {
	calm := chaosPlan{Faults: []chaosFault{{Kind: faultLatency}, {Kind: faultSqueeze}, {Kind: faultLiar}}}
	if calm.disruptive() {
		t.Error("latency, squeeze and the liar count as disruptive")
	}
	for _, k := range []faultKind{faultKill, faultHang, faultCut, faultBlackhole, faultClock, faultUntrust, faultUnlink, faultMaxRate} {
		if !(chaosPlan{Faults: []chaosFault{{Kind: k}}}).disruptive() {
			t.Errorf("%s does not count as disruptive", k)
		}
	}
	r := ScheduleResult{Converged: true, Duplicates: 1}
	if r.passed() {
		t.Error("a duplicate without a disruptive fault passed")
	}
	if r.Disruptive = true; !r.passed() {
		t.Error("a duplicate after a disruptive fault failed")
	}
}

func TestChaosSummary(t *testing.T) {
	rs := []ScheduleResult{
		{Seed: 1, Schedule: 1, Pass: true, Converged: true, ConvergeSeconds: 2, Acked: 10, Load: "1.50"},
		{Seed: 1, Schedule: 2, Pass: false, Converged: false, Acked: 5, Lost: 1, Load: "0.25"},
		{Seed: 1, Schedule: 3, Pass: true, Converged: true, ConvergeSeconds: 9, Acked: 7, Load: "3.00"},
	}
	got := summarizeChaos(rs)
	for _, want := range []string{"2/3 passed", "2/3 converged", "p50 2.0s p99 9.0s", "22 acknowledged operations", "1 lost", "load average 0.25–3.00 (median 1.50)"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}
