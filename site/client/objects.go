package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MetaHeaderPrefix starts the header that carries one user metadata pair.
const MetaHeaderPrefix = "X-Skyfed-Meta-"

// PutOptions are the optional parts of a put.
type PutOptions struct {
	ContentType string            // default application/octet-stream
	Meta        map[string]string // user metadata, sent as X-Skyfed-Meta-<key>
	Expires     time.Duration     // the version expires this long after the put; 0 never
	WaitSites   int               // return once this many sites (the put's included) hold the version durably
	WaitTimeout time.Duration     // how long to wait for them; 0 the site's default
}

// query returns the put's URL query.
func (o PutOptions) query() string {
	q := url.Values{}
	if o.Expires > 0 {
		q.Set("expires", o.Expires.String())
	}
	if o.WaitSites > 1 {
		q.Set("wait_sites", strconv.Itoa(o.WaitSites))
	}
	if o.WaitTimeout > 0 {
		q.Set("timeout", o.WaitTimeout.String())
	}
	return q.Encode()
}

// PutResult is the site's answer to a put.
type PutResult struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Chunks  int    `json:"chunks"`
	// Manifest is the version's manifest ID, hex ("" from older sites):
	// what Held asks about.
	Manifest string `json:"manifest,omitempty"`
	// Confirmed counts the sites holding the version durably, when the
	// put waited for them (WaitSites).
	Confirmed int `json:"confirmed,omitempty"`
}

// Put streams body to the site as a new version of name. size is the body
// length, or -1 if unknown (the body is then sent chunked). The bytes are
// hashed as they are sent; an answer whose sha256 or size differs from
// what was sent is an error wrapping ErrVerify.
func (c *Client) Put(ctx context.Context, name string, body io.Reader, size int64, opts PutOptions) (PutResult, error) {
	res, err := c.put(ctx, name, body, size, opts)
	if err != nil {
		return PutResult{}, opError("put", name, err)
	}
	return res, nil
}

func (c *Client) put(ctx context.Context, name string, body io.Reader, size int64, opts PutOptions) (PutResult, error) {
	path, err := objectPath(name)
	if err != nil {
		return PutResult{}, err
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(body, h)}
	var rb io.Reader = cr
	if size == 0 {
		rb = http.NoBody
	}
	req, err := c.newRequest(ctx, http.MethodPut, path, opts.query(), rb)
	if err != nil {
		return PutResult{}, err
	}
	req.ContentLength = max(size, -1)
	ct := opts.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	req.Header.Set("Content-Type", ct)
	for k, v := range opts.Meta {
		if !validMetaKey(k) {
			return PutResult{}, fmt.Errorf("metadata key %q: use letters, digits and '-'", k)
		}
		req.Header.Set(MetaHeaderPrefix+k, v)
	}
	var res PutResult
	if err := c.doJSON(req, &res); err != nil {
		return PutResult{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if !strings.EqualFold(res.SHA256, sum) || res.Size != cr.n {
		return PutResult{}, fmt.Errorf("%w: sent %d bytes with sha256 %s, site stored %d bytes with sha256 %q",
			ErrVerify, cr.n, sum, res.Size, res.SHA256)
	}
	return res, nil
}

func validMetaKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// GetOptions select what a get returns.
type GetOptions struct {
	Version string // a version stamp; "" means the latest
	Range   string // an HTTP Range header value, e.g. "bytes=0-1023"
	Fresh   bool   // ask the federation for the newest version, not only this site
	SHA256  string // get the object with this whole-content SHA-256 instead of by name
}

// Object is a get's answer. The caller must close Body.
//
// When the site announced the object's SHA-256 (ETag) and the answer is
// the whole object, Body checks it: at the end of the stream it returns an
// error wrapping ErrVerify instead of io.EOF if the bytes do not match.
// Verified says whether that check is armed.
type Object struct {
	Body        io.ReadCloser
	Size        int64  // Content-Length, -1 if unknown
	SHA256      string // whole-object SHA-256 from the ETag, "" if none
	Version     string // X-Skyfed-Version
	ContentType string
	Partial     bool // a 206 answer to a Range request
	Verified    bool
	// Federation is how the site's lookup across the federation went,
	// nil if it asked none (the version was known there).
	Federation *Federation
}

// Get fetches name (or one version, or a range of it).
func (c *Client) Get(ctx context.Context, name string, opts GetOptions) (*Object, error) {
	obj, err := c.get(ctx, name, opts)
	if err != nil {
		if name == "" {
			name = "sha256 " + opts.SHA256
		}
		return nil, opError("get", name, err)
	}
	return obj, nil
}

func (c *Client) get(ctx context.Context, name string, opts GetOptions) (*Object, error) {
	path, err := objectPath(name)
	if opts.SHA256 != "" {
		path, err = "/sha256/"+url.PathEscape(strings.ToLower(opts.SHA256)), nil
	}
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	if opts.Version != "" {
		v.Set("version", opts.Version)
	}
	if opts.Fresh {
		v.Set("fresh", "1")
	}
	req, err := c.newRequest(ctx, http.MethodGet, path, v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if opts.Range != "" {
		req.Header.Set("Range", opts.Range)
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	obj := &Object{
		Body:        resp.Body,
		Size:        resp.ContentLength,
		SHA256:      ParseETag(resp.Header.Get("ETag")),
		Version:     resp.Header.Get("X-Skyfed-Version"),
		ContentType: resp.Header.Get("Content-Type"),
		Partial:     resp.StatusCode == http.StatusPartialContent,
		Federation:  federationOf(resp.Header),
	}
	if !obj.Partial && opts.Range == "" && obj.Version != "" && obj.Size > 0 && opts.SHA256 == "" {
		obj.Body = &resumingReader{c: c, ctx: ctx, path: path, version: obj.Version, etag: resp.Header.Get("ETag"), size: obj.Size, rc: resp.Body}
	}
	if obj.SHA256 != "" && !obj.Partial && opts.Range == "" {
		obj.Body = &verifyingReader{rc: obj.Body, h: sha256.New(), want: obj.SHA256}
		obj.Verified = true
	}
	return obj, nil
}

// maxResumes bounds how often one get picks a broken transfer up again.
const maxResumes = 3

// resumingReader picks up a whole-object transfer that broke off (the
// connection dropped, or the site aborted it on a chunk it could not
// read) with a range request for the rest of the same version. The site
// then knows before the first byte whether it can go on: a damaged
// chunk it could not repair is answered 502 chunk_corrupt, which ends
// the read with an error wrapping ErrVerify and the *APIError.
type resumingReader struct {
	c       *Client
	ctx     context.Context
	path    string
	version string
	etag    string
	size    int64
	rc      io.ReadCloser
	got     int64
	resumes int
	broken  error // the transfer broke after the bytes last returned
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		err := r.broken
		n := 0
		if err == nil {
			n, err = r.rc.Read(p)
			r.got += int64(n)
			if err == nil {
				return n, nil
			}
			if errors.Is(err, io.EOF) {
				if r.got >= r.size {
					return n, io.EOF
				}
				err = io.ErrUnexpectedEOF
			}
			if n > 0 {
				r.broken = err // the bytes first; the next Read picks the transfer up
				return n, nil
			}
		}
		r.broken = nil
		if r.ctx.Err() != nil || r.resumes >= maxResumes {
			return 0, err
		}
		if rerr := r.resume(); rerr != nil {
			var ae *APIError
			if errors.As(rerr, &ae) && ae.Status == http.StatusBadGateway && ae.Message == "chunk_corrupt" {
				return 0, fmt.Errorf("%w: the site could not produce the object from byte %d on: %w", ErrVerify, r.got, rerr)
			}
			return 0, fmt.Errorf("%w (picking the transfer up again failed: %v)", err, rerr)
		}
	}
}

// resume asks for the rest of the version from where the transfer broke.
func (r *resumingReader) resume() error {
	r.resumes++
	_ = r.rc.Close()
	r.rc = io.NopCloser(strings.NewReader(""))
	q := url.Values{}
	q.Set("version", r.version)
	req, err := r.c.newRequest(r.ctx, http.MethodGet, r.path, q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", r.got))
	if r.etag != "" {
		req.Header.Set("If-Range", r.etag)
	}
	resp, err := r.c.do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return fmt.Errorf("the site answered %s to the rest of the transfer", resp.Status)
	}
	r.rc = resp.Body
	return nil
}

func (r *resumingReader) Close() error { return r.rc.Close() }

// ParseETag returns the lower-case hex SHA-256 in a strong ETag
// ("<64 hex>"), or "" if the value is not one.
func ParseETag(v string) string {
	if len(v) != 66 || v[0] != '"' || v[65] != '"' {
		return ""
	}
	s := strings.ToLower(v[1:65])
	if _, err := hex.DecodeString(s); err != nil {
		return ""
	}
	return s
}

// verifyingReader hashes what it reads and checks the sum at EOF.
type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("%w: bytes hash to sha256 %s, site announced %s", ErrVerify, got, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }

// Version is one version of an object, as listed by Versions.
type Version struct {
	Version string `json:"version"`
	Origin  string `json:"origin"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Deleted bool   `json:"deleted"`
	Expires string `json:"expires"` // RFC 3339, or "" for never
	// Manifest is the version's manifest ID, hex ("" from older sites).
	Manifest string `json:"manifest,omitempty"`
}

// VersionList is the answer of Versions: newest first.
type VersionList struct {
	Name     string    `json:"name"`
	Latest   string    `json:"latest"`
	Versions []Version `json:"versions"`
	// Federation is how the site's lookup across the federation went,
	// nil if it asked none.
	Federation *Federation `json:"-"`
}

// Versions lists every version of name the site knows, newest first.
func (c *Client) Versions(ctx context.Context, name string) (VersionList, error) {
	return c.VersionsFresh(ctx, name, false)
}

// VersionsFresh lists every version of name; with fresh, also those any
// reachable site of the federation knows.
func (c *Client) VersionsFresh(ctx context.Context, name string, fresh bool) (VersionList, error) {
	return c.VersionsAsOf(ctx, name, fresh, "")
}

// VersionsAsOf is VersionsFresh keeping the versions stamped at or
// before asOf (an RFC 3339 time or a version stamp; "" all).
func (c *Client) VersionsAsOf(ctx context.Context, name string, fresh bool, asOf string) (VersionList, error) {
	path, err := objectPath(name)
	q := "versions"
	if fresh {
		q += "&fresh=1"
	}
	if asOf != "" {
		q += "&" + url.Values{"as_of": {asOf}}.Encode()
	}
	if err == nil {
		var vl VersionList
		if vl, err = c.versions(ctx, path, q); err == nil {
			return vl, nil
		}
	}
	return VersionList{}, opError("versions", name, err)
}

func (c *Client) versions(ctx context.Context, path, query string) (VersionList, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return VersionList{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return VersionList{}, err
	}
	defer resp.Body.Close()
	var vl VersionList
	if err := decodeJSON(io.LimitReader(resp.Body, maxJSONBytes), &vl); err != nil {
		return VersionList{}, err
	}
	vl.Federation = federationOf(resp.Header)
	return vl, nil
}

// DeleteResult is the answer to a delete: the tombstone's version.
type DeleteResult struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Delete writes a tombstone version for name.
func (c *Client) Delete(ctx context.Context, name string) (DeleteResult, error) {
	path, err := objectPath(name)
	if err == nil {
		var req *http.Request
		req, err = c.newRequest(ctx, http.MethodDelete, path, "", nil)
		if err == nil {
			var res DeleteResult
			if err = c.doJSON(req, &res); err == nil {
				return res, nil
			}
		}
	}
	return DeleteResult{}, opError("delete", name, err)
}

// Restore makes version of name the latest again: a new version over
// its bytes, made without moving data. It answers like a put.
func (c *Client) Restore(ctx context.Context, name, version string) (PutResult, error) {
	path, err := objectPath(name)
	if err != nil {
		return PutResult{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, path, url.Values{"restore": {version}}.Encode(), nil)
	if err != nil {
		return PutResult{}, err
	}
	var res PutResult
	if err := c.doJSON(req, &res); err != nil {
		return PutResult{}, fmt.Errorf("restore %s version %s: %w", name, version, err)
	}
	return res, nil
}
