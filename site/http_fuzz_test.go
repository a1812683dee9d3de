package site

import (
	"bufio"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/manifest"
)

// FuzzRequestOptions parses fuzzed raw HTTP/1.1 requests as net/http's
// server does (http.ReadRequest) and runs the decoders of their query
// strings and headers one by one: the object name of /o/NAME, a put's
// ?expires and X-Skyfed-Meta-* headers (putOptions), ?wait_sites and
// ?timeout (waitOptions), ?fresh, and the Range header. None panics;
// every refusal is a 400 apiError; what is accepted is in range: expiry
// after now, 0..1000 sites, a positive timeout, meta keys lower-case,
// sorted and unique, and a manifest made with those options is refused,
// if at all, as malformed (a 400), never otherwise.
func FuzzRequestOptions(f *testing.F) {
	for _, s := range []string{
		"PUT /o/gloria.eu/a.fits?expires=24h&wait_sites=2&timeout=30s HTTP/1.1\r\nHost: x\r\nX-Skyfed-Meta-Telescope: bootes-2\r\nContent-Type: image/fits\r\n\r\n",
		"PUT /o/gloria.eu/a?expires=-1h HTTP/1.1\r\nHost: x\r\n\r\n",
		"PUT /o/gloria.eu/a?wait_sites=1001&timeout=0s HTTP/1.1\r\nHost: x\r\nX-Skyfed-Meta-: empty\r\n\r\n",
		"PUT /o/gloria.eu/a?wait_sites=-1&expires=9999999999h HTTP/1.1\r\nHost: x\r\nx-skyfed-meta-b: 2\r\nX-SKYFED-META-A: 1\r\nX-Skyfed-Meta-A: 3\r\n\r\n",
		"GET /o/gloria.eu/%E6%97%A5?fresh=true&version=1763765000000.0000.alpha HTTP/1.1\r\nHost: x\r\nRange: bytes=5-10\r\n\r\n",
		"GET /o/gloria.eu/x?fresh=maybe HTTP/1.1\r\nHost: x\r\nRange: bytes=-100\r\n\r\n",
		"GET /o/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	now := time.UnixMilli(1_790_000_000_000)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 16<<10 {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(raw))))
		if err != nil {
			return // the server answers 400 before any handler
		}
		if escaped, ok := strings.CutPrefix(r.URL.EscapedPath(), "/o/"); ok {
			_, _ = parseObjectName(escaped) // FuzzParseObjectName checks its results
		}
		opts, err := putOptions(r, now)
		if err != nil {
			mustBe400(t, "putOptions", err)
		} else {
			if !opts.Expires.IsZero() && !opts.Expires.After(now) {
				t.Fatalf("putOptions accepted an expiry %v not after now", opts.Expires)
			}
			if !slices.IsSortedFunc(opts.Meta, func(a, b manifest.Meta) int { return strings.Compare(a.Key, b.Key) }) {
				t.Fatalf("meta not sorted: %q", opts.Meta)
			}
			for i, kv := range opts.Meta {
				if kv.Key != strings.ToLower(kv.Key) || i > 0 && opts.Meta[i-1].Key == kv.Key {
					t.Fatalf("meta keys not lower-case and unique: %q", opts.Meta)
				}
			}
			m := &manifest.Manifest{Name: "gloria.eu/x", ChunkSize: 64 << 10, ContentType: opts.ContentType, Meta: opts.Meta,
				Stamp: manifest.Stamp{WallMS: now.UnixMilli(), Origin: "alpha"}}
			if !opts.Expires.IsZero() {
				m.Expires = opts.Expires.UnixMilli()
			}
			if err := m.Validate(); err != nil {
				if status, _ := statusOf(err); status != http.StatusBadRequest {
					t.Fatalf("a put with these options fails %v, answered %d", err, status)
				}
			}
		}
		want, timeout, err := waitOptions(r)
		if err != nil {
			mustBe400(t, "waitOptions", err)
		} else if want < 0 || want > 1000 || timeout <= 0 {
			t.Fatalf("waitOptions = %d, %v", want, timeout)
		}
		_ = isFresh(r)
		if start := rangeStart(r.Header.Get("Range"), 1<<20); start < 0 {
			t.Fatalf("rangeStart = %d", start)
		}
	})
}

func mustBe400(t *testing.T, what string, err error) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusBadRequest {
		t.Fatalf("%s refused with %v, not a 400 apiError", what, err)
	}
}
