package testlab_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skyfed/skyfed/testlab"
)

// watchProc is one `skyfed watch` process; its stdout lines are noted
// with whether the peer was down when they were read.
type watchProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// watchLog holds every line of every watcher process of a test.
type watchLog struct {
	mu       sync.Mutex
	peerDown bool
	lines    []watchLine
}

type watchLine struct {
	fields   []string
	peerDown bool
}

func (l *watchLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, watchLine{strings.Fields(line), l.peerDown})
}

func (l *watchLog) setPeerDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.peerDown = down
}

// names returns the distinct names of the lines of verb (put, same, deleted).
func (l *watchLog) names(verb string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, w := range l.lines {
		switch {
		case len(w.fields) == 5 && w.fields[0] == verb && verb != "deleted":
			out[w.fields[1]]++
		case len(w.fields) == 5 && w.fields[0] == verb:
			out[w.fields[2]]++
		}
	}
	return out
}

func (l *watchLog) snapshot() []watchLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]watchLine(nil), l.lines...)
}

func startWatch(t *testing.T, bin string, log *watchLog, stderr *os.File, args ...string) *watchProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"watch"}, args...)...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &watchProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.add(sc.Text())
		}
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *watchProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
	}
}

// stop stops it with SIGTERM and returns its exit code.
func (p *watchProc) stop() int {
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode()
}

// writeFrames writes frames [from, to) into dir: even ones written in
// place (closed after writing), odd ones written beside the dir and
// renamed in; every tenth in a night subdirectory.
func writeFrames(t *testing.T, dir string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		var b bytes.Buffer
		if err := testlab.WriteSyntheticFrame(&b, uint64(i), 32, 32); err != nil {
			t.Fatal(err)
		}
		rel := frameRel(i)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		tmp := filepath.Join(filepath.Dir(dir), fmt.Sprintf("tmp-%d.part", i))
		if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
}

func frameRel(i int) string {
	if i%10 == 0 {
		return fmt.Sprintf("2026-12-06/img-%04d.fits", i)
	}
	return fmt.Sprintf("img-%04d.fits", i)
}

// TestWatchKilledTwicePeerDown: 200 frames are written into a watched
// directory on a line of three sites while the watcher is killed
// (SIGKILL) twice and restarted, and the far peer is down for a while.
// Every frame is put exactly once (one version per name), and with
// --delete-after-sites 3 no frame is removed while the far peer is down
// unless that peer held its version before it went down.
func TestWatchKilledTwicePeerDown(t *testing.T) {
	procNoLeaks(t)
	bin := procBin(t)
	fed, err := testlab.StartProcessFederation(testlab.FedOptions{N: 3, Topology: "line", Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fed.Close() })
	if err := fed.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	dir := filepath.Join(base, "incoming")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(base, "watch.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	const prefix = testlab.Domain + "/bootes-2/"
	args := []string{dir, "--prefix", prefix, "--delete-after-sites", "3", "--include", "*.fits",
		"--settle", "300ms", "--rescan", "1s", "--retry-max", "500ms", "--held-wait", "300ms", "--jobs", "3",
		"--site", fed.URL(0), "--state", filepath.Join(base, "state")}
	log := &watchLog{}
	// A frame is in once a line names it: put, or same when the watcher
	// found its put done after a restart.
	putOrSame := func() int {
		in := log.names("put")
		for name := range log.names("same") {
			in[name]++
		}
		return len(in)
	}
	waitPut := func(n int) {
		t.Helper()
		if err := testlab.PollUntil(45*time.Second, func() error {
			if got := putOrSame(); got < n {
				return fmt.Errorf("%d frames put, want %d", got, n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	writeFrames(t, dir, 0, 40) // before the watcher starts
	w := startWatch(t, bin, log, stderr, args...)
	writeFrames(t, dir, 40, 70)
	waitPut(30)
	w.kill() // first crash, frames still arriving

	w = startWatch(t, bin, log, stderr, args...)
	writeFrames(t, dir, 70, 120)
	waitPut(100)

	// The far peer goes down, holding what it holds now, completely.
	if err := testlab.PollUntil(30*time.Second, func() error {
		st, err := fed.Status(2)
		if err == nil && st.IncompleteVersions > 0 {
			err = fmt.Errorf("%d versions incomplete at s2", st.IncompleteVersions)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	inv, err := fed.Inventory(2)
	if err != nil {
		t.Fatal(err)
	}
	log.setPeerDown(true)
	if err := fed.Kill(2); err != nil {
		t.Fatal(err)
	}
	writeFrames(t, dir, 120, 170)
	waitPut(150)
	w.kill() // second crash, with frames waiting for the far peer

	w = startWatch(t, bin, log, stderr, args...)
	writeFrames(t, dir, 170, 200)
	waitPut(200)
	if err := fed.Start(2); err != nil {
		t.Fatal(err)
	}
	log.setPeerDown(false)
	if err := testlab.PollUntil(45*time.Second, func() error {
		if got := len(log.names("deleted")); got < 200 {
			return fmt.Errorf("%d frames deleted, want 200", got)
		}
		return nil
	}); err != nil {
		deleted := log.names("deleted")
		for i := range 200 {
			if name := prefix + frameRel(i); deleted[name] == 0 {
				t.Fatalf("%v; %s is not: %s", err, name, heldDiag(t, fed, name))
			}
		}
	}
	if code := w.stop(); code != 0 {
		t.Errorf("watch exited %d on SIGTERM, want 0", code)
	}

	// Every frame put exactly once.
	for i := range 200 {
		name := prefix + frameRel(i)
		if n := versionsAt(t, fed.URL(0), name); n != 1 {
			t.Errorf("%s: %d versions, want 1", name, n)
		}
	}
	if puts := log.names("put"); len(puts) > 200 {
		t.Errorf("%d names put, want at most 200", len(puts))
	}
	// No deletion while the far peer was down of a version it did not hold.
	var whileDown int
	for _, l := range log.snapshot() {
		if len(l.fields) != 5 || l.fields[0] != "deleted" {
			continue
		}
		if n, err := strconv.Atoi(l.fields[4]); err != nil || n < 3 {
			t.Errorf("%q: deleted with fewer than 3 sites", strings.Join(l.fields, " "))
		}
		if !l.peerDown {
			continue
		}
		whileDown++
		name, version := l.fields[2], l.fields[3]
		held := false
		for _, v := range inv.Versions[name] {
			held = held || v == version
		}
		if !held {
			t.Errorf("%s version %s deleted while s2 was down, which did not hold it", name, version)
		}
	}
	t.Logf("%d of 200 deletions while s2 was down (of versions it held before)", whileDown)
	left := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left++
		}
		return nil
	})
	if left != 0 {
		t.Errorf("%d files left in the watched directory", left)
	}
}

// versionsAt counts the versions of name at the site at base.
func versionsAt(t *testing.T, base, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/o/"+(&url.URL{Path: name}).EscapedPath()+"?versions", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var vl struct {
		Versions []json.RawMessage `json:"versions"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&vl) != nil {
		t.Fatalf("versions of %s: HTTP %d", name, resp.StatusCode)
	}
	return len(vl.Versions)
}

// heldDiag says how the sites see name's version: what a test failure
// shows about a frame not deleted.
func heldDiag(t *testing.T, fed *testlab.ProcessFederation, name string) string {
	var b strings.Builder
	for i := range 3 {
		for _, q := range []string{"/o/" + (&url.URL{Path: name}).EscapedPath() + "?versions", "/api/status"} {
			resp, err := http.Get(fed.URL(i) + q)
			if err != nil {
				fmt.Fprintf(&b, "\ns%d %s: %v", i, q, err)
				continue
			}
			var v map[string]any
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if q == "/api/status" {
				v = map[string]any{"incomplete_versions": v["incomplete_versions"], "links": v["links"]}
			}
			fmt.Fprintf(&b, "\ns%d %s: %d %v", i, q, resp.StatusCode, v)
			if vs, ok := v["versions"].([]any); ok && len(vs) > 0 && i == 0 {
				m := vs[0].(map[string]any)["manifest"]
				resp, err := http.Get(fmt.Sprintf("%s/api/held/%v?timeout=2s", fed.URL(0), m))
				if err == nil {
					var h map[string]any
					json.NewDecoder(resp.Body).Decode(&h)
					resp.Body.Close()
					fmt.Fprintf(&b, "\ns0 held: %v", h)
				}
			}
		}
	}
	return b.String()
}
