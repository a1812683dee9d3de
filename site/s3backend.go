package site

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rclone/gofakes3"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// s3Backend serves the S3 protocol's object operations over the site's
// names: bucket = domain, key = the rest of the name. Reads of a name
// this site does not hold yet go across the federation as skyfed get
// does; listings list what this site knows.
type s3Backend struct{ s *Site }

// metaMD5 is the manifest meta key of the MD5 an S3 put computed
// (base64, as a Content-MD5 header carries it): the ETag S3 clients
// check. Versions put over the REST API have none and get their
// SHA-256 in hex as ETag (64 digits, which no client takes for an MD5).
const metaMD5 = "content-md5"

// s3MetaHeaders are the standard headers an S3 put keeps with the object
// (gofakes3 passes these and x-amz-meta-* on); they are kept in the
// manifest's meta under their lower-case names, Content-Type in its own
// field.
var s3MetaHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires", "X-Amz-Website-Redirect-Location"}

func s3Name(bucket, key string) (naming.Name, error) {
	n, err := naming.ParseName(bucket + "/" + key)
	if err != nil {
		return naming.Name{}, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, err.Error())
	}
	return n, nil
}

// s3Err turns a site error into the S3 error a client expects.
func s3Err(bucket, key string, err error) error {
	var proto gofakes3.Error // the library's own, from reading the body: BadDigest, IncompleteBody...
	switch {
	case err == nil:
		return nil
	case errors.As(err, &proto):
		return proto
	case errors.Is(err, naming.ErrNotFound), errors.Is(err, naming.ErrDeleted):
		return gofakes3.KeyNotFound(key)
	case errors.Is(err, naming.ErrForbidden), errors.Is(err, naming.ErrUntrusted):
		return gofakes3.ErrorMessage("AccessDenied", err.Error())
	case errors.Is(err, ErrClockAhead):
		return gofakes3.ErrorMessage(gofakes3.ErrSlowDown, err.Error())
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, ErrDiskFull):
		return gofakes3.ErrorMessage(gofakes3.ErrSlowDown, err.Error()+" (skyfed site gc frees space)")
	case errors.Is(err, context.Canceled):
		return gofakes3.ErrorMessage(gofakes3.ErrIncompleteBody, err.Error())
	}
	return fmt.Errorf("%s/%s: %w", bucket, key, err)
}

// mayRead and mayWrite repeat the gate's decision where the library
// hands the backend a name: a second lock, so that a route the gate did
// not foresee still meets the token's scopes (a request without the
// gate's context is refused).
func mayRead(ctx context.Context, bucket, key string) error {
	q := s3From(ctx)
	if d := q.a.objectRead(q.p, nil, bucket+"/"+key, ""); d != nil {
		return gofakes3.ErrorMessage("AccessDenied", d.msg)
	}
	return nil
}

func mayWrite(ctx context.Context, bucket, key string) error {
	q := s3From(ctx)
	if d := q.a.objectWrite(q.p, nil, bucket+"/"+key); d != nil {
		return gofakes3.ErrorMessage("AccessDenied", d.msg)
	}
	return nil
}

// writable is the name bucket/key, if the request may write it.
func writable(ctx context.Context, bucket, key string) (naming.Name, error) {
	if err := mayWrite(ctx, bucket, key); err != nil {
		return naming.Name{}, err
	}
	return s3Name(bucket, key)
}

// request is the HTTP request the gate saw, for what asks the
// federation on its behalf (a bare one for the library's calls that
// carry no context).
func (q *s3Request) request(ctx context.Context) *http.Request {
	if q.r != nil {
		return q.r
	}
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	return r
}

// keptHeader reports whether an S3 put's header k (canonical) is kept
// with the object, in its manifest's meta.
func keptHeader(k string) bool {
	return strings.HasPrefix(k, "X-Amz-Meta-") || strings.HasPrefix(k, "X-Amz-Checksum-") || slices.Contains(s3MetaHeaders, k)
}

// bucket answers NoSuchBucket for a domain this site neither holds nor
// may write.
func (b *s3Backend) bucket(ctx context.Context, bucket string) error {
	ok, err := b.BucketExists(ctx, bucket)
	if err == nil && !ok {
		err = gofakes3.BucketNotFound(bucket)
	}
	return err
}

// etagOf returns the bytes whose hex is m's ETag, or its ETag before
// "-N" for an object made by a multipart upload (see etag): the MD5 an
// S3 put computed, the MD5 of the parts' MD5s, or for versions put over
// the REST API their SHA-256. The protocol library writes ETags from
// these bytes; the gate adds the "-N" (s3ETagWriter).
func etagOf(m *manifest.Manifest) []byte {
	if tag, _, ok := strings.Cut(multipartETag(m), "-"); ok {
		if b, err := hex.DecodeString(tag); err == nil && len(b) == md5.Size {
			return b
		}
	}
	for _, kv := range m.Meta {
		if kv.Key == metaMD5 {
			if b, err := base64.StdEncoding.DecodeString(kv.Value); err == nil && len(b) == md5.Size {
				return b
			}
		}
	}
	return m.SHA256[:]
}

// multipartETag returns the ETag of an object made by a multipart
// upload ("" for other objects).
func multipartETag(m *manifest.Manifest) string {
	for _, kv := range m.Meta {
		if kv.Key == metaMultipartETag {
			return kv.Value
		}
	}
	return ""
}

// etag returns m's ETag as S3 answers it, quoted.
func etag(m *manifest.Manifest) string {
	if tag := multipartETag(m); tag != "" && len(etagOf(m)) == md5.Size {
		return `"` + tag + `"`
	}
	return `"` + hex.EncodeToString(etagOf(m)) + `"`
}

// s3Metadata is what a GET or HEAD answers of m besides its bytes.
func s3Metadata(m *manifest.Manifest) map[string]string {
	out := map[string]string{"Last-Modified": m.Stamp.Time().UTC().Format(http.TimeFormat)}
	ct := m.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	out["Content-Type"] = ct
	for _, kv := range m.Meta {
		switch k := textproto.CanonicalMIMEHeaderKey(kv.Key); {
		case kv.Key == metaMD5, kv.Key == metaMultipartETag: // in the ETag
		case keptHeader(k):
			out[k] = kv.Value
		default: // meta put over the REST API
			out["X-Amz-Meta-"+kv.Key] = kv.Value
		}
	}
	return out
}

func (b *s3Backend) ListBuckets(ctx context.Context) ([]gofakes3.BucketInfo, error) {
	q := s3From(ctx)
	var out []gofakes3.BucketInfo
	seen := map[string]bool{}
	add := func(domain string, at time.Time) {
		if seen[domain] {
			return
		}
		seen[domain] = true
		if q.p.all() || q.p.tok != nil && (q.p.tok.mayReadUnder(domain+"/") || overlaps(domain+"/", q.p.tok.Write)) || overlaps(domain+"/", q.a.cfg.Public) {
			out = append(out, gofakes3.BucketInfo{Name: domain, CreationDate: gofakes3.NewContentTime(at)})
		}
	}
	after := ""
	for {
		page, _, err := b.s.objects.List("", after, 1)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		domain, _, _ := strings.Cut(page[0].Name, "/")
		add(domain, page[0].Stamp.Time())
		after = domain + "/\xff" // the next domain
	}
	if d := b.s.Config().Domain; d != "" {
		add(d, b.s.started)
	}
	slices.SortFunc(out, func(x, y gofakes3.BucketInfo) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

func (b *s3Backend) BucketExists(ctx context.Context, bucket string) (bool, error) {
	if _, err := naming.ParseName(bucket + "/x"); err != nil {
		return false, nil
	}
	if bucket == b.s.Config().Domain || b.s.objects.MayPut(bucket) == nil {
		return true, nil
	}
	page, _, err := b.s.objects.List(bucket+"/", "", 1)
	return len(page) > 0, err
}

func (b *s3Backend) CreateBucket(ctx context.Context, bucket string) error {
	if _, err := naming.ParseName(bucket + "/x"); err != nil {
		return gofakes3.ResourceError(gofakes3.ErrInvalidBucketName, bucket)
	}
	if err := b.s.objects.MayPut(bucket); err != nil {
		return gofakes3.ErrorMessage("AccessDenied", fmt.Sprintf("buckets are domains: this site's key may not write under %s (%v)", bucket, err))
	}
	return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, bucket)
}

func (b *s3Backend) DeleteBucket(ctx context.Context, bucket string) error {
	return gofakes3.ErrorMessage(gofakes3.ErrNotImplemented, "buckets are domains of the federation; delete their objects instead")
}

// ListBucket lists a bucket's names under the prefix, rolled up at the
// delimiter, a page at a time after the marker (ListObjectsV2's
// continuation token and start-after are turned into markers by the
// library).
func (b *s3Backend) ListBucket(ctx context.Context, bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if err := b.bucket(ctx, bucket); err != nil {
		return nil, err
	}
	keep := s3From(ctx).keep
	var pfx, delim string
	if prefix != nil {
		pfx, delim = prefix.Prefix, prefix.Delimiter
		if !prefix.HasDelimiter {
			delim = ""
		}
	}
	base := bucket + "/"
	after := ""
	if page.HasMarker {
		after = base + page.Marker
	}
	limit := page.MaxKeys
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	list := gofakes3.NewObjectList()
	var n int64
	last := ""
	for {
		pg, next, err := b.s.listKept(base+pfx, after, 1000, keep, nil)
		if err != nil {
			return nil, err
		}
		for _, m := range pg {
			key := strings.TrimPrefix(m.Name, base)
			if after != "" && m.Name <= after {
				continue // inside a common prefix already listed
			}
			entry, isPrefix := key, false
			if delim != "" {
				if i := strings.Index(key[len(pfx):], delim); i >= 0 {
					entry, isPrefix = key[:len(pfx)+i+len(delim)], true
				}
			}
			if n == limit {
				list.IsTruncated, list.NextMarker = true, last
				return list, nil
			}
			if isPrefix {
				list.AddPrefix(entry)
				after = base + entry + "\xff" // past every name under it
			} else {
				list.Add(&gofakes3.Content{Key: key, LastModified: gofakes3.NewContentTime(m.Stamp.Time()),
					ETag: etag(m), Size: m.Size, StorageClass: gofakes3.StorageStandard})
				after = m.Name
			}
			last = entry
			n++
		}
		if next == "" {
			return list, nil
		}
		if after < next {
			after = next
		}
	}
}

// resolve finds the newest version of bucket/key, asking the
// federation when this site does not know the name.
func (b *s3Backend) resolve(ctx context.Context, bucket, key string) (*manifest.Manifest, naming.Name, error) {
	if err := mayRead(ctx, bucket, key); err != nil {
		return nil, naming.Name{}, err
	}
	name, err := s3Name(bucket, key)
	if err != nil {
		return nil, name, err
	}
	q := s3From(ctx)
	m, err := b.s.latest(q.request(ctx), name)
	if err != nil {
		return nil, name, s3Err(bucket, key, err)
	}
	q.served = m
	return m, name, nil
}

func (b *s3Backend) HeadObject(ctx context.Context, bucket, key string) (*gofakes3.Object, error) {
	m, _, err := b.resolve(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return &gofakes3.Object{Name: key, Metadata: s3Metadata(m), Size: m.Size, Contents: noBody{}, Hash: etagOf(m), VersionID: gofakes3.VersionID(m.Version())}, nil
}

func (b *s3Backend) GetObject(ctx context.Context, bucket, key string, rnge *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	m, _, err := b.resolve(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return b.objectOf(ctx, bucket, key, m, rnge)
}

// objectOf answers a GET of version m: its bytes in the range asked,
// streamed chunk by chunk (read-through for chunks not here yet).
func (b *s3Backend) objectOf(ctx context.Context, bucket, key string, m *manifest.Manifest, rnge *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	or, err := rnge.Range(m.Size)
	if err != nil {
		return nil, err
	}
	start, length := int64(0), m.Size
	if or != nil {
		start, length = or.Start, or.Length
	}
	rt := &readThrough{ctx: ctx, s: b.s, name: m.Name + "@" + m.Version()}
	unpin := b.s.chunks.Pin(m.Chunks) // no garbage collection under a read
	if err := b.s.primeRead(s3From(ctx).request(ctx), m, rt); err != nil {
		unpin()
		return nil, s3Err(bucket, key, err)
	}
	body := &s3Body{r: naming.NewReader(rt, m, start, length), unpin: unpin, s: b.s}
	return &gofakes3.Object{Name: key, Metadata: s3Metadata(m), Size: m.Size, Contents: body, Hash: etagOf(m), Range: or,
		VersionID: gofakes3.VersionID(m.Version())}, nil
}

// s3Body streams an object's bytes and lets its chunks go when closed.
type s3Body struct {
	r     io.Reader
	unpin func()
	s     *Site
	n     int64
}

func (b *s3Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *s3Body) Close() error {
	if b.unpin != nil {
		b.unpin()
		b.unpin = nil
		b.s.metrics.servedBytes.Add(float64(b.n))
	}
	return nil
}

type noBody struct{}

func (noBody) Read([]byte) (int, error) { return 0, io.EOF }
func (noBody) Close() error             { return nil }

// putOptionsS3 keeps what an S3 put says of the object: its content
// type, x-amz-meta-* pairs and the standard headers S3 keeps, and (once
// the body is read) the MD5 its ETag is.
func putOptionsS3(meta map[string]string, sum hash.Hash) (naming.PutOptions, error) {
	var opts naming.PutOptions
	for k, v := range meta {
		switch k = textproto.CanonicalMIMEHeaderKey(k); {
		case k == "Content-Type":
			opts.ContentType = v
		case k == "Last-Modified":
		case keptHeader(k):
			opts.Meta = append(opts.Meta, manifest.Meta{Key: strings.ToLower(k), Value: v})
		}
	}
	slices.SortFunc(opts.Meta, func(a, b manifest.Meta) int { return strings.Compare(a.Key, b.Key) })
	if len(opts.Meta) >= 64 {
		return opts, gofakes3.ErrorMessage(gofakes3.ErrMetadataTooLarge, "at most 63 metadata pairs")
	}
	if sum != nil {
		opts.MetaAfter = func() []manifest.Meta {
			return []manifest.Meta{{Key: metaMD5, Value: base64.StdEncoding.EncodeToString(sum.Sum(nil))}}
		}
	}
	return opts, nil
}

func (b *s3Backend) PutObject(ctx context.Context, bucket, key string, meta map[string]string, input io.Reader, size int64) (gofakes3.PutObjectResult, error) {
	name, err := writable(ctx, bucket, key)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	if err := b.s.mayPut(); err != nil {
		return gofakes3.PutObjectResult{}, s3Err(bucket, key, err)
	}
	// The library hashes the body with MD5 too (for the ETag it answers),
	// but out of reach: the manifest is signed with this one.
	sum := md5.New()
	opts, err := putOptionsS3(meta, sum)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	m, err := b.s.put(ctx, name, io.TeeReader(input, sum), opts)
	if err != nil {
		return gofakes3.PutObjectResult{}, s3Err(bucket, key, err)
	}
	b.s.metrics.s3Puts.Inc()
	return gofakes3.PutObjectResult{ETag: etag(m), VersionID: gofakes3.VersionID(m.Version())}, nil
}

func (b *s3Backend) DeleteObject(ctx context.Context, bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	name, err := writable(ctx, bucket, key)
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, err
	}
	m, err := b.s.remove(ctx, name)
	if errors.Is(err, naming.ErrNotFound) || errors.Is(err, naming.ErrDeleted) {
		return gofakes3.ObjectDeleteResult{}, nil // S3 answers a delete of nothing as done
	}
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, s3Err(bucket, key, err)
	}
	return gofakes3.ObjectDeleteResult{IsDeleteMarker: true, VersionID: gofakes3.VersionID(m.Version())}, nil
}

func (b *s3Backend) DeleteMulti(ctx context.Context, bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	q := s3From(ctx)
	var res gofakes3.MultiDeleteResult
	for _, key := range keys {
		if d := q.a.objectWrite(q.p, nil, bucket+"/"+key); d != nil {
			res.Error = append(res.Error, gofakes3.ErrorResult{Key: key, Code: "AccessDenied", Message: d.msg})
			continue
		}
		if _, err := b.DeleteObject(ctx, bucket, key); err != nil {
			res.Error = append(res.Error, gofakes3.ErrorResultFromError(err))
			res.Error[len(res.Error)-1].Key = key
			continue
		}
		res.Deleted = append(res.Deleted, gofakes3.ObjectID{Key: key})
	}
	return res, nil
}

// CopyObject makes a new version of the destination over the source's
// chunks: no byte is read or written (the source's MD5 stays its ETag).
func (b *s3Backend) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	dst, err := writable(ctx, dstBucket, dstKey)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	src, _, err := b.resolve(ctx, srcBucket, srcKey) // checks read scope on the source
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	if err := b.s.checkClock(); err != nil {
		return gofakes3.CopyObjectResult{}, s3Err(dstBucket, dstKey, err)
	}
	opts, err := putOptionsS3(meta, nil)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	// The bytes are the source's, so is their ETag.
	opts.MetaAfter = func() []manifest.Meta {
		return slices.DeleteFunc(slices.Clone(src.Meta), func(kv manifest.Meta) bool { return kv.Key != metaMD5 && kv.Key != metaMultipartETag })
	}
	m, err := b.s.objects.Copy(ctx, src, dst, opts)
	if err != nil {
		return gofakes3.CopyObjectResult{}, s3Err(dstBucket, dstKey, err)
	}
	b.s.metrics.ingestObjs.Inc()
	return gofakes3.CopyObjectResult{ETag: etag(m), LastModified: gofakes3.NewContentTime(m.Stamp.Time())}, nil
}
