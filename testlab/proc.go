package testlab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skyfed/skyfed/site"
)

// Timeouts of process control.
const (
	startTimeout = 30 * time.Second // StartProcess: until GET /api/status answers
	stopTimeout  = 20 * time.Second // Stop: from SIGTERM to exit
	pollEvery    = 50 * time.Millisecond
)

// ErrExited is returned by RSS and PeakRSS once the process has exited.
var ErrExited = errors.New("process has exited")

// binDirPrefix names the temp dirs Binary builds into; the builder's pid
// follows, so dirs left by test processes that died can be swept.
const binDirPrefix = "skyfed-bin-"

var buildOnce = sync.OnceValues(buildBinary)

// Binary builds the skyfed binary once per process (without -race, so
// spawned sites run at full speed even under go test -race) and returns its
// path. The result, error included, is cached.
func Binary() (string, error) { return buildOnce() }

func buildBinary() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("build skyfed: %w", err)
	}
	sweepBinDirs()
	dir, err := os.MkdirTemp("", binDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("build skyfed: %w", err)
	}
	bin := filepath.Join(dir, "skyfed")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/skyfed/skyfed/cmd/skyfed")
	cmd.Dir = root
	cmd.Env = buildEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build skyfed in %s: %w\n%s", root, err, out)
	}
	return bin, nil
}

// buildEnv is the environment minus any -race in GOFLAGS.
func buildEnv() []string {
	env := os.Environ()
	for i, kv := range env {
		flags, ok := strings.CutPrefix(kv, "GOFLAGS=")
		if !ok {
			continue
		}
		var keep []string
		for _, f := range strings.Fields(flags) {
			if f != "-race" && f != "-race=true" {
				keep = append(keep, f)
			}
		}
		env[i] = "GOFLAGS=" + strings.Join(keep, " ")
	}
	return env
}

// moduleRoot finds the skyfed module's root: from this source file's path,
// else from `go env GOMOD` in the working directory.
func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Dir(filepath.Dir(file))
		if isSkyfedModule(root) {
			return root, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if !isSkyfedModule(root) {
		return "", fmt.Errorf("find module root: %s is not the skyfed module (run from inside the repository)", root)
	}
	return root, nil
}

func isSkyfedModule(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && bytes.HasPrefix(b, []byte("module github.com/skyfed/skyfed\n"))
}

// sweepBinDirs removes binary dirs built by processes that no longer run.
func sweepBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, d := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), binDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	addrs, err := freeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// freeAddrs returns n distinct free loopback addresses. Their ports are
// drawn below the kernel's ephemeral range: a site is told its ports at
// init and binds them only when it starts (again after every restart),
// and a port from the ephemeral range may meanwhile become the local
// end of some outgoing connection, which then holds it ("address already
// in use"). Ports below that range are never handed out that way.
func freeAddrs(n int) ([]string, error) {
	lo, hi := portsBelowEphemeral()
	var addrs []string
	for len(addrs) < n {
		ln, err := listenBelowEphemeral(lo, hi)
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close() // hold every port until all are picked, so they differ
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// listenBelowEphemeral listens on a random free port in [lo, hi), or on
// any port if none is found in a few tries.
func listenBelowEphemeral(lo, hi int) (net.Listener, error) {
	for range 64 {
		if hi <= lo {
			break
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+mrand.IntN(hi-lo))))
		if err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// portsBelowEphemeral is the range of ports the lab picks from: from
// 10000 up to the start of the kernel's ephemeral range.
func portsBelowEphemeral() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if start, err := strconv.Atoi(f[0]); err == nil {
			hi = start
		}
	}
	return lo, hi
}

// InitSite runs `bin site init` for a site with free HTTP and NATS ports
// and returns its HTTP base URL and its public key text.
func InitSite(bin, dir, id, domain string) (url, key string, err error) {
	addrs, err := freeAddrs(2)
	if err != nil {
		return "", "", err
	}
	cmd := exec.Command(bin, "site", "init", "--dir", dir, "--id", id, "--domain", domain,
		"--http", addrs[0], "--nats", addrs[1], "--nats-tls", "on")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("skyfed site init --dir %s: %w\n%s", dir, err, stderr.Bytes())
	}
	key = strings.TrimSpace(stdout.String())
	if key == "" {
		return "", "", fmt.Errorf("skyfed site init --dir %s printed no key\n%s", dir, stderr.Bytes())
	}
	return "http://" + addrs[0], key, nil
}

// Process is a running `skyfed site run`. Its methods are safe for
// concurrent use; the process is reaped as soon as it exits.
type Process struct {
	Dir string // the site's data dir
	URL string // HTTP base URL, http://host:port

	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // cmd.Wait's result; read after done
}

// StartProcess runs `bin site run --dir dir`, with stdout and stderr to
// logw (nil: discarded) and env appended to the environment, and waits up
// to 30 s for GET /api/status to answer as this site. ctx bounds only that
// wait: the process runs until Stop, Kill or its own exit. If the parent
// dies, the kernel kills the process (no orphans after a test timeout).
func StartProcess(ctx context.Context, bin, dir string, logw io.Writer, env ...string) (*Process, error) {
	cfg, err := site.LoadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("start site process: %w", err)
	}
	u, err := baseURL(cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("start site process in %s: %w", dir, err)
	}
	if cfg.HTTPTLSCert != "" {
		u = "https://" + strings.TrimPrefix(u, "http://")
	}
	// Else the readiness probe could be answered by whatever holds the port.
	if err := checkFree(cfg.HTTP); err != nil {
		return nil, fmt.Errorf("start site %s in %s: %w", cfg.ID, dir, err)
	}
	cmd := exec.Command(bin, "site", "run", "--dir", dir)
	cmd.Env = append(os.Environ(), env...)
	if logw != nil { // else the null device
		cmd.Stdout, cmd.Stderr = logw, logw
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start site process in %s: %w", dir, err)
	}
	p := &Process{Dir: dir, URL: u, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, cfg.ID); err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("start site %s in %s: %w", cfg.ID, dir, err)
	}
	return p, nil
}

// checkFree reports an error if something listens on addr.
func checkFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("HTTP address %s is taken (another site running on this dir or port?): %w", addr, err)
	}
	return ln.Close()
}

// baseURL turns a listen address into a URL a client on this host can use.
func baseURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("http address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// waitReady polls GET /api/status until it answers with site id.
func (p *Process) waitReady(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// The probe only asks whether the site is up; tests check its
	// certificate with the clients they test.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 2 * time.Second}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var last error
	for {
		if last = p.probe(hc, id); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited before answering: %w", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s/api/status: %w (last: %v)", p.URL, ctx.Err(), last)
		case <-t.C:
		}
	}
}

func (p *Process) probe(hc *http.Client, id string) error {
	resp, err := hc.Get(p.URL + "/api/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status answered %s", resp.Status)
	}
	var st struct {
		Site string `json:"site"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return fmt.Errorf("status answer: %w", err)
	}
	if st.Site != id {
		return fmt.Errorf("%s answers as site %q, not %q (port taken by another process?)", p.URL, st.Site, id)
	}
	return nil
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited and been reaped.
func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to exit. It returns nil
// once the process is gone, also if it had exited already.
func (p *Process) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill site process %d: %w", p.Pid(), err)
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM and waits up to 20 s for a clean exit. It returns an
// error if the process exits non-zero (or had already exited non-zero), or
// does not stop in time; then it is killed.
func (p *Process) Stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = p.Kill()
		return fmt.Errorf("stop site process %d: %w", p.Pid(), err)
	}
	_ = p.Resume() // a paused process acts on SIGTERM only once continued
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.Kill()
		return fmt.Errorf("stop site process %d (%s): no exit within %s of SIGTERM; killed", p.Pid(), p.Dir, stopTimeout)
	}
	if p.waitErr != nil {
		return fmt.Errorf("stop site process %d (%s): unclean exit: %w", p.Pid(), p.Dir, p.waitErr)
	}
	return nil
}

// Pause stops the process with SIGSTOP: it holds its sockets and answers
// nothing, like a hung peer, until Resume.
func (p *Process) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT (a no-op otherwise).
func (p *Process) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *Process) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v to site process %d: %w", sig, p.Pid(), err)
	}
	return nil
}

// Wait waits for the process to exit and returns its exit error (nil for
// a clean exit; an *exec.ExitError otherwise).
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// PeakRSS returns the process's peak resident set size (VmHWM), in bytes.
func (p *Process) PeakRSS() (int64, error) { return p.procStatus("VmHWM") }

// RSS returns the process's resident set size (VmRSS), in bytes.
func (p *Process) RSS() (int64, error) { return p.procStatus("VmRSS") }

// procStatus reads a "Field:   N kB" line of /proc/<pid>/status.
func (p *Process) procStatus(field string) (int64, error) {
	if p.exited() {
		return 0, fmt.Errorf("read %s of %d: %w", field, p.Pid(), ErrExited)
	}
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(p.Pid()), "status"))
	if err != nil {
		return 0, fmt.Errorf("read %s of %d: %w", field, p.Pid(), err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return 0, fmt.Errorf("read %s of %d: unexpected value %q", field, p.Pid(), rest)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s of %d: %w", field, p.Pid(), err)
	}
	return 0, fmt.Errorf("read %s of %d: no such field (exited?): %w", field, p.Pid(), ErrExited)
}
