package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyfed/skyfed/site/client"
)

func TestExitCodeOf(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain", errors.New("x"), exitError},
		{"exit error", fmt.Errorf("wrap: %w", &ExitError{Code: 7}), 7},
		{"404", fmt.Errorf("get: %w", &client.APIError{Status: 404}), exitNotFound},
		{"410", &client.APIError{Status: 410}, exitNotFound},
		{"504", &client.APIError{Status: 504}, exitTimeout},
		{"502", &client.APIError{Status: 502}, exitError},
		{"verify", fmt.Errorf("get: %w", client.ErrVerify), exitVerify},
		{"deadline", fmt.Errorf("ls: %w", context.DeadlineExceeded), exitTimeout},
		{"canceled", context.Canceled, exitError},
		{"hinted", withHint(client.ErrVerify, "h"), exitVerify},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCodeOf(tc.err); got != tc.want {
				t.Errorf("exitCodeOf(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{
			"0 ok · 1 error · 2 not found (also deleted or expired) · 3 verification failed · 4 timeout · 5 differ (diff) · 80 usage",
			"put", "get", "versions", "ls", "rm", "stat", "site"}},
		{[]string{"get", "--help"}, []string{"--version=V", "-o, --output=FILE", "$SKYFED_SITE", "$SKYFED_TOKEN"}},
		{[]string{"put", "-h"}, []string{"--meta=KEY=VALUE", "--content-type=TYPE", "--timeout=0s"}},
		{[]string{"ls", "--help"}, []string{"[<prefix>]", "--limit=N", "--timeout=30s"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			app, out, errb := testApp("")
			if code := run(tc.args, app); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestReport(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		wantCode   int
		wantStderr string
	}{
		{"nil", nil, exitOK, ""},
		{"bare exit error", &ExitError{Code: 5}, 5, ""},
		{"exit error", &ExitError{Code: exitUsage, Err: errors.New("bad")}, exitUsage, "skyfed: bad\n"},
		{"hint method", withHint(errors.New("e"), "do this"), exitError, "skyfed: e\nhint: do this\n"},
		{"api hint", fmt.Errorf("get x: %w", &client.APIError{Status: 404, Message: "not found", Hint: "check"}),
			exitNotFound, "skyfed: get x: not found (HTTP 404)\nhint: check\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app, _, errb := testApp("")
			if code := report(app, tc.err); code != tc.wantCode || errb.String() != tc.wantStderr {
				t.Errorf("report = %d, stderr %q; want %d, %q", code, errb, tc.wantCode, tc.wantStderr)
			}
		})
	}
	if err := (&ExitError{Code: 5}); err.Error() != "exit status 5" || errors.Unwrap(err) != nil {
		t.Errorf("ExitError = %q", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	app, out, errb := testApp("")
	if code := run([]string{"nope"}, app); code != exitUsage || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if want := "hint: see 'skyfed --help'\n"; !strings.HasPrefix(errb.String(), "skyfed: ") || !strings.HasSuffix(errb.String(), want) {
		t.Errorf("stderr %q", errb)
	}
}

// TestBenchCPUProfile checks that --cpuprofile writes a profile for a
// bench command, even one that fails, and is refused elsewhere.
func TestBenchCPUProfile(t *testing.T) {
	leakCheck(t)
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.prof")
	app, _, errb := testApp("")
	if code := run([]string{"bench", "codec", dir, "--cpuprofile", prof}, app); code == exitOK {
		t.Fatalf("bench codec on an empty dir: exit 0, want an error; stderr %s", errb)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatalf("no profile written: %v", err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile is not a gzipped pprof profile: % x", b[:min(len(b), 8)])
	}
	app, _, _ = testApp("")
	if code := run([]string{"ls", "--cpuprofile", prof}, app); code != exitUsage {
		t.Fatalf("ls --cpuprofile: exit %d, want %d", code, exitUsage)
	}
}
