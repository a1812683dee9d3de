package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

func TestSetAndRestore(t *testing.T) {
	const name = "test-point"
	if err := Hit(name); err != nil {
		t.Fatalf("Hit without handler = %v", err)
	}
	first := errors.New("first")
	restore1 := Set(name, func() error { return first })
	if err := Hit(name); !errors.Is(err, first) {
		t.Fatalf("Hit = %v, want first", err)
	}
	if err := Hit("other-point"); err != nil {
		t.Fatalf("Hit of another point = %v", err)
	}
	restore2 := Set(name, func() error { return ErrCrashed })
	if err := Hit(name); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Hit = %v, want ErrCrashed", err)
	}
	restore2()
	restore2() // idempotent
	if err := Hit(name); !errors.Is(err, first) {
		t.Fatalf("Hit after restore = %v, want first", err)
	}
	restore1()
	if err := Hit(name); err != nil {
		t.Fatalf("Hit after full restore = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"a", "b"}[i%2]
			for range 200 {
				restore := Set(name, func() error { return nil })
				_ = Hit(name)
				restore()
			}
		}()
	}
	wg.Wait()
}

// TestEnvKills runs this test binary as a child with SKYFED_CRASHPOINT set
// and checks that the child dies by SIGKILL exactly at the named point.
func TestEnvKills(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		if err := Hit("not-this-one"); err != nil {
			os.Exit(3)
		}
		_ = Hit(AfterPackSync)
		os.Exit(0) // reached only if Hit did not kill the process
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestEnvKills$")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", EnvVar+"="+AfterPackSync)
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child exited with %v, want death by SIGKILL", err)
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child exit status %v, want SIGKILL", exit)
	}
}
