package bucket

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestLeaseFencesAReplacedNode: two nodes on one bucket prefix. The
// second cannot take the lease the first holds; once the first stops
// renewing it, its writes are refused before the lease expires, the
// second takes it after expiry, and the first, renewing late, finds it
// lost for good. A clean release hands it over at once.
func TestLeaseFencesAReplacedNode(t *testing.T) {
	c := startCluster(t)
	prefix := randomPrefix(t)
	open := func() *Packs {
		p, err := New(t.Context(), clusterConfig(c, prefix, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	const ttl = 3 * time.Second
	a, b := open(), open()
	la, err := a.AcquireLease(t.Context(), "alpha", "/data/a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcquireLease(t.Context(), "alpha", "/data/b", ttl); !errors.Is(err, ErrLeased) {
		t.Fatalf("second node took a held lease: %v", err)
	}
	if err := putPack(t, a, 1); err != nil {
		t.Fatalf("the holder's write: %v", err)
	}
	if err := la.Renew(t.Context()); err != nil {
		t.Fatalf("renew: %v", err)
	}
	// The holder stops renewing (presumed dead, still running).
	time.Sleep(ttl - ttl/3 + 200*time.Millisecond)
	if err := putPack(t, a, 2); !errors.Is(err, ErrFenced) {
		t.Fatalf("a write after the lease's validity ran out: %v, want ErrFenced", err)
	}
	time.Sleep(ttl/3 + 200*time.Millisecond)
	lb, err := b.AcquireLease(t.Context(), "alpha", "/data/b", ttl)
	if err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	if err := la.Renew(t.Context()); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old holder renewed over its replacement: %v", err)
	}
	if err := putPack(t, a, 3); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old holder wrote beside its replacement: %v", err)
	}
	if err := putPack(t, b, 4); err != nil {
		t.Fatalf("the replacement's write: %v", err)
	}
	if err := lb.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := open().AcquireLease(t.Context(), "alpha", "/data/c", ttl); err != nil {
		t.Fatalf("taking a released lease: %v", err)
	}
}

// putPack writes and syncs a one-record pack.
func putPack(t *testing.T, p *Packs, num uint32) error {
	t.Helper()
	w, err := p.Create(num)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	obj, _ := buildPack(t, 100)
	rec := obj[:len(obj)-tailSize-entrySize] // the record alone
	if _, err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	return w.Sync()
}

// TestLeaseOfADeadProcessHere: a lease whose holder was a process of
// this host and data dir that is gone is taken at once; one held by a
// live process of this host, or by another data dir, is not.
func TestLeaseOfADeadProcessHere(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		b    leaseBody
		want bool
	}{
		{leaseBody{Host: host, Dir: "/d", PID: dead.Process.Pid}, true},
		{leaseBody{Host: host, Dir: "/d", PID: os.Getpid()}, false},
		{leaseBody{Host: host, Dir: "/other", PID: dead.Process.Pid}, false},
		{leaseBody{Host: "elsewhere", Dir: "/d", PID: dead.Process.Pid}, false},
	} {
		if got := c.b.deadHere(host, "/d"); got != c.want {
			t.Errorf("%+v: deadHere = %v, want %v", c.b, got, c.want)
		}
	}
}
