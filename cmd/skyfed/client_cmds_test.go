package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/site/client"
)

// fakeSite is a minimal in-memory double of one site's HTTP API (the
// contract in site/client), enough to drive the client commands.
type fakeSite struct {
	mu        sync.Mutex
	objects   map[string][]fakeVersion // oldest first
	clock     int
	badETag   bool   // announce a wrong SHA-256
	short     bool   // send half the body, then drop the connection
	forceCode int    // answer every request with this status
	block     bool   // hold requests until the client gives up
	pageSize  int    // most objects per /ls page
	status    string // /api/status answer
	lsCalls   int
	lastPut   *http.Request
}

type fakeVersion struct {
	version, origin string
	data            []byte
	deleted         bool
}

func newFakeSite(t *testing.T) (*fakeSite, string) {
	t.Helper()
	f := &fakeSite{objects: map[string][]fakeVersion{}, pageSize: 1000}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /o/{name...}", f.put)
	mux.HandleFunc("GET /o/{name...}", f.get)
	mux.HandleFunc("DELETE /o/{name...}", f.del)
	mux.HandleFunc("GET /ls", f.ls)
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, f.status) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(client.SiteHeader, "alpha")
		f.mu.Lock()
		code, block := f.forceCode, f.block
		f.mu.Unlock()
		switch {
		case block:
			<-r.Context().Done()
		case code != 0:
			writeErr(w, code, "forced", "")
		default:
			mux.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func writeErr(w http.ResponseWriter, code int, msg, hint string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "hint": hint})
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// add stores a version directly, as if put earlier.
func (f *fakeSite) add(name string, data []byte, deleted bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock++
	v := fmt.Sprintf("17637650000%02d.0000.alpha", f.clock)
	f.objects[name] = append(f.objects[name], fakeVersion{version: v, origin: "alpha", data: data, deleted: deleted})
	return v
}

func (f *fakeSite) put(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, 400, err.Error(), "")
		return
	}
	f.mu.Lock()
	f.lastPut = r
	f.mu.Unlock()
	v := f.add(r.PathValue("name"), data, false)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"name": r.PathValue("name"), "version": v,
		"sha256": hexSum(data), "size": len(data), "chunks": 1})
}

func (f *fakeSite) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := r.PathValue("name")
	vs := f.objects[name]
	if len(vs) == 0 {
		writeErr(w, 404, "no object "+name, "check the name with skyfed ls")
		return
	}
	if r.URL.Query().Has("versions") {
		out := []map[string]any{}
		for i := len(vs) - 1; i >= 0; i-- {
			out = append(out, map[string]any{"version": vs[i].version, "origin": vs[i].origin,
				"size": len(vs[i].data), "sha256": hexSum(vs[i].data), "deleted": vs[i].deleted, "expires": ""})
		}
		json.NewEncoder(w).Encode(map[string]any{"name": name, "latest": vs[len(vs)-1].version, "versions": out})
		return
	}
	v := vs[len(vs)-1]
	if want := r.URL.Query().Get("version"); want != "" {
		for _, x := range vs {
			if x.version == want {
				v = x
			}
		}
	}
	if v.deleted {
		writeErr(w, 410, name+" was deleted", "")
		return
	}
	etag := hexSum(v.data)
	if f.badETag {
		etag = hexSum([]byte("something else"))
	}
	w.Header().Set("ETag", `"`+etag+`"`)
	w.Header().Set("X-Skyfed-Version", v.version)
	w.Header().Set("Content-Length", strconv.Itoa(len(v.data)))
	if f.short {
		w.Write(v.data[:len(v.data)/2])
		return
	}
	w.Write(v.data)
}

func (f *fakeSite) del(w http.ResponseWriter, r *http.Request) {
	v := f.add(r.PathValue("name"), nil, true)
	json.NewEncoder(w).Encode(map[string]string{"name": r.PathValue("name"), "version": v})
}

func (f *fakeSite) ls(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lsCalls++
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > f.pageSize {
		limit = f.pageSize
	}
	var names []string
	for n := range f.objects {
		if strings.HasPrefix(n, q.Get("prefix")) && n > q.Get("after") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	next := ""
	if len(names) > limit {
		names, next = names[:limit], names[limit-1]
	}
	objs := []map[string]any{}
	for _, n := range names {
		v := f.objects[n][len(f.objects[n])-1]
		objs = append(objs, map[string]any{"name": n, "version": v.version, "size": len(v.data), "sha256": hexSum(v.data)})
	}
	json.NewEncoder(w).Encode(map[string]any{"objects": objs, "next": next})
}

// testApp returns an App writing into buffers.
func testApp(stdin string) (*App, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &App{
		Ctx: context.Background(), Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(stdin),
		Log: slog.New(slog.NewTextHandler(&errb, nil)),
	}, &out, &errb
}

func leakCheck(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

var putLine = regexp.MustCompile(`^17637650000\d\d\.0000\.alpha [0-9a-f]{64} (\d+)\n$`)

func TestPut(t *testing.T) {
	leakCheck(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("first light"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file, stdin string
		extra             []string
		wantData, wantCT  string
		wantLen           int64
		wantMeta          map[string]string
	}{
		{"file", file, "", []string{"--meta", "telescope=bootes-2", "--meta", "note=a=b;c"},
			"first light", "text/plain; charset=utf-8", 11, map[string]string{"Telescope": "bootes-2", "Note": "a=b;c"}},
		{"stdin", "-", "from a pipe", nil, "from a pipe", "application/octet-stream", -1, nil},
		{"stdin with type", "-", "x", []string{"--content-type", "image/fits"}, "x", "image/fits", -1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, url := newFakeSite(t)
			app, out, errb := testApp(tc.stdin)
			args := append([]string{"put", "gloria.eu/a b/img", tc.file, "--site", url}, tc.extra...)
			if code := run(args, app); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb)
			}
			m := putLine.FindStringSubmatch(out.String())
			if m == nil || m[1] != strconv.Itoa(len(tc.wantData)) {
				t.Errorf("stdout %q", out)
			}
			if got := fake.objects["gloria.eu/a b/img"]; len(got) != 1 || string(got[0].data) != tc.wantData {
				t.Errorf("site holds %+v", got)
			}
			r := fake.lastPut
			if r.ContentLength != tc.wantLen || r.Header.Get("Content-Type") != tc.wantCT {
				t.Errorf("ContentLength %d, Content-Type %q", r.ContentLength, r.Header.Get("Content-Type"))
			}
			for k, v := range tc.wantMeta {
				if got := r.Header.Get("X-Skyfed-Meta-" + k); got != v {
					t.Errorf("meta %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestPutJSONAndToken(t *testing.T) {
	leakCheck(t)
	fake, url := newFakeSite(t)
	t.Setenv("SKYFED_SITE", url)
	t.Setenv("SKYFED_TOKEN", "s3cret")
	app, out, errb := testApp("abc")
	if code := run([]string{"put", "--json", "d/x", "-"}, app); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res["sha256"] != hexSum([]byte("abc")) {
		t.Errorf("stdout %q: %v", out, err)
	}
	if got := fake.lastPut.Header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization %q", got)
	}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestGetToFile(t *testing.T) {
	leakCheck(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	cases := []struct {
		name     string
		badETag  bool
		short    bool
		existing string // content of FILE before the get, "" for none
		wantCode int
		want     string // content of FILE after, "" for absent
	}{
		{"new file", false, false, "", exitOK, string(data)},
		{"replace file", false, false, "old", exitOK, string(data)},
		{"bad etag", true, false, "", exitVerify, ""},
		{"bad etag keeps old file", true, false, "old", exitVerify, "old"},
		{"short body", false, true, "", exitError, ""},
		{"short body keeps old file", false, true, "old", exitError, "old"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, url := newFakeSite(t)
			fake.add("gloria.eu/img.fits", data, false)
			fake.badETag, fake.short = tc.badETag, tc.short
			dir := t.TempDir()
			path := filepath.Join(dir, "img.fits")
			if tc.existing != "" {
				if err := os.WriteFile(path, []byte(tc.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			app, out, errb := testApp("")
			code := run([]string{"get", "gloria.eu/img.fits", "-o", path, "--site", url}, app)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, errb)
			}
			got, err := os.ReadFile(path)
			if tc.want == "" && !os.IsNotExist(err) || tc.want != "" && string(got) != tc.want {
				t.Errorf("file after get: %d bytes, err %v", len(got), err)
			}
			if names := listDir(t, dir); len(names) > 1 || (tc.want == "" && len(names) != 0) {
				t.Errorf("dir holds %v", names)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q", out)
			}
			if tc.badETag && !strings.Contains(errb.String(), "skyfed: get gloria.eu/img.fits: verification failed") {
				t.Errorf("stderr %q", errb)
			}
		})
	}
}

func TestGetToStdout(t *testing.T) {
	leakCheck(t)
	cases := []struct {
		name     string
		badETag  bool
		wantCode int
		wantErr  string
	}{
		{"ok", false, exitOK, ""},
		{"bad etag", true, exitVerify, "hint: the bytes already written to stdout are not the object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, url := newFakeSite(t)
			fake.add("d/x", []byte("old"), false)
			v2 := fake.add("d/x", []byte("new"), false)
			fake.badETag = tc.badETag
			app, out, errb := testApp("")
			if code := run([]string{"get", "d/x", "--site", url}, app); code != tc.wantCode || out.String() != "new" {
				t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errb)
			}
			if !strings.Contains(errb.String(), tc.wantErr) {
				t.Errorf("stderr %q", errb)
			}
			app, out, _ = testApp("")
			if code := run([]string{"get", "d/x", "--version", strings.Replace(v2, "02", "01", 1), "--site", url}, app); out.String() != "old" {
				t.Errorf("--version: exit %d, stdout %q", code, out)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	leakCheck(t)
	cases := []struct {
		name     string
		args     []string
		setup    func(*fakeSite)
		wantCode int
		wantErr  string
	}{
		{"get missing", []string{"get", "d/none"}, nil, exitNotFound, "hint: check the name with skyfed ls"},
		{"get deleted", []string{"get", "d/gone"}, func(f *fakeSite) { f.add("d/gone", []byte("x"), false); f.add("d/gone", nil, true) }, exitNotFound, "was deleted (HTTP 410)"},
		{"versions missing", []string{"versions", "d/none"}, nil, exitNotFound, "versions d/none: no object"},
		{"site timeout", []string{"stat"}, func(f *fakeSite) { f.forceCode = 504 }, exitTimeout, "forced (HTTP 504)"},
		{"client timeout", []string{"ls", "--timeout", "20ms"}, func(f *fakeSite) { f.block = true }, exitTimeout, "deadline exceeded"},
		{"server error", []string{"rm", "d/x"}, func(f *fakeSite) { f.forceCode = 500 }, exitError, "delete d/x: forced (HTTP 500)"},
		{"unknown flag", []string{"ls", "--nope"}, nil, exitUsage, "skyfed: unknown flag --nope"},
		{"missing arg", []string{"get"}, nil, exitUsage, "hint: see 'skyfed get --help'"},
		{"bad meta", []string{"put", "d/x", "-", "--meta", "novalue"}, nil, exitUsage, "novalue"},
		{"negative limit", []string{"ls", "--limit", "-1"}, nil, exitUsage, "--limit"},
		{"missing file", []string{"put", "d/x", "/nonexistent/file"}, nil, exitError, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, url := newFakeSite(t)
			if tc.setup != nil {
				tc.setup(fake)
			}
			app, _, errb := testApp("")
			if code := run(append(tc.args, "--site", url), app); code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.wantCode, errb)
			}
			if !strings.Contains(errb.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errb, tc.wantErr)
			}
		})
	}
}

func TestLsPaging(t *testing.T) {
	leakCheck(t)
	cases := []struct {
		name      string
		args      []string
		wantLines int
		wantCalls int
	}{
		{"all", nil, 5, 3},
		{"prefix", []string{"d/b"}, 2, 1},
		{"limit", []string{"--limit", "3"}, 3, 2},
		{"json", []string{"--json"}, 5, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, url := newFakeSite(t)
			fake.pageSize = 2
			for _, n := range []string{"d/a1", "d/a2", "d/b1", "d/b2", "d/c1"} {
				fake.add(n, []byte(n), false)
			}
			app, out, errb := testApp("")
			if code := run(append([]string{"ls", "--site", url}, tc.args...), app); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != tc.wantLines || fake.lsCalls != tc.wantCalls {
				t.Errorf("%d lines in %d calls, want %d in %d:\n%s", len(lines), fake.lsCalls, tc.wantLines, tc.wantCalls, out)
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "{") {
					if !json.Valid([]byte(l)) {
						t.Errorf("bad JSON line %q", l)
					}
				} else if f := strings.Split(l, "\t"); len(f) != 3 || f[1] != "4" || !strings.HasSuffix(f[2], ".alpha") {
					t.Errorf("line %q", l)
				}
			}
		})
	}
}

const statusJSON = `{"site":"alpha","domain":"gloria.eu","objects":2,"versions":3,"chunks":40,` +
	`"stored_bytes":1610612736,"raw_bytes":3221225472,"links":[{"peer":"beta","direction":"out",` +
	`"state":"up","backlog":7,"lag_seconds":1.5,"future":1},{"peer":"gamma","state":"down"}],"uptime":9}`

func TestStat(t *testing.T) {
	leakCheck(t)
	fake, url := newFakeSite(t)
	fake.status = statusJSON

	app, out, errb := testApp("")
	if code := run([]string{"stat", "--json", "--site", url}, app); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var want bytes.Buffer
	json.Indent(&want, []byte(statusJSON), "", "  ")
	if out.String() != want.String()+"\n" {
		t.Errorf("stat --json:\n%s\nwant\n%s", out, want.String())
	}

	app, out, errb = testApp("")
	if code := run([]string{"stat", "--site", url}, app); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	for _, s := range []string{"site          alpha", "stored bytes  1.5 GiB", "raw bytes     3.0 GiB",
		"PEER   DIRECTION  STATE  BACKLOG  LAG   ETA", "beta   out        up     7        1.5s  stalled",
		"gamma  -          down   -        -     -", "  gamma -: down\n"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("stat output lacks %q:\n%s", s, out)
		}
	}
}

func TestVersionsAndRm(t *testing.T) {
	leakCheck(t)
	fake, url := newFakeSite(t)
	fake.add("d/x", []byte("one"), false)
	app, out, errb := testApp("")
	if code := run([]string{"rm", "d/x", "--site", url}, app); code != exitOK || out.String() != "1763765000002.0000.alpha\n" {
		t.Fatalf("rm: exit %d, stdout %q, stderr %s", code, out, errb)
	}
	app, out, errb = testApp("")
	if code := run([]string{"versions", "d/x", "--site", url}, app); code != exitOK {
		t.Fatalf("versions: exit %d: %s", code, errb)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "VERSION") ||
		!regexp.MustCompile(`^1763765000002\.0000\.alpha +alpha +0 +[0-9a-f]{64} +yes +-$`).MatchString(lines[1]) ||
		!strings.HasPrefix(lines[2], "1763765000001.0000.alpha") {
		t.Errorf("versions:\n%s", out)
	}
	app, out, _ = testApp("")
	if code := run([]string{"versions", "d/x", "--json", "--site", url}, app); code != exitOK || !json.Valid(out.Bytes()) {
		t.Errorf("versions --json: exit %d, %q", code, out)
	}
}

func TestUnreachableSite(t *testing.T) {
	leakCheck(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close() // nothing listens there any more
	app, _, errb := testApp("")
	if code := run([]string{"ls", "--site", dead}, app); code != exitError {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(errb.String(), "cannot reach site at "+dead) || !strings.Contains(errb.String(), "skyfed site run") {
		t.Errorf("stderr %q", errb)
	}
}

// statusSeq serves /api/status with backlog = the request's number, and
// fails the requests listed in fail.
func statusSeq(t *testing.T, fail ...int) string {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(client.SiteHeader, "alpha")
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		if slices.Contains(fail, i) {
			writeErr(w, http.StatusServiceUnavailable, "site is restarting", "")
			return
		}
		fmt.Fprintf(w, `{"site":"alpha","domain":"gloria.eu","objects":%d,"links":[{"peer":"beta","direction":"out","state":"up",`+
			`"backlog":%d,"lag_seconds":0.5,"send_rate":1250000,"receive_rate":0}]}`, i, i)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// frameWriter collects output and cancels the command after want writes
// that contain marker (each refresh is written at once).
type frameWriter struct {
	bytes.Buffer
	marker string
	want   int
	seen   int
	cancel context.CancelFunc
}

func (w *frameWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.marker)) {
		w.seen++
		if w.seen == w.want {
			w.cancel()
		}
	}
	return w.Buffer.Write(p)
}

func TestStatWatch(t *testing.T) {
	leakCheck(t)
	t.Run("pipe gets a new table per refresh and keeps going after a failure", func(t *testing.T) {
		url := statusSeq(t, 2)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		app, _, errb := testApp("")
		out := &frameWriter{marker: "PEER", want: 3, cancel: cancel}
		app.Ctx, app.Stdout = ctx, out
		if code := run([]string{"stat", "--watch", "--interval", "100ms", "--site", url}, app); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb)
		}
		text := out.String()
		if strings.Contains(text, "\x1b[") {
			t.Errorf("escape codes written to a pipe: %q", text)
		}
		blocks := strings.Split(text, "\n\n")
		var backlogs []string
		for _, b := range blocks {
			if m := regexp.MustCompile(`(?m)^beta +out +up +(\d+) +0\.5s +\? +1\.2 MB/s +idle`).FindStringSubmatch(b); m != nil {
				backlogs = append(backlogs, m[1])
			}
		}
		if strings.Join(backlogs, ",") != "1,3,4" {
			t.Errorf("backlogs shown %v, want 1,3,4 (request 2 failed):\n%s", backlogs, text)
		}
		// Reported once: stdout and stderr often end in the same log.
		if strings.Count(text, "site is restarting") != 1 || !strings.Contains(text, "cannot refresh: ") ||
			!strings.Contains(text, "retrying every 100ms") || errb.Len() != 0 {
			t.Errorf("the failed refresh is not reported once:\nstdout %s\nstderr %s", text, errb)
		}
	})
	t.Run("terminal is redrawn in place", func(t *testing.T) {
		url := statusSeq(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &frameWriter{marker: "PEER", want: 2, cancel: cancel}
		cl := client.New(url, "")
		defer cl.CloseIdleConnections()
		c := &StatCmd{Interval: 100 * time.Millisecond, Conn: siteFlags{Site: url}}
		if err := c.watch(ctx, out, io.Discard, cl, true); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		if !strings.HasPrefix(text, ansiHome+"\x1b[2J"+ansiHome) || strings.Count(text, ansiHome) != 3 ||
			strings.Count(text, ansiClearDown) != 2 || !strings.Contains(text, "(Ctrl-C to stop)"+ansiClearLine+"\n") {
			t.Errorf("terminal output %q", text)
		}
		if !regexp.MustCompile(`beta +out +up +2 +0\.5`).MatchString(text) {
			t.Errorf("second refresh missing: %q", text)
		}
	})
	t.Run("json to a pipe is a stream of documents", func(t *testing.T) {
		url := statusSeq(t, 2)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		app, _, errb := testApp("")
		out := &frameWriter{marker: `"links"`, want: 2, cancel: cancel}
		app.Ctx, app.Stdout = ctx, out
		if code := run([]string{"stat", "--watch", "--json", "--interval", "100ms", "--site", url}, app); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb)
		}
		dec := json.NewDecoder(strings.NewReader(out.String()))
		for _, want := range []int{1, 3} {
			var st struct{ Objects int }
			if err := dec.Decode(&st); err != nil || st.Objects != want {
				t.Fatalf("document %d: %v %+v in %q", want, err, st, out)
			}
		}
		if strings.Count(errb.String(), "site is restarting") != 1 || !strings.Contains(errb.String(), "retrying every 100ms") {
			t.Errorf("the failed refresh is not reported once on stderr: %q", errb)
		}
	})
	t.Run("interval too short", func(t *testing.T) {
		app, _, errb := testApp("")
		if code := run([]string{"stat", "--watch", "--interval", "10ms", "--site", "http://127.0.0.1:1"}, app); code != exitUsage ||
			!strings.Contains(errb.String(), "--interval must be at least 100ms") {
			t.Errorf("exit %d: %s", code, errb)
		}
	})
}
