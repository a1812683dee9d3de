package site

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/chunk/bucket"
)

// StoreLocal is the Store of a site whose packs are files in its data dir.
const StoreLocal = "local"

// inBucket reports whether the site's payload lives in a bucket.
func (c Config) inBucket() bool { return c.Store != "" && c.Store != StoreLocal }

// validateStore checks the store setting: local, or a bucket URL.
func (c *Config) validateStore() error {
	if !c.inBucket() {
		return nil
	}
	if _, err := bucket.ParseURL(c.Store); err != nil {
		return fmt.Errorf("%w: store: %w", ErrBadConfig, err)
	}
	if c.StoreLease != "" {
		if d, err := time.ParseDuration(c.StoreLease); err != nil || d < 3*time.Second {
			return fmt.Errorf("%w: store_lease %q must be a duration of at least 3s such as \"3m\"", ErrBadConfig, c.StoreLease)
		}
	}
	if (c.StoreAccessKey == "") != (c.StoreSecretKey == "") {
		return fmt.Errorf("%w: store_access_key and store_secret_key go together", ErrBadConfig)
	}
	return nil
}

// BucketPackSize is the size of a bucket site's packs, and how much of
// a large put it makes durable at a time: objects of a few tens of MB,
// uploaded in the background as each fills.
const BucketPackSize = 32 << 20

// bucketCheckTimeout bounds the check that the bucket answers at open.
const bucketCheckTimeout = 30 * time.Second

// openPacks returns where the site's packs live: files under packs/ in
// its data dir, or the bucket of cfg.Store (spooling under spool/).
func (s *Site) openPacks(cfg Config) (chunk.Packs, error) {
	if !cfg.inBucket() {
		p, err := chunk.NewDirPacks(vfs.Default, filepath.Join(s.dir, "packs"))
		if err != nil {
			return nil, fmt.Errorf("open chunk store: %w", err)
		}
		return p, nil
	}
	bc, err := bucket.ParseURL(cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("%w: store: %w", ErrBadConfig, err)
	}
	bc.AccessKey, bc.SecretKey = cfg.StoreAccessKey, cfg.StoreSecretKey
	bc.SpoolDir = filepath.Join(s.dir, "spool")
	ctx, cancel := context.WithTimeout(context.Background(), bucketCheckTimeout)
	defer cancel()
	p, err := bucket.New(ctx, bc)
	if err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	if s.opts.noLease { // a rebuild only reads
		s.bucket = p
		return p, nil
	}
	abs, err := filepath.Abs(s.dir)
	if err != nil {
		abs = s.dir
	}
	lease, err := p.AcquireLease(ctx, cfg.ID, abs, cfg.storeLease())
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	s.bucket, s.lease = p, lease
	lctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.stopLease = func() { cancel(); <-done }
	go func() {
		defer close(done)
		lease.Run(lctx, func(err error) {
			s.log.Error("bucket lease not renewed; writes stop when it runs out", "err", err)
		})
	}()
	return p, nil
}

// ErrNeedsRebuild: a bucket site's data dir has no index while its
// bucket holds packs (a replaced node): starting would serve nothing.
var ErrNeedsRebuild = errors.New("the bucket holds this site's packs but the data dir has no index")

// checkIndexOfBucket refuses to start a bucket site with no index over
// a bucket that has packs: the index is made from the bucket first.
func (s *Site) checkIndexOfBucket() error {
	if s.bucket == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(s.dir, "index")); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	sizes, err := s.bucket.List()
	if err != nil {
		return fmt.Errorf("open chunk store: %w", err)
	}
	if len(sizes) > 0 {
		return fmt.Errorf("%w (%d packs in %s): run skyfed site rebuild --dir %s first", ErrNeedsRebuild, len(sizes), s.bucket.Where(), s.dir)
	}
	return nil
}

// releaseLease stops renewing the bucket's lease and gives it up, so a
// replacement node can start at once. A release that fails (the bucket
// unreachable) is logged, not an error of the stop: the lease runs out
// by itself.
func (s *Site) releaseLease() error {
	if s.lease == nil {
		return nil
	}
	s.stopLease()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.lease.Release(ctx); err != nil {
		s.log.Warn("bucket lease not released; a replacement node can start once it runs out", "err", err, "store_lease", s.Config().storeLease())
	}
	return nil
}

// DefaultStoreLease is how long a bucket site's lease holds unrenewed.
const DefaultStoreLease = bucket.LeaseTTL

// storeLease returns the store_lease setting (validated).
func (c Config) storeLease() time.Duration {
	if d, err := time.ParseDuration(c.StoreLease); err == nil && d > 0 {
		return d
	}
	return DefaultStoreLease
}

// bucketCollector exports the bucket's request counters.
type bucketCollector struct{ p *bucket.Packs }

var (
	descBucketRequests = prometheus.NewDesc("skyfed_bucket_requests_total", "Requests to the site's bucket, by operation.", []string{"op"}, nil)
	descBucketErrors   = prometheus.NewDesc("skyfed_bucket_errors_total", "Requests to the site's bucket that failed (after the SDK's retries).", nil, nil)
	descBucketSeconds  = prometheus.NewDesc("skyfed_bucket_request_seconds_total", "Time spent in requests to the site's bucket (÷ requests: mean latency).", nil, nil)
	descBucketBytes    = prometheus.NewDesc("skyfed_bucket_bytes_total", "Bytes put to (up) and read from (down) the site's bucket.", []string{"direction"}, nil)
)

func (c bucketCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBucketRequests, descBucketErrors, descBucketSeconds, descBucketBytes} {
		ch <- d
	}
}

func (c bucketCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	for op, n := range map[string]int64{"put": st.Puts.Load(), "get": st.Gets.Load(), "list": st.Lists.Load(), "delete": st.Deletes.Load(), "head": st.Heads.Load()} {
		ch <- prometheus.MustNewConstMetric(descBucketRequests, prometheus.CounterValue, float64(n), op)
	}
	ch <- prometheus.MustNewConstMetric(descBucketErrors, prometheus.CounterValue, float64(st.Errors.Load()))
	ch <- prometheus.MustNewConstMetric(descBucketSeconds, prometheus.CounterValue, time.Duration(st.LatencyNanos.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(descBucketBytes, prometheus.CounterValue, float64(st.BytesUp.Load()), "up")
	ch <- prometheus.MustNewConstMetric(descBucketBytes, prometheus.CounterValue, float64(st.BytesDown.Load()), "down")
}

// StoreStatus is the store part of /api/status: where the payload lives
// and, for a bucket, how its requests go.
type StoreStatus struct {
	Kind          string  `json:"kind"` // "local" or "s3"
	Where         string  `json:"where"`
	Requests      int64   `json:"requests,omitempty"`
	Puts          int64   `json:"puts,omitempty"`
	Errors        int64   `json:"errors,omitempty"`
	MeanLatencyMs float64 `json:"mean_latency_ms,omitempty"`
	LastError     string  `json:"last_error,omitempty"`
}

func (s *Site) storeStatus() StoreStatus {
	if s.bucket == nil {
		return StoreStatus{Kind: StoreLocal, Where: filepath.Join(s.dir, "packs")}
	}
	st := s.bucket.Stats()
	out := StoreStatus{Kind: "s3", Where: s.bucket.Where(), Requests: st.Requests.Load(), Puts: st.Puts.Load(), Errors: st.Errors.Load()}
	if out.Requests > 0 {
		out.MeanLatencyMs = float64(st.LatencyNanos.Load()) / float64(out.Requests) / 1e6
	}
	out.LastError, _ = st.LastError()
	return out
}
