package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/site/client"
	"github.com/skyfed/skyfed/testlab"
	"github.com/skyfed/skyfed/testlab/liar"
)

// Bounds of one schedule's client operations and checks.
const (
	chaosOpTimeout   = 45 * time.Second // one client operation
	chaosWaitTimeout = 10 * time.Second // a put's --wait-sites
	chaosLinksUp     = 30 * time.Second // the links of a new federation
	liarDomain       = "liar.net"
	liarID           = "liar"
)

// scheduleRun is one schedule being run.
type scheduleRun struct {
	cfg    ChaosConfig
	plan   chaosPlan
	fed    *testlab.ProcessFederation
	lg     *ledger
	frames [][]byte
	liar   *manifest.KeyPair
	h      *healState
	start  time.Time
	logf   func(format string, args ...any)

	mu     sync.Mutex
	active map[int]chaosFault // faults applied and not yet healed, by index in plan.Faults
}

// runSchedule runs one schedule and judges it.
func runSchedule(ctx context.Context, cfg ChaosConfig, plan chaosPlan, frames [][]byte) (res ScheduleResult) {
	began := time.Now()
	res = ScheduleResult{Seed: plan.Seed, Schedule: plan.Schedule, Topology: plan.topology(), Faults: plan.faultCounts(),
		Disruptive: plan.disruptive(), Replay: cfg.replay(plan.Schedule)}
	defer func() { res.Elapsed = time.Since(began).Seconds(); res.Pass = res.passed() }()
	r := &scheduleRun{cfg: cfg, plan: plan, lg: newLedger(), frames: frames, active: map[int]chaosFault{}, logf: func(string, ...any) {},
		h: newHealState(plan.Sites)}
	if cfg.Verbose && cfg.Progress != nil {
		r.logf = func(format string, args ...any) {
			fmt.Fprintf(cfg.Progress, "  %6.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	dir := filepath.Join(cfg.Dir, fmt.Sprintf("seed%d-schedule%d", plan.Seed, plan.Schedule))
	os.RemoveAll(dir)
	// A tmpfs for the fill's site is mounted before its site is made, and
	// unmounted whatever happens, after its process ended.
	defer func() {
		if err := r.releaseDisk(false); err != nil {
			res.Problems = append(res.Problems, "tmpfs: "+err.Error())
		}
		res.Notes = r.h.notesSnapshot()
		r.h.hc.CloseIdleConnections()
	}()
	r.prepareDisk(dir)
	opts := testlab.FedOptions{N: plan.Sites, Topology: "random", Seed: plan.topoSeed, LinkRates: plan.Rates, Binary: cfg.Binary, Dir: dir}
	fed, err := testlab.StartProcessFederation(opts)
	if err != nil { // setting up is not under test: one more try on fresh ports
		mounted := r.h.disk != nil
		if rerr := r.releaseDisk(false); rerr != nil {
			res.Error = err.Error() + "; " + rerr.Error()
			return res
		}
		os.RemoveAll(dir)
		if mounted {
			r.h.disk = nil
			r.prepareDisk(dir)
		}
		fed, err = testlab.StartProcessFederation(opts)
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	r.fed = fed
	keep := false
	defer func() {
		if err := fed.Close(); err != nil {
			res.Problems = append(res.Problems, "close: "+err.Error())
			keep = true
		}
		if err := r.releaseDisk(keep || cfg.Keep); err != nil {
			res.Problems = append(res.Problems, "tmpfs: "+err.Error())
			keep = true
		}
		if !keep && !cfg.Keep {
			os.RemoveAll(dir)
		} else {
			res.Dir = dir
		}
	}()
	if err := r.trustLiar(); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := fed.WaitLinksUp(chaosLinksUp); err != nil {
		res.Error = "links did not come up: " + err.Error()
		return res
	}
	r.start = time.Now()
	for _, f := range plan.Faults {
		r.logf("planned: %s", f)
	}
	var ops sync.WaitGroup
	for _, op := range plan.Ops {
		ops.Add(1)
		go func() {
			defer ops.Done()
			if !sleepUntil(ctx, r.start.Add(op.At)) {
				return
			}
			r.do(ctx, op)
		}()
	}
	r.runFaults(ctx)
	sleepUntil(ctx, r.start.Add(plan.Duration))
	r.healAll()
	healed := time.Now()
	r.logf("every fault healed")
	ops.Wait()
	r.logf("every operation answered")

	conv, final, views := r.awaitConvergence(ctx, healed)
	res.Converged = final.ok()
	if res.Converged {
		res.ConvergeSeconds = conv.Seconds()
	}
	res.Lost, res.Divergent, res.Unexplained = final.Lost, final.Divergent, final.Unexplained
	res.Problems = append(res.Problems, clip(final.Problems, 20)...)
	if res.Converged {
		hs := r.checkHealing(ctx)
		res.Flipped, res.Repaired, res.ScrubRepaired = hs.Flipped, hs.Repaired, hs.ScrubRepaired
		res.Problems = append(res.Problems, clip(hs.Problems, 20)...)
	}
	_, _, violations := r.lg.snapshot()
	res.Violations = clip(violations, 20)
	r.lg.mu.Lock()
	res.Puts, res.Acked, res.Indeterminate, res.Refused = r.lg.counts["puts"], r.lg.counts["acked"], r.lg.counts["indeterminate"], r.lg.counts["refused"]
	res.Gets, res.Rms, res.RefusedFull = r.lg.counts["gets"], r.lg.counts["rms"], r.lg.counts["refused_full"]
	r.lg.mu.Unlock()
	for _, sv := range views {
		res.Duplicates += sv.Duplicates
	}
	res.Panics = r.panics()
	keep = !res.passed()
	return res
}

// trustLiar lets the liar's key connect to every site, for a domain of
// its own: whatever it signs for the federation's domain is a forgery.
func (r *scheduleRun) trustLiar() error {
	k, err := manifest.GenerateKey()
	if err != nil {
		return err
	}
	r.liar = k
	for i := range r.fed.N() {
		if err := site.Trust(r.fed.Dir(i), site.Peer{ID: liarID, Key: k.PublicKey().String(), Domains: []string{liarDomain}}); err != nil {
			return fmt.Errorf("trust the liar at s%d: %w", i, err)
		}
	}
	return nil
}

// sleepUntil waits until t or ctx ends; false if ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// faultStep is one action of the fault plan: a fault applied or healed.
type faultStep struct {
	at    time.Duration
	index int
	heal  bool
}

// runFaults applies and heals the plan's faults in time order, one at a
// time (a restart may push later steps back a little).
func (r *scheduleRun) runFaults(ctx context.Context) {
	var steps []faultStep
	for i, f := range r.plan.Faults {
		if f.Final {
			continue // checkHealing's
		}
		steps = append(steps, faultStep{at: f.At, index: i})
		if !f.Kind.instant() {
			steps = append(steps, faultStep{at: f.Until, index: i, heal: true})
		}
	}
	slices.SortStableFunc(steps, func(a, b faultStep) int { return cmp.Compare(a.at, b.at) })
	for _, s := range steps {
		if !sleepUntil(ctx, r.start.Add(s.at)) {
			return
		}
		f := r.plan.Faults[s.index]
		var err error
		if s.heal {
			err = r.heal(s.index)
		} else {
			err = r.apply(ctx, s.index)
		}
		verb := "apply"
		if s.heal {
			verb = "heal"
		}
		if err != nil {
			r.logf("%s %s: %v", verb, f, err)
		} else {
			r.logf("%s %s", verb, f)
		}
	}
}

// apply starts fault i.
func (r *scheduleRun) apply(ctx context.Context, i int) error {
	f := r.plan.Faults[i]
	if !f.Kind.instant() {
		r.mu.Lock()
		r.active[i] = f
		r.mu.Unlock()
	}
	fed := r.fed
	a, b := f.Edge[0], f.Edge[1]
	switch f.Kind {
	case faultKill:
		r.prepareStoppedFlips(ctx, i)
		r.beforeStop(f.Site)
		return fed.Kill(f.Site)
	case faultHang:
		return fed.Pause(f.Site)
	case faultCut:
		fed.Cut(a, b)
	case faultBlackhole:
		fed.Proxy(a, b).Blackhole(true)
	case faultLatency:
		fed.Proxy(a, b).SetLatency(f.Latency)
	case faultSqueeze:
		fed.Proxy(a, b).SetBandwidth(f.Rate)
	case faultUntrust:
		return fed.Untrust(b, a)
	case faultUnlink:
		return fed.Unlink(a, b)
	case faultMaxRate:
		return fed.SetMaxRate(a, b, fmt.Sprintf("%dB/s", f.Rate))
	case faultClock:
		fed.SetEnv(f.Site, "SKYFED_TEST_CLOCK_OFFSET="+f.Offset.String())
		return r.restart(f.Site)
	case faultLiar:
		return r.lie(ctx, f.Site)
	case faultFlip:
		return r.flip(ctx, i)
	case faultFill:
		return r.fill(f)
	}
	return nil
}

// heal ends fault i (a no-op if it is not active).
func (r *scheduleRun) heal(i int) error {
	r.mu.Lock()
	f, ok := r.active[i]
	delete(r.active, i)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	fed := r.fed
	a, b := f.Edge[0], f.Edge[1]
	switch f.Kind {
	case faultKill:
		return fed.Start(f.Site)
	case faultHang:
		return fed.Resume(f.Site)
	case faultCut:
		fed.Heal(a, b)
	case faultBlackhole:
		fed.Proxy(a, b).Blackhole(false)
	case faultLatency:
		fed.Proxy(a, b).SetLatency(0)
	case faultSqueeze:
		fed.Proxy(a, b).SetBandwidth(0)
	case faultUntrust:
		return fed.Trust(b, a)
	case faultUnlink:
		return fed.Relink(a, b)
	case faultMaxRate:
		return fed.SetMaxRate(a, b, fed.RateOf(a, b))
	case faultClock:
		fed.SetEnv(f.Site)
		return r.restart(f.Site)
	case faultFill:
		return r.unfill()
	}
	return nil
}

// healAll heals every fault still active and makes sure every site runs.
func (r *scheduleRun) healAll() {
	r.mu.Lock()
	var idx []int
	for i := range r.active {
		idx = append(idx, i)
	}
	r.mu.Unlock()
	for _, i := range idx {
		if err := r.heal(i); err != nil {
			r.logf("heal %s: %v", r.plan.Faults[i], err)
		}
	}
	for i := range r.fed.N() {
		if err := r.fed.Start(i); err != nil {
			r.logf("start s%d: %v", i, err)
		}
	}
}

func (r *scheduleRun) restart(i int) error {
	r.beforeStop(i)
	if err := r.fed.Kill(i); err != nil {
		return err
	}
	return r.fed.Start(i)
}

// lie dials site i as the liar and pushes forgeries: a manifest for the
// federation's domain (which the liar may not write), one with a broken
// signature, one stamped an hour ahead, and a chunk whose bytes do not
// hash to its ID. None may become visible anywhere.
func (r *scheduleRun) lie(ctx context.Context, i int) error {
	p, err := liar.Dial(liar.Config{URL: "nats://" + r.fed.NATSAddr(i), Site: liarID, Acceptor: r.fed.ID(i), Key: r.liar, Timeout: 3 * time.Second})
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Handshake(ctx); err != nil {
		return err
	}
	now := time.Now()
	tag := fmt.Sprintf("%d-%d", r.plan.Schedule, now.UnixNano())
	lies := []struct {
		name   string
		at     time.Time
		break_ bool
	}{
		{r.fed.Domain() + "/chaos-liar/forged-" + tag, now, false},
		{liarDomain + "/bad-signature-" + tag, now, true},
		{liarDomain + "/future-" + tag, now.Add(time.Hour), false},
	}
	var errs []error
	for k, l := range lies {
		o, err := liar.NewObject(l.name, randomBytes(uint64(k)+r.plan.Seed, 3000), 1024, liar.StampAt(l.at, liarID), r.liar)
		if err != nil {
			return err
		}
		m := o.Manifest
		if l.break_ {
			m = liar.BadSignature(m)
		}
		r.lg.mu.Lock()
		r.lg.liarNames = append(r.lg.liarNames, l.name)
		r.lg.mu.Unlock()
		if _, err := p.Push(ctx, liar.ManifestPayload(m)); err != nil {
			errs = append(errs, err)
		}
	}
	good := randomBytes(r.plan.Seed^0x5eed, 5000)
	bad := bytes.Clone(good)
	bad[100] ^= 1
	id := chunk.Sum(good)
	r.lg.mu.Lock()
	r.lg.liarChunks = append(r.lg.liarChunks, id.String())
	r.lg.mu.Unlock()
	if _, err := p.Push(ctx, liar.Payload{Lane: wire.LaneBulk, ID: id, RawLen: uint32(len(bad)), Bytes: bad}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// do runs one client operation and records what the client was told.
func (r *scheduleRun) do(ctx context.Context, op chaosOp) {
	ctx, cancel := context.WithTimeout(ctx, chaosOpTimeout)
	defer cancel()
	name := r.fed.Domain() + "/" + op.Name
	switch op.Kind {
	case opPut:
		r.put(ctx, op, op.Site, name, op.Seed)
	case opPut2:
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); r.put(ctx, op, op.Site, name, op.Seed) }()
		go func() { defer wg.Done(); r.put(ctx, op, op.Site2, name, op.Seed^0xa5a5) }()
		wg.Wait()
	case opRm:
		r.rm(ctx, op, name)
	case opGet, opFresh:
		r.get(ctx, op, name)
	case opSHA:
		r.getSHA(ctx, op, name)
	}
}

// content returns the bytes of a put (a FITS frame made unique by its
// seed, or a random stream) as a reader factory, its size and SHA-256.
func (r *scheduleRun) content(op chaosOp, seed uint64) (func() io.Reader, int64, string, error) {
	if op.FITS >= 0 && op.FITS < len(r.frames) {
		frame, err := testlab.VaryFrame(r.frames[op.FITS], seed)
		if err != nil {
			return nil, 0, "", err
		}
		sum := sha256.Sum256(frame)
		return func() io.Reader { return bytes.NewReader(frame) }, int64(len(frame)), hex.EncodeToString(sum[:]), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, testlab.RandomStream(seed, op.Size)); err != nil {
		return nil, 0, "", err
	}
	return func() io.Reader { return testlab.RandomStream(seed, op.Size) }, op.Size, hex.EncodeToString(h.Sum(nil)), nil
}

// put puts a version at site at; refused there for a full disk (507),
// it tries the next sites after a pause, as a client would.
func (r *scheduleRun) put(ctx context.Context, op chaosOp, at int, name string, seed uint64) {
	for try := 0; r.putOnce(ctx, op, at, name, seed) && try < putRetries; try++ {
		if !sleepUntil(ctx, time.Now().Add(putRetryDelay)) {
			return
		}
		at = (at + 1) % r.fed.N()
	}
}

// putOnce puts a version at site at and records what the client was
// told; it reports whether the site refused it for a full disk.
func (r *scheduleRun) putOnce(ctx context.Context, op chaosOp, at int, name string, seed uint64) (full bool) {
	body, size, sum, err := r.content(op, seed)
	if err != nil {
		r.lg.violation("workload: %v", err)
		return false
	}
	r.lg.attempt(name, sum)
	r.lg.count("puts")
	if op.CLI {
		args := []string{"put", "--site", r.fed.URL(at)}
		if op.Expires > 0 {
			args = append(args, "--expires", op.Expires.String())
		}
		if op.WaitSites > 0 {
			args = append(args, "--wait-sites", fmt.Sprint(op.WaitSites), "--wait-timeout", chaosWaitTimeout.String())
		}
		out, errOut, code := r.cliOutput(ctx, body(), append(args, name, "-")...)
		f := strings.Fields(out)
		switch {
		case code == 1 && diskFull(errOut):
			r.lg.count("refused_full")
			r.logf("put %s at s%d (cli) refused: disk full", name, at)
			return true
		case code == 0 && len(f) >= 2 && f[1] == sum:
			r.lg.ack(ackEntry{Name: name, Version: f[0], SHA: sum, Site: at})
			r.logf("put %s at s%d (cli): %s", name, at, f[0])
		case code == 0:
			r.lg.violation("cli put %s at s%d: exit 0 but printed %q for sha256 %s", name, at, out, short(sum))
		default:
			r.lg.unknown(name, maybeEntry{SHA: sum})
			r.logf("put %s at s%d (cli): exit %d", name, at, code)
		}
		return false
	}
	cl := client.New(r.fed.URL(at), "")
	defer cl.CloseIdleConnections()
	res, err := cl.Put(ctx, name, body(), size, client.PutOptions{Expires: op.Expires, WaitSites: op.WaitSites, WaitTimeout: chaosWaitTimeout})
	var apiErr *client.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusInsufficientStorage:
		r.lg.count("refused_full")
		r.logf("put %s at s%d refused: %v", name, at, err)
		return true
	case err == nil:
		r.lg.ack(ackEntry{Name: name, Version: res.Version, SHA: sum, Site: at})
		r.logf("put %s at s%d: %s", name, at, res.Version)
	case errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500, errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable:
		r.lg.count("refused")
		r.logf("put %s at s%d refused: %v", name, at, err)
	default:
		r.lg.unknown(name, maybeEntry{SHA: sum})
		r.logf("put %s at s%d: outcome unknown: %v", name, at, err)
	}
	return false
}

// diskFull reports whether a CLI's error output tells of a site's full
// disk (HTTP 507).
func diskFull(stderr string) bool { return strings.Contains(stderr, "HTTP 507") }

func (r *scheduleRun) rm(ctx context.Context, op chaosOp, name string) {
	r.lg.count("rms")
	if op.CLI {
		out, errOut, code := r.cliOutput(ctx, nil, "rm", "--site", r.fed.URL(op.Site), name)
		switch {
		case code == 1 && diskFull(errOut):
			r.lg.count("refused_full")
		case code == 0 && strings.TrimSpace(out) != "":
			r.lg.ack(ackEntry{Name: name, Version: strings.TrimSpace(out), Deleted: true, Site: op.Site})
		case code == 2: // not found there: nothing deleted
		default:
			r.lg.unknown(name, maybeEntry{Deleted: true})
		}
		r.logf("rm %s at s%d (cli): exit %d %s", name, op.Site, code, strings.TrimSpace(out))
		return
	}
	cl := client.New(r.fed.URL(op.Site), "")
	defer cl.CloseIdleConnections()
	res, err := cl.Delete(ctx, name)
	var apiErr *client.APIError
	switch {
	case err == nil:
		r.lg.ack(ackEntry{Name: name, Version: res.Version, Deleted: true, Site: op.Site})
	case errors.As(err, &apiErr) && apiErr.Status < 500:
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusInsufficientStorage:
		r.lg.count("refused_full")
	default:
		r.lg.unknown(name, maybeEntry{Deleted: true})
	}
	r.logf("rm %s at s%d: %v", name, op.Site, err)
}

func (r *scheduleRun) get(ctx context.Context, op chaosOp, name string) {
	r.lg.count("gets")
	if op.CLI {
		tmp, err := os.CreateTemp("", "skyfed-chaos-get-")
		if err != nil {
			return
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		args := []string{"get", "--site", r.fed.URL(op.Site), "-o", tmp.Name()}
		if op.Kind == opFresh {
			args = append(args, "--fresh")
		}
		_, code := r.cli(ctx, nil, append(args, name)...)
		switch code {
		case 0:
			f, err := os.Open(tmp.Name())
			if err != nil {
				return
			}
			sum, err := hashAll(f)
			f.Close()
			if err == nil {
				r.lg.served(op.Site, name, sum)
			}
		case 3:
			r.lg.violation("cli get %s at s%d: verification failed (exit 3)", name, op.Site)
		}
		r.logf("get %s at s%d (cli, %s): exit %d", name, op.Site, op.Kind, code)
		return
	}
	cl := client.New(r.fed.URL(op.Site), "")
	defer cl.CloseIdleConnections()
	obj, err := cl.Get(ctx, name, client.GetOptions{Fresh: op.Kind == opFresh})
	if err != nil {
		r.logf("get %s at s%d (%s): %v", name, op.Site, op.Kind, err)
		return
	}
	defer obj.Body.Close()
	sum, err := hashAll(obj.Body)
	switch {
	case errors.Is(err, client.ErrVerify):
		r.lg.violation("get %s at s%d: %v", name, op.Site, err)
	case err == nil:
		r.lg.served(op.Site, name, sum)
	}
	r.logf("get %s at s%d (%s): %s %v", name, op.Site, op.Kind, obj.Version, err)
}

func (r *scheduleRun) getSHA(ctx context.Context, op chaosOp, name string) {
	r.lg.mu.Lock()
	var want string
	for sum := range r.lg.attempted[name] {
		if want == "" || sum < want {
			want = sum
		}
	}
	r.lg.mu.Unlock()
	if want == "" {
		return
	}
	r.lg.count("gets")
	cl := client.New(r.fed.URL(op.Site), "")
	defer cl.CloseIdleConnections()
	obj, err := cl.Get(ctx, "", client.GetOptions{SHA256: want})
	if err != nil {
		r.logf("get sha256 %s at s%d: %v", short(want), op.Site, err)
		return
	}
	defer obj.Body.Close()
	sum, err := hashAll(obj.Body)
	if err == nil && sum != want {
		r.lg.violation("get sha256 %s at s%d served bytes hashing to %s", short(want), op.Site, short(sum))
	}
	r.logf("get sha256 %s at s%d: %v", short(want), op.Site, err)
}

// cli runs the skyfed binary with stdin and returns its stdout and exit code
// (-1 if it did not run to an exit).
func (r *scheduleRun) cli(ctx context.Context, stdin io.Reader, args ...string) (string, int) {
	out, _, code := r.cliOutput(ctx, stdin, args...)
	return out, code
}

// cliOutput is cli with the command's error output too.
func (r *scheduleRun) cliOutput(ctx context.Context, stdin io.Reader, args ...string) (string, string, int) {
	cmd := exec.CommandContext(ctx, r.fed.Binary(), args...)
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return out.String(), errOut.String(), ee.ExitCode()
	}
	return out.String(), errOut.String(), -1
}

// awaitConvergence polls the federation until the checker passes or the
// convergence limit passes; it returns how long after healing it passed,
// the last verdict, and the sites' last answers.
func (r *scheduleRun) awaitConvergence(ctx context.Context, healed time.Time) (time.Duration, verdict, []siteView) {
	c := &checker{urls: make([]string, r.fed.N()), hc: &http.Client{Timeout: 30 * time.Second}, lg: r.lg}
	defer c.hc.CloseIdleConnections()
	for i := range c.urls {
		c.urls[i] = r.fed.URL(i)
	}
	deadline := healed.Add(r.cfg.Converge)
	var last verdict
	for {
		acks, maybe, _ := r.lg.snapshot()
		views := make([]siteView, len(c.urls))
		for i := range views {
			views[i] = c.view(ctx, i)
		}
		last = judge(acks, maybe, views)
		if last.ok() {
			last = c.bytes(ctx, views, acks)
			if last.ok() {
				return time.Since(healed), last, views
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, last, views
		}
		sleepUntil(ctx, time.Now().Add(time.Second))
	}
}

// panics lists the sites whose log shows a panic or a fatal runtime error.
func (r *scheduleRun) panics() []string {
	var out []string
	for i := range r.fed.N() {
		b, err := os.ReadFile(r.fed.Dir(i) + ".log")
		if err != nil {
			continue
		}
		for _, mark := range []string{"panic:", "fatal error:", "DATA RACE"} {
			if bytes.Contains(b, []byte(mark)) {
				out = append(out, fmt.Sprintf("s%d: %q in its log", i, mark))
			}
		}
	}
	return out
}

func clip(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append(lines[:n:n], fmt.Sprintf("… and %d more", len(lines)-n))
}

func randomBytes(seed uint64, n int64) []byte {
	b, _ := io.ReadAll(testlab.RandomStream(seed, n))
	return b
}
