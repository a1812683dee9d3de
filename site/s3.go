package site

// The S3 API (s3backend.go has the object operations): its own listener,
// AWS Signature Version 4 with access tokens as keys, and the same
// scopes as the HTTP API, decided here before the request reaches the
// protocol library (github.com/rclone/gofakes3, the fork `rclone serve
// s3` runs: XML, listing, ranges, conditions, checksums and streamed
// multipart parts, with the objects left to a backend).

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/rclone/gofakes3"
	"github.com/rclone/gofakes3/signature"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// s3SkewLimit is how far a request's signing time may be from the
// site's clock: AWS's own limit.
const s3SkewLimit = 15 * time.Minute

// s3Request is what the gate learned about a request, for the backend:
// who sent it, which listed names it may see, and the request itself
// (read-through asks the federation on its behalf).
type s3Request struct {
	p    principal
	a    *accessState
	keep func(string) bool // nil: every name
	r    *http.Request
	// served is the version a GET or HEAD of the latest answered
	// (s3ETagWriter completes its ETag).
	served *manifest.Manifest
}

type s3RequestKey struct{}

func s3From(ctx context.Context) *s3Request {
	if q, ok := ctx.Value(s3RequestKey{}).(*s3Request); ok {
		return q
	}
	return &s3Request{p: principal{}, a: &accessState{cfg: &Config{}}}
}

// startS3 starts the S3 listener when the config names one.
func (s *Site) startS3(cfg Config) error {
	if cfg.S3 == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.S3)
	if err != nil {
		return fmt.Errorf("listen for S3 on %s: %w (change s3 in %s, or skyfed site s3 --dir %s --listen ADDR)", cfg.S3, err, ConfigFile, s.dir)
	}
	s.s3Addr = ln.Addr().String()
	srv, tlsOn, err := s.serve("S3", ln, cfg, s.S3Handler())
	if err != nil {
		return err
	}
	s.s3Srv, s.s3TLS = srv, tlsOn
	s.log.Info("S3 API listening", "addr", s.s3Addr, "tls", s.s3TLS)
	return nil
}

// S3Addr returns the S3 listener's address ("" when off).
func (s *Site) S3Addr() string { return s.s3Addr }

// S3Handler serves the S3 API: the gate (signature, scope), then the
// protocol over the site's objects.
func (s *Site) S3Handler() http.Handler {
	fake := gofakes3.New(&s3Backend{s: s},
		gofakes3.WithHostBucket(false), // domains have dots: path style (virtual hosts break TLS names)
		gofakes3.WithTimeSkewLimit(s3SkewLimit),
		gofakes3.WithLogger(s3Logger{s.log}),
	)
	return s.s3Gate(fake.Server())
}

// s3OnLoopback reports whether the S3 listener is on loopback, where
// unsigned requests are let in as on the HTTP API; signed ones are still
// checked.
func (s *Site) s3OnLoopback() bool { return loopbackAddr(s.s3Addr) }

// s3Denial is a request refused before the protocol: HTTP status, S3
// error code and message.
type s3Denial struct {
	status    int
	code, msg string
}

// s3Gate authenticates a request by its signature and authorizes it by
// the token's scopes before the protocol sees it.
func (s *Site) s3Gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := s.access()
		a.open = false // on S3 a signature names its token even on loopback
		p, d := s.s3Authenticate(r)
		q := &s3Request{p: p, a: a, r: r}
		if d == nil {
			d = s.s3Authorize(r, q)
		}
		if d != nil {
			s.metrics.s3Denied.WithLabelValues(d.code).Inc()
			writeS3Error(w, r, d.status, d.code, d.msg)
			return
		}
		body := checkPayload
		if isAWSChunked(r) {
			body = func(r *http.Request) error {
				signer, err := s.chunkSigner(r, p)
				if err != nil {
					return err
				}
				return unchunkRequest(r, signer)
			}
		}
		if err := body(r); err != nil {
			var e gofakes3.Error
			errors.As(err, &e)
			writeS3Error(w, r, e.ErrorCode().Status(), string(e.ErrorCode()), err.Error())
			return
		}
		ctx := context.WithValue(r.Context(), s3RequestKey{}, q)
		if bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); r.Method == http.MethodPut && bucket != "" && key == "" && r.URL.RawQuery == "" {
			s.s3CreateBucket(w, r.WithContext(ctx), bucket)
			return
		}
		stripPartCounts(r.Header)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		ew := &s3ETagWriter{ResponseWriter: w, s: s, q: q}
		next.ServeHTTP(ew, r.WithContext(ctx))
		ew.complete() // a HEAD's headers go out after the handler returns
	})
}

// s3ETagWriter completes the ETag of a GET or HEAD of an object made by
// a multipart upload: the protocol library writes an object's ETag as
// the hex of its bytes (etagOf), and such an object's ETag has "-N"
// after them. The version is the one the backend served (the library
// gives versioned calls no context: those are looked up by their ID),
// and completes the ETag only if its bytes are the one written.
type s3ETagWriter struct {
	http.ResponseWriter
	s    *Site
	q    *s3Request
	done bool
}

func (w *s3ETagWriter) WriteHeader(code int) {
	w.complete()
	w.ResponseWriter.WriteHeader(code)
}

func (w *s3ETagWriter) Write(b []byte) (int, error) {
	w.complete()
	return w.ResponseWriter.Write(b)
}

func (w *s3ETagWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *s3ETagWriter) complete() {
	if w.done {
		return
	}
	w.done = true
	tag := w.Header().Get("ETag")
	if len(tag) != 2+2*md5.Size {
		return
	}
	m := w.q.served
	if v := w.q.r.URL.Query().Get("versionId"); m == nil && v != "" {
		m = w.s3Version(v)
	}
	if m != nil && `"`+hex.EncodeToString(etagOf(m))+`"` == tag {
		w.Header().Set("ETag", etag(m))
	}
}

// s3Version looks up version v of the request's object here, or nil.
func (w *s3ETagWriter) s3Version(v string) *manifest.Manifest {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(w.q.r.URL.Path, "/"), "/")
	name, err := naming.ParseName(bucket + "/" + key)
	if err != nil {
		return nil
	}
	stamp, err := manifest.ParseStamp(v)
	if err != nil {
		return nil
	}
	m, err := w.s.objects.Version(name, stamp)
	if err != nil {
		return nil
	}
	return m
}

// partCount is the "-N" of a multipart object's ETag in a condition.
var partCount = regexp.MustCompile(`([0-9a-fA-F]{32})-[0-9]+`)

// stripPartCounts drops the "-N" from the ETags in a request's
// conditions, which the protocol library compares with the hex of an
// object's ETag bytes (see s3ETagWriter).
func stripPartCounts(h http.Header) {
	for _, k := range []string{"If-Match", "If-None-Match", "X-Amz-Copy-Source-If-Match", "X-Amz-Copy-Source-If-None-Match"} {
		if v := h.Get(k); v != "" {
			h.Set(k, partCount.ReplaceAllString(v, "$1"))
		}
	}
}

// chunkSigner returns the verifier of r's chunk signatures when r sends
// a signed aws-chunked body (nil for an unsigned one).
func (s *Site) chunkSigner(r *http.Request, p principal) (*chunkSigner, error) {
	if !strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") {
		return nil, nil
	}
	if p.tok == nil {
		return nil, gofakes3.ErrorMessage(gofakes3.ErrInvalidRequest, "a signed aws-chunked body needs a signed request")
	}
	secret, _, ok := s.TokenSecret(p.tok.ID)
	if !ok {
		return nil, gofakes3.ErrorMessage(gofakes3.ErrInvalidRequest, "the request's key is gone")
	}
	return newChunkSigner(r, secret)
}

// s3CreateBucket answers CreateBucket here rather than in the library,
// whose bucket-name check refuses labels of two letters ("gloria.eu"):
// a bucket is a domain, so "creating" one this site may write under (or
// already holds) succeeds, as S3 answers its owner, and any other is
// refused.
func (s *Site) s3CreateBucket(w http.ResponseWriter, r *http.Request, bucket string) {
	ok, err := (&s3Backend{s: s}).BucketExists(r.Context(), bucket)
	switch {
	case err != nil:
		writeS3Error(w, r, http.StatusInternalServerError, "InternalError", err.Error())
	case !ok:
		writeS3Error(w, r, http.StatusForbidden, "AccessDenied",
			"buckets are the federation's domains: this site's key may not write under "+bucket+" (skyfed site trust on its peers decides who writes where)")
	default:
		w.Header().Set("Location", "/"+bucket)
		w.WriteHeader(http.StatusOK)
	}
}

// s3Signed reports whether r carries credentials: an Authorization
// header or a presigned URL's signature.
func s3Signed(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.URL.Query().Has("X-Amz-Signature") || r.URL.Query().Has("X-Amz-Credential")
}

// errSignatureMismatch is the answer to a wrong signature and to an
// unknown key alike.
const errSignatureMismatch = "SignatureDoesNotMatch"

// s3Authenticate checks r's signature against the secret of the access
// token its access key names. A key this site does not know (or whose
// token expired or was revoked) is answered exactly as a wrong
// signature, so keys cannot be probed. Unsigned requests are let in on
// loopback only, as on the HTTP API.
func (s *Site) s3Authenticate(r *http.Request) (principal, *s3Denial) {
	if !s3Signed(r) {
		if s.s3OnLoopback() {
			return principal{open: true}, nil
		}
		return principal{}, &s3Denial{http.StatusForbidden, "AccessDenied",
			"requests to this S3 endpoint must be signed with an access token as the key: skyfed site token create --dir DIR"}
	}
	var tok AccessToken
	var found bool
	code := signature.V4SignVerifyWithLookup(r, func(accessKey string) (string, bool) {
		secret, t, ok := s.TokenSecret(accessKey)
		tok, found = t, ok
		return secret, ok
	})
	if code == signature.ErrNone && found {
		return principal{tok: &tok}, nil
	}
	e := signature.GetAPIError(code)
	if code == signature.ErrNone || e.Code == "InvalidAccessKeyId" || e.Code == errSignatureMismatch {
		return principal{}, &s3Denial{http.StatusForbidden, errSignatureMismatch,
			"The request signature we calculated does not match the signature you provided. Check your key and signing method."}
	}
	return principal{}, &s3Denial{e.HTTPStatusCode, e.Code, e.Description}
}

// s3Authorize decides r by path-style bucket and key (bucket = domain,
// key = the rest of the name): reads of a name need read scope on it,
// writes write scope; listings keep only readable names; the bucket
// list and bucket-level reads need some credential.
func (s *Site) s3Authorize(r *http.Request, q *s3Request) *s3Denial {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	deny := func(d *denial) *s3Denial {
		if d == nil {
			return nil
		}
		return &s3Denial{http.StatusForbidden, "AccessDenied", d.msg}
	}
	switch {
	case bucket == "":
		if !q.p.authenticated() && len(q.a.cfg.Public) == 0 {
			return &s3Denial{http.StatusForbidden, "AccessDenied", "listing buckets needs an access token"}
		}
		return nil
	case key == "" && r.Method == http.MethodPost && !r.URL.Query().Has("delete"):
		// A browser form upload names its key in the body, where the
		// gate cannot see it: not served.
		return &s3Denial{http.StatusNotImplemented, "NotImplemented", "POST object (browser form uploads) is not served; use PUT"}
	case key == "":
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodPost {
			prefix := bucket + "/" + r.URL.Query().Get("prefix")
			keep, d := q.a.list(q.p, nil, prefix)
			q.keep = keep
			// Versions are listed without a filter (the library gives
			// that call no context): only a credential that may read
			// every name under the prefix may list them.
			if d == nil && keep != nil && r.URL.Query().Has("versions") && (q.p.tok == nil || !q.p.tok.mayReadUnder(prefix)) {
				return &s3Denial{http.StatusForbidden, "AccessDenied", "listing versions needs read scope on every name under " + prefix}
			}
			return deny(d)
		}
		if !q.p.all() && (q.p.tok == nil || !overlaps(bucket+"/", q.p.tok.Write)) {
			return &s3Denial{http.StatusForbidden, "AccessDenied", "this credential may not write in " + bucket}
		}
		return nil
	}
	name := bucket + "/" + key
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return deny(q.a.objectRead(q.p, nil, name, ""))
	}
	if src := r.Header.Get("X-Amz-Copy-Source"); src != "" {
		srcName, _, _ := strings.Cut(strings.TrimPrefix(src, "/"), "?")
		if u, err := url.PathUnescape(srcName); err == nil {
			srcName = u
		}
		if d := deny(q.a.objectRead(q.p, nil, srcName, "")); d != nil {
			return d
		}
	}
	return deny(q.a.objectWrite(q.p, nil, name))
}

// s3Error is the body of an S3 error answer.
type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(s3Error{Code: code, Message: msg, Resource: r.URL.Path, RequestID: w.Header().Get("x-amz-request-id")})
}

// s3Logger hands the library's log lines to the site's logger: its
// errors as warnings, the rest at debug level.
type s3Logger struct{ log *slog.Logger }

func (l s3Logger) Print(level gofakes3.LogLevel, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintln(v...))
	switch level {
	case gofakes3.LogErr:
		l.log.Warn("s3", "msg", msg)
	default:
		l.log.Debug("s3", "msg", msg)
	}
}
