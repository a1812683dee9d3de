package site

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
)

// needTool finds an external program the test drives. Under CI=true a
// missing program fails the test; elsewhere it skips.
func needTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: apt-get install -y %s (%v)", name, debianPackage, err)
	}
	t.Skipf("%s not installed (apt-get install -y %s)", name, debianPackage)
	return ""
}

// artifactDir is where tests leave files worth looking at: $SKYFED_ARTIFACTS
// if set, else a temp dir.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("SKYFED_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// skyFrame makes n bytes that look like a 16-bit sky image: a smooth
// background with a few bits of noise, so zstd compresses it about 2×.
// Past the first 256 KiB each block is the first with its samples
// shifted, which keeps every chunk distinct and costs only a copy.
func skyFrame(seed uint64, n int) []byte {
	const block = 256 << 10
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i+1 < min(n, block); i += 2 {
		v := 1200 + 300*math.Sin(float64(i)/40000) + float64(rng.IntN(96))
		binary.BigEndian.PutUint16(b[i:], uint16(v))
	}
	for off := block; off < n; off += block {
		shift := uint16(off / block * 3)
		for i := off; i+1 < min(n, off+block); i += 2 {
			binary.BigEndian.PutUint16(b[i:], binary.BigEndian.Uint16(b[i-off:])+shift)
		}
	}
	return b
}

func putObject(t *testing.T, s *testSite, name string, data []byte) {
	t.Helper()
	if resp, body := s.do(t, "PUT", "/o/"+name, bytes.NewReader(data)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s at %s: %d %s", name, s.Config().ID, resp.StatusCode, body)
	}
}

func TestArrivalsAPI(t *testing.T) {
	a := startSite(t, "127.0.0.1")
	putObject(t, a, "gloria.eu/bootes-2/img-0001.fits", skyFrame(1, 200<<10))
	putObject(t, a, "gloria.eu/bootes-2/img-0002.fits", skyFrame(2, 100<<10))

	resp, body := a.do(t, "GET", "/api/arrivals?limit=2", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("arrivals: %d %s", resp.StatusCode, body)
	}
	av := decode[arrivalsView](t, body)
	if len(av.Manifests) != 2 || len(av.Chunks) != 2 {
		t.Fatalf("limit 2 gave %d manifests, %d chunks", len(av.Manifests), len(av.Chunks))
	}
	m := av.Manifests[0]
	if m.Name != "gloria.eu/bootes-2/img-0002.fits" || m.Origin != "alpha" || m.Size != 100<<10 || m.Chunks != 2 ||
		m.From != forward.FromLocal || m.Peer != "" || !strings.HasSuffix(m.Version, ".alpha") || m.Kind != "manifest" {
		t.Errorf("newest manifest arrival %+v", m)
	}
	if av.Heads["manifest"] != 2 || av.Heads["chunk"] != 6 || av.Chunks[0].Seq != 6 || av.Chunks[0].Kind != "chunk" {
		t.Errorf("heads %v, newest chunk %+v", av.Heads, av.Chunks[0])
	}
	if len(av.Sites) != 1 || av.Sites[0].Site != "alpha" || av.Sites[0].Manifests != 2 || av.Sites[0].Via[0] != "local" {
		t.Errorf("sites %+v", av.Sites)
	}

	for _, tc := range []struct{ query, want string }{
		{"limit=0", "must be 1..500"}, {"limit=501", "must be 1..500"}, {"limit=x", "must be 1..500"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := a.do(t, "GET", "/api/arrivals?"+tc.query, nil)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Errorf("%d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestDashboardPageAndAssets(t *testing.T) {
	a := startSite(t, "127.0.0.1")
	putObject(t, a, "gloria.eu/x/<script>.fits", []byte("tiny"))
	resp, body := a.do(t, "GET", "/", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	page := string(body)
	boot := regexp.MustCompile(`(?s)<script id="boot" type="application/json">(.*?)</script>`).FindStringSubmatch(page)
	if boot == nil {
		t.Fatalf("no boot state in page:\n%s", page)
	}
	if strings.Contains(boot[1], "<script>") {
		t.Errorf("a name was not escaped in the boot state: %s", boot[1])
	}
	var b dashboardBoot
	if err := json.Unmarshal([]byte(boot[1]), &b); err != nil {
		t.Fatalf("boot state: %v", err)
	}
	if b.Status.Site != "alpha" || b.Status.Objects != 1 || len(b.Arrivals.Manifests) != 1 ||
		b.Arrivals.Manifests[0].Name != "gloria.eu/x/<script>.fits" || b.Refresh <= 0 {
		t.Errorf("boot state %+v", b)
	}
	for _, ref := range regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllStringSubmatch(page, -1) {
		if strings.HasPrefix(ref[1], "/api/") || ref[1] == "/metrics" {
			continue
		}
		t.Run(ref[1], func(t *testing.T) {
			resp, body := a.do(t, "GET", ref[1], nil)
			if resp.StatusCode != http.StatusOK || len(body) == 0 {
				t.Fatalf("%d, %d bytes", resp.StatusCode, len(body))
			}
			want := map[string]string{".js": "text/javascript", ".css": "text/css"}[filepath.Ext(ref[1])]
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
				t.Errorf("content type %q, want %s", ct, want)
			}
		})
	}
	if !regexp.MustCompile(`src="/ui/app\.js"`).MatchString(page) {
		t.Error("page does not load /ui/app.js")
	}
	if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(page) {
		t.Error("page loads something from another host; every asset must be embedded")
	}
	if resp, _ := a.do(t, "GET", "/ui/nope.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset: %d", resp.StatusCode)
	}
}

// A brand-new site (no links, nothing stored) renders without script
// errors and says what to do.
func TestDashboardOfEmptySiteInChromium(t *testing.T) {
	t.Parallel()
	chromium := needTool(t, "chromium", "chromium")
	a := startSite(t, "127.0.0.1")
	dom := string(runChromium(t, chromium, "--virtual-time-budget=2000", "--dump-dom", a.base+"/"))
	if live := elements(dom, "data-live"); len(live) != 1 || live[0].attrs["data-live"] != "ok" {
		t.Errorf("page did not poll successfully: %+v", live)
	}
	for _, want := range []string{`<p class="empty" id="links-empty">No links.`, "no links yet", "nothing has arrived yet", `data-stat="objects" data-value="0"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("empty site's page lacks %q", want)
		}
	}
}

// observatory is four sites: the dashboard's site lapalma links to
// tenerife over a capped link and is dialed by chile; hawaii links only
// to chile, so lapalma learns of it from arrivals alone. lapalma also has
// a link to namibia, where nothing answers: it stays down.
type observatory struct {
	lapalma, tenerife, chile, hawaii *testSite
}

const dashboardRate = "500kB/s"

func startObservatory(t *testing.T) observatory {
	t.Helper()
	o := observatory{startPeerSite(t, "lapalma"), startPeerSite(t, "tenerife"), startPeerSite(t, "chile"), startPeerSite(t, "hawaii")}
	all := []*testSite{o.lapalma, o.tenerife, o.chile, o.hawaii}
	trustAll(t, all...)
	linkSites(t, o.lapalma, o.tenerife, dashboardRate, "")
	linkSites(t, o.chile, o.lapalma, "", "")
	linkSites(t, o.hawaii, o.chile, "", "")
	// Port 1 is outside the ephemeral range, so no server of a parallel
	// test can appear there.
	if err := LinkTo(o.lapalma.dir, Link{Peer: "namibia", URL: "nats://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "links up", func() bool {
		for _, s := range all {
			for _, l := range s.Links() {
				if l.State != forward.StateUp && l.Peer != "namibia" {
					return false
				}
			}
		}
		return len(o.lapalma.Links()) == 3 && len(o.chile.Links()) == 2
	})
	return o
}

// TestDashboardInChromium loads lapalma's page in headless Chromium while
// a frame crosses its capped link, and checks that every link, its state
// and its numbers are on the page as /api/status had them during the load,
// that the graph shows peers by state and hawaii as seen through chile,
// and that recent versions are listed. It leaves the screenshot (and the
// DOM) in $SKYFED_ARTIFACTS when that is set.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	chromium := needTool(t, "chromium", "chromium")
	t0 := time.Now()
	lap := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	defer lap("end")
	o := startObservatory(t)
	lap("started")
	hawaiiFrame := fitsFrame("OBJECT  = 'M31     '", "FILTER  = 'R'", "EXPTIME =                  30.", "TELESCOP= 'BOOTES-2'")
	expiredAt := time.Now().Add(time.Second)
	putObject(t, o.lapalma, "gloria.eu/lapalma/2026/11/21/quicklook.fits?expires=1s", skyFrame(15, 100<<10))
	putObject(t, o.hawaii, "gloria.eu/hawaii/2026/11/21/img-0001.fits", hawaiiFrame)
	putObject(t, o.chile, "gloria.eu/chile/2026/11/21/img-0001.fits", skyFrame(12, 500<<10))
	putObject(t, o.lapalma, "gloria.eu/lapalma/2026/11/21/img-0001.fits", skyFrame(13, 1<<20))
	// The big frame crosses the capped link for many seconds: the page is
	// read while it moves.
	putObject(t, o.tenerife, "gloria.eu/tenerife/2026/11/21/img-0001.fits", skyFrame(14, 8<<20))
	lap("put")
	waitObject(t, o.lapalma, "gloria.eu/hawaii/2026/11/21/img-0001.fits", hawaiiFrame)
	waitFor(t, "data moving on both of lapalma's links", func() bool {
		out, in := dashLink(o.lapalma, "tenerife", forward.DirOut), dashLink(o.lapalma, "chile", forward.DirIn)
		return out != nil && in != nil && out.ReceiveRate > 0 && in.SendRate > 0
	})
	lap("moving")
	time.Sleep(time.Until(expiredAt) + 100*time.Millisecond)
	artifacts := artifactDir(t)
	rec := recordStatus(t, o.lapalma)
	shot := filepath.Join(artifacts, "dashboard.png")
	dom := runChromium(t, chromium, "--virtual-time-budget=5000", "--window-size=1400,1000", "--hide-scrollbars",
		"--dump-dom", "--screenshot="+shot, o.lapalma.base+"/")
	statuses, err := rec.stop()
	if err != nil {
		t.Fatal(err)
	}
	lap("read")
	if err := os.WriteFile(filepath.Join(artifacts, "dashboard-dom.html"), dom, 0o644); err != nil {
		t.Error(err)
	}
	checkDashboardDOM(t, string(dom), statuses)
	checkLayout(t, "1400 px", string(dom))
	// Wider: the tiles are laid out again (the cut values were seen there).
	wide := runChromium(t, chromium, "--virtual-time-budget=3000", "--window-size=1600,1900", "--hide-scrollbars",
		"--dump-dom", "--screenshot="+filepath.Join(artifacts, "dashboard-1600.png"), o.lapalma.base+"/")
	checkLayout(t, "1600 px", string(wide))
	if st, err := os.Stat(shot); err != nil || st.Size() < 10<<10 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

// statusRecorder fetches /api/status over HTTP, as the page does, from
// before the browser starts until after it has finished.
type statusRecorder struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  []Status
	err  error
}

func recordStatus(t *testing.T, s *testSite) *statusRecorder {
	t.Helper()
	r := &statusRecorder{done: make(chan struct{})}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	fetch := func() {
		st, err := fetchStatus(hc, s.base)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.err = errors.Join(r.err, err)
			return
		}
		r.got = append(r.got, st)
	}
	fetch()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.done:
				fetch()
				return
			case <-tick.C:
				fetch()
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.stop()
		}
	})
	return r
}

func (r *statusRecorder) stop() ([]Status, error) {
	close(r.done)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got, r.err
}

// dashLink returns s's link to peer in direction dir, or nil.
func dashLink(s *testSite, peer, dir string) *forward.LinkStatus {
	for _, l := range s.Links() {
		if l.Peer == peer && l.Direction == dir {
			return &l
		}
	}
	return nil
}

func fetchStatus(hc *http.Client, base string) (Status, error) {
	resp, err := hc.Get(base + "/api/status")
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var st Status
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/api/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// runChromium runs headless Chromium as root with a fresh profile and
// returns its stdout. The whole process group is killed afterwards. An
// uncaught error in the page's scripts fails the test.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--enable-logging=stderr", "--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+profile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		killGroup(cmd.Process.Pid)
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "CONSOLE") && strings.Contains(line, "Uncaught") {
			t.Errorf("script error in the page: %s", line)
		}
	}
	return stdout.Bytes()
}

// killGroup kills what is left of process group pgid and waits until it
// is gone, so the profile dir can be removed.
func killGroup(pgid int) {
	syscall.Kill(-pgid, syscall.SIGKILL)
	for i := 0; i < 200 && syscall.Kill(-pgid, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var (
	startTag = regexp.MustCompile(`<(\w+)((?:\s+[\w:-]+(?:="[^"]*")?)*)\s*/?>`)
	attrRe   = regexp.MustCompile(`([\w:-]+)(?:="([^"]*)")?`)
)

// element is a start tag of the dumped DOM with its attributes and the
// markup that follows it up to its end tag (elements of one kind are not
// nested in this page).
type element struct {
	tag   string
	attrs map[string]string
	inner string
}

func (e element) text() string {
	return strings.TrimSpace(html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(e.inner, "")))
}

// elements returns the elements of dom that have attribute attr.
func elements(dom, attr string) []element {
	var out []element
	for _, m := range startTag.FindAllStringSubmatchIndex(dom, -1) {
		e := element{tag: dom[m[2]:m[3]], attrs: map[string]string{}}
		for _, a := range attrRe.FindAllStringSubmatch(dom[m[4]:m[5]], -1) {
			e.attrs[a[1]] = html.UnescapeString(a[2])
		}
		if _, ok := e.attrs[attr]; !ok {
			continue
		}
		rest := dom[m[1]:]
		if end := strings.Index(rest, "</"+e.tag+">"); end >= 0 {
			e.inner = rest[:end]
		}
		out = append(out, e)
	}
	return out
}

// linkFields maps the page's data-field names to a link's numbers.
var linkFields = map[string]func(forward.LinkStatus) float64{
	"backlog":            func(l forward.LinkStatus) float64 { return float64(l.Backlog) },
	"lag_seconds":        func(l forward.LinkStatus) float64 { return l.LagSeconds },
	"send_rate":          func(l forward.LinkStatus) float64 { return float64(l.SendRate) },
	"receive_rate":       func(l forward.LinkStatus) float64 { return float64(l.ReceiveRate) },
	"sent_chunks":        func(l forward.LinkStatus) float64 { return float64(l.SentChunks) },
	"received_chunks":    func(l forward.LinkStatus) float64 { return float64(l.ReceivedChunks) },
	"sent_manifests":     func(l forward.LinkStatus) float64 { return float64(l.SentManifests) },
	"received_manifests": func(l forward.LinkStatus) float64 { return float64(l.ReceivedManifests) },
	"duplicates":         func(l forward.LinkStatus) float64 { return float64(l.Duplicates) },
	"rejected":           func(l forward.LinkStatus) float64 { return float64(l.Rejected) },
}

// between reports whether v lies within the values f took over the
// statuses recorded while the page was loaded. A gauge (moving both ways)
// may also be off by the largest step seen between two recordings, as
// the page's own request fell between two of them.
func between(statuses []Status, f func(Status) (float64, bool), v float64, gauge bool) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	step, prev, have := 0.0, 0.0, false
	for _, st := range statuses {
		x, found := f(st)
		if !found {
			continue
		}
		lo, hi = min(lo, x), max(hi, x)
		if have {
			step = max(step, math.Abs(x-prev))
		}
		prev, have = x, true
	}
	if !gauge {
		step = 0
	}
	return lo, hi, v >= lo-step && v <= hi+step
}

func checkDashboardDOM(t *testing.T, dom string, statuses []Status) {
	t.Helper()
	if len(statuses) < 2 {
		t.Fatalf("recorded %d statuses", len(statuses))
	}
	last := statuses[len(statuses)-1]
	body := elements(dom, "data-updated")
	if len(body) != 1 || body[0].attrs["data-updated"] == "" {
		t.Fatal("page never rendered (no data-updated on body)")
	}
	if live := elements(dom, "data-live"); len(live) != 1 || live[0].attrs["data-live"] != "ok" {
		t.Errorf("page did not poll successfully: %+v", live)
	}
	rows := map[string]element{}
	for _, e := range elements(dom, "data-peer") {
		rows[e.attrs["data-peer"]+"/"+e.attrs["data-direction"]] = e
	}
	for _, l := range last.Links {
		key := l.Peer + "/" + l.Direction
		t.Run("link "+key, func(t *testing.T) {
			row, ok := rows[key]
			if !ok {
				t.Fatalf("link %s not on the page (rows %v)", key, keys(rows))
			}
			want := forward.StateUp
			if l.Peer == "namibia" {
				want = forward.StateDown
			}
			if row.attrs["data-state"] != l.State || l.State != want {
				t.Errorf("state on page %q, status %q, want %s", row.attrs["data-state"], l.State, want)
			}
			checkLinkFields(t, key, row.inner, statuses, l.State == forward.StateUp)
		})
	}
	if len(rows) != len(last.Links) {
		t.Errorf("page shows %d links, status has %d", len(rows), len(last.Links))
	}
	checkCards(t, dom, statuses)
	checkGraph(t, dom)
	checkFederationOnPage(t, dom)
	checkArrivalsOnPage(t, dom)
}

// checkFederationOnPage: the whole-federation panel draws every site the
// beacons told of, hawaii (two links away) included, and lapalma's link
// to namibia, which no beacon speaks for, as down with its reason.
func checkFederationOnPage(t *testing.T, dom string) {
	t.Helper()
	nodes := map[string]string{}
	links := map[string]element{}
	for _, e := range elements(dom, "data-site") {
		if e.tag == "g" && strings.Contains(e.attrs["class"], "fed") {
			nodes[e.attrs["data-site"]] = e.attrs["data-state"]
		}
	}
	for _, e := range elements(dom, "data-from") {
		if e.tag == "line" {
			links[e.attrs["data-from"]+">"+e.attrs["data-to"]] = e
		}
	}
	for site, want := range map[string]string{"lapalma": "up", "tenerife": "up", "chile": "up", "hawaii": "up", "namibia": "unknown"} {
		if nodes[site] != want {
			t.Errorf("whole federation: %s is %q, want %q (all: %v)", site, nodes[site], want, nodes)
		}
	}
	for _, l := range []string{"lapalma>tenerife", "chile>lapalma", "hawaii>chile"} {
		if links[l].attrs["data-state"] != "up" {
			t.Errorf("whole federation: link %s %+v, want up", l, links[l].attrs)
		}
	}
	if n := links["lapalma>namibia"]; n.attrs["data-state"] != "down" || n.attrs["data-reason"] != forward.ReasonDial {
		t.Errorf("whole federation: lapalma's link to namibia %+v, want down (%s)", n.attrs, forward.ReasonDial)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func checkLinkFields(t *testing.T, key, row string, statuses []Status, up bool) {
	t.Helper()
	seen := map[string]bool{}
	moving := 0.0
	recon := false
	for _, f := range elements(row, "data-field") {
		if f.attrs["data-field"] == "in_sync" {
			recon = true
			if v := f.attrs["data-value"]; v != "none" && v != "true" && v != "false" {
				t.Errorf("%s: in_sync data-value %q", key, v)
			}
		}
	}
	if !recon {
		t.Errorf("%s: the row does not say what the last reconciliation found", key)
	}
	for _, f := range elements(row, "data-field") {
		name := f.attrs["data-field"]
		get, ok := linkFields[name]
		if !ok {
			continue
		}
		seen[name] = true
		v, err := strconv.ParseFloat(f.attrs["data-value"], 64)
		if err != nil {
			t.Errorf("%s: data-value %q: %v", name, f.attrs["data-value"], err)
			continue
		}
		gauge := name == "backlog" || name == "lag_seconds" || strings.HasSuffix(name, "_rate")
		lo, hi, ok := between(statuses, func(st Status) (float64, bool) {
			for _, l := range st.Links {
				if l.Peer+"/"+l.Direction == key {
					return get(l), true
				}
			}
			return 0, false
		}, v, gauge)
		if !ok {
			t.Errorf("%s shows %s = %v; /api/status had %v..%v while the page was read", key, name, v, lo, hi)
		}
		if strings.HasSuffix(name, "_chunks") || strings.HasSuffix(name, "_manifests") || name == "backlog" {
			if txt := strings.ReplaceAll(f.text(), ",", ""); txt != f.attrs["data-value"] {
				t.Errorf("%s: %s text %q, value %s", key, name, f.text(), f.attrs["data-value"])
			}
		}
		if name == "send_rate" || name == "receive_rate" {
			moving += v
			if shown, err := parseRate(f.text()); err != nil || math.Abs(shown-v) > 0.01*v+0.5 {
				t.Errorf("%s: %s text %q does not read as %v (%v)", key, name, f.text(), v, err)
			}
		}
	}
	for name := range linkFields {
		if !seen[name] {
			t.Errorf("%s: the page does not show %s", key, name)
		}
	}
	if up && moving <= 0 {
		t.Errorf("%s: no throughput shown while data moves", key)
	}
	if !up && moving != 0 {
		t.Errorf("%s: throughput %v shown on a link that is not up", key, moving)
	}
}

// parseRate reads the page's rendering of bytes/s: "950 B/s", "1.25 MB/s".
func parseRate(text string) (float64, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(text), " ")
	scale := map[string]float64{"B/s": 1, "kB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || scale == 0 || err != nil {
		return 0, fmt.Errorf("not a rate: %q", text)
	}
	return v * scale, nil
}

func checkCards(t *testing.T, dom string, statuses []Status) {
	t.Helper()
	cards := map[string]func(Status) float64{
		"objects":             func(st Status) float64 { return float64(st.Objects) },
		"chunks":              func(st Status) float64 { return float64(st.Chunks) },
		"raw_bytes":           func(st Status) float64 { return float64(st.RawBytes) },
		"stored_bytes":        func(st Status) float64 { return float64(st.StoredBytes) },
		"incomplete_versions": func(st Status) float64 { return float64(st.IncompleteVersions) },
		"unrepairable_chunks": func(st Status) float64 { return float64(st.UnrepairableChunks) },
	}
	shown := map[string]string{}
	for _, c := range elements(dom, "data-stat") {
		shown[c.attrs["data-stat"]] = c.attrs["data-value"]
	}
	for name, get := range cards {
		v, err := strconv.ParseFloat(shown[name], 64)
		if err != nil {
			t.Errorf("card %s: value %q", name, shown[name])
			continue
		}
		if lo, hi, ok := between(statuses, func(st Status) (float64, bool) { return get(st), true }, v, false); !ok {
			t.Errorf("card %s = %v; /api/status had %v..%v", name, v, lo, hi)
		}
	}
	ratio, err := strconv.ParseFloat(shown["compression"], 64)
	if err != nil || ratio < 1.2 {
		t.Errorf("compression ratio shown %q: sky frames compress better than 1.2×", shown["compression"])
	}
}

func checkGraph(t *testing.T, dom string) {
	t.Helper()
	nodes := map[string]element{}
	for _, n := range elements(dom, "data-kind") {
		if n.tag == "g" {
			nodes[n.attrs["data-site"]] = n
		}
	}
	for site, want := range map[string]string{"tenerife": "up", "chile": "up", "namibia": "down", "hawaii": "seen"} {
		if n, ok := nodes[site]; !ok || n.attrs["data-state"] != want {
			t.Errorf("graph node %s: %+v, want state %s (nodes %v)", site, n.attrs, want, keys(nodes))
		}
	}
	if v := nodes["hawaii"].attrs["data-via"]; v != "chile" {
		t.Errorf("hawaii reached via %q, want chile", v)
	}
	if nodes["lapalma"].attrs["data-kind"] != "self" {
		t.Errorf("this site is not the graph's centre: %+v", nodes["lapalma"].attrs)
	}
}

func checkArrivalsOnPage(t *testing.T, dom string) {
	t.Helper()
	found := map[string]bool{}
	for _, r := range elements(dom, "data-origin") {
		found[r.attrs["data-name"]+" from "+r.attrs["data-origin"]] = true
	}
	for _, want := range []string{
		"gloria.eu/hawaii/2026/11/21/img-0001.fits from hawaii",
		"gloria.eu/tenerife/2026/11/21/img-0001.fits from tenerife",
		"gloria.eu/lapalma/2026/11/21/img-0001.fits from lapalma",
	} {
		if !found[want] {
			t.Errorf("recent versions lack %s (have %v)", want, keys(found))
		}
	}
	if len(elements(dom, "data-from")) <= len(found) {
		t.Error("no chunk arrivals shown")
	}
	var fits []string
	for _, e := range elements(dom, "data-fits") {
		fits = append(fits, e.attrs["data-fits"])
	}
	if !slices.Contains(fits, "M31 · R · 30 s · BOOTES-2") {
		t.Errorf("the FITS frame's header values are not shown under its name (shown: %q)", fits)
	}
}

// checkLayout checks what the page marks as cut short (data-clipped: a
// tile value or its units, a "When" cell, a size, a name leaving the
// graph), that the graph fills its view, and that an expired version is
// shown as expired, not with a size.
func checkLayout(t *testing.T, width, dom string) {
	t.Helper()
	for _, e := range elements(dom, "data-clipped") {
		if e.attrs["data-clipped"] == "true" {
			t.Errorf("%s: cut short on the page: <%s class=%q> %q", width, e.tag, e.attrs["class"], e.text())
		}
	}
	graphs := elements(dom, "data-fill")
	if len(graphs) != 2 { // this site's links, and the whole federation
		t.Fatalf("%s: %d graphs fitted to their drawing, want 2", width, len(graphs))
	}
	for _, g := range graphs {
		if f, err := strconv.ParseFloat(g.attrs["data-fill"], 64); err != nil || f < 0.45 {
			t.Errorf("%s: graph %s's drawing covers %s of its view, want at least 0.45", width, g.attrs["id"], g.attrs["data-fill"])
		}
	}
	expired := false
	for _, r := range elements(dom, "data-name") {
		if r.attrs["data-name"] == "gloria.eu/lapalma/2026/11/21/quicklook.fits" {
			expired = strings.Contains(r.inner, ">expired<") && !strings.Contains(r.inner, "KiB")
		}
	}
	if !expired {
		t.Errorf("%s: the expired quicklook is not shown as expired without a size", width)
	}
}
