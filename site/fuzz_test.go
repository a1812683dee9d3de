package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/naming"
)

// Fuzz targets of what package site decodes from requests and from its
// data dir. The access credentials (Authorization, share links) are
// fuzzed by FuzzParseCredential in access_test.go.

// FuzzParseObjectName checks names taken from the escaped path of
// /o/NAME: errors wrap naming.ErrBadName, and an accepted name is one
// naming accepts, which escapeObjectPath (the links the site hands
// out) turns back into the same name.
func FuzzParseObjectName(f *testing.F) {
	for _, s := range []string{
		"gloria.eu/bootes-2/2026/11/21/img-0001.fits", "gloria.eu/a%20b/%E6%97%A5", "gloria.eu/a%2Fb",
		"gloria.eu/%2e%2e/x", "gloria.eu//x", "gloria.eu/x%00", "gloria.eu/%zz", "gloria.eu/%", "%67loria.eu/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, escaped string) {
		n, err := parseObjectName(escaped)
		if err != nil {
			if !errors.Is(err, naming.ErrBadName) {
				t.Fatalf("error %v does not wrap naming.ErrBadName", err)
			}
			return
		}
		if back, err := naming.ParseName(n.String()); err != nil || back != n {
			t.Fatalf("parseObjectName(%q) = %q, which naming refuses: %v", escaped, n, err)
		}
		link, ok := strings.CutPrefix(escapeObjectPath(n.String()), "/o/")
		if !ok {
			t.Fatalf("escapeObjectPath(%q) does not start with /o/", n)
		}
		if back, err := parseObjectName(link); err != nil || back != n {
			t.Fatalf("escapeObjectPath(%q) = %q parses back as %q, %v", n, link, back, err)
		}
	})
}

// rangeWriter is a ResponseWriter that keeps the status and headers and
// drops the body.
type rangeWriter struct {
	h      http.Header
	status int
}

func (w *rangeWriter) Header() http.Header { return w.h }
func (w *rangeWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *rangeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

type zeroes struct{}

func (zeroes) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

// FuzzRangeStart checks rangeStart, which picks the chunk a read primes
// (and may answer 502 about) before http.ServeContent serves the Range
// header: whenever ServeContent answers one range (206 with a
// Content-Range), rangeStart must name its first byte, so the chunk
// primed is the one the answer starts with.
func FuzzRangeStart(f *testing.F) {
	for _, h := range []string{"", "bytes=0-", "bytes=5-10", "bytes=-100", "bytes=70000-", "bytes=-0", "bytes=1-2,5-6",
		"bytes=9999999-", "bytes=x-", "bytes=-99999999999999999999", "items=5-"} {
		f.Add(h, int64(200_000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 || size > 1<<24 {
			return
		}
		got := rangeStart(h, size)
		if got < 0 {
			t.Fatalf("rangeStart(%q, %d) = %d", h, size, got)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Range", h)
		w := &rangeWriter{h: http.Header{}}
		http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(zeroes{}, 0, size))
		cr := w.h.Get("Content-Range")
		if w.status != http.StatusPartialContent || cr == "" {
			return
		}
		var first, last, total int64
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil {
			t.Fatalf("Content-Range %q: %v", cr, err)
		}
		if first >= size {
			return // an empty range at the end ("bytes=-0"): no chunk to prime either way
		}
		if got != first {
			t.Fatalf("Range %q of %d bytes: ServeContent answers %q, rangeStart says %d", h, size, cr, got)
		}
	})
}

// FuzzParseDuration checks the durations of the CLI flags and of the
// share API ("90d", "1d12h", Go durations): what parses is exactly
// days×24h plus the Go duration after them, never wrapped around.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90d", "1d12h", "36h", "0d", "d", "1d-1h", "0d-5m", "36600d", "36601d", "1.5d", "9999999999d", "-1d", "1h30m", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		i := strings.IndexByte(s, 'd')
		if i < 0 {
			if want, err := time.ParseDuration(s); err != nil || want != d {
				t.Fatalf("ParseDuration(%q) = %v; time.ParseDuration says %v, %v", s, d, want, err)
			}
			return
		}
		days, err := strconv.ParseUint(s[:i], 10, 32)
		if err != nil {
			t.Fatalf("ParseDuration(%q) = %v with days %q", s, d, s[:i])
		}
		want := new(big.Int).Mul(big.NewInt(int64(days)), big.NewInt(int64(24*time.Hour)))
		if rest := s[i+1:]; rest != "" {
			r, err := time.ParseDuration(rest)
			if err != nil {
				t.Fatalf("ParseDuration(%q) = %v with a rest %q that does not parse", s, d, rest)
			}
			want.Add(want, big.NewInt(int64(r)))
		}
		if !want.IsInt64() || want.Int64() != int64(d) {
			t.Fatalf("ParseDuration(%q) = %v (%d ns), want %s ns", s, d, int64(d), want)
		}
	})
}

// FuzzParseReserve checks disk_reserve of skyfed.toml: a percentage is
// a number in [0, 100), a size is its number times its unit, exactly.
func FuzzParseReserve(f *testing.F) {
	for _, s := range []string{"1GiB", "2%", " 500 MB ", "0", "99.9%", "100%", "-1%", "1 PiB", "16777215TiB", "18446744073709551615", "x"} {
		f.Add(s)
	}
	units := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
	f.Fuzz(func(t *testing.T, s string) {
		n, pct, err := parseReserve(s)
		if err != nil {
			return
		}
		v := strings.TrimSpace(s)
		if strings.HasSuffix(v, "%") {
			if n != 0 || math.IsNaN(pct) || pct < 0 || pct >= 100 {
				t.Fatalf("parseReserve(%q) = %d, %v", s, n, pct)
			}
			return
		}
		num := strings.TrimRightFunc(v, func(r rune) bool { return r < '0' || r > '9' })
		want, ok := new(big.Int).SetString(num, 10)
		mult, known := units[strings.TrimSpace(v[len(num):])]
		if !ok || !known || pct != 0 {
			t.Fatalf("parseReserve(%q) = %d, %v accepted", s, n, pct)
		}
		want.Mul(want, big.NewInt(mult))
		if !want.IsUint64() || want.Uint64() != n {
			t.Fatalf("parseReserve(%q) = %d bytes, want %s", s, n, want)
		}
	})
}

// FuzzLoadConfig writes a fuzzed skyfed.toml and site.key into a data
// dir and loads them: errors (past "no site here") wrap ErrBadConfig
// or come from the key, nothing panics, and a config that loads is one
// SaveConfig writes back and LoadConfig reads again to the same file.
func FuzzLoadConfig(f *testing.F) {
	seedDir := f.TempDir()
	if _, err := Init(seedDir, Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:7401", NATS: "127.0.0.1:7402", ChunkSize: 64 << 10}); err != nil {
		f.Fatal(err)
	}
	toml, err := os.ReadFile(filepath.Join(seedDir, ConfigFile))
	if err != nil {
		f.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(seedDir, KeyFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(toml), string(key))
	f.Add(string(toml)+"\n[[link]]\npeer = \"beta\"\nurl = \"nats://10.0.0.2:7402\"\nmax_rate = \"50MB/s\"\nmode = \"flood\"\n"+
		"\n[[peer]]\nid = \"beta\"\nkey = \"ed25519:"+strings.Repeat("ab", 32)+"\"\ndomains = [\"gloria.eu\"]\n", "zz")
	f.Add(string(toml)+"disk_reserve = \"2%\"\nscrub_rate = \"10MB/s\"\ngc_grace = \"1h\"\npublic = [\"gloria.eu/pub/\"]\n", "")
	f.Add("id = 5\n", "00")
	f.Add("[[access_token]]\nname = \"ci\"\nid = \"SFAAAAAAAAAAAAAAAAAA\"\nread = [\"gloria.eu/\"]\ncreated = 2026-01-01T00:00:00Z\n", "")
	dir, again := f.TempDir(), f.TempDir()
	f.Fuzz(func(t *testing.T, toml, key string) {
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
		if kp, err := LoadKey(dir); err == nil && kp == nil {
			t.Fatal("LoadKey returned neither a key nor an error")
		}
		c, err := LoadConfig(dir)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		if err := SaveConfig(again, c); err != nil {
			t.Fatalf("a config that loaded does not save: %v", err)
		}
		saved, _ := os.ReadFile(filepath.Join(again, ConfigFile))
		c2, err := LoadConfig(again)
		if err != nil {
			t.Fatalf("a saved config does not load: %v\n%s", err, saved)
		}
		if err := SaveConfig(again, c2); err != nil {
			t.Fatal(err)
		}
		if resaved, _ := os.ReadFile(filepath.Join(again, ConfigFile)); !bytes.Equal(saved, resaved) {
			t.Fatalf("save, load, save changed the file:\n%s\n----\n%s", saved, resaved)
		}
	})
}

// fuzzSite is a running site on loopback (every route open) with one
// object of several chunks, for FuzzHTTPRequest.
func fuzzSite(f *testing.F) *Site {
	dir := f.TempDir()
	if _, err := Init(dir, Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:7401", NATS: "127.0.0.1:7402", ChunkSize: 64 << 10}); err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler), HTTPListener: ln, NATSPort: -1, ReloadEvery: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		if err := s.Stop(); err != nil {
			f.Errorf("stop: %v", err)
		}
	})
	body := bytes.Repeat([]byte("skyfed fuzz object "), 10_000) // 190 kB: 3 chunks
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/o/gloria.eu/seed/a.fits", bytes.NewReader(body)))
	if w.Code != http.StatusCreated {
		f.Fatalf("seed put: %d %s", w.Code, w.Body)
	}
	return s
}

var fuzzMethods = []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodOptions}

// FuzzHTTPRequest sends fuzzed requests (method, path and query, a
// Range header, one more header, a body) to a running site's HTTP API:
// object names, versions, ranges, query parameters (limit, prefix,
// after, version, expires, wait_sites, timeout, fresh, rate, grace,
// names) and JSON bodies all come from the request. The site never
// panics (but for aborting a response it cannot finish), never answers
// 500 to a request it could not parse, and answers every JSON error
// with an "error".
func FuzzHTTPRequest(f *testing.F) {
	for _, s := range []struct{ method, target, rng, hname, hval, body string }{
		{"GET", "/o/gloria.eu/seed/a.fits", "bytes=70000-", "", "", ""},
		{"GET", "/o/gloria.eu/seed/a.fits", "bytes=-10", "If-None-Match", `"x"`, ""},
		{"HEAD", "/o/gloria.eu/seed/a.fits?fresh", "", "", "", ""},
		{"GET", "/o/gloria.eu/seed/a.fits?versions", "", "", "", ""},
		{"GET", "/o/gloria.eu/seed/a.fits?hashmap&version=1763765000000.0000.alpha", "", "", "", ""},
		{"GET", "/o/gloria.eu/seed/a.fits?version=1763765000000.00.alpha", "", "", "", ""},
		{"PUT", "/o/gloria.eu/fuzz/b?expires=24h&wait_sites=0&timeout=1s", "", "X-Skyfed-Meta-Telescope", "bootes-2", "hello"},
		{"PUT", "/o/gloria.eu/fuzz/c?expires=-1h", "", "Content-Type", "image/fits", "x"},
		{"DELETE", "/o/gloria.eu/fuzz/b", "", "", "", ""},
		{"POST", "/o/gloria.eu/seed/a.fits", "", "", "", ""},
		{"GET", "/ls?prefix=gloria.eu/&limit=2&after=gloria.eu/a", "", "", "", ""},
		{"GET", "/ls?limit=0", "", "", "", ""},
		{"GET", "/c/" + strings.Repeat("ab", 32), "", "", "", ""},
		{"GET", "/sha256/" + strings.Repeat("0", 64) + "?fresh=false", "", "", "", ""},
		{"POST", "/api/share", "", "Content-Type", "application/json", `{"name":"gloria.eu/seed/a.fits","expires":"7d"}`},
		{"POST", "/api/share", "", "", "", `{"dashboard":true,"name":"x"}`},
		{"POST", "/api/share", "", "", "", `{"nope":1}`},
		{"GET", "/api/status", "", "", "", ""},
		{"GET", "/api/arrivals?limit=3", "", "", "", ""},
		{"GET", "/api/diff/beta?names=1&timeout=1s", "", "", "", ""},
		{"POST", "/api/resync/beta?timeout=xyz", "", "", "", ""},
		{"POST", "/api/scrub?rate=50MB/s", "", "", "", ""},
		{"POST", "/api/gc?grace=-1h", "", "", "", ""},
		{"POST", "/login", "", "Content-Type", "application/x-www-form-urlencoded", "token=SF.x"},
		{"GET", "/?share=site.1.x", "", "Cookie", DashboardCookie + "=site.1.x", ""},
	} {
		f.Add(s.method, s.target, s.rng, s.hname, s.hval, []byte(s.body))
	}
	s := fuzzSite(f)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, target, rng, hname, hval string, body []byte) {
		if len(body) > 4<<10 {
			return
		}
		if method == "" || !strings.Contains(strings.Join(fuzzMethods, " "), method) {
			method = fuzzMethods[len(method)%len(fuzzMethods)]
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1"+target, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(target, "/") {
			return // net/http's server refuses that request line before any handler
		}
		r.RequestURI = target
		if rng != "" {
			r.Header.Set("Range", rng)
		}
		if hname != "" && validHeader(hname, hval) {
			r.Header.Set(hname, hval)
		}
		w := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil && p != http.ErrAbortHandler {
					t.Fatalf("%s %s panicked: %v", method, target, p)
				}
			}()
			h.ServeHTTP(w, r)
		}()
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s (Range %q, %s: %q): 500 %s", method, target, rng, hname, hval, w.Body)
		}
		if w.Code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: %d with a JSON body without an error: %q", method, target, w.Code, w.Body)
			}
		}
	})
}

// validHeader reports whether net/http's server would take a header
// with this name and value.
func validHeader(name, value string) bool {
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	for _, c := range []byte(value) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
