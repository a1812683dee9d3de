package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/site/client"
	"github.com/skyfed/skyfed/testlab"
)

// The healing faults and what the checker asks of them. A flip damages
// chunks another site holds: at the end every damaged chunk must be good
// at its site again (GET /c/, which re-hashes and never reads through),
// `skyfed tools scrub --json` must exit 0 at every site, and the site's
// repaired counter (repaired_chunks, summed over its processes) must
// have moved after a flip in a chunk it held. One more flip comes after
// convergence, just before that scrub, which must report its chunks
// repaired. A fill takes all but a few
// MB of the tmpfs the run gave one site's data dir; puts it refuses
// (507) are retried at another site and counted as refused for a full
// disk, not as failures; once the filler is gone the federation must
// converge as after any other fault.

// Bounds of the healing faults and checks.
const (
	fillLeave       = 2 << 20           // bytes a fill leaves free
	fillHeadroom    = 128 << 20         // tmpfs bytes beyond what the workload puts
	flipProbe       = 3 * time.Second   // one GET /c/ while choosing chunks to damage
	flipMaxProbes   = 40                // chunks probed per flip
	scrubTimeout    = 3 * time.Minute   // the final scrub of one site
	putRetryDelay   = time.Second       // before a put refused for a full disk is tried elsewhere
	putRetries      = 3                 // sites tried after a refusal for a full disk
	fillerName      = "chaos-filler"    // the file a fill writes into the data dir
	keptTmpfsSuffix = ".tmpfs-copy"     // a failed schedule's copy of the tmpfs, before it replaces the mount point
	repairedField   = "repaired_chunks" // of /api/status
)

// healState is what the healing faults keep during a schedule.
type healState struct {
	hc *http.Client

	mu          sync.Mutex
	flipped     map[chunk.ID]bool  // damaged somewhere this schedule: never twice
	prepared    map[int]flipTarget // flips inside a kill, chosen before it
	flips       []flipEvent
	base        []int64 // per site: repaired_chunks of its earlier processes
	counterLost []bool  // a process ended without its counter read
	notes       []string

	disk *tmpDisk // nil: no fill, or it was skipped
}

// flipEvent is one flip as it happened.
type flipEvent struct {
	Site    int
	At      time.Duration
	Stopped bool       // the site was not running
	Chunks  []chunk.ID // damaged
	Live    bool       // the site served each of them just before (before its kill, for a stopped one)
	Before  int64      // the site's repaired total just before (with Live)
	Counted bool       // Before is known and no process ended unread since
}

func newHealState(n int) *healState {
	return &healState{hc: &http.Client{Timeout: flipProbe, Transport: http.DefaultTransport.(*http.Transport).Clone()}, flipped: map[chunk.ID]bool{}, prepared: map[int]flipTarget{},
		base: make([]int64, n), counterLost: make([]bool, n)}
}

func (h *healState) note(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, fmt.Sprintf(format, args...))
}

// tmpDisk is the tmpfs of one site's data dir.
type tmpDisk struct {
	site     int
	dir      string // the data dir, its mount point
	size     int64
	released bool
}

// tmpfsSize is the size of the tmpfs a fill's site gets: what the
// workload puts, three times over (some puts land at two sites, killed
// uploads leave their bytes), plus room for the index and its logs.
func (r *scheduleRun) tmpfsSize() int64 {
	var total int64
	for _, op := range r.plan.Ops {
		size := op.Size
		if op.FITS >= 0 && op.FITS < len(r.frames) {
			size = int64(len(r.frames[op.FITS]))
		}
		switch op.Kind {
		case opPut:
			total += size
		case opPut2:
			total += 2 * size
		}
	}
	return (fillHeadroom + 3*total + 1<<20 - 1) &^ (1<<20 - 1)
}

// prepareDisk mounts the tmpfs of the plan's fill site at its data dir
// (under dir, which must exist) before the site is made, or notes why
// the fill is skipped.
func (r *scheduleRun) prepareDisk(dir string) {
	s := r.plan.fillSite()
	if s < 0 {
		return
	}
	if ok, why := canMount(); !ok {
		r.h.note("fill s%d skipped: %s", s, why)
		return
	}
	d := &tmpDisk{site: s, dir: filepath.Join(dir, testlab.SiteID(s)), size: r.tmpfsSize()}
	if err := mountTmpfs(d.dir, d.size); err != nil {
		r.h.note("fill s%d skipped: %v", s, err)
		return
	}
	r.h.disk = d
	r.h.note("fill s%d: its data dir is a tmpfs of %s", s, ByteSize(d.size))
}

// releaseDisk unmounts the tmpfs, once, after the sites stopped. With
// keep, its files (the filler aside) are copied out first and put where
// the mount point was, for the failed schedule's post-mortem.
func (r *scheduleRun) releaseDisk(keep bool) error {
	d := r.h.disk
	if d == nil || d.released {
		return nil
	}
	d.released = true
	copyDir := d.dir + keptTmpfsSuffix
	var cerr error
	if keep {
		cerr = copyTree(d.dir, copyDir, fillerName)
	}
	if err := unmountTmpfs(d.dir); err != nil {
		return err
	}
	if keep && cerr == nil {
		if err := os.Remove(d.dir); err != nil {
			return err
		}
		return os.Rename(copyDir, d.dir)
	}
	return cerr
}

// copyTree copies the regular files and directories of src to dst,
// leaving out files named skip.
func copyTree(src, dst, skip string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o750)
		case !d.Type().IsRegular() || d.Name() == skip:
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// fill takes all but fillLeave bytes of the fill site's tmpfs.
func (r *scheduleRun) fill(f chaosFault) error {
	d := r.h.disk
	if d == nil {
		return nil // skipped, noted at the start
	}
	n, err := fillDisk(filepath.Join(d.dir, fillerName), fillLeave)
	if err != nil {
		return err
	}
	free, _, _ := freeBytes(d.dir)
	r.h.note("fill s%d at %s: the filler took %s of %s, %s left", f.Site, f.At, ByteSize(n), ByteSize(d.size), ByteSize(free))
	return nil
}

// unfill deletes the filler.
func (r *scheduleRun) unfill() error {
	if r.h.disk == nil {
		return nil
	}
	return os.Remove(filepath.Join(r.h.disk.dir, fillerName))
}

// holds reports whether site i serves chunk id with good bytes.
func (r *scheduleRun) holds(ctx context.Context, i int, id chunk.ID) (bool, int) {
	ctx, cancel := context.WithTimeout(ctx, flipProbe)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.fed.URL(i)+"/c/"+id.String(), nil)
	if err != nil {
		return false, 0
	}
	resp, err := r.h.hc.Do(req)
	if err != nil {
		return false, 0
	}
	defer resp.Body.Close()
	sum, err := hashAll(resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK && sum == id.String(), resp.StatusCode
}

// hung reports whether site i is stopped by a hang fault now.
func (r *scheduleRun) hung(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.active {
		if f.Kind == faultHang && f.Site == i {
			return true
		}
	}
	return false
}

// flipTarget is what a flip is to damage, chosen while its site could
// still say what it holds.
type flipTarget struct {
	recs []packRecord
	live bool // the site served each chunk just before: its index points at these records
	seen int  // records walked
	rng  *rand.Rand
}

// chooseFlip chooses the records flip fault i is to damage at its site,
// and reserves their chunks (no other flip damages them anywhere): chunks
// the site serves (asked unless it is stopped or hung) and another
// running site serves good. A stopped site's newest pack is left out (its
// tail may hold a commit the kill cut short).
func (r *scheduleRun) chooseFlip(ctx context.Context, i int) flipTarget {
	f := r.plan.Faults[i]
	t := flipTarget{rng: rand.New(rand.NewPCG(f.Seed, uint64(i)))}
	s := f.Site
	stopped := r.fed.Process(s) == nil
	t.live = !stopped && !r.hung(s)
	choice, err := scanSitePacks(r.fed.Dir(s), stopped)
	if err != nil {
		r.h.note("flip s%d at %s: %v", s, f.At, err)
		return t
	}
	t.seen = len(choice.records)
	r.h.mu.Lock()
	avoid := maps.Clone(r.h.flipped)
	r.h.mu.Unlock()
	probes := 0
	ok := func(id chunk.ID) bool {
		if probes++; probes > flipMaxProbes {
			return false
		}
		if t.live {
			if held, _ := r.holds(ctx, s, id); !held {
				return false
			}
		}
		for _, p := range t.rng.Perm(r.fed.N()) {
			if p != s && r.fed.Process(p) != nil && !r.hung(p) {
				if held, _ := r.holds(ctx, p, id); held {
					return true
				}
			}
		}
		return false
	}
	t.recs = choice.choose(t.rng, f.Chunks, avoid, ok)
	r.h.mu.Lock()
	for _, rec := range t.recs {
		r.h.flipped[rec.ID] = true
	}
	r.h.mu.Unlock()
	return t
}

// prepareStoppedFlips chooses, before kill fault i stops its site, what
// the flips that fall inside the kill will damage (those planned there,
// and any other drawn there by chance): the site can still say which
// chunk records it uses.
func (r *scheduleRun) prepareStoppedFlips(ctx context.Context, i int) {
	k := r.plan.Faults[i]
	for j, f := range r.plan.Faults {
		if f.Kind == faultFlip && f.Site == k.Site && f.At > k.At && f.At < k.Until {
			t := r.chooseFlip(ctx, j)
			r.h.mu.Lock()
			r.h.prepared[j] = t
			r.h.mu.Unlock()
		}
	}
}

// flip damages the chunks fault i asks for at its site (see chaos_flip.go).
func (r *scheduleRun) flip(ctx context.Context, i int) error {
	f := r.plan.Faults[i]
	s := f.Site
	r.h.mu.Lock()
	t, ok := r.h.prepared[i]
	delete(r.h.prepared, i)
	r.h.mu.Unlock()
	if !ok {
		t = r.chooseFlip(ctx, i)
	}
	if len(t.recs) == 0 {
		r.h.note("flip s%d at %s: no chunk held elsewhere to damage (%d records walked)", s, f.At, t.seen)
		return nil
	}
	ev := flipEvent{Site: s, At: f.At, Stopped: r.fed.Process(s) == nil, Live: t.live}
	if ev.Stopped { // its next process counts from 0
		r.h.mu.Lock()
		ev.Before, ev.Counted = r.h.base[s], !r.h.counterLost[s]
		r.h.mu.Unlock()
	} else {
		ev.Before, ev.Counted = r.repairedTotal(ctx, s)
	}
	var errs []string
	for _, rec := range t.recs {
		offs, err := flipRecord(rec, t.rng, t.rng.IntN(4) == 0)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ev.Chunks = append(ev.Chunks, rec.ID)
		r.logf("flip s%d: chunk %s in %s at %d: %d bytes", s, rec.ID.Short(), filepath.Base(rec.Pack), rec.Offset, len(offs))
	}
	r.h.mu.Lock()
	r.h.flips = append(r.h.flips, ev)
	r.h.mu.Unlock()
	if errs != nil {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// repairedNow reads site i's repaired_chunks (of its current process).
func (r *scheduleRun) repairedNow(ctx context.Context, i int) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl := client.New(r.fed.URL(i), "")
	defer cl.CloseIdleConnections()
	st, err := cl.Status(ctx)
	if err != nil {
		return 0, false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(st.Raw, &raw) != nil {
		return 0, false
	}
	var n int64
	if b, ok := raw[repairedField]; ok && json.Unmarshal(b, &n) != nil {
		return 0, false
	}
	return n, true
}

// repairedTotal is site i's repaired chunks over all its processes so
// far; false if a process ended with its count unread.
func (r *scheduleRun) repairedTotal(ctx context.Context, i int) (int64, bool) {
	now, ok := r.repairedNow(ctx, i)
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	return r.h.base[i] + now, ok && !r.h.counterLost[i]
}

// beforeStop keeps site i's repaired count before the run ends its process.
func (r *scheduleRun) beforeStop(i int) {
	if r.fed.Process(i) == nil {
		return
	}
	now, ok := r.repairedNow(context.Background(), i)
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	if !ok {
		r.h.counterLost[i] = true
	}
	r.h.base[i] += now
}

// healSummary is what the final healing check found.
type healSummary struct {
	Flipped       int   // chunks damaged
	Repaired      int64 // the sites' repaired counters, summed over processes
	ScrubRepaired int64
	Problems      []string
}

// checkHealing runs the final scrub at every site and checks the flips:
// every damaged chunk good at its site, the repaired counter moved.
func (r *scheduleRun) checkHealing(ctx context.Context) healSummary {
	var hs healSummary
	finalFlips := map[int]int{} // site → chunks damaged just before the scrub
	for i, f := range r.plan.Faults {
		if f.Kind != faultFlip || !f.Final {
			continue
		}
		r.h.mu.Lock()
		n := len(r.h.flips)
		r.h.mu.Unlock()
		if err := r.flip(ctx, i); err != nil {
			hs.Problems = append(hs.Problems, fmt.Sprintf("%s: %v", f, err))
		}
		r.h.mu.Lock()
		for _, ev := range r.h.flips[n:] {
			finalFlips[ev.Site] += len(ev.Chunks)
		}
		r.h.mu.Unlock()
	}
	for i := range r.fed.N() {
		rep, problem := r.scrub(ctx, i)
		hs.ScrubRepaired += rep.Repaired
		if problem != "" {
			hs.Problems = append(hs.Problems, problem)
		}
		if n := finalFlips[i]; rep.Repaired < int64(n) && problem == "" {
			hs.Problems = append(hs.Problems, fmt.Sprintf("scrub s%d: repaired %d chunks (corrupt %d), but %d were damaged there just before it",
				i, rep.Repaired, rep.Corrupt, n))
		}
	}
	r.h.mu.Lock()
	flips := slices.Clone(r.h.flips)
	r.h.mu.Unlock()
	for i := range r.fed.N() {
		total, _ := r.repairedTotal(ctx, i)
		hs.Repaired += total
	}
	for _, ev := range flips {
		hs.Flipped += len(ev.Chunks)
		for _, id := range ev.Chunks {
			if held, code := r.holds(ctx, ev.Site, id); !held {
				hs.Problems = append(hs.Problems, fmt.Sprintf("flip: s%d does not serve chunk %s good again, damaged at %s (HTTP %d)", ev.Site, id.Short(), ev.At, code))
			}
		}
		if !ev.Live || !ev.Counted || len(ev.Chunks) == 0 {
			continue
		}
		if after, ok := r.repairedTotal(ctx, ev.Site); !ok {
			r.h.note("flip s%d at %s: the repaired counter is not checked (a process ended with it unread)", ev.Site, ev.At)
		} else if after <= ev.Before {
			hs.Problems = append(hs.Problems, fmt.Sprintf("flip: s%d's repaired_chunks did not move (%d before, %d after) though %d chunks it held were damaged at %s",
				ev.Site, ev.Before, after, len(ev.Chunks), ev.At))
		}
	}
	return hs
}

// scrub runs `skyfed tools scrub --json` at site i; a problem unless it
// exits 0.
func (r *scheduleRun) scrub(ctx context.Context, i int) (client.ScrubReport, string) {
	ctx, cancel := context.WithTimeout(ctx, scrubTimeout)
	defer cancel()
	began := time.Now()
	out, errOut, code := r.cliOutput(ctx, nil, "tools", "scrub", "--json", "--site", r.fed.URL(i))
	var rep client.ScrubReport
	jerr := json.Unmarshal([]byte(out), &rep)
	r.logf("scrub s%d: exit %d in %.1fs: %d chunks, corrupt %d, missing %d, repaired %d, unrepairable %d",
		i, code, time.Since(began).Seconds(), rep.Chunks, rep.Corrupt, rep.Missing, rep.Repaired, rep.Unrepairable)
	switch {
	case code == 0 && jerr == nil:
		return rep, ""
	case code == 0:
		return rep, fmt.Sprintf("scrub s%d: exit 0 but no JSON report: %v", i, jerr)
	case code == 3:
		var affected []string
		for _, a := range rep.Affected {
			if !a.Repaired {
				affected = append(affected, fmt.Sprintf("%s %s chunk %s", a.Name, a.Version, a.Chunk))
			}
		}
		return rep, fmt.Sprintf("scrub s%d: exit 3: %d chunks unrepairable, %d manifests bad: %s", i, rep.Unrepairable, rep.BadManifests,
			strings.Join(clip(affected, 5), "; "))
	}
	return rep, fmt.Sprintf("scrub s%d: exit %d: %s", i, code, strings.TrimSpace(errOut))
}

func (h *healState) notesSnapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.notes)
}
