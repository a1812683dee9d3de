package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/site"
)

var tokenLine = regexp.MustCompile(`^(SF[A-Z2-7]{18})\.[A-Za-z0-9_-]{40}\n$`)

func initSiteDir(t *testing.T, http string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "alpha")
	if _, err := site.Init(dir, site.Config{ID: "alpha", Domain: "gloria.eu", HTTP: http, NATS: "127.0.0.1:7402", ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// skyfedRun runs skyfed with args and returns its exit code, stdout and stderr.
func skyfedRun(args ...string) (int, string, string) {
	app, out, errb := testApp("")
	code := run(args, app)
	return code, out.String(), errb.String()
}

func TestSiteTokenCommands(t *testing.T) {
	dir := initSiteDir(t, "0.0.0.0:7401")
	code, out, errb := skyfedRun("site", "token", "create", "--dir", dir, "--name", "pipeline",
		"--write", "gloria.eu/bootes-2/", "--read", "gloria.eu", "--expires", "90d")
	m := tokenLine.FindStringSubmatch(out)
	if code != exitOK || m == nil || !strings.Contains(errb, "not store") {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", code, out, errb)
	}
	id, secret := m[1], strings.TrimSpace(out)[len(m[1])+1:]
	raw, _ := os.ReadFile(filepath.Join(dir, site.ConfigFile))
	if strings.Contains(string(raw), secret) || !strings.Contains(string(raw), id) {
		t.Errorf("skyfed.toml:\n%s", raw)
	}

	code, out, errb = skyfedRun("site", "token", "list", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "pipeline") || !strings.Contains(out, id) || !strings.Contains(out, "gloria.eu/bootes-2/") ||
		!strings.Contains(out, "gloria.eu/") || strings.Contains(out, secret) {
		t.Errorf("token list: exit %d, stdout %q, stderr %q", code, out, errb)
	}
	var entries []site.AccessToken
	code, out, _ = skyfedRun("site", "token", "list", "--dir", dir, "--json")
	if err := json.Unmarshal([]byte(out), &entries); code != exitOK || err != nil || len(entries) != 1 ||
		time.Until(entries[0].Expires) < 89*24*time.Hour || entries[0].Read[0] != "gloria.eu/" {
		t.Errorf("token list --json: exit %d, %v, %q", code, err, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--name", "pipeline", "--read", "gloria.eu/"}, exitError, "exists"},
		{[]string{"--name", "empty"}, exitUsage, "grant nothing"},
		{[]string{"--name", "bad", "--read", "Gloria/"}, exitUsage, "Gloria"},
		{[]string{"--name", "Bad Name", "--read", "gloria.eu/"}, exitUsage, "name"},
		{[]string{"--name", "neg", "--read", "gloria.eu/", "--expires", "-1d"}, exitUsage, "expires"},
		{[]string{"--name", "typo", "--read", "gloria.eu/", "--expires", "3 days"}, exitUsage, "duration"},
	} {
		code, out, errb := skyfedRun(append([]string{"site", "token", "create", "--dir", dir}, tc.args...)...)
		if code != tc.code || out != "" || !strings.Contains(errb, tc.says) {
			t.Errorf("token create %v: exit %d, stdout %q, stderr %q; want %d saying %q", tc.args, code, out, errb, tc.code, tc.says)
		}
	}

	if code, _, errb := skyfedRun("site", "token", "revoke", "--dir", dir, "--name", "nope"); code != exitError || !strings.Contains(errb, "no such token") {
		t.Errorf("revoke nope: exit %d, %q", code, errb)
	}
	if code, _, errb := skyfedRun("site", "token", "revoke", "--dir", dir, "--name", "pipeline"); code != exitOK {
		t.Errorf("revoke: exit %d, %q", code, errb)
	}
	if code, out, _ := skyfedRun("site", "token", "list", "--dir", dir); code != exitOK || strings.Contains(out, "pipeline") {
		t.Errorf("list after revoke: %q", out)
	}
}

func TestSitePublicCommands(t *testing.T) {
	dir := initSiteDir(t, "0.0.0.0:7401")
	for _, p := range []string{"gloria.eu/public/", "other.org"} {
		if code, _, errb := skyfedRun("site", "public", "add", "--dir", dir, p); code != exitOK {
			t.Fatalf("public add %s: exit %d %s", p, code, errb)
		}
	}
	if code, out, _ := skyfedRun("site", "public", "list", "--dir", dir); code != exitOK || out != "gloria.eu/public/\nother.org/\n" {
		t.Errorf("public list: %q", out)
	}
	if code, _, errb := skyfedRun("site", "public", "add", "--dir", dir, "Nope/"); code != exitUsage {
		t.Errorf("public add Nope/: exit %d %s", code, errb)
	}
	if code, _, _ := skyfedRun("site", "public", "remove", "--dir", dir, "other.org"); code != exitOK {
		t.Errorf("public remove: exit %d", code)
	}
	if code, _, errb := skyfedRun("site", "public", "remove", "--dir", dir, "other.org/"); code != exitError || !strings.Contains(errb, "not a public prefix") {
		t.Errorf("public remove twice: exit %d %s", code, errb)
	}
	if code, out, _ := skyfedRun("site", "public", "list", "--dir", dir); code != exitOK || out != "gloria.eu/public/\n" {
		t.Errorf("public list after remove: %q", out)
	}
}

func TestDurationFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour, "1d6h": 30 * time.Hour} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v", in, time.Duration(d), err)
		}
	}
	// put --expires takes days too.
	leakCheck(t)
	fake, url := newFakeSite(t)
	t.Setenv("SKYFED_SITE", url)
	if code, _, errb := func() (int, string, string) {
		app, out, errb := testApp("abc")
		return run([]string{"put", "--expires", "30d", "d/x", "-"}, app), out.String(), errb.String()
	}(); code != exitOK {
		t.Fatalf("put --expires 30d: exit %d %s", code, errb)
	}
	if got := fake.lastPut.URL.Query().Get("expires"); got != "720h0m0s" {
		t.Errorf("put --expires 30d sent expires=%q", got)
	}
}

// startAccessSite runs a real site listening beyond loopback, reloading
// its config as `skyfed site run` does (every 2s).
func startAccessSite(t *testing.T) (dir, base string) { return startCLISite(t, "0.0.0.0") }

// startCLISite runs a real site whose HTTP API listens on host (its
// NATS server off) and returns its data dir and a loopback base URL.
func startCLISite(t *testing.T, host string) (dir, base string) {
	t.Helper()
	dir = initSiteDir(t, host+":7401")
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := site.Open(dir, site.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HTTPListener: ln, NATSPort: -1})
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
	return dir, "http://127.0.0.1:" + port
}

// eventually runs the command until it exits with want and its stderr
// holds says (the site reloads its config every 2s).
func eventually(t *testing.T, want int, says string, args ...string) (string, string) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for {
		code, out, errb := skyfedRun(args...)
		if code == want && strings.Contains(errb, says) {
			return out, errb
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want exit %d", args, code, out, errb, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAccessOnRunningSite makes, uses and revokes tokens with the CLI
// against a running site, and checks the messages of exit 1.
func TestAccessOnRunningSite(t *testing.T) {
	leakCheck(t)
	dir, base := startAccessSite(t)
	t.Setenv("SKYFED_SITE", base)
	file := filepath.Join(t.TempDir(), "img.fits")
	if err := os.WriteFile(file, []byte("pixels"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, tok, errb := skyfedRun("site", "token", "create", "--dir", dir, "--name", "pipeline2", "--write", "gloria.eu/bootes-2/", "--read", "gloria.eu/", "--expires", "1h")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		t.Fatalf("token create: %s", errb)
	}
	const name = "gloria.eu/bootes-2/img.fits"
	// Taken up by the running site without a restart.
	eventually(t, exitOK, "", "put", "--token", tok, "--expires", "7d", name, file)

	id, _, _ := strings.Cut(tok, ".")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"get", name, "-o", "-"}, "needs a token and none was sent"},
		{[]string{"get", name, "-o", "-", "--token", id + "." + strings.Repeat("x", 40)}, "wrong token"},
		{[]string{"get", name, "-o", "-", "--token", "not-a-token"}, "wrong token"},
		{[]string{"put", "--token", tok, "gloria.eu/other/x.fits", file}, "lacks write scope for gloria.eu/other/x.fits"},
		{[]string{"tools", "gc", "--token", tok}, "not an admin token"},
		{[]string{"share", "other.org/x", "--token", tok}, "lacks read scope for other.org/x"},
	} {
		code, out, errb := skyfedRun(tc.args...)
		if code != exitError || !strings.Contains(errb, tc.says) || !strings.Contains(errb, "hint: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 saying %q", tc.args, code, out, errb, tc.says)
		}
	}

	// A share link: anyone can GET it; it is clamped to the token's hour.
	code, link, errb := skyfedRun("share", name, "--expires", "2d", "--token", tok)
	link = strings.TrimSpace(link)
	if code != exitOK || !strings.HasPrefix(link, base+"/o/"+name+"?share="+id+".") || !strings.Contains(errb, "cut to the expiry of your token") {
		t.Fatalf("share: exit %d, stdout %q, stderr %q", code, link, errb)
	}
	if got := httpGet(t, link); got != "200 pixels" {
		t.Errorf("GET share link: %s", got)
	}
	code, dash, errb := skyfedRun("share", "--dashboard", "--token", tok)
	if code != exitOK || !strings.HasPrefix(dash, base+"/?share="+id+".") {
		t.Errorf("share --dashboard: exit %d, %q %q", code, dash, errb)
	}
	if code, _, errb := skyfedRun("share", "--token", tok); code != exitUsage {
		t.Errorf("share without NAME: exit %d %s", code, errb)
	}

	// An expired token says so.
	_, old, _ := skyfedRun("site", "token", "create", "--dir", dir, "--name", "short", "--read", "gloria.eu/", "--expires", "1s")
	time.Sleep(1100 * time.Millisecond)
	eventually(t, exitError, "expired at", "get", name, "-o", "-", "--token", strings.TrimSpace(old))

	// Revoked on the running site: refused, and so is its share link.
	if code, _, errb := skyfedRun("site", "token", "revoke", "--dir", dir, "--name", "pipeline2"); code != exitOK {
		t.Fatalf("revoke: exit %d %s", code, errb)
	}
	eventually(t, exitError, "was revoked", "put", "--token", tok, name, file)
	if got := httpGet(t, link); !strings.HasPrefix(got, "401 ") {
		t.Errorf("GET the share link of a revoked token: %s", got)
	}
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	http.DefaultClient.CloseIdleConnections()
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}
