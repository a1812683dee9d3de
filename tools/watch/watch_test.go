package watch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/site/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startSite runs a real site (no NATS listener, no links) for the test.
func startSite(t *testing.T) *client.Client {
	t.Helper()
	dir := t.TempDir()
	if _, err := site.Init(dir, site.Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: "127.0.0.1:0", ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := site.Open(dir, site.Options{Logger: slog.New(slog.DiscardHandler), HTTPListener: ln, NATSPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop site: %v", err)
		}
	})
	cl := client.New("http://"+s.HTTPAddr(), "")
	t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// lines is a concurrency-safe stdout.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// with returns the lines starting with verb.
func (l *lines) with(verb string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for s := range strings.Lines(l.buf.String()) {
		if strings.HasPrefix(s, verb+" ") {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}

// runWatch starts a watcher; stop ends it and waits for it.
func runWatch(t *testing.T, o Options) (out *lines, stop func()) {
	t.Helper()
	out = &lines{}
	o.Out = out
	if o.Settle == 0 {
		o.Settle = 200 * time.Millisecond
	}
	o.RetryMin, o.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	o.Rescan = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("watch: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return out, stop
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func countVersions(t *testing.T, cl *client.Client, name string) int {
	t.Helper()
	vl, err := cl.Versions(context.Background(), name)
	if err != nil {
		t.Fatalf("versions %s: %v", name, err)
	}
	return len(vl.Versions)
}

// Files there before the start, written while watching (closed,
// renamed in, in a new subdirectory), changed, and skipped by
// --include: each put once, a change as a second version, nothing again
// after a restart, and a put acknowledged but not recorded (a crash)
// found at the site and not repeated.
func TestWatchPutsEachFileOnce(t *testing.T) {
	cl := startSite(t)
	base := t.TempDir()
	dir := filepath.Join(base, "incoming")
	writeFile(t, filepath.Join(dir, "before.fits"), bytes.Repeat([]byte("before "), 30000))
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not a frame"))
	o := Options{Dir: dir, Prefix: "gloria.eu/bootes-2", Site: cl, Include: []string{"*.fits", "*.fits.fz"}}
	out, stop := runWatch(t, o)
	eventually(t, "before.fits put", func() error {
		if n := len(out.with("put")); n != 1 {
			return fmt.Errorf("%d put lines", n)
		}
		return nil
	})
	writeFile(t, filepath.Join(dir, "img-0001.fits"), []byte("frame one"))
	writeFile(t, filepath.Join(base, "tmp.fits.fz"), []byte("frame two, compressed"))
	if err := os.Rename(filepath.Join(base, "tmp.fits.fz"), filepath.Join(dir, "img-0002.fits.fz")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "2026", "12", "06", "img-0003.fits"), []byte("frame three"))
	eventually(t, "three more frames put", func() error {
		if n := len(out.with("put")); n != 4 {
			return fmt.Errorf("%d put lines: %q", n, out.with("put"))
		}
		return nil
	})
	writeFile(t, filepath.Join(dir, "img-0001.fits"), []byte("frame one, reduced"))
	eventually(t, "the changed frame put again", func() error {
		if n := len(out.with("put")); n != 5 {
			return fmt.Errorf("%d put lines", n)
		}
		return nil
	})
	stop()

	// A put the site acknowledged, recorded only as about to be sent.
	crashed := []byte("frame four, put before the crash")
	writeFile(t, filepath.Join(dir, "img-0004.fits"), crashed)
	st, err := os.Stat(filepath.Join(dir, "img-0004.fits"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(context.Background(), "gloria.eu/bootes-2/img-0004.fits", bytes.NewReader(crashed), int64(len(crashed)), client.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	state, err := OpenState(DefaultStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	err = state.Put("img-0004.fits", &Record{Size: st.Size(), MTime: st.ModTime().UnixNano(), SHA256: sha256.Sum256(crashed),
		Name: "gloria.eu/bootes-2/img-0004.fits", Status: StatusPutting})
	if err2 := state.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}

	out, stop = runWatch(t, o)
	eventually(t, "img-0004.fits found put", func() error {
		if s := out.with("same"); len(s) != 1 || !strings.HasPrefix(s[0], "same gloria.eu/bootes-2/img-0004.fits ") {
			return fmt.Errorf("same lines %q", s)
		}
		return nil
	})
	time.Sleep(time.Second) // a few rescans (every 300ms): nothing else to do
	stop()
	if p := out.with("put"); len(p) != 0 {
		t.Errorf("after the restart the watcher put %q again", p)
	}
	for name, want := range map[string]int{"before.fits": 1, "img-0001.fits": 2, "img-0002.fits.fz": 1, "2026/12/06/img-0003.fits": 1, "img-0004.fits": 1} {
		if n := countVersions(t, cl, "gloria.eu/bootes-2/"+name); n != want {
			t.Errorf("%s: %d versions, want %d", name, n, want)
		}
	}
	if _, err := cl.Versions(context.Background(), "gloria.eu/bootes-2/notes.txt"); err == nil {
		t.Error("notes.txt was put although --include leaves it out")
	}
}

// With --delete-after-sites 1 a file goes once put (the site itself
// holds it); its record goes with it; a site down meanwhile is retried.
func TestWatchDeletesAfterSites(t *testing.T) {
	cl := startSite(t)
	dir := filepath.Join(t.TempDir(), "incoming")
	for i := range 5 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("img-%04d.fits", i)), bytes.Repeat([]byte{byte(i)}, 1000+i))
	}
	out, stop := runWatch(t, Options{Dir: dir, Prefix: "gloria.eu/bootes-2/", Site: cl, DeleteAfterSites: 1})
	eventually(t, "every frame deleted", func() error {
		if d := out.with("deleted"); len(d) != 5 {
			return fmt.Errorf("%d deleted lines", len(d))
		}
		return nil
	})
	stop()
	for _, l := range out.with("deleted") {
		f := strings.Fields(l)
		if len(f) != 5 || !strings.HasPrefix(f[2], "gloria.eu/bootes-2/img-") || f[4] != "1" {
			t.Errorf("deleted line %q, want deleted PATH NAME VERSION 1", l)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("%d files left in the watched dir", len(left))
	}

	// Nothing answers: the watcher keeps trying and never exits.
	dead := client.New("http://"+freeAddr(t), "")
	writeFile(t, filepath.Join(dir, "late.fits"), []byte("late"))
	out, stop = runWatch(t, Options{Dir: dir, Prefix: "gloria.eu/bootes-2/", Site: dead, StateDir: filepath.Join(t.TempDir(), "st")})
	time.Sleep(300 * time.Millisecond)
	stop()
	if len(out.with("put")) != 0 {
		t.Error("put to a site that is down")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var _ io.Writer = (*lines)(nil)
