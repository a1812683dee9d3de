package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestNotSkyfedHTTPServer: an HTTP server that is not a skyfed site
// answers without X-Skyfed-Site; its 404 must not read as "no such
// object", nor its 200 as an object.
func TestNotSkyfedHTTPServer(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusOK} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, `{"error":"no such thing"}`)
		}))
		c := New(srv.URL, "")
		_, err := c.Get(context.Background(), "gloria.eu/x", GetOptions{})
		c.CloseIdleConnections()
		srv.Close()
		var ae *APIError
		if !errors.Is(err, ErrNotSkyfed) || errors.As(err, &ae) {
			t.Fatalf("HTTP %d: err = %v, want ErrNotSkyfed and no *APIError", status, err)
		}
		if want := "not a skyfed site: " + srv.URL; !strings.HasSuffix(err.Error(), want) {
			t.Errorf("HTTP %d: message %q, want it to end in %q", status, err, want)
		}
		var ne *NotSkyfedError
		if !errors.As(err, &ne) || !strings.Contains(ne.Hint(), "without the X-Skyfed-Site header") {
			t.Errorf("HTTP %d: hint of %v", status, err)
		}
	}
}

// TestNotSkyfedNATSPort: a NATS server greets every connection with an
// INFO line, which is no HTTP answer at all. The greeting may reach the
// client before its request is written (as from nats-server) or after.
func TestNotSkyfedNATSPort(t *testing.T) {
	for _, greetFirst := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				if greetFirst {
					io.WriteString(conn, `INFO {"server_id":"x"}`+"\r\n")
				}
				conn.Read(make([]byte, 4096))
				if !greetFirst {
					io.WriteString(conn, `INFO {"server_id":"x"}`+"\r\n")
				}
				io.WriteString(conn, "-ERR 'Unknown Protocol Operation'\r\n")
				conn.Close()
			}
		}()

		base := "http://" + ln.Addr().String()
		c := New(base, "")
		_, err = c.Status(context.Background())
		c.CloseIdleConnections()
		ln.Close()
		wg.Wait()
		if !errors.Is(err, ErrNotSkyfed) {
			t.Fatalf("greet first %v: err = %v, want ErrNotSkyfed", greetFirst, err)
		}
		if want := "status: not a skyfed site: " + base; err.Error() != want {
			t.Errorf("greet first %v: message %q, want %q", greetFirst, err, want)
		}
	}
}
