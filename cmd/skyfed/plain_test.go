package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/skyfed/skyfed/site"
)

// startLoopSite runs a real site on loopback (open to the CLI without a
// token) and returns its data dir and base URL.
func startLoopSite(t *testing.T) (dir, base string) { return startCLISite(t, "127.0.0.1") }

// TestErrorsSayItOnce runs the CLI against a real site: each error names
// its object once, and the hints are CLI commands: the versions of a
// deleted object, ls for a name that is only a prefix of names.
func TestErrorsSayItOnce(t *testing.T) {
	leakCheck(t)
	_, base := startLoopSite(t)
	t.Setenv("SKYFED_SITE", base)
	file := filepath.Join(t.TempDir(), "img.fits")
	if err := os.WriteFile(file, []byte("pixels"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"put", "gloria.eu/dir/a", file}, {"rm", "gloria.eu/dir/a"}, {"put", "gloria.eu/dir/b", file}} {
		if code, _, errb := skyfedRun(args...); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errb)
		}
	}
	for _, tc := range []struct {
		args       []string
		name, want string
		hint       string
	}{
		{[]string{"rm", "gloria.eu/big"}, "gloria.eu/big", "skyfed: delete gloria.eu/big: not found (HTTP 404)\n", ""},
		{[]string{"get", "gloria.eu/big", "-o", "-"}, "gloria.eu/big", "skyfed: get gloria.eu/big: not found (HTTP 404)\n", ""},
		{[]string{"versions", "gloria.eu/big"}, "gloria.eu/big", "skyfed: versions gloria.eu/big: not found (HTTP 404)\n", ""},
		{[]string{"get", "gloria.eu/dir/b", "--version", "1763765000001.0000.alpha", "-o", "-"}, "gloria.eu/dir/b",
			"skyfed: get gloria.eu/dir/b version 1763765000001.0000.alpha: not found (HTTP 404)\n", ""},
		{[]string{"get", "gloria.eu/dir/a", "-o", "-"}, "gloria.eu/dir/a", "skyfed: get gloria.eu/dir/a: deleted (HTTP 404)\n",
			"hint: its latest version is deleted or expired: skyfed versions gloria.eu/dir/a lists its versions, " +
				"skyfed get --version V gloria.eu/dir/a fetches one, skyfed restore --version V gloria.eu/dir/a makes it the latest again\n"},
		{[]string{"get", "gloria.eu/dir", "-o", "-"}, "gloria.eu/dir", "skyfed: get gloria.eu/dir: not found (HTTP 404)\n",
			"hint: gloria.eu/dir is no object, but names start with it: skyfed ls gloria.eu/dir lists them\n"},
	} {
		code, _, errb := skyfedRun(tc.args...)
		if code != exitNotFound || errb != tc.want+tc.hint {
			t.Errorf("%v: exit %d, stderr\n%s\nwant exit 2 and\n%s%s", tc.args, code, errb, tc.want, tc.hint)
		}
		if first, _, _ := strings.Cut(errb, "\n"); strings.Count(first, tc.name) != 1 {
			t.Errorf("%v: %q names %s more than once", tc.args, first, tc.name)
		}
	}
}

// TestExitCodesAsREADME: a bad name or site ID is a usage error (exit
// 80, before anything is sent or written), as a bad --key is.
func TestExitCodesAsREADME(t *testing.T) {
	dead := "http://127.0.0.1:1" // nothing is sent: a request would exit 1
	dir := initSiteDir(t, "127.0.0.1:7401")
	key := "ed25519:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"put", "bad//name", os.DevNull, "--site", dead}, `bad name "bad//name": has an empty segment`},
		{[]string{"get", "Gloria.eu/x", "--site", dead}, `bad name "Gloria.eu/x"`},
		{[]string{"versions", "gloria.eu", "--site", dead}, "needs a path after the domain"},
		{[]string{"rm", "gloria.eu/a/../b", "--site", dead}, `has a ".." segment`},
		{[]string{"restore", "gloria.eu/a/", "--version", "1763765000001.0000.alpha", "--site", dead}, "has an empty segment"},
		{[]string{"share", "/x", "--site", dead}, "bad name"},
		{[]string{"site", "init", "--dir", filepath.Join(t.TempDir(), "x"), "--id", "Bad_ID", "--domain", "gloria.eu"}, `site id "Bad_ID" must match`},
		{[]string{"site", "init", "--dir", filepath.Join(t.TempDir(), "y"), "--id", "beta", "--domain", "Gloria"}, `domain "Gloria"`},
		{[]string{"site", "trust", "--dir", dir, "--peer", "Bad_ID", "--key", key, "--domain", "gloria.eu"}, `--peer "Bad_ID": a site ID must match`},
		{[]string{"site", "trust", "--dir", dir, "--peer", "beta", "--key", key, "--domain", "gloria eu"}, "--domain: domain"},
		{[]string{"site", "trust", "--dir", dir, "--peer", "beta", "--key", "ed25519:00", "--domain", "gloria.eu"}, "--key"},
		{[]string{"site", "link", "--dir", dir, "--peer", "Bad_ID", "--url", "nats://127.0.0.1:7502"}, `--peer "Bad_ID"`},
	} {
		code, _, errb := skyfedRun(tc.args...)
		if code != exitUsage || !strings.Contains(errb, tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want 80 saying %q", tc.args, code, errb, tc.says)
		}
	}
}

// TestCorruptObjectExits3: an object whose damaged chunk no site can
// repair exits 3 on every path that reads it: to a file, to stdout, by
// its SHA-256, and in get -r; each error names the object once.
func TestCorruptObjectExits3(t *testing.T) {
	leakCheck(t)
	dir, base := startLoopSite(t)
	t.Setenv("SKYFED_SITE", base)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "big.fits")
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(data) // incompressible: stored as is
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "gloria.eu/cam/big.fits"
	code, out, errb := skyfedRun("put", "--no-hashmap", name, file)
	if code != exitOK {
		t.Fatalf("put: exit %d: %s", code, errb)
	}
	sum := strings.Fields(out)[1]
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.dat"))
	damaged := false
	for _, p := range packs {
		st, err := os.Stat(p)
		if err != nil || st.Size() < int64(len(data)) {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{0}
		off := st.Size() * 3 / 4
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		damaged = true
	}
	if !damaged {
		t.Fatalf("no pack holds the object in %v", packs)
	}
	for _, args := range [][]string{
		{"get", name, "-o", filepath.Join(tmp, "copy.fits")},
		{"get", name, "-o", "-"},
		{"get", "--sha256", sum, "-o", "-"},
		{"get", "-r", "gloria.eu/cam/", filepath.Join(tmp, "tree")},
	} {
		code, _, errb := skyfedRun(args...)
		if code != exitVerify {
			t.Errorf("%v: exit %d, want 3; stderr %s", args, code, errb)
		}
		if first, _, _ := strings.Cut(errb, "\n"); strings.Count(first, name) > 1 || strings.Contains(first, "get :") {
			t.Errorf("%v: %q does not name the object once", args, first)
		}
	}
}

// TestSiteRunNATSPortTaken: site run exits at once, naming the port, when
// its NATS port is taken (not after NATS's 10 s start-up wait).
func TestSiteRunNATSPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "alpha")
	if _, err := site.Init(dir, site.Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: taken.Addr().String(), ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	app, _, errb := testApp("")
	app.Ctx = ctx
	start := time.Now()
	code := run([]string{"site", "run", "--dir", dir}, app)
	if took := time.Since(start); code != exitError || took > 3*time.Second ||
		!strings.Contains(errb.String(), "cannot listen on "+taken.Addr().String()) {
		t.Errorf("exit %d after %s, stderr %q; want exit 1 at once naming %s", code, took, errb, taken.Addr())
	}
}

// TestProgressBar: at any terminal width the bar is drawn with room or
// not at all (never an empty "||"), in the IEC units of the rest of the
// CLI (MiB with MiB/s, not MB/s).
func TestProgressBar(t *testing.T) {
	for _, cols := range []int{40, 75, 80, 200} {
		for _, size := range []int64{50 << 20, -1} {
			var w bytes.Buffer
			bar := progressBar(&w, size, "get", cols)
			bar.Add(3 << 20)
			time.Sleep(70 * time.Millisecond) // past the throttle: drawn again
			bar.Add(20 << 20)
			text := w.String()
			if strings.Contains(text, "||") || strings.Contains(text, "| |") || !strings.Contains(text, "MiB") ||
				strings.Contains(text, " MB") || strings.Contains(text, "kB") || !strings.Contains(text, "23") {
				t.Errorf("%d columns, size %d: %q", cols, size, text)
			}
			if size > 0 && cols >= 80 && !strings.Contains(text, "|█") {
				t.Errorf("%d columns: no bar in %q", cols, text)
			}
		}
	}
}

// freePorts returns the first of n consecutive free loopback ports.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + rand.IntN(30000)
		free := true
		for p := base; p < base+n && free; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				free = false
				continue
			}
			ln.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// TestDemo: the demo's default ports are not README's by-hand ones, its
// logs go to a file it names (stderr stays clean for its progress), and
// the commands it prints use a skyfed binary that exists where it says.
func TestDemo(t *testing.T) {
	var root cli
	parser, err := kong.New(&root, kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"demo"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{root.Demo.HTTPPort, root.Demo.NATSPort, root.Demo.S3Port} {
		if p >= 7401 && p <= 7403 || p >= 7501 && p <= 7503 {
			t.Errorf("demo default port %d is one of README's by-hand ports", p)
		}
	}

	base := freePorts(t, 6)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, _, errBuf := testApp("")
	w := &frameWriter{marker: "The demo stops by itself", want: 1, cancel: cancel} // done once the guide is out
	app.Ctx, app.Stdout = ctx, w
	code := run([]string{"demo", "--dir", dir, "--sites", "2", "--frames", "1", "--topology", "line", "--for", "60s",
		"--http-port", strconv.Itoa(base), "--nats-port", strconv.Itoa(base + 2), "--s3-port", strconv.Itoa(base + 4)}, app)
	out, errb := w.String(), errBuf.String()
	if code != exitOK {
		t.Fatalf("demo: exit %d\nstdout %s\nstderr %s", code, out, errb)
	}
	logPath := filepath.Join(dir, "demo.log")
	if !strings.Contains(out, "the sites log to "+logPath) || errb != "" {
		t.Errorf("demo: stdout does not name its log file or stderr has logs:\nstdout %s\nstderr %s", out, errb)
	}
	if st, err := os.Stat(logPath); err != nil || st.Size() == 0 {
		t.Errorf("demo log %s: %v", logPath, err)
	}
	bin := filepath.Join(dir, "skyfed")
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o100 == 0 {
		t.Errorf("demo binary %s: %v", bin, err)
	}
	if !strings.Contains(out, "\n  "+bin+" ls gloria.eu/\n") || strings.Contains(out, "\n  skyfed ") || !strings.Contains(out, "converged") {
		t.Errorf("demo guide does not use %s:\n%s", bin, out)
	}
}

// TestDemoSitesHaveLocations: every demo site is given where its
// observatory is, so the page draws the demo on the map.
func TestDemoSitesHaveLocations(t *testing.T) {
	for _, n := range demoSiteNames {
		if _, _, err := site.ParseLocation(demoLocations[n]); err != nil {
			t.Errorf("demo site %s: location %q: %v", n, demoLocations[n], err)
		}
	}
}
