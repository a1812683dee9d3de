package site

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk/crashpoint"
	"github.com/skyfed/skyfed/naming"
)

// rawPut opens a TCP connection to the site and writes a PUT's head and
// the first part of its body, as a client would that then stalls,
// stops or vanishes.
func rawPut(t *testing.T, ts *testSite, name, head, body string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on the test, not an assertion: a site that never answers
	// fails here instead of hanging the run.
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, "PUT /o/"+name+" HTTP/1.1\r\nHost: site\r\n"+head+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

// readAnswer reads the site's answer and then the connection to its end,
// which must come: the site closes a connection whose body it gave up on.
func readAnswer(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer body: %v", err)
	}
	// The site closes with the rest of the body unread, which the kernel
	// may tell the client with a reset: closed all the same.
	if rest, err := io.ReadAll(br); err != nil && !errors.Is(err, syscall.ECONNRESET) || len(rest) != 0 {
		t.Errorf("after the answer: %q, %v; want the connection closed", rest, err)
	}
	return resp, string(body)
}

func absent(t *testing.T, ts *testSite, name string) {
	t.Helper()
	n, err := naming.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ts.Objects().Latest(n); !errors.Is(err, naming.ErrNotFound) {
		t.Errorf("%s after an aborted upload: %v, %v; want not found", name, m, err)
	}
}

// TestStalledUploadsTimeOut: uploads whose body stops coming are answered
// 408 and closed once idle past http_body_idle_timeout, counted, and leave
// no object behind.
func TestStalledUploadsTimeOut(t *testing.T) {
	ts, logs := startSiteWith(t, func(c *Config) { c.HTTPBodyIdleTimeout = "200ms" })
	const stalled = 5
	conns := make([]*net.TCPConn, stalled)
	for i := range conns {
		conns[i] = rawPut(t, ts, fmt.Sprintf("gloria.eu/stall-%d", i), "Content-Length: 1000000\r\n", strings.Repeat("x", 100<<10))
	}
	for i, c := range conns {
		resp, body := readAnswer(t, c)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "stalled") {
			t.Errorf("stall %d: HTTP %d %s; want 408", i, resp.StatusCode, body)
		}
		absent(t, ts, fmt.Sprintf("gloria.eu/stall-%d", i))
	}
	if got := metric(t, ts, "skyfed_http_body_timeouts_total"); got != stalled {
		t.Errorf("skyfed_http_body_timeouts_total = %v, want %d", got, stalled)
	}
	if got := metric(t, ts, "skyfed_http_requests_total", "op", "put", "code", "408"); got != stalled {
		t.Errorf("put 408s = %v, want %d", got, stalled)
	}
	if l := logs.String(); strings.Contains(l, "level=ERROR") || !strings.Contains(l, `level=INFO msg="request body unusable"`) {
		t.Errorf("log:\n%s", l)
	}

	// A put refused before its upload is read: net/http reads what is
	// left of a small body before answering, bounded the same way.
	c := rawPut(t, ts, "gloria.eu/refused?expires=soon", "Content-Length: 100000\r\n", "zz")
	if resp, body := readAnswer(t, c); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expires") {
		t.Errorf("refused stalled put: HTTP %d %s; want 400", resp.StatusCode, body)
	}

	// A body that keeps coming is not cut, whatever the whole upload takes.
	resp, body := ts.do(t, "PUT", "/o/gloria.eu/whole", bytes.NewReader(seeded(3, 300<<10)))
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("whole put: HTTP %d %s", resp.StatusCode, body)
	}
}

// TestOldConfigGetsDefaultBodyTimeout: configs written before
// http_body_idle_timeout existed load with the default; bad values are
// refused.
func TestOldConfigGetsDefaultBodyTimeout(t *testing.T) {
	var c Config
	if d := c.BodyIdleTimeout(); d != 60*time.Second {
		t.Errorf("default %s", d)
	}
	dir := t.TempDir()
	if _, err := Init(dir, Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:7401", NATS: "127.0.0.1:7402"}); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadConfig(dir); err != nil || c.HTTPBodyIdleTimeout != "60s" {
		t.Errorf("new config: %q, %v; want 60s written", c.HTTPBodyIdleTimeout, err)
	}
	if err := EditConfig(dir, func(c *Config) error { c.HTTPBodyIdleTimeout = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadConfig(dir); err != nil || c.BodyIdleTimeout() != DefaultBodyIdleTimeout {
		t.Errorf("config without the key: %v, %v", c.BodyIdleTimeout(), err)
	}
	for _, bad := range []string{"soon", "0s", "-1s"} {
		c := Config{ID: "alpha", Domain: "gloria.eu", HTTP: "127.0.0.1:7401", NATS: "127.0.0.1:7402", ChunkSize: 1 << 20, HTTPBodyIdleTimeout: bad}
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("http_body_idle_timeout %q: %v", bad, err)
		}
	}
}

// TestClientBodyMistakes: a body the client cut short or garbled is the
// client's mistake: 400 (or, to a client that vanished, no answer),
// logged at INFO, counted under that status, nothing stored. A failure
// of the site's own storage is still a 500 at ERROR.
func TestClientBodyMistakes(t *testing.T) {
	ts, logs := startSiteWith(t, func(*Config) {})
	part := strings.Repeat("y", 70<<10) // more than a chunk: the put has begun storing
	cases := []struct {
		name, head, body string
		then             func(c *net.TCPConn)
		want             int // 0: no answer, the connection just ends
	}{
		{"short-content-length", "Content-Length: 1000000\r\n", part,
			func(c *net.TCPConn) { c.CloseWrite() }, http.StatusBadRequest},
		{"truncated-chunked", "Transfer-Encoding: chunked\r\n", fmt.Sprintf("%x\r\n", 2*len(part)) + part,
			func(c *net.TCPConn) { c.CloseWrite() }, http.StatusBadRequest},
		{"malformed-chunked", "Transfer-Encoding: chunked\r\n", "zz\r\n" + part,
			func(*net.TCPConn) {}, http.StatusBadRequest},
		{"vanished", "Content-Length: 1000000\r\n", part,
			func(c *net.TCPConn) { c.SetLinger(0); c.Close() }, 0}, // an RST, as from a killed client
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "gloria.eu/mistake-" + tc.name
			want := tc.want
			if want == 0 {
				want = statusClientGone
			}
			before := metric(t, ts, "skyfed_http_requests_total", "op", "put", "code", fmt.Sprint(want))
			c := rawPut(t, ts, name, tc.head, tc.body)
			tc.then(c)
			if tc.want != 0 {
				resp, body := readAnswer(t, c)
				if resp.StatusCode != tc.want || !strings.Contains(body, "request body") {
					t.Errorf("HTTP %d %s; want %d", resp.StatusCode, body, tc.want)
				}
			}
			waitMetric(t, ts, "skyfed_http_requests_total", before+1, "op", "put", "code", fmt.Sprint(want))
			absent(t, ts, name)
		})
	}
	if got, ok := metricValue(t, ts, "skyfed_http_requests_total", "op", "put", "code", "500"); ok {
		t.Errorf("%v puts counted as 500", got)
	}
	if l := logs.String(); strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
		t.Errorf("client mistakes logged as the site's:\n%s", l)
	}

	// The site's own storage failing mid-put is still the site's error.
	restore := crashpoint.Set(crashpoint.AfterPackWrite, func() error { return fmt.Errorf("write pack: %w", syscall.EIO) })
	resp, body := ts.do(t, "PUT", "/o/gloria.eu/disk-fails", bytes.NewReader(seeded(4, 100<<10)))
	restore()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("storage failure: HTTP %d %s; want 500", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="request failed" site=alpha op=put`) {
		t.Errorf("storage failure not logged at ERROR:\n%s", logs)
	}
	absent(t, ts, "gloria.eu/disk-fails")
}

// waitMetric waits until the counter reaches want: the site counts a
// vanished client's request after the connection has ended, and nothing
// tells the client when.
func waitMetric(t *testing.T, ts *testSite, name string, want float64, labels ...string) {
	t.Helper()
	for range 3000 { // up to 30 s: a bound on the test, not an assertion
		if got, _ := metricValue(t, ts, name, labels...); got >= want {
			if got != want {
				t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, _ := metricValue(t, ts, name, labels...)
	t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
}
