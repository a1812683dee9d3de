package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/skyfed/skyfed/testlab"
)

// ChaosConfig says which chaos schedules to run and how.
type ChaosConfig struct {
	Seed      uint64
	First     int // number of the first schedule
	Schedules int // how many, from First on
	// Duration is each schedule's phase of workload and faults; Converge
	// bounds the wait for convergence once every fault is healed.
	Duration, Converge time.Duration
	MinSites, MaxSites int
	MaxSize            int64
	FITS               string // directory of real FITS frames; "" → random bytes only
	Dir                string // scratch directory
	Results            string // JSON lines, one per schedule, appended
	Binary             string // the skyfed binary the sites run
	Keep               bool   // keep the data dirs of every schedule (failed ones are always kept)
	Verbose            bool
	Progress           io.Writer // a line per schedule (and with Verbose, per event)
	// Flags is how the run was invoked beyond seed and schedule numbers,
	// for the replay command a failure prints.
	Flags string
}

// ScheduleResult is one schedule's outcome, as appended to the results file.
type ScheduleResult struct {
	Seed            uint64   `json:"seed"`
	Schedule        int      `json:"schedule"`
	Topology        string   `json:"topology"`
	Faults          string   `json:"faults"`
	Disruptive      bool     `json:"disruptive"` // kill, hang, cut, blackhole or clock restarts: duplicates allowed
	Puts            int      `json:"puts"`
	Acked           int      `json:"acked"`
	Indeterminate   int      `json:"indeterminate"`
	Refused         int      `json:"refused"`
	RefusedFull     int      `json:"refused_full"` // puts and rms a full disk refused (507), retried elsewhere
	Rms             int      `json:"rms"`
	Gets            int      `json:"gets"`
	Converged       bool     `json:"converged"`
	ConvergeSeconds float64  `json:"converge_seconds"`
	Lost            int      `json:"lost"`
	Divergent       int      `json:"divergent"`
	Unexplained     int      `json:"unexplained"`
	Duplicates      int64    `json:"duplicates"`
	Flipped         int      `json:"flipped_chunks"`  // chunks whose pack bytes a flip damaged
	Repaired        int64    `json:"repaired_chunks"` // the sites' repaired counters at the end, over their processes
	ScrubRepaired   int64    `json:"scrub_repaired"`  // of those, by the final scrub
	Notes           []string `json:"notes,omitempty"` // faults skipped (a fill without root) and what the healing faults did
	Violations      []string `json:"violations,omitempty"`
	Panics          []string `json:"panics,omitempty"`
	Problems        []string `json:"problems,omitempty"`
	Error           string   `json:"error,omitempty"`
	Pass            bool     `json:"pass"`
	Elapsed         float64  `json:"elapsed_seconds"`
	Dir             string   `json:"dir,omitempty"` // kept data dirs and logs
	Replay          string   `json:"replay"`
	Load            string   `json:"load,omitempty"`
}

// passed reports whether the schedule met every goal.
func (r ScheduleResult) passed() bool {
	return r.Error == "" && r.Converged && r.Lost == 0 && r.Divergent == 0 && r.Unexplained == 0 &&
		len(r.Violations) == 0 && len(r.Panics) == 0 && len(r.Problems) == 0 &&
		(r.Disruptive || r.Duplicates == 0)
}

// line is the one-line report of a schedule.
func (r ScheduleResult) line() string {
	verdict := "ok"
	if !r.Pass {
		verdict = "FAIL"
	}
	conv := "not converged"
	if r.Converged {
		conv = fmt.Sprintf("converged %.1fs", r.ConvergeSeconds)
	}
	return fmt.Sprintf("seed %d schedule %d: %s; faults %s; puts %d rms %d gets %d (acked %d, unknown %d, refused %d, refused: disk full %d); %s; lost %d divergent %d unexplained %d duplicates %d; flipped %d repaired %d  %s",
		r.Seed, r.Schedule, r.Topology, r.Faults, r.Puts, r.Rms, r.Gets, r.Acked, r.Indeterminate, r.Refused, r.RefusedFull, conv,
		r.Lost, r.Divergent, r.Unexplained, r.Duplicates, r.Flipped, r.Repaired, verdict)
}

func (c ChaosConfig) replay(schedule int) string {
	s := fmt.Sprintf("skyfed bench chaos --seed %d --schedule %d --verbose", c.Seed, schedule)
	if c.Flags != "" {
		s += " " + c.Flags
	}
	return s
}

// ErrChaosFailed reports that at least one schedule failed.
var ErrChaosFailed = errors.New("chaos: schedules failed")

// RunChaos runs the schedules First … First+Schedules-1 of Seed, one at a
// time, appends each result to the results file and prints its line,
// then prints a summary of every result of this seed in the file (so a
// goal run spread over several invocations sums up whole).
func RunChaos(ctx context.Context, cfg ChaosConfig, out io.Writer) error {
	if cfg.MinSites < 3 || cfg.MaxSites < cfg.MinSites {
		return fmt.Errorf("chaos: sites %d to %d: need 3 ≤ min ≤ max", cfg.MinSites, cfg.MaxSites)
	}
	if cfg.Binary == "" {
		return errors.New("chaos: no skyfed binary to run sites with")
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	scratch, err := os.MkdirTemp(cfg.Dir, "skyfed-chaos-")
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	cfg.Dir = scratch
	frames, err := loadChaosFrames(cfg.FITS)
	if err != nil {
		return err
	}
	lim := planLimits{MinSites: cfg.MinSites, MaxSites: cfg.MaxSites, Duration: cfg.Duration, MaxSize: cfg.MaxSize, Frames: len(frames)}
	failed := 0
	for k := range cfg.Schedules {
		if ctx.Err() != nil {
			break
		}
		plan := newChaosPlan(lim, cfg.Seed, cfg.First+k)
		fmt.Fprintf(cfg.Progress, "schedule %d: %s, faults %s, %d operations\n", plan.Schedule, plan.topology(), plan.faultCounts(), len(plan.Ops))
		res := runSchedule(ctx, cfg, plan, frames)
		res.Load = loadAverage()
		if ctx.Err() != nil {
			break // interrupted: not a result
		}
		if !res.Pass {
			failed++
		}
		fmt.Fprintln(out, res.line())
		for _, n := range res.Notes {
			fmt.Fprintln(out, "    note: "+n)
		}
		if !res.Pass {
			for _, p := range slices.Concat(nonEmpty(res.Error), res.Violations, res.Panics, res.Problems) {
				fmt.Fprintln(out, "    "+p)
			}
			if res.Dir != "" {
				fmt.Fprintln(out, "    data dirs and logs kept in", res.Dir)
			}
			fmt.Fprintln(out, "    replay: "+res.Replay)
		}
		if err := appendResult(cfg.Results, res); err != nil {
			return err
		}
	}
	if err := os.Remove(scratch); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(cfg.Progress, "kept %s (failed schedules' dirs)\n", scratch)
	}
	all, err := readResults(cfg.Results, cfg.Seed)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, summarizeChaos(all))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", ErrChaosFailed, failed, cfg.Schedules)
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// loadChaosFrames reads the FITS frames of dir (those of 100 KB to
// 50 MB); without a dir it makes synthetic 16-bit frames of 0.5, 2 and
// 8 MiB, so the FITS path of the workload always runs.
func loadChaosFrames(dir string) ([][]byte, error) {
	if dir == "" {
		var frames [][]byte
		for i, side := range []int{512, 1024, 2048} {
			var b bytes.Buffer
			if err := testlab.WriteSyntheticFrame(&b, uint64(i+1), side, side); err != nil {
				return nil, fmt.Errorf("chaos: synthetic frame: %w", err)
			}
			frames = append(frames, b.Bytes())
		}
		return frames, nil
	}
	paths, err := testlab.FindFITS(dir, 100<<10)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	var frames [][]byte
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 50<<20 {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		frames = append(frames, b)
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("chaos: no FITS frames of 100 KB to 50 MB in %s", dir)
	}
	return frames, nil
}

func appendResult(path string, res ScheduleResult) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("chaos results: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("chaos results: %w", err)
	}
	b, _ := json.Marshal(res)
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("chaos results: %w", err)
	}
	return nil
}

// readResults reads the file's results of seed, the last one of each
// schedule winning (a replay replaces the earlier run).
func readResults(path string, seed uint64) ([]ScheduleResult, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chaos results: %w", err)
	}
	defer f.Close()
	last := map[int]ScheduleResult{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r ScheduleResult
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Seed != seed {
			continue
		}
		last[r.Schedule] = r
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("chaos results: %w", err)
	}
	out := make([]ScheduleResult, 0, len(last))
	for _, r := range last {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Schedule < out[j].Schedule })
	return out, nil
}

// summarizeChaos sums up results: schedules passed, convergence percentiles,
// acknowledged operations, losses.
func summarizeChaos(rs []ScheduleResult) string {
	if len(rs) == 0 {
		return "summary: no schedules"
	}
	var passed, converged, acked, lost, divergent, dups int
	var conv []float64
	for _, r := range rs {
		if r.Pass {
			passed++
		}
		if r.Converged {
			converged++
			conv = append(conv, r.ConvergeSeconds)
		}
		acked += r.Acked
		lost += r.Lost
		divergent += r.Divergent
		dups += int(r.Duplicates)
	}
	sort.Float64s(conv)
	var b strings.Builder
	fmt.Fprintf(&b, "summary (seed %d, schedules %d–%d): %d/%d passed, %d/%d converged",
		rs[0].Seed, rs[0].Schedule, rs[len(rs)-1].Schedule, passed, len(rs), converged, len(rs))
	if len(conv) > 0 {
		fmt.Fprintf(&b, ", convergence p50 %.1fs p99 %.1fs", percentile(conv, 50), percentile(conv, 99))
	}
	fmt.Fprintf(&b, ", %d acknowledged operations, %d lost, %d divergent, %d duplicate chunks", acked, lost, divergent, dups)
	var loads []float64
	for _, r := range rs {
		if l, err := strconv.ParseFloat(r.Load, 64); err == nil {
			loads = append(loads, l)
		}
	}
	if len(loads) > 0 {
		sort.Float64s(loads)
		fmt.Fprintf(&b, "; 1-minute load average %.2f–%.2f (median %.2f)", loads[0], loads[len(loads)-1], percentile(loads, 50))
	}
	return b.String()
}
