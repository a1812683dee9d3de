// Package bucket keeps a site's packs as objects of an S3 bucket (Ceph
// RGW, SeaweedFS, MinIO, Garage, AWS): a chunk.Packs whose syncs seal
// packs. A pack is spooled to a local file while the Store appends to
// it and PUT whole, with a trailer that lists its records, at its first
// sync, so the bytes a commit waits for are in the bucket when the
// commit is acknowledged, and commits that overlap share one PUT. Reads
// are ranged GETs. The cluster's own replication is the durability;
// the bucket is the one place the site's payload lives.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/skyfed/skyfed/chunk"
)

// Config says which bucket and how to reach it.
type Config struct {
	Bucket   string
	Prefix   string // keys start with it ("" or ending in no slash)
	Endpoint string // http(s)://host:port; "" → AWS's
	Region   string // "" → us-east-1
	// AccessKey and SecretKey, when set, are the credentials (from
	// skyfed.toml); otherwise the AWS SDK's usual chain (AWS_ACCESS_KEY_ID
	// and friends, ~/.aws/credentials).
	AccessKey, SecretKey string
	// SpoolDir holds packs being written until their PUT (created).
	SpoolDir string
	// Timeout bounds one request; 0 → 2 minutes.
	Timeout time.Duration
}

// ErrBadURL says a store URL is not s3://BUCKET[/PREFIX][?endpoint=URL&region=R].
var ErrBadURL = errors.New("bad bucket URL")

// ParseURL reads s3://BUCKET/PREFIX?endpoint=URL&region=R.
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Config{}, fmt.Errorf("%w: %q: want s3://BUCKET/PREFIX?endpoint=URL&region=R", ErrBadURL, s)
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("%w: credentials do not go in the URL: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or skyfed.toml", ErrBadURL)
	}
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	q := u.Query()
	for k := range q {
		if k != "endpoint" && k != "region" {
			return Config{}, fmt.Errorf("%w: unknown parameter %q (endpoint, region)", ErrBadURL, k)
		}
	}
	c.Endpoint, c.Region = q.Get("endpoint"), q.Get("region")
	if c.Endpoint != "" {
		e, err := url.Parse(c.Endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return Config{}, fmt.Errorf("%w: endpoint %q: want http(s)://HOST:PORT", ErrBadURL, c.Endpoint)
		}
	}
	return c, nil
}

// URL returns the store URL of c, without credentials, as a person
// writes it (the endpoint not escaped).
func (c Config) URL() string {
	u := "s3://" + c.Bucket
	if c.Prefix != "" {
		u += "/" + c.Prefix
	}
	var q []string
	if c.Endpoint != "" {
		q = append(q, "endpoint="+c.Endpoint)
	}
	if c.Region != "" {
		q = append(q, "region="+c.Region)
	}
	if len(q) > 0 {
		u += "?" + strings.Join(q, "&")
	}
	return u
}

// Packs are the packs in one bucket under one prefix.
type Packs struct {
	cfg       Config
	client    *s3.Client
	transport *http.Transport
	stats     Stats
	lease     atomic.Pointer[Lease] // set by AcquireLease: writes need it
}

// fenced returns the context a write runs in: bounded to end before the
// lease could expire, or an error (ErrFenced) when this node no longer
// holds it. Without a lease taken (tests, tools that only read), writes
// are not fenced.
func (p *Packs) fenced(ctx context.Context) (context.Context, context.CancelFunc, error) {
	l := p.lease.Load()
	if l == nil {
		return ctx, func() {}, nil
	}
	if err := l.Check(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.margin())
	return ctx, cancel, nil
}

// Close drops the idle connections to the bucket (the packs stay usable:
// a later request opens a new one).
func (p *Packs) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}

// Stats counts the bucket's requests, for metrics and the page.
type Stats struct {
	Requests, Errors   atomic.Int64
	BytesUp, BytesDown atomic.Int64
	LatencyNanos       atomic.Int64 // summed over requests
	Puts, Gets, Lists  atomic.Int64
	Deletes, Heads     atomic.Int64
	lastErrMu          sync.Mutex
	lastErr            string
	lastErrAt          time.Time
	_                  struct{}
}

// LastError returns the last request error and when, "" if none.
func (s *Stats) LastError() (string, time.Time) {
	s.lastErrMu.Lock()
	defer s.lastErrMu.Unlock()
	return s.lastErr, s.lastErrAt
}

// New returns the packs of cfg. It checks the bucket answers (a HEAD of
// it) so a wrong endpoint or credentials fail here, clearly.
func New(ctx context.Context, cfg Config) (*Packs, error) {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.SpoolDir == "" {
		return nil, errors.New("bucket packs: no spool dir")
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("bucket packs: spool dir: %w", err)
	}
	var opts []func(*config.LoadOptions) error
	opts = append(opts, config.WithRegion(cfg.Region))
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("bucket packs: AWS config: %w", err)
	}
	p := &Packs{cfg: cfg, transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64,
		IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: cfg.Timeout}}
	p.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = true
		// Packs carry their own checksums (record CRCs, the trailer's
		// SHA-256); clusters differ in the S3 checksum headers they send.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		// A volume server restarting, a gateway overloaded: retried with
		// backoff for about a minute before a put or read fails.
		o.Retryer = retry.NewStandard(func(ro *retry.StandardOptions) {
			ro.MaxAttempts = 10
			ro.MaxBackoff = 8 * time.Second
		})
		o.HTTPClient = &http.Client{Transport: p.transport}
	}, func(o *s3.Options) {
		// The body is not hashed a second time to sign the request: the
		// SDK's CRC32 of it goes with the request (the cluster checks it)
		// and the packs carry their own checksums; SigV4 still signs the
		// headers.
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	})
	if err := p.do(ctx, &p.stats.Heads, func(ctx context.Context) error {
		_, err := p.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)})
		return err
	}); err != nil {
		p.Close()
		return nil, fmt.Errorf("bucket %s at %s: %w", cfg.Bucket, endpointName(cfg), err)
	}
	return p, nil
}

func endpointName(cfg Config) string {
	if cfg.Endpoint == "" {
		return "AWS"
	}
	return cfg.Endpoint
}

// Stats returns the request counters.
func (p *Packs) Stats() *Stats { return &p.stats }

// Client returns the S3 client (for the lease and the rebuild).
func (p *Packs) Client() *s3.Client { return p.client }

// Config returns the configuration, credentials included: never log it.
func (p *Packs) Config() Config { return p.cfg }

// Where names the bucket and prefix (no credentials).
func (p *Packs) Where() string { return p.cfg.URL() }

// SealOnSync is true: an object is written whole.
func (p *Packs) SealOnSync() bool { return true }

// Key returns the object key of a name under the prefix.
func (p *Packs) Key(name string) string {
	if p.cfg.Prefix == "" {
		return name
	}
	return p.cfg.Prefix + "/" + name
}

func (p *Packs) packKey(num uint32) string { return p.Key("packs/" + chunk.PackName(num)) }

// do runs one request with the timeout, counting it.
func (p *Packs) do(ctx context.Context, kind *atomic.Int64, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	p.stats.Requests.Add(1)
	kind.Add(1)
	p.stats.LatencyNanos.Add(int64(time.Since(start)))
	if err != nil && !isNotFound(err) {
		p.stats.Errors.Add(1)
		p.stats.lastErrMu.Lock()
		p.stats.lastErr, p.stats.lastErrAt = err.Error(), time.Now()
		p.stats.lastErrMu.Unlock()
	}
	return err
}

// isNotFound reports a 404 of any S3 flavour.
func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "404":
			return true
		}
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// Create starts pack num in a spool file; nothing reaches the bucket
// before its Sync.
func (p *Packs) Create(num uint32) (chunk.PackWriter, error) {
	f, err := os.CreateTemp(p.cfg.SpoolDir, chunk.PackName(num)+".*")
	if err != nil {
		return nil, fmt.Errorf("spool pack %s: %w", chunk.PackName(num), err)
	}
	return &writer{p: p, num: num, f: f}, nil
}

// Open returns a reader of pack num after checking it is there.
func (p *Packs) Open(num uint32) (chunk.PackReader, error) {
	var size int64
	err := p.do(context.Background(), &p.stats.Heads, func(ctx context.Context) error {
		out, err := p.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(p.packKey(num))})
		if err == nil {
			size = aws.ToInt64(out.ContentLength)
		}
		return err
	})
	if isNotFound(err) {
		return nil, fmt.Errorf("pack %s in %s: %w", chunk.PackName(num), p.Where(), chunk.ErrPackMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("open pack %s in %s: %w", chunk.PackName(num), p.Where(), err)
	}
	return &reader{p: p, key: p.packKey(num), size: size}, nil
}

// Remove deletes pack num's object.
func (p *Packs) Remove(num uint32) error {
	ctx, cancel, err := p.fenced(context.Background())
	if err != nil {
		return fmt.Errorf("remove pack %s in %s: %w", chunk.PackName(num), p.Where(), err)
	}
	defer cancel()
	err = p.do(ctx, &p.stats.Deletes, func(ctx context.Context) error {
		_, err := p.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(p.packKey(num))})
		return err
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("remove pack %s in %s: %w", chunk.PackName(num), p.Where(), err)
	}
	return nil
}

// List returns every pack object's size by number.
func (p *Packs) List() (map[uint32]int64, error) {
	sizes := map[uint32]int64{}
	prefix := p.Key("packs/")
	err := p.list(context.Background(), prefix, func(key string, size int64) {
		if num, ok := chunk.ParsePackName(strings.TrimPrefix(key, prefix)); ok {
			sizes[num] = size
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list packs in %s: %w", p.Where(), err)
	}
	return sizes, nil
}

// list calls fn with the key and size of every object under prefix, a
// page of the listing at a time.
func (p *Packs) list(ctx context.Context, prefix string, fn func(key string, size int64)) error {
	pages := s3.NewListObjectsV2Paginator(p.client, &s3.ListObjectsV2Input{Bucket: aws.String(p.cfg.Bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		var out *s3.ListObjectsV2Output
		err := p.do(ctx, &p.stats.Lists, func(ctx context.Context) error {
			var err error
			out, err = pages.NextPage(ctx)
			return err
		})
		if err != nil {
			return err
		}
		for _, o := range out.Contents {
			fn(aws.ToString(o.Key), aws.ToInt64(o.Size))
		}
	}
	return nil
}
