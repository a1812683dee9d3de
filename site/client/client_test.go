package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sum(b string) string {
	h := sha256.Sum256([]byte(b))
	return hex.EncodeToString(h[:])
}

// serve starts a test server with h, answering as site "alpha" does,
// and returns a client for it.
func serve(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(SiteHeader, "alpha")
		h(w, r)
	}))
	c := New(srv.URL, "tok")
	t.Cleanup(func() { c.CloseIdleConnections(); srv.Close() })
	return c
}

func TestObjectPathEscaping(t *testing.T) {
	cases := []struct{ name, want string }{
		{"gloria.eu/a/b.fits", "/o/gloria.eu/a/b.fits"},
		{"gloria.eu/with space/x", "/o/gloria.eu/with%20space/x"},
		{"gloria.eu/pct%/q?#", "/o/gloria.eu/pct%25/q%3F%23"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				got = r.URL.EscapedPath()
				if r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
				}
				fmt.Fprint(w, `{"name":"x","version":"v1"}`)
			})
			if _, err := c.Delete(context.Background(), tc.name); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("path = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := objectPath(""); err == nil {
		t.Error("empty name: no error")
	}
}

func TestAPIErrors(t *testing.T) {
	cases := []struct {
		status          int
		body            string
		wantMsg, wantHi string
	}{
		{404, `{"error":"no such object","hint":"check the name"}`, "no such object", "check the name"},
		{410, `{"error":"deleted"}`, "deleted", ""},
		{504, `gateway timeout from proxy`, "gateway timeout from proxy", ""},
		{500, "<html>\n</html>", "internal server error", ""},
		{401, `{}`, "unauthorized", "pass the site's token with --token or SKYFED_TOKEN"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			_, err := c.Get(context.Background(), "d/x", GetOptions{})
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if ae.Status != tc.status || ae.Message != tc.wantMsg || ae.Hint != tc.wantHi {
				t.Errorf("got %+v", *ae)
			}
		})
	}
}

func TestGetVerify(t *testing.T) {
	const body = "hello, telescope"
	cases := []struct {
		name, etag, rng string
		wantVerified    bool
		wantErr         error
	}{
		{"match", `"` + sum(body) + `"`, "", true, nil},
		{"upper-case match", `"` + strings.ToUpper(sum(body)) + `"`, "", true, nil},
		{"mismatch", `"` + sum("other") + `"`, "", true, ErrVerify},
		{"no etag", "", "", false, nil},
		{"weak etag", `W/"` + sum(body) + `"`, "", false, nil},
		{"range", `"` + sum("other") + `"`, "bytes=0-3", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.etag != "" {
					w.Header().Set("ETag", tc.etag)
				}
				w.Header().Set("X-Skyfed-Version", "v7")
				if r.Header.Get("Range") != "" {
					w.WriteHeader(http.StatusPartialContent)
				}
				io.WriteString(w, body)
			})
			obj, err := c.Get(context.Background(), "d/x", GetOptions{Range: tc.rng})
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Body.Close()
			_, err = io.ReadAll(obj.Body)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("read err = %v, want %v", err, tc.wantErr)
			}
			if obj.Verified != tc.wantVerified || obj.Version != "v7" {
				t.Errorf("Verified = %v, Version = %q", obj.Verified, obj.Version)
			}
		})
	}
}

func TestGetQuery(t *testing.T) {
	var q string
	c := serve(t, func(w http.ResponseWriter, r *http.Request) { q = r.URL.RawQuery })
	obj, err := c.Get(context.Background(), "d/x", GetOptions{Version: "1.0000.a"})
	if err != nil {
		t.Fatal(err)
	}
	obj.Body.Close()
	if q != "version=1.0000.a" {
		t.Errorf("query = %q", q)
	}
}

func TestPut(t *testing.T) {
	const body = "image bytes"
	cases := []struct {
		name      string
		size      int64
		answerSHA string
		answerLen int64
		wantErr   error
	}{
		{"known size", int64(len(body)), sum(body), int64(len(body)), nil},
		{"unknown size", -1, sum(body), int64(len(body)), nil},
		{"site hashed other bytes", int64(len(body)), sum("x"), int64(len(body)), ErrVerify},
		{"site stored other size", -1, sum(body), 3, ErrVerify},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got *http.Request
			var gotBody []byte
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				got = r
				gotBody, _ = io.ReadAll(r.Body)
				w.WriteHeader(http.StatusCreated)
				json.NewEncoder(w).Encode(PutResult{Name: "d/x", Version: "v1", SHA256: tc.answerSHA, Size: tc.answerLen, Chunks: 1})
			})
			res, err := c.Put(context.Background(), "d/x", strings.NewReader(body), tc.size,
				PutOptions{ContentType: "image/fits", Meta: map[string]string{"telescope": "bootes-2"}})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if string(gotBody) != body || got.Method != http.MethodPut || got.ContentLength != tc.size {
				t.Errorf("server got %s %q, ContentLength %d", got.Method, gotBody, got.ContentLength)
			}
			if got.Header.Get("Content-Type") != "image/fits" || got.Header.Get("X-Skyfed-Meta-Telescope") != "bootes-2" {
				t.Errorf("headers %v", got.Header)
			}
			if err == nil && res.Version != "v1" {
				t.Errorf("res = %+v", res)
			}
		})
	}
}

func TestPutEmptyAndBadMeta(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(PutResult{SHA256: sum(string(b)), Size: int64(len(b))})
	})
	if _, err := c.Put(context.Background(), "d/empty", strings.NewReader(""), 0, PutOptions{}); err != nil {
		t.Errorf("empty put: %v", err)
	}
	_, err := c.Put(context.Background(), "d/x", strings.NewReader("a"), 1, PutOptions{Meta: map[string]string{"a b": "c"}})
	if err == nil || !strings.Contains(err.Error(), "metadata key") {
		t.Errorf("bad meta key: err = %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := New(addr, "")
	defer c.CloseIdleConnections()
	_, err = c.Status(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Site != "http://"+addr {
		t.Fatalf("err = %v, want *UnreachableError", err)
	}
	if !strings.Contains(err.Error(), "cannot reach site at http://"+addr) || !strings.Contains(err.Error(), "SKYFED_SITE") {
		t.Errorf("message %q", err)
	}
}

func TestStatusListVersions(t *testing.T) {
	const status = `{"site":"alpha","domain":"gloria.eu","objects":3,"stored_bytes":1048576,
		"links":[{"peer":"beta","backlog":12,"new_field":true}],"later":{"x":1}}`
	var queries []string
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.Path+"?"+r.URL.RawQuery)
		switch r.URL.Path {
		case "/api/status":
			io.WriteString(w, status)
		case "/ls":
			io.WriteString(w, `{"objects":[{"name":"d/a","version":"v1","size":5,"sha256":"ab"}],"next":"d/a"}`)
		default:
			io.WriteString(w, `{"name":"d/a","latest":"v2","versions":[{"version":"v2","origin":"alpha","deleted":true},{"version":"v1","size":5,"expires":"2030-01-01T00:00:00Z"}]}`)
		}
	})
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Site != "alpha" || st.Objects != 3 || st.StoredBytes != 1<<20 || string(st.Raw) != status {
		t.Errorf("status %+v", st)
	}
	if len(st.Links) != 1 || st.Links[0]["backlog"] != json.Number("12") {
		t.Errorf("links %#v", st.Links)
	}
	page, err := c.List(ctx, "d/", "c", 10)
	if err != nil || len(page.Objects) != 1 || page.Next != "d/a" || page.Objects[0].Size != 5 {
		t.Errorf("list %+v, %v", page, err)
	}
	vl, err := c.Versions(ctx, "d/a")
	if err != nil || len(vl.Versions) != 2 || !vl.Versions[0].Deleted || vl.Versions[1].Expires == "" {
		t.Errorf("versions %+v, %v", vl, err)
	}
	want := []string{"/api/status?", "/ls?after=c&limit=10&prefix=d%2F", "/o/d/a?versions"}
	if strings.Join(queries, " ") != strings.Join(want, " ") {
		t.Errorf("requests %q, want %q", queries, want)
	}
}

func TestBadJSONAnswer(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"objects":`) })
	if _, err := c.List(context.Background(), "", "", 0); err == nil || !strings.Contains(err.Error(), "decode answer") {
		t.Errorf("err = %v", err)
	}
}
