package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skyfed/skyfed/testlab"
)

// A chaos schedule is drawn whole from (seed, schedule number) before it
// runs: the topology, the link rates, every fault with its start and end,
// and every client operation with its time. Replaying a schedule draws
// the same plan; only what the processes make of it varies.

// faultKind names one kind of fault of a chaos schedule.
type faultKind string

// The faults a schedule draws from. Each has a start (At) and, except
// for the liar, an end (Until) at which it is healed.
const (
	faultKill      faultKind = "kill"      // SIGKILL a site, restart it at Until
	faultHang      faultKind = "hang"      // SIGSTOP a site, SIGCONT at Until
	faultCut       faultKind = "cut"       // the link's proxy closes and refuses connections
	faultBlackhole faultKind = "blackhole" // the connection stays up, bytes vanish
	faultLatency   faultKind = "latency"   // added one-way latency on the link
	faultSqueeze   faultKind = "squeeze"   // the link's proxy carries only a trickle
	faultUntrust   faultKind = "untrust"   // the acceptor untrusts the dialer, trusts it again at Until
	faultUnlink    faultKind = "unlink"    // the dialer drops the link from its config, links again at Until
	faultMaxRate   faultKind = "max-rate"  // the dialer changes the link's --max-rate, restores it at Until
	faultClock     faultKind = "clock"     // the site restarts with its clock off by minutes, and back
	faultLiar      faultKind = "liar"      // a lying peer dials the site and pushes forgeries
	faultFlip      faultKind = "flip"      // bytes flipped in chunk records of one of the site's pack files
	faultFill      faultKind = "fill"      // the site's disk (a tmpfs of the run's) filled, freed at Until
)

// linkAndSiteFaults are the kinds drawn from a schedule's first random
// stream, in the order the summary lists them. The healing faults (flip,
// fill) come from a stream of their own (drawHealFaults), so adding them
// left every earlier schedule's topology, workload and other faults as
// they were: an old replay command still draws the same schedule, with
// flips and perhaps a fill on top.
var linkAndSiteFaults = []faultKind{faultKill, faultHang, faultCut, faultBlackhole, faultLatency, faultSqueeze,
	faultUntrust, faultUnlink, faultMaxRate, faultClock, faultLiar}

// allFaults is every kind, in the order the summary lists them.
var allFaults = append(slices.Clone(linkAndSiteFaults), faultFlip, faultFill)

// disruptive reports whether a fault may make a payload cross a link
// twice in offer mode: it ends a process or a connection with payloads
// in flight (a send whose answer or ack was lost). An untrust or unlink
// closes the link's connection as a cut does (chaos seed 1, schedule
// 115: one duplicate chunk after an untrust dropped a link mid-transfer),
// and so does a --max-rate change today: the site restarts a link whose
// config changed (schedule 125: six duplicate chunks after four).
func (k faultKind) disruptive() bool {
	switch k {
	case faultKill, faultHang, faultCut, faultBlackhole, faultClock, faultUntrust, faultUnlink, faultMaxRate:
		return true
	}
	return false
}

// onSite reports whether the fault targets a site rather than a link.
func (k faultKind) onSite() bool {
	switch k {
	case faultKill, faultHang, faultClock, faultLiar, faultFlip, faultFill:
		return true
	}
	return false
}

// instant reports whether the fault is one action with nothing to heal.
func (k faultKind) instant() bool { return k == faultLiar || k == faultFlip }

// chaosFault is one planned fault.
type chaosFault struct {
	Kind      faultKind
	At, Until time.Duration // from the start of the schedule
	Site      int           // site faults
	Edge      [2]int        // link faults: [dialer, acceptor]
	Latency   time.Duration // latency
	Rate      int64         // squeeze: bytes/s through the proxy; max-rate: the new --max-rate
	Offset    time.Duration // clock
	// Flip: how many chunks to damage, the seed of the choices made on
	// the pack files found then, and whether the site is meant to be
	// stopped (the flip falls inside a kill of the same site, so the
	// damage is there when it starts).
	Chunks  int
	Seed    uint64
	Stopped bool
	// Final: the flip comes after convergence, just before the final
	// scrub, which must find and repair it.
	Final bool
}

func (f chaosFault) String() string {
	target := fmt.Sprintf("s%d", f.Site)
	if !f.Kind.onSite() {
		target = fmt.Sprintf("s%d→s%d", f.Edge[0], f.Edge[1])
	}
	extra := ""
	switch f.Kind {
	case faultLatency:
		extra = " " + f.Latency.String()
	case faultSqueeze, faultMaxRate:
		extra = " " + ByteSize(f.Rate).String() + "/s"
	case faultClock:
		extra = fmt.Sprintf(" %+v", f.Offset)
	case faultFlip:
		extra = fmt.Sprintf(" %d chunk", f.Chunks)
		if f.Chunks != 1 {
			extra += "s"
		}
		if f.Stopped {
			extra += " (stopped)"
		}
		if f.Final {
			return fmt.Sprintf("%s %s%s before the final scrub", f.Kind, target, extra)
		}
	}
	if f.Kind.instant() {
		return fmt.Sprintf("%s %s%s at %s", f.Kind, target, extra, f.At)
	}
	return fmt.Sprintf("%s %s%s %s–%s", f.Kind, target, extra, f.At, f.Until)
}

// opKind names one kind of client operation.
type opKind string

// The operations of a workload.
const (
	opPut   opKind = "put"   // put a new version
	opPut2  opKind = "put2"  // the same name at two sites at once
	opRm    opKind = "rm"    // delete (a tombstone version)
	opGet   opKind = "get"   // read at a site, read-through if it does not hold the name
	opFresh opKind = "fresh" // get --fresh
	opSHA   opKind = "sha"   // get by whole-object SHA-256
)

// chaosOp is one planned client operation.
type chaosOp struct {
	Kind      opKind
	At        time.Duration
	Site      int // where it is sent
	Site2     int // put2: the second site
	Name      string
	Size      int64
	Seed      uint64        // of the random bytes (or, with FITS, the frame variant)
	FITS      int           // index of a FITS frame to put, -1 for random bytes
	Expires   time.Duration // 0: none
	WaitSites int           // 0: none
	CLI       bool          // through the skyfed CLI instead of HTTP
}

// chaosPlan is one schedule, drawn from its seed and number.
type chaosPlan struct {
	Seed     uint64
	Schedule int
	Sites    int
	topoSeed int64 // of the random topology
	Edges    [][2]int
	Rates    map[[2]int]string
	Faults   []chaosFault
	Ops      []chaosOp
	Duration time.Duration
}

// planLimits bound what a plan may draw.
type planLimits struct {
	MinSites, MaxSites int
	Duration           time.Duration // the fault and workload phase
	MaxSize            int64         // largest object
	Frames             int           // FITS frames available (0: random bytes only)
	Faults             []faultKind   // kinds to draw from; nil: all
}

// newChaosPlan draws schedule number schedule of seed.
func newChaosPlan(lim planLimits, seed uint64, schedule int) chaosPlan {
	rng := rand.New(rand.NewPCG(seed, uint64(schedule)))
	n := lim.MinSites + rng.IntN(lim.MaxSites-lim.MinSites+1)
	p := chaosPlan{Seed: seed, Schedule: schedule, Sites: n, Duration: lim.Duration, Rates: map[[2]int]string{}}
	p.topoSeed = int64(rng.Uint64() >> 1)
	edges, err := testlab.Topology("random", n, p.topoSeed)
	if err != nil { // n ≥ 3 is checked by the caller
		panic(err)
	}
	p.Edges = edges
	for _, e := range edges {
		if rng.IntN(10) < 3 {
			p.Rates[e] = []string{"5MB/s", "10MB/s", "20MB/s"}[rng.IntN(3)]
		}
	}
	p.Faults = drawFaults(rng, lim, n, edges)
	p.Ops = drawOps(rng, lim, n, schedule)
	heal := rand.New(rand.NewPCG(seed^healStream, uint64(schedule)))
	p.Faults = append(p.Faults, drawHealFaults(heal, lim, n, p.Faults)...)
	sort.SliceStable(p.Faults, func(i, j int) bool { return p.Faults[i].At < p.Faults[j].At })
	return p
}

// healStream tells the random stream of the healing faults from a
// schedule's first stream.
const healStream = 0x6865616c_666c6970 // "healflip"

// drawHealFaults draws the faults that test the sites' healing: about one
// flip per 15 s of the phase at a random site (after its first third),
// one after convergence that only the final scrub can find, one more inside every kill
// (the damage waits for the site's start), and in half the schedules one
// fill of the site whose data dir the run puts on a tmpfs of its own.
func drawHealFaults(rng *rand.Rand, lim planLimits, n int, drawn []chaosFault) []chaosFault {
	span := max(lim.Duration-2*time.Second, time.Second)
	var out []chaosFault
	if lim.Faults == nil || slices.Contains(lim.Faults, faultFlip) {
		// In the later two thirds of the phase, when the sites hold
		// something to damage.
		from := lim.Duration / 3
		for range max(1, int(lim.Duration/(15*time.Second))) {
			at := (from + time.Duration(rng.Int64N(int64(max(span-from, time.Second))))).Round(100 * time.Millisecond)
			f := chaosFault{Kind: faultFlip, At: min(at, span), Site: rng.IntN(n), Chunks: 1 + rng.IntN(3), Seed: rng.Uint64()}
			f.Until = f.At
			out = append(out, f)
		}
		for _, k := range drawn {
			if k.Kind != faultKill || k.Until-k.At < time.Second {
				continue
			}
			at := (k.At + (k.Until-k.At)/2).Round(100 * time.Millisecond)
			out = append(out, chaosFault{Kind: faultFlip, At: at, Until: at, Site: k.Site, Chunks: 1 + rng.IntN(3), Seed: rng.Uint64(), Stopped: true})
		}
		out = append(out, chaosFault{Kind: faultFlip, At: lim.Duration, Until: lim.Duration, Site: rng.IntN(n), Chunks: 1 + rng.IntN(3),
			Seed: rng.Uint64(), Final: true})
	}
	if (lim.Faults == nil || slices.Contains(lim.Faults, faultFill)) && rng.IntN(2) == 0 {
		f := chaosFault{Kind: faultFill, Site: rng.IntN(n)}
		f.At = time.Duration(rng.Int64N(int64(span))).Round(100 * time.Millisecond)
		f.Until = min(f.At+3*time.Second+time.Duration(rng.Int64N(int64(5*time.Second))).Round(100*time.Millisecond), lim.Duration)
		out = append(out, f)
	}
	return out
}

// fillSite returns the site a fill fault of the plan targets, or -1: that
// site's data dir gets a tmpfs of its own.
func (p chaosPlan) fillSite() int {
	for _, f := range p.Faults {
		if f.Kind == faultFill {
			return f.Site
		}
	}
	return -1
}

// drawFaults draws about one fault per 5 s of the phase, at most one at a
// time on each site and each link, every one healed within the phase.
func drawFaults(rng *rand.Rand, lim planLimits, n int, edges [][2]int) []chaosFault {
	kinds := lim.Faults
	if kinds == nil {
		kinds = linkAndSiteFaults
	}
	kinds = slices.DeleteFunc(slices.Clone(kinds), func(k faultKind) bool { return k == faultFlip || k == faultFill })
	if len(kinds) == 0 {
		return nil
	}
	busy := map[string]time.Duration{} // target → busy until
	var out []chaosFault
	count := max(1, int(lim.Duration/(5*time.Second)))
	span := max(lim.Duration-2*time.Second, time.Second)
	for range count {
		for range 10 { // a few tries to find a free target
			f := chaosFault{Kind: kinds[rng.IntN(len(kinds))]}
			f.At = time.Duration(rng.Int64N(int64(span))).Round(100 * time.Millisecond)
			f.Until = min(f.At+2*time.Second+time.Duration(rng.Int64N(int64(8*time.Second))).Round(100*time.Millisecond), lim.Duration)
			var target string
			if f.Kind.onSite() {
				f.Site = rng.IntN(n)
				target = fmt.Sprintf("s%d", f.Site)
			} else {
				f.Edge = edges[rng.IntN(len(edges))]
				target = fmt.Sprintf("e%d-%d", f.Edge[0], f.Edge[1])
			}
			switch f.Kind {
			case faultLatency:
				f.Latency = time.Duration(20+rng.IntN(280)) * time.Millisecond
			case faultSqueeze:
				f.Rate = int64(50_000 + rng.IntN(450_000))
			case faultMaxRate:
				f.Rate = int64(1_000_000 * (1 + rng.IntN(10)))
			case faultClock:
				f.Offset = []time.Duration{-3 * time.Minute, -time.Minute, time.Minute, 3 * time.Minute}[rng.IntN(4)]
			case faultLiar:
				f.Until = f.At
			}
			if busy[target] > f.At {
				continue
			}
			busy[target] = f.Until + time.Second
			out = append(out, f)
			break
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// drawOps draws the workload: about one operation per second of the
// phase, over a small pool of names so that names get several versions.
func drawOps(rng *rand.Rand, lim planLimits, n, schedule int) []chaosOp {
	count := max(4, int(lim.Duration/time.Second))
	names := make([]string, max(2, count/3))
	for i := range names {
		names[i] = fmt.Sprintf("chaos/%d/obj-%02d", schedule, i)
	}
	var out []chaosOp
	var put []int // names put so far (by index), for rm and gets
	for range count {
		op := chaosOp{At: time.Duration(rng.Int64N(int64(lim.Duration))), Site: rng.IntN(n), FITS: -1, Seed: rng.Uint64()}
		r := rng.IntN(100)
		switch {
		case r < 45 || len(put) == 0:
			op.Kind = opPut
		case r < 55:
			op.Kind = opPut2
		case r < 63:
			op.Kind = opRm
		case r < 78:
			op.Kind = opGet
		case r < 88:
			op.Kind = opFresh
		default:
			op.Kind = opSHA
		}
		switch op.Kind {
		case opPut, opPut2:
			idx := rng.IntN(len(names))
			put = append(put, idx)
			op.Name = names[idx]
			op.Size = drawSize(rng, lim)
			if lim.Frames > 0 && rng.IntN(4) == 0 {
				op.FITS = rng.IntN(lim.Frames)
			}
			if op.Kind == opPut2 {
				op.Site2 = (op.Site + 1 + rng.IntN(n-1)) % n
			}
			switch rng.IntN(10) {
			case 0:
				op.Expires = time.Second // expired by the time the checker looks
			case 1:
				op.Expires = 24 * time.Hour
			}
			if rng.IntN(8) == 0 {
				op.WaitSites = 2
			}
			op.CLI = rng.IntN(4) == 0
		default:
			op.Name = names[put[rng.IntN(len(put))]]
			op.CLI = op.Kind != opSHA && rng.IntN(3) == 0
		}
		out = append(out, op)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// drawSize draws an object size: mostly small, some megabytes, a few up
// to the limit.
func drawSize(rng *rand.Rand, lim planLimits) int64 {
	r := rng.IntN(100)
	var lo, hi int64
	switch {
	case r < 60:
		lo, hi = 1000, 256<<10
	case r < 92:
		lo, hi = 256<<10, 4<<20
	default:
		lo, hi = 4<<20, lim.MaxSize
	}
	hi = min(hi, lim.MaxSize)
	lo = min(lo, hi)
	return lo + rng.Int64N(hi-lo+1)
}

// disruptive reports whether any fault of the plan may cause duplicates.
func (p chaosPlan) disruptive() bool {
	return slices.ContainsFunc(p.Faults, func(f chaosFault) bool { return f.Kind.disruptive() })
}

// faultCounts sums the plan's faults by kind, as "kill:1 cut:2".
func (p chaosPlan) faultCounts() string {
	counts := map[faultKind]int{}
	for _, f := range p.Faults {
		counts[f.Kind]++
	}
	var parts []string
	for _, k := range allFaults {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", k, counts[k]))
		}
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, " ")
}

// topology describes the plan's graph: "6 sites, 8 links (2 capped)".
func (p chaosPlan) topology() string {
	return fmt.Sprintf("%d sites, %d links (%d capped)", p.Sites, len(p.Edges), len(p.Rates))
}
