package client

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzParsePin checks --pin (a site key pinned for TLS): errors wrap
// ErrTLSSetup, and a pin that parses is 32 bytes that print back as its
// hex.
func FuzzParsePin(f *testing.F) {
	for _, s := range []string{"ed25519:" + strings.Repeat("ab", 32), " ed25519:" + strings.Repeat("AB", 32) + "\n", "ed25519:" + strings.Repeat("ab", 31), "ed25519:zz", "sha256:00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pin string) {
		k, err := parsePin(pin)
		if err != nil {
			if !errors.Is(err, ErrTLSSetup) {
				t.Fatalf("error %v does not wrap ErrTLSSetup", err)
			}
			return
		}
		digits := strings.TrimPrefix(strings.TrimSpace(pin), "ed25519:")
		if len(k) != 32 || hex.EncodeToString(k) != strings.ToLower(digits) {
			t.Fatalf("parsePin(%q) = %x", pin, k)
		}
	})
}

// FuzzFederationHeaders checks the lookup headers of an answer: either
// no federation, or two counts that are not negative.
func FuzzFederationHeaders(f *testing.F) {
	f.Add("3", "2")
	f.Add("-1", "0")
	f.Add("", "1")
	f.Add("99999999999999999999", "1")
	f.Fuzz(func(t *testing.T, asked, answered string) {
		h := http.Header{}
		h.Set(AskedHeader, asked)
		h.Set(AnsweredHeader, answered)
		fed := federationOf(h)
		if fed != nil && (fed.Asked < 0 || fed.Answered < 0) {
			t.Fatalf("federationOf(%q, %q) = %+v", asked, answered, fed)
		}
		_ = fed.Incomplete() // nil-safe
	})
}

// FuzzStreamReports feeds fuzzed NDJSON answers to the decoders of the
// streaming APIs (POST /api/scrub, /api/gc, /api/resync/PEER) through a
// real HTTP exchange: each call ends with the final report (done) or an
// error, progress lines before it are handed over, and nothing panics
// or hangs.
func FuzzStreamReports(f *testing.F) {
	f.Add([]byte(`{"phase":"scrub","chunks":1,"bytes":10}`+"\n"+`{"phase":"scrub","chunks":2,"done":true}`+"\n"), 200)
	f.Add([]byte(`{"versions_collected":1,"done":true,"error":"x"}`+"\n"), 200)
	f.Add([]byte(`{"rounds":1}`+"\n"+`{"done":true,"timed_out":true}`), 200)
	f.Add([]byte(`{"phase":"scrub"}`+"\n"), 200)
	f.Add([]byte(`not json`+"\n"), 200)
	f.Add([]byte(`{"error":"no link to beta","hint":"skyfed stat"}`), 404)
	f.Add([]byte(`{"done":"yes"}`), 200)
	var body atomic.Value
	var status atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(SiteHeader, "alpha")
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(int(status.Load()))
		w.Write(body.Load().([]byte))
	}))
	f.Cleanup(srv.Close)
	c := New(srv.URL, "")
	f.Cleanup(c.CloseIdleConnections)
	f.Fuzz(func(t *testing.T, b []byte, code int) {
		if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusResetContent {
			code = 200
		}
		body.Store(b)
		status.Store(int64(code))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sr, err := c.Scrub(ctx, "", func(r ScrubReport) {
			if r.Done {
				t.Fatal("scrub progress with done")
			}
		})
		fuzzCheckStream(t, "scrub", err, sr.Done)
		gr, err := c.GC(ctx, "", func(r GCReport) {
			if r.Done {
				t.Fatal("gc progress with done")
			}
		})
		fuzzCheckStream(t, "gc", err, gr.Done)
		rp, err := c.Resync(ctx, "beta", time.Second, func(p ResyncProgress) {
			if p.Done {
				t.Fatal("resync progress with done")
			}
		})
		fuzzCheckStream(t, "resync", err, rp.Done)
	})
}

func fuzzCheckStream(t *testing.T, what string, err error, done bool) {
	t.Helper()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("%s hung", what)
	case err == nil && !done:
		t.Fatalf("%s returned a report that is not the last", what)
	}
}
