package sim

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

var (
	seedsFlag = flag.Int("sim.seeds", 0, "run this many seeds of the simulation (default 500, 100 under -race)")
	firstFlag = flag.Uint64("sim.first", 1, "the first seed of a run of seeds")
	seedFlag  = flag.Uint64("sim.seed", 0, "replay this one seed only")
	traceFlag = flag.String("sim.trace", "", "write the event trace of -sim.seed to this file")
)

// regressions are seeds that once failed; they always run.
//
//	14    a read-through fetch pulled a chunk the bulk stream was already
//	      bringing: it crossed into the site twice (fetches now wait for
//	      a claimed payload, relays hold pulls back)
//	1811  a relay's claim for a pull lost on a lossy link held off every
//	      other link's offers for the whole claim timeout (pull claims
//	      now last at most AssemblyIdle without progress)
var regressions = []uint64{14, 1811}

func replay(seed uint64) string {
	return fmt.Sprintf("go test ./forward/sim -run TestSimulation -sim.seed %d -sim.trace /tmp/sim-%d.trace", seed, seed)
}

func runSeed(t *testing.T, seed uint64, trace *bytes.Buffer) Result {
	t.Helper()
	opts := Options{Seed: seed}
	if trace != nil {
		opts.Trace = trace
	}
	res, err := Run(opts)
	if err != nil {
		t.Errorf("%v\nreplay: %s", err, replay(seed))
	}
	return res
}

func TestSimulation(t *testing.T) {
	if *seedFlag != 0 {
		var trace *bytes.Buffer
		if *traceFlag != "" {
			trace = &bytes.Buffer{}
		}
		res := runSeed(t, *seedFlag, trace)
		t.Logf("%+v", res)
		if trace != nil {
			if err := os.WriteFile(*traceFlag, trace.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	n := *seedsFlag
	if n == 0 {
		n = 500
		if raceEnabled {
			n = 100
		}
	}
	var clean, converged, flood, lookups, exact, fetches, fetched int
	var worst time.Duration
	var worstSeed uint64
	for _, seed := range regressions {
		runSeed(t, seed, nil)
	}
	for seed := *firstFlag; seed < *firstFlag+uint64(n) && !t.Failed(); seed++ {
		res := runSeed(t, seed, nil)
		if res.Clean {
			clean++
		}
		if res.Flood {
			flood++
		}
		lookups, exact, fetches, fetched = lookups+res.Lookups, exact+res.LookupsExact, fetches+res.Fetches, fetched+res.FetchesOK
		if !t.Failed() {
			converged++
			if res.Converged > worst {
				worst, worstSeed = res.Converged, seed
			}
		}
	}
	t.Logf("%d seeds from %d: %d clean (nothing may cross twice), %d with flood links, %d converged, slowest convergence after the heal %s (seed %d); "+
		"lookups %d (%d checked for the newest stamp), fetches %d (%d done)",
		n, *firstFlag, clean, flood, converged, worst, worstSeed, lookups, exact, fetches, fetched)
}

// TestSimulationReplaysExactly: two runs of one seed write identical
// traces.
func TestSimulationReplaysExactly(t *testing.T) {
	for _, seed := range []uint64{3, 7, 11} {
		var a, b bytes.Buffer
		if _, err := Run(Options{Seed: seed, Trace: &a}); err != nil {
			t.Fatal(err)
		}
		if _, err := Run(Options{Seed: seed, Trace: &b}); err != nil {
			t.Fatal(err)
		}
		if a.Len() == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("seed %d: traces differ (%d and %d bytes)", seed, a.Len(), b.Len())
		}
	}
}
