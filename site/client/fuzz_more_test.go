package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fuzzTransport answers every request with the same status, headers and
// body, as a site (or something posing as one) might.
type fuzzTransport struct {
	status int
	header http.Header
	body   []byte
}

func (f *fuzzTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: f.status, Header: f.header.Clone(), Body: io.NopCloser(bytes.NewReader(f.body)),
		ContentLength: int64(len(f.body)), Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// FuzzClientAnswers feeds one fuzzed answer (status, federation and
// ETag headers, body) to every call of the client that decodes an
// answer: Status, List, Versions, Delete, Share, Diff, the streamed
// progress of Resync, Scrub and GC, Put and Get (whose body is read and
// verified against the ETag). Nothing panics or hangs; an answer
// outside 2xx is an *APIError with its status and a message; a stream
// that ends without a final line is an error.
func FuzzClientAnswers(f *testing.F) {
	for _, s := range []struct {
		status      int
		asked, etag string
		body        string
	}{
		{200, "", "", `{"site":"a","links":[{"peer":"b","backlog":1}]}`},
		{200, "3", "", `{"objects":[{"name":"gloria.eu/x","version":"1763765000000.0000.alpha","size":5}],"more":true}`},
		{200, "", "", `{"name":"gloria.eu/x","latest":"1763765000000.0000.alpha","versions":[{"version":"1763765000000.0000.alpha","size":3}]}`},
		{200, "", "", "{\"checked\":10}\n{\"checked\":20,\"done\":true}\n"},
		{200, "", "", "{\"sent\":1}\n{\"done\":true,\"sent\":2}\n"},
		{200, "", "", "{\"checked\":10}\n"},
		{200, "", "", "{\"checked\":10}\nnot json\n"},
		{200, "", "", strings.Repeat("x", 70<<10) + "\n"},
		{200, "", `"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`, "test"},
		{200, "", `"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`, "tesx"},
		{201, "", "", `{"name":"gloria.eu/x","version":"1763765000000.0000.alpha","sha256":"00","size":1,"chunks":1}`},
		{200, "", "", `{"url":"http://x/?share=site.1.x","expires":"2026-01-01T00:00:00Z"}`},
		{404, "2", "", `{"error":"not found","hint":"check the name"}`},
		{401, "", "", `{"error":"no token","reason":"missing"}`},
		{502, "x", "", "<html>bad gateway</html>"},
		{0, "", "", ""},
	} {
		f.Add(s.status, s.asked, s.etag, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, asked, etag string, body []byte) {
		if len(body) > 1<<20 {
			return
		}
		if status < 100 || status > 999 {
			status = 200
		}
		h := http.Header{SiteHeader: {"alpha"}, "Content-Type": {"application/json"}}
		h.Set(AskedHeader, asked)
		h.Set(AnsweredHeader, asked)
		h.Set("Etag", etag)
		c := &Client{base: "http://site.invalid", hc: &http.Client{Transport: &fuzzTransport{status: status, header: h, body: body}}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		check := func(what string, err error) {
			if err == nil {
				if status < 200 || status > 299 {
					t.Fatalf("%s: an answer %d is no error", what, status)
				}
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: did not return in time", what)
			}
			var ae *APIError
			if status < 200 || status > 299 {
				if !errors.As(err, &ae) || ae.Status != status || ae.Message == "" {
					t.Fatalf("%s: answer %d gave %v, not an APIError with a message", what, status, err)
				}
			}
		}
		_, err := c.Status(ctx)
		check("Status", err)
		_, err = c.List(ctx, "gloria.eu/", "", 10)
		check("List", err)
		_, err = c.Versions(ctx, "gloria.eu/x")
		check("Versions", err)
		_, err = c.Delete(ctx, "gloria.eu/x")
		check("Delete", err)
		_, err = c.Share(ctx, "gloria.eu/x", time.Hour)
		check("Share", err)
		_, err = c.Diff(ctx, "beta", true, time.Second)
		check("Diff", err)
		_, err = c.Resync(ctx, "beta", time.Second, func(ResyncProgress) {})
		check("Resync", err)
		_, err = c.Scrub(ctx, "", func(ScrubReport) {})
		check("Scrub", err)
		_, err = c.GC(ctx, "", func(GCReport) {})
		check("GC", err)
		_, err = c.Put(ctx, "gloria.eu/x", strings.NewReader("test"), 4, PutOptions{})
		check("Put", err)
		o, err := c.Get(ctx, "gloria.eu/x", GetOptions{})
		check("Get", err)
		if err == nil {
			n, rerr := io.Copy(io.Discard, io.LimitReader(o.Body, 2<<20))
			o.Body.Close()
			if ctx.Err() != nil {
				t.Fatal("reading the object did not end in time")
			}
			if rerr == nil && o.SHA256 != "" && n != int64(len(body)) {
				t.Fatalf("read %d of %d bytes without an error", n, len(body))
			}
		}
	})
}
