package site

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/site/client"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeSeaweed() // the shared cluster's process waiters are not leaks
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

type testSite struct {
	*Site
	dir  string
	base string
}

// startSite creates and starts a site on random loopback ports (or on
// listenHost) and stops it when the test ends.
func startSite(t *testing.T, listenHost string) *testSite {
	t.Helper()
	s, _ := startSiteOn(t, listenHost, nil)
	return s
}

// startSiteWith is startSite with the config edited before the site
// opens, and its log kept.
func startSiteWith(t *testing.T, edit func(*Config)) (*testSite, *logBuffer) {
	t.Helper()
	return startSiteOn(t, "127.0.0.1", edit)
}

func startSiteOn(t *testing.T, listenHost string, edit func(*Config)) (*testSite, *logBuffer) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:7401", NATS: "127.0.0.1:7402", ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		if err := EditConfig(dir, func(c *Config) error { edit(c); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	s, err := Open(dir, Options{
		Logger:       slog.New(slog.NewTextHandler(logs, nil)),
		HTTPListener: ln, NATSPort: -1, ReloadEvery: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	_, port, _ := net.SplitHostPort(s.HTTPAddr())
	return &testSite{Site: s, dir: dir, base: "http://127.0.0.1:" + port}, logs
}

func (ts *testSite) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// A raw path keeps "//" and ".." as sent, as curl --path-as-is would.
	req.URL.Opaque = "//" + req.URL.Host + strings.SplitN(path, "?", 2)[0]
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func seeded(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

func TestObjectLifecycle(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	data := seeded(1, 300<<10)
	const path = "/o/gloria.eu/bootes-2/2026/11/21/img-0001.fits"
	resp, body := ts.do(t, "PUT", path, bytes.NewReader(data), "Content-Type", "image/fits", "X-Skyfed-Meta-Filter", "R")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	put := decode[client.PutResult](t, body)
	sum := sha256.Sum256(data)
	if put.SHA256 != hex.EncodeToString(sum[:]) || put.Size != int64(len(data)) || put.Chunks != 5 || put.Name != path[3:] {
		t.Fatalf("PUT answer %+v", put)
	}
	if _, err := manifest.ParseStamp(put.Version); err != nil {
		t.Fatalf("version %q: %v", put.Version, err)
	}

	resp, body = ts.do(t, "GET", path, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp.Header.Get("ETag") != `"`+put.SHA256+`"` || resp.Header.Get("X-Skyfed-Version") != put.Version ||
		resp.Header.Get("Content-Type") != "image/fits" || resp.Header.Get("X-Skyfed-Meta-Filter") != "R" {
		t.Fatalf("GET headers %v", resp.Header)
	}
	resp, body = ts.do(t, "GET", path, nil, "Range", "bytes=65530-65545")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[65530:65546]) {
		t.Fatalf("range GET: %d %q", resp.StatusCode, body)
	}
	resp, body = ts.do(t, "HEAD", path, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("HEAD: %d len %d", resp.StatusCode, resp.ContentLength)
	}

	resp, body = ts.do(t, "GET", path+"?hashmap", nil)
	hm := decode[struct {
		ChunkSize int      `json:"chunk_size"`
		Size      int64    `json:"size"`
		SHA256    string   `json:"sha256"`
		Chunks    []string `json:"chunks"`
	}](t, body)
	if resp.StatusCode != 200 || hm.ChunkSize != 64<<10 || len(hm.Chunks) != 5 || hm.SHA256 != put.SHA256 {
		t.Fatalf("hashmap: %d %+v", resp.StatusCode, hm)
	}
	resp, body = ts.do(t, "GET", "/c/"+hm.Chunks[1], nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data[64<<10:128<<10]) {
		t.Fatalf("GET chunk: %d", resp.StatusCode)
	}
	resp, body = ts.do(t, "GET", "/sha256/"+put.SHA256, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET by sha256: %d", resp.StatusCode)
	}

	resp, body = ts.do(t, "DELETE", path, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	del := decode[map[string]string](t, body)
	if resp, _ = ts.do(t, "GET", path, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after delete: %d", resp.StatusCode)
	}
	resp, body = ts.do(t, "GET", path+"?version="+put.Version, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET old version after delete: %d", resp.StatusCode)
	}
	resp, body = ts.do(t, "GET", path+"?versions", nil)
	vs := decode[struct {
		Latest   string         `json:"latest"`
		Versions []versionEntry `json:"versions"`
	}](t, body)
	if resp.StatusCode != 200 || vs.Latest != del["version"] || len(vs.Versions) != 2 || !vs.Versions[0].Deleted || vs.Versions[1].SHA256 != put.SHA256 {
		t.Fatalf("versions: %d %s", resp.StatusCode, body)
	}
}

var badPaths = []struct {
	method, path string
	status       int
}{
	{"PUT", "/o/gloria.eu//a", 400},
	{"GET", "/o/gloria.eu//a", 400},
	{"PUT", "/o/gloria.eu/./a", 400},
	{"PUT", "/o/gloria.eu/a/../b", 400},
	{"PUT", "/o/gloria.eu/a/", 400},
	{"PUT", "/o/Gloria.eu/a", 400},
	{"PUT", "/o/gloria.eu/a%00b", 400},
	{"PUT", "/o/other.org/a", 403},
	{"GET", "/o/gloria.eu/missing", 404},
	{"GET", "/o/gloria.eu/missing?version=bogus", 400},
	{"GET", "/c/zz", 400},
	{"GET", "/c/" + strings.Repeat("ab", 32), 404},
	{"GET", "/sha256/" + strings.Repeat("ab", 32), 404},
	{"GET", "/ls?limit=0", 400},
	{"POST", "/o/gloria.eu/a", 405},
}

func TestBadRequestsAnswerClearly(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	for _, tc := range badPaths {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := ts.do(t, tc.method, tc.path, strings.NewReader("x"))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (Location %q), want %d: %s", resp.StatusCode, resp.Header.Get("Location"), tc.status, body)
			}
			e := decode[map[string]string](t, body)
			if e["error"] == "" {
				t.Fatalf("no error text in %s", body)
			}
		})
	}
}

func TestListAndStatusShowDedup(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	data := seeded(2, 200<<10)
	for i := range 3 {
		if resp, body := ts.do(t, "PUT", fmt.Sprintf("/o/gloria.eu/cam/%d.fits", i), bytes.NewReader(data)); resp.StatusCode != 201 {
			t.Fatalf("PUT: %s", body)
		}
	}
	_, body := ts.do(t, "GET", "/ls?prefix=gloria.eu/cam/&limit=2", nil)
	page := decode[struct {
		Objects []listEntry `json:"objects"`
		Next    string      `json:"next"`
	}](t, body)
	if len(page.Objects) != 2 || page.Next != "gloria.eu/cam/1.fits" {
		t.Fatalf("ls page 1: %s", body)
	}
	_, body = ts.do(t, "GET", "/ls?prefix=gloria.eu/cam/&after="+page.Next, nil)
	page = decode[struct {
		Objects []listEntry `json:"objects"`
		Next    string      `json:"next"`
	}](t, body)
	if len(page.Objects) != 1 || page.Next != "" {
		t.Fatalf("ls page 2: %s", body)
	}
	_, body = ts.do(t, "GET", "/api/status", nil)
	st := decode[Status](t, body)
	if st.Site != "alpha" || st.Objects != 3 || st.Versions != 3 || st.Chunks != 4 || st.RawBytes != 200<<10 || st.StoredBytes <= 0 || st.Links == nil {
		t.Fatalf("status %+v: want 3 objects stored as 4 unique chunks", st)
	}
	resp, body := ts.do(t, "GET", "/metrics", nil)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("skyfed_ingest_bytes_total 614400")) || !bytes.Contains(body, []byte("skyfed_stored_chunks 4")) {
		t.Fatalf("metrics: %s", body)
	}
}

func TestTrustEditPickedUpWhileRunning(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	peer, _ := manifest.GenerateKey()
	known, _ := ts.trust.MayWrite(peer.PublicKey(), "other.org")
	if known {
		t.Fatal("peer trusted before site trust")
	}
	if err := Trust(ts.dir, Peer{ID: "beta", Key: peer.PublicKey().String(), Domains: []string{"other.org"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "trust reload", func() bool { _, ok := ts.trust.MayWrite(peer.PublicKey(), "other.org"); return ok })
	if err := Untrust(ts.dir, "beta"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "untrust reload", func() bool { k, _ := ts.trust.MayWrite(peer.PublicKey(), "other.org"); return !k })
}

func TestWritesNeedTokenOffLoopback(t *testing.T) {
	ts := startSite(t, "0.0.0.0")
	resp, body := ts.do(t, "PUT", "/o/gloria.eu/a", strings.NewReader("x"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PUT without token: %d %s", resp.StatusCode, body)
	}
	resp, body = ts.do(t, "PUT", "/o/gloria.eu/a", strings.NewReader("x"), "Authorization", "Bearer "+ts.Config().Token)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT with token: %d %s", resp.StatusCode, body)
	}
	// Off loopback reads need a credential too (access_test.go has the rest).
	if resp, _ = ts.do(t, "GET", "/o/gloria.eu/a", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without token off loopback: %d", resp.StatusCode)
	}
}

func TestInitRefusesExistingSite(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:1", NATS: "127.0.0.1:2"}
	if _, err := Init(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, cfg); err == nil || !strings.Contains(err.Error(), "already holds a site") {
		t.Fatalf("second init: %v", err)
	}
	for _, bad := range []Config{
		{ID: "Alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:1", NATS: "127.0.0.1:2"},
		{ID: strings.Repeat("a", 33), Domain: "gloria.eu", HTTP: "127.0.0.1:1", NATS: "127.0.0.1:2"},
		{ID: "a", Domain: "Gloria", HTTP: "127.0.0.1:1", NATS: "127.0.0.1:2"},
		{ID: "a", Domain: "gloria.eu", HTTP: "nope", NATS: "127.0.0.1:2"},
	} {
		if _, err := Init(t.TempDir(), bad); err == nil {
			t.Errorf("Init(%+v) accepted", bad)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
