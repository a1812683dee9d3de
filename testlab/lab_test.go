package testlab

// The testing.TB side of the lab, for this package's tests: the lab
// itself must not import testing, since the skyfed binary links it (demo,
// bench).

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NewFederation starts a Federation in t's temp dir and closes it when
// the test ends; it fails t if the federation cannot be built. With no
// opts.Logger, the sites log to a file whose link states, warnings and
// errors are shown if the test fails.
func NewFederation(t testing.TB, opts FedOptions) *Federation {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	var logFile *os.File
	if opts.Logger == nil {
		lf, err := os.Create(filepath.Join(t.TempDir(), "lab.log"))
		if err != nil {
			t.Fatalf("lab: log file: %v", err)
		}
		logFile = lf
		opts.Logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var f *Federation
	t.Cleanup(func() {
		if f != nil {
			if err := f.Close(); err != nil {
				t.Errorf("lab cleanup: %v", err)
			}
		}
		if logFile == nil {
			return
		}
		if t.Failed() {
			t.Logf("lab log %s, link states, warnings and errors at the end:\n%s", logFile.Name(), logTail(logFile, 80))
		}
		logFile.Close()
	})
	var err error
	if f, err = StartFederation(opts); err != nil { // f, as the cleanup sees it
		t.Fatal(err)
	}
	return f
}

// NewProcessFederation starts a ProcessFederation in t's temp dir and
// closes it when the test ends; it fails t if the federation cannot be
// built. The tails of the sites' logs are shown if the test fails.
func NewProcessFederation(t testing.TB, opts FedOptions) *ProcessFederation {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	var f *ProcessFederation
	t.Cleanup(func() {
		if f != nil {
			if err := f.Close(); err != nil {
				t.Errorf("lab cleanup: %v", err)
			}
		}
		if t.Failed() {
			logTails(t, opts.Dir)
		}
	})
	var err error
	if f, err = StartProcessFederation(opts); err != nil { // f, as the cleanup sees it
		t.Fatal(err)
	}
	return f
}

// logTails logs the tail of every site log (<ID>.log) in dir.
func logTails(t testing.TB, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, name := range logs {
		lf, err := os.Open(name)
		if err != nil {
			t.Log(err)
			continue
		}
		t.Logf("tail of %s's log:\n%s", strings.TrimSuffix(filepath.Base(name), ".log"), FileTail(lf, 3<<10))
		lf.Close()
	}
}

// logTail returns the last n lines of a log file at level WARN or above,
// and the links' changes of state.
func logTail(f *os.File, n int) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, `msg="link `) {
			keep = append(keep, line)
		}
	}
	keep = keep[max(0, len(keep)-n):]
	return strings.Join(keep, "\n")
}

// FileTail returns the last n bytes of f.
func FileTail(f *os.File, n int64) string {
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(0, st.Size()-n)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(b)
}
