package testlab_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/testlab"
)

// labNoLeaks checks, after every other cleanup of t, that t left no
// goroutines behind.
func labNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newTestProxy(t *testing.T, target string) *testlab.Proxy {
	t.Helper()
	p, err := testlab.NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes data and reads as many bytes back.
func roundTrip(t *testing.T, c net.Conn, data []byte) []byte {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back %d bytes: %v", len(data), err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

func seededBytes(seed uint64, n int) []byte {
	b, _ := io.ReadAll(testlab.RandomStream(seed, int64(n)))
	return b
}

// waitClosed waits until the peer closes c (a read ends without data).
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v; want the connection closed", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after 10 s")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyForwards(t *testing.T) {
	labNoLeaks(t)
	p := newTestProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	data := seededBytes(1, 1<<20)
	if got := roundTrip(t, c, data); !bytes.Equal(got, data) {
		t.Fatal("bytes changed on the way")
	}
	st := p.Stats()
	if st.Accepted != 1 || st.BytesUp != 1<<20 || st.BytesDown != 1<<20 || st.Dropped != 0 || st.Refused != 0 {
		t.Errorf("stats %+v", st)
	}
	if p.Target() == "" || p.Conns() != 1 {
		t.Errorf("target %q, %d conns", p.Target(), p.Conns())
	}
}

func TestProxyCutHeal(t *testing.T) {
	labNoLeaks(t)
	p := newTestProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("before"))
	p.Cut()
	if !p.IsCut() {
		t.Error("IsCut false after Cut")
	}
	waitClosed(t, c)
	// New connections are accepted by the kernel and closed at once.
	waitClosed(t, dial(t, p.Addr()))
	if st := p.Stats(); st.Refused != 1 {
		t.Errorf("refused %d, want 1", st.Refused)
	}
	waitFor(t, "no connections", func() bool { return p.Conns() == 0 })
	p.Heal()
	c2 := dial(t, p.Addr())
	if got := roundTrip(t, c2, []byte("after")); string(got) != "after" {
		t.Errorf("after heal: %q", got)
	}
}

func TestProxyBlackhole(t *testing.T) {
	labNoLeaks(t)
	p := newTestProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, []byte("hello"))
	p.Blackhole(true)
	lost := seededBytes(2, 100<<10)
	if _, err := c.Write(lost); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bytes dropped", func() bool { return p.Stats().Dropped >= int64(len(lost)) })
	if p.Conns() != 1 {
		t.Errorf("%d connections during blackhole, want 1 kept open", p.Conns())
	}
	p.Blackhole(false)
	// The echo server never saw the lost bytes, so only these come back.
	if got := roundTrip(t, c, []byte("again")); string(got) != "again" {
		t.Errorf("after blackhole: %q", got)
	}
	if st := p.Stats(); st.BytesUp != int64(len("hello")+len("again")) {
		t.Errorf("forwarded up %d bytes, want %d", st.BytesUp, len("hello")+len("again"))
	}
}

// TestProxyLatency checks a lower bound only: a round trip through a
// proxy with one-way delay d cannot take less than 2d.
func TestProxyLatency(t *testing.T) {
	labNoLeaks(t)
	p := newTestProxy(t, echoServer(t))
	const d = 100 * time.Millisecond
	p.SetLatency(d)
	c := dial(t, p.Addr())
	data := seededBytes(3, 256<<10)
	start := time.Now()
	if got := roundTrip(t, c, data); !bytes.Equal(got, data) {
		t.Fatal("bytes changed on the way")
	}
	if el := time.Since(start); el < 2*d {
		t.Errorf("round trip took %s with one-way latency %s", el, d)
	}
	p.SetLatency(0)
	roundTrip(t, c, []byte("fast again"))
}

// TestProxyBandwidth checks a lower bound only: n bytes through a bucket of
// rate r and burst b take at least (n-b)/r each way.
func TestProxyBandwidth(t *testing.T) {
	labNoLeaks(t)
	p := newTestProxy(t, echoServer(t))
	const rate = 4 << 20
	p.SetBandwidth(rate)
	c := dial(t, p.Addr())
	data := seededBytes(4, 2<<20)
	start := time.Now()
	if got := roundTrip(t, c, data); !bytes.Equal(got, data) {
		t.Fatal("bytes changed on the way")
	}
	burst := rate / 8
	if el, least := time.Since(start), time.Duration(float64(len(data)-burst)/rate*float64(time.Second)); el < least {
		t.Errorf("%d bytes at %d B/s took %s, less than %s", len(data), rate, el, least)
	}
	p.SetBandwidth(0)
	roundTrip(t, c, data)
}

func TestProxyTargetDown(t *testing.T) {
	labNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newTestProxy(t, addr)
	waitClosed(t, dial(t, p.Addr()))
	if st := p.Stats(); st.Refused != 1 || st.Accepted != 0 {
		t.Errorf("stats %+v, want one refused", st)
	}
}

func TestProxyCloseEndsConnections(t *testing.T) {
	labNoLeaks(t)
	p, err := testlab.NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	p.SetLatency(time.Hour) // a segment stuck in the delay queue must not hold Close up
	if _, err := c.Write([]byte("stuck")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bytes read into the queue", func() bool { return p.Conns() == 1 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c)
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Error("closed proxy still accepts")
	}
}

func TestNewProxyBadTarget(t *testing.T) {
	if _, err := testlab.NewProxy("no-port"); err == nil {
		t.Error("NewProxy accepted a target without a port")
	}
}

func TestProxySetTarget(t *testing.T) {
	labNoLeaks(t)
	p := newTestProxy(t, "")
	waitClosed(t, dial(t, p.Addr())) // no target yet: refused
	if err := p.SetTarget("no-port"); err == nil {
		t.Error("SetTarget accepted a target without a port")
	}
	a := echoServer(t)
	if err := p.SetTarget(a); err != nil {
		t.Fatal(err)
	}
	if p.Target() != a {
		t.Errorf("target %q, want %q", p.Target(), a)
	}
	c := dial(t, p.Addr())
	if got := roundTrip(t, c, []byte("ping")); string(got) != "ping" {
		t.Errorf("got %q", got)
	}
	if err := p.SetTarget(""); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, dial(t, p.Addr()))
	if got := roundTrip(t, c, []byte("still")); string(got) != "still" {
		t.Errorf("open connection after SetTarget(\"\"): %q", got)
	}
	if st := p.Stats(); st.Refused != 2 || st.Accepted != 1 {
		t.Errorf("stats %+v, want 2 refused, 1 accepted", st)
	}
}
