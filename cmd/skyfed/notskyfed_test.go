package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestGetFromNotASite: a wrong --site must not read as "object missing"
// (exit 2), whether an HTTP server answers 404 without X-Skyfed-Site or
// a NATS port answers with its INFO greeting.
func TestGetFromNotASite(t *testing.T) {
	leakCheck(t)
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(conn, `INFO {"server_id":"x","version":"2.10.0"}`+"\r\n")
			conn.Read(make([]byte, 4096))
			conn.Close()
		}
	}()

	for _, site := range []string{web.URL, "http://" + ln.Addr().String()} {
		app, out, errb := testApp("")
		code := run([]string{"get", "--site", site, "gloria.eu/cam/img-0001.fits"}, app)
		if code != exitError || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q; want exit %d", site, code, out, exitError)
		}
		first, _, _ := strings.Cut(errb.String(), "\n")
		if want := "skyfed: get gloria.eu/cam/img-0001.fits: not a skyfed site: " + site; first != want {
			t.Errorf("%s: stderr %q, want first line %q", site, errb, want)
		}
		if !strings.Contains(errb.String(), "\nhint: ") {
			t.Errorf("%s: no hint in %q", site, errb)
		}
		if strings.Contains(errb.String(), "server_id") || strings.Contains(errb.String(), "not found") {
			t.Errorf("%s: stderr shows the raw answer: %q", site, errb)
		}
	}
}
