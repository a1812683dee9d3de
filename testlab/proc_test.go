package testlab_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/chunk/crashpoint"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/site/client"
	"github.com/skyfed/skyfed/testlab"
)

const procDomain = "gloria.eu"

// procNoLeaks checks, after every other cleanup of t, that t left no
// goroutines behind.
func procNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func procBin(t *testing.T) string {
	t.Helper()
	bin, err := testlab.Binary()
	if err != nil {
		t.Fatalf("build skyfed: %v", err)
	}
	return bin
}

// procStream is n bytes of a ChaCha8 stream picked by seed.
func procStream(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// procObj is an object whose bytes are procStream(seed, size).
type procObj struct {
	name string
	seed uint64
	size int64
}

func (o procObj) body() io.Reader { return procStream(o.seed, o.size) }

func (o procObj) sum() string {
	h := sha256.New()
	io.Copy(h, o.body())
	return hex.EncodeToString(h.Sum(nil))
}

// procSite is one site run as a `skyfed site run` process. Its cleanup
// stops the process (a non-zero exit fails the test) and, if the test
// failed, shows the tail of the process log.
type procSite struct {
	t        *testing.T
	bin, dir string
	url      string
	log      *os.File
	p        *testlab.Process // nil while not running
	hc       *http.Client
}

func newProcSite(t *testing.T, id string) *procSite {
	t.Helper()
	bin := procBin(t)
	base := t.TempDir()
	dir := filepath.Join(base, "site")
	url, key, err := testlab.InitSite(bin, dir, id, procDomain)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "ed25519:") {
		t.Fatalf("site init printed key %q, want ed25519:<hex>", key)
	}
	logf, err := os.Create(filepath.Join(base, "site.log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &procSite{t: t, bin: bin, dir: dir, url: url, log: logf,
		hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	t.Cleanup(s.cleanup)
	return s
}

func (s *procSite) start(env ...string) {
	s.t.Helper()
	p, err := testlab.StartProcess(s.t.Context(), s.bin, s.dir, s.log, env...)
	if err != nil {
		s.t.Fatal(err)
	}
	if p.URL != s.url {
		s.t.Errorf("process URL %s, site init gave %s", p.URL, s.url)
	}
	s.p = p
}

// stop stops the process and fails the test unless it exits cleanly.
func (s *procSite) stop() {
	s.t.Helper()
	p := s.p
	s.p = nil
	if err := p.Stop(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *procSite) cleanup() {
	if s.p != nil {
		if err := s.p.Stop(); err != nil {
			s.t.Errorf("cleanup: %v", err)
		}
		s.p = nil
	}
	s.hc.CloseIdleConnections()
	if s.t.Failed() {
		s.t.Logf("tail of the site's log:\n%s", testlab.FileTail(s.log, 6<<10))
	}
	s.log.Close()
}

func (s *procSite) put(name string, body io.Reader, size int64) (client.PutResult, error) {
	var ans client.PutResult
	req, err := http.NewRequest(http.MethodPut, s.url+"/o/"+name, body)
	if err != nil {
		return ans, err
	}
	req.ContentLength = size
	resp, err := s.hc.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return ans, fmt.Errorf("PUT %s: %s: %s", name, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return ans, fmt.Errorf("PUT %s: answer: %w", name, err)
	}
	return ans, nil
}

func (s *procSite) mustPut(o procObj) client.PutResult {
	s.t.Helper()
	ans, err := s.put(o.name, o.body(), o.size)
	if err != nil {
		s.t.Fatal(err)
	}
	if ans.Name != o.name || ans.Size != o.size || ans.SHA256 != o.sum() || ans.Version == "" {
		s.t.Fatalf("PUT %s answered %+v, want size %d sha256 %s", o.name, ans, o.size, o.sum())
	}
	return ans
}

// get answers GET path (relative to the site URL) with extra headers.
func (s *procSite) get(path string, hdr ...string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	s.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// getSum streams GET /o/{name} into SHA-256. It returns the status; for
// a 200 it checks that the body hashes to the ETag and returns the hash.
func (s *procSite) getSum(name string) (int, string) {
	s.t.Helper()
	resp := s.get("/o/" + name)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, ""
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: body after %d bytes: %v", name, n, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n != resp.ContentLength {
		s.t.Errorf("GET %s: %d bytes, Content-Length %d", name, n, resp.ContentLength)
	}
	if etag := resp.Header.Get("ETag"); etag != `"`+sum+`"` {
		s.t.Errorf("GET %s: ETag %s, body hashes to %s", name, etag, sum)
	}
	return resp.StatusCode, sum
}

// status decodes GET /api/status.
func (s *procSite) status() map[string]any {
	s.t.Helper()
	resp := s.get("/api/status")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /api/status: %s", resp.Status)
	}
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		s.t.Fatalf("GET /api/status: %v", err)
	}
	for _, k := range []string{"site", "domain", "objects", "versions", "chunks", "stored_bytes", "raw_bytes", "links"} {
		if _, ok := st[k]; !ok {
			s.t.Errorf("GET /api/status: no %q in %v", k, st)
		}
	}
	return st
}

func TestProcessPutGetRoundTrip(t *testing.T) {
	procNoLeaks(t)
	s := newProcSite(t, "alpha")
	s.start()
	o := procObj{name: procDomain + "/proc/roundtrip.bin", seed: 1, size: 5 << 20}
	data, err := io.ReadAll(o.body())
	if err != nil {
		t.Fatal(err)
	}
	ans := s.mustPut(o)
	if ans.Chunks != 5 {
		t.Errorf("PUT answered %d chunks, want 5 of 1 MiB", ans.Chunks)
	}
	check := func(when string) {
		resp := s.get("/o/" + o.name)
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: GET: %s, %v", when, resp.Status, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: GET returned %d bytes that differ from the %d put", when, len(got), len(data))
		}
		if etag := resp.Header.Get("ETag"); etag != `"`+ans.SHA256+`"` {
			t.Errorf("%s: ETag %s, want %q", when, etag, ans.SHA256)
		}
		if v := resp.Header.Get("X-Skyfed-Version"); v != ans.Version {
			t.Errorf("%s: X-Skyfed-Version %q, want %q", when, v, ans.Version)
		}
		const from, to = 1234567, 3456788 // spans chunk boundaries
		resp = s.get("/o/"+o.name, "Range", fmt.Sprintf("bytes=%d-%d", from, to))
		got, err = io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("%s: range GET: %s, %v", when, resp.Status, err)
		}
		if cr, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", from, to, o.size); cr != want {
			t.Errorf("%s: Content-Range %q, want %q", when, cr, want)
		}
		if !bytes.Equal(got, data[from:to+1]) {
			t.Errorf("%s: range GET returned %d bytes that differ from the slice put", when, len(got))
		}
	}
	check("before restart")
	s.stop()
	s.start()
	check("after restart")
	st := s.status()
	if st["objects"] != 1.0 || st["versions"] != 1.0 || st["raw_bytes"] != float64(o.size) {
		t.Errorf("status after restart: %v, want 1 object, 1 version, %d raw bytes", st, o.size)
	}
}

// TestKillMidPut kills a site process at moments inside a put and checks
// that after a restart the store opens, earlier objects are intact and the
// interrupted object is absent or whole, never torn.
func TestKillMidPut(t *testing.T) {
	procNoLeaks(t)
	tests := []struct {
		name       string
		crashpoint string // "" → SIGKILL from the test while the body streams
		size       int64
		complete   bool // the put must be complete after restart
	}{
		{"sigkill-mid-body", "", 64 << 20, false},
		{"after-pack-write", crashpoint.AfterPackWrite, 16 << 20, false},
		{"after-pack-sync", crashpoint.AfterPackSync, 16 << 20, false},
		{"after-index-commit", crashpoint.AfterIndexCommit, 16 << 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newProcSite(t, "kill")
			earlier := []procObj{
				{name: procDomain + "/proc/early-1.bin", seed: 11, size: 3<<20 + 12345},
				{name: procDomain + "/proc/early-2.bin", seed: 12, size: 1 << 20},
			}
			s.start()
			for _, o := range earlier {
				s.mustPut(o)
			}
			s.stop()

			victim := procObj{name: procDomain + "/proc/victim.bin", seed: 13, size: tc.size}
			if tc.crashpoint == "" {
				s.start()
				s.killMidBody(victim, 24<<20)
			} else {
				s.start(crashpoint.EnvVar + "=" + tc.crashpoint)
				s.crashingPut(victim)
			}

			s.start()
			for _, o := range earlier {
				if code, sum := s.getSum(o.name); code != http.StatusOK || sum != o.sum() {
					t.Errorf("earlier object %s after restart: %d, sha256 %s, want 200, %s", o.name, code, sum, o.sum())
				}
			}
			code, sum := s.getSum(victim.name)
			switch {
			case code == http.StatusOK && sum != victim.sum():
				t.Errorf("interrupted object is torn: sha256 %s, want %s", sum, victim.sum())
			case code != http.StatusOK && code != http.StatusNotFound:
				t.Errorf("interrupted object: GET answered %d, want 404 or 200", code)
			case code != http.StatusOK && tc.complete:
				t.Errorf("interrupted object: GET answered %d; after %s the put must be complete", code, tc.crashpoint)
			}
			t.Logf("interrupted object after restart: HTTP %d", code)
			wantObjects := float64(len(earlier))
			if code == http.StatusOK {
				wantObjects++
			}
			if st := s.status(); st["objects"] != wantObjects {
				t.Errorf("status after restart: objects %v, want %v", st["objects"], wantObjects)
			}
			// The recovered site takes the interrupted put again.
			victim.seed, victim.size = 14, 2<<20+7
			s.mustPut(victim)
			if code, sum := s.getSum(victim.name); code != http.StatusOK || sum != victim.sum() {
				t.Errorf("put after recovery: GET %d, sha256 %s, want %s", code, sum, victim.sum())
			}
		})
	}
}

// killMidBody streams the first sent bytes of o's body into a PUT,
// SIGKILLs the site, then stops writing.
func (s *procSite) killMidBody(o procObj, sent int64) {
	s.t.Helper()
	pr, pw := io.Pipe()
	defer pw.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := s.put(o.name, pr, o.size)
		pr.Close()
		errc <- err
	}()
	if n, err := io.Copy(pw, io.LimitReader(o.body(), sent)); err != nil {
		pw.CloseWithError(err)
		<-errc
		s.t.Fatalf("PUT body: the site stopped reading after %d bytes: %v", n, err)
	}
	p := s.p
	s.p = nil
	if err := p.Kill(); err != nil {
		s.t.Fatal(err)
	}
	pw.CloseWithError(errors.New("test stopped writing"))
	if err := <-errc; err == nil {
		s.t.Fatal("PUT of a body cut short succeeded")
	}
}

// crashingPut puts o into a site started with a crash point and checks
// that the site killed itself there.
func (s *procSite) crashingPut(o procObj) {
	s.t.Helper()
	if _, err := s.put(o.name, o.body(), o.size); err == nil {
		s.t.Fatal("PUT succeeded: the crash point was not reached")
	}
	p := s.p
	s.p = nil
	err := p.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		s.t.Fatalf("site process exit: %v, want killed by SIGKILL at the crash point", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		s.t.Fatalf("site process exit: %v, want killed by SIGKILL at the crash point", err)
	}
}

func TestCLIExitCodes(t *testing.T) {
	procNoLeaks(t)
	s := newProcSite(t, "cli")
	s.start()
	env := append(os.Environ(), "SKYFED_SITE="+s.url)
	run := func(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, s.bin, args...)
		cmd.Env, cmd.Stdin = env, stdin
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("skyfed %s: %v", strings.Join(args, " "), err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}

	tmp := t.TempDir()
	free := func(t *testing.T) string {
		a, err := testlab.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	fresh := filepath.Join(tmp, "fresh")
	exits := []struct {
		name      string
		args      []string
		code      int
		outEmpty  bool
		errSubstr string
	}{
		{"get missing", []string{"get", procDomain + "/proc/missing.bin"}, 2, true, ""},
		{"versions missing", []string{"versions", procDomain + "/proc/missing.bin"}, 2, true, ""},
		{"bad flag", []string{"get", "--no-such-flag", procDomain + "/x"}, 80, true, "hint:"},
		{"bad root flag", []string{"--no-such-flag"}, 80, true, ""},
		{"missing arg", []string{"put"}, 80, true, ""},
		{"init existing site", []string{"site", "init", "--dir", s.dir, "--id", "other", "--domain", procDomain}, 1, true, "already holds a site"},
		{"init fresh", []string{"site", "init", "--dir", fresh, "--id", "fresh", "--domain", procDomain, "--http", free(t), "--nats", free(t)}, 0, false, ""},
	}
	for _, tc := range exits {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if tc.outEmpty && out != "" {
				t.Errorf("stdout %q, want empty", out)
			}
			if !strings.Contains(errOut, tc.errSubstr) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tc.errSubstr)
			}
		})
	}

	t.Run("init prints one key line", func(t *testing.T) {
		dir := filepath.Join(tmp, "keyline")
		code, out, errOut := run(t, nil, "site", "init", "--dir", dir, "--id", "keyline", "--domain", procDomain, "--http", free(t), "--nats", free(t))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !regexp.MustCompile(`\Aed25519:[0-9a-f]{64}\n\z`).MatchString(out) {
			t.Errorf("site init stdout %q, want exactly one line ed25519:<64 hex>", out)
		}
		if _, key, _ := run(t, nil, "site", "key", "--dir", dir); key != out {
			t.Errorf("site key printed %q, site init %q", key, out)
		}
	})

	t.Run("put file, get -o", func(t *testing.T) {
		o := procObj{name: procDomain + "/proc/cli/file.fits", seed: 21, size: 3<<20 + 7}
		src, dst := filepath.Join(tmp, "in.fits"), filepath.Join(tmp, "out.fits")
		f, err := os.Create(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, o.body()); err != nil || f.Close() != nil {
			t.Fatalf("write %s: %v", src, err)
		}
		code, out, errOut := run(t, nil, "put", o.name, src)
		if code != 0 {
			t.Fatalf("put: exit %d: %s", code, errOut)
		}
		if want := fmt.Sprintf(` %s %d\n\z`, o.sum(), o.size); !regexp.MustCompile(`\A\S+` + want).MatchString(out) {
			t.Errorf("put stdout %q, want 'VERSION %s %d'", out, o.sum(), o.size)
		}
		if code, _, errOut := run(t, nil, "get", o.name, "-o", dst); code != 0 {
			t.Fatalf("get -o: exit %d: %s", code, errOut)
		}
		procSameFiles(t, src, dst)
	})

	t.Run("put from stdin", func(t *testing.T) {
		o := procObj{name: procDomain + "/proc/cli/stdin.bin", seed: 22, size: 1<<20 + 99}
		data, _ := io.ReadAll(o.body())
		if code, _, errOut := run(t, bytes.NewReader(data), "put", o.name, "-"); code != 0 {
			t.Fatalf("put -: exit %d: %s", code, errOut)
		}
		code, out, errOut := run(t, nil, "get", o.name)
		if code != 0 {
			t.Fatalf("get: exit %d: %s", code, errOut)
		}
		if out != string(data) {
			t.Errorf("get to stdout: %d bytes that differ from the %d put from stdin", len(out), len(data))
		}
	})
}

func procSameFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s (%d bytes) and %s (%d bytes) differ", a, len(x), b, len(y))
	}
}

// procProgress counts what is read through it and logs every step bytes.
type procProgress struct {
	t     *testing.T
	what  string
	r     io.Reader
	n     int64
	next  int64
	step  int64
	extra func() string
}

func (p *procProgress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n >= p.next {
		p.t.Logf("%s: %d MiB %s", p.what, p.n>>20, p.extra())
		p.next += p.step
	}
	return n, err
}

// TestStreaming4GiB puts and gets 4 GiB through a site process and checks
// that its memory stays within a small fixed bound.
func TestStreaming4GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 4 GiB streaming test in -short mode")
	}
	const size, bound = 4 << 30, 64 << 20
	var fs syscall.Statfs_t
	if err := syscall.Statfs(os.TempDir(), &fs); err != nil {
		t.Fatal(err)
	}
	if free := fs.Bavail * uint64(fs.Bsize); free < 5<<30 {
		t.Skipf("needs 5 GiB free under %s for a 4 GiB object, only %d MiB free", os.TempDir(), free>>20)
	}
	procNoLeaks(t)
	s := newProcSite(t, "big")
	s.start()
	idle, err := s.p.RSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("site idle RSS %d MiB", idle>>20)
	rss := func() string {
		r, _ := s.p.RSS()
		h, _ := s.p.PeakRSS()
		return fmt.Sprintf("(site RSS %d MiB, peak %d MiB)", r>>20, h>>20)
	}

	o := procObj{name: procDomain + "/proc/big/4gib.bin", seed: 4, size: size}
	h := sha256.New()
	body := &procProgress{t: t, what: "put", r: io.TeeReader(o.body(), h), step: 512 << 20, extra: rss}
	ans, err := s.put(o.name, body, o.size)
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	if ans.SHA256 != want || ans.Size != size {
		t.Fatalf("PUT answered size %d sha256 %s, want %d %s", ans.Size, ans.SHA256, int64(size), want)
	}

	resp := s.get("/o/" + o.name)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s", resp.Status)
	}
	h.Reset()
	n, err := io.Copy(h, &procProgress{t: t, what: "get", r: resp.Body, step: 512 << 20, extra: rss})
	if err != nil || n != size {
		t.Fatalf("GET: %d bytes, %v", n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("GET body sha256 %s, want %s", got, want)
	}
	if etag := resp.Header.Get("ETag"); etag != `"`+want+`"` {
		t.Errorf("GET ETag %s, want %q", etag, want)
	}

	peak, err := s.p.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("site RSS: idle %d MiB, peak %d MiB, growth %d MiB (bound %d MiB)", idle>>20, peak>>20, (peak-idle)>>20, bound>>20)
	if peak-idle > bound {
		t.Errorf("site memory grew by %d MiB while streaming 4 GiB, bound %d MiB", (peak-idle)>>20, bound>>20)
	}
	s.stop()
	if err := os.RemoveAll(s.dir); err != nil {
		t.Errorf("free the disk: %v", err)
	}
}

// TestProcessStartFails checks that a site process that cannot start is
// reported and reaped, and that a dead process answers RSS with ErrExited.
func TestProcessStartFails(t *testing.T) {
	procNoLeaks(t)
	s := newProcSite(t, "busy")
	s.start()
	p := s.p
	// A second process on the same dir and ports cannot start.
	var log bytes.Buffer
	if q, err := testlab.StartProcess(t.Context(), s.bin, s.dir, &log); err == nil {
		q.Kill()
		t.Fatal("a second site process on the same dir and ports started")
	} else {
		t.Logf("second process refused: %v", err)
	}
	s.p = nil
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RSS(); !errors.Is(err, testlab.ErrExited) {
		t.Errorf("RSS of a killed process: %v, want ErrExited", err)
	}
	if err := p.Stop(); err == nil {
		t.Error("Stop of a killed process reported a clean exit")
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}

	// A process that exits at once (here: an unreadable key) is reported
	// without waiting for the start timeout.
	b := newProcSite(t, "badkey")
	if err := os.WriteFile(filepath.Join(b.dir, site.KeyFile), []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := testlab.StartProcess(t.Context(), b.bin, b.dir, &log)
	if err == nil {
		q.Kill()
		t.Fatal("a site with a broken key file started")
	}
	if !strings.Contains(err.Error(), "exited before answering") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("StartProcess error %q, want it to say the process exited with status 1", err)
	}
}
