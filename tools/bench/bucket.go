package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/skyfed/skyfed/chunk/bucket"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/site/client"
)

// BucketIngestConfig configures RunBucketIngest.
type BucketIngestConfig struct {
	// Store is the bucket, s3://BUCKET/PREFIX?endpoint=URL&region=R; the
	// bench works under PREFIX/bench-<random>/ and removes it after.
	Store string
	// AccessKey and SecretKey, when set, are the credentials; otherwise
	// the AWS SDK's chain (AWS_ACCESS_KEY_ID…, ~/.aws/credentials), for
	// the site process as for the baseline.
	AccessKey, SecretKey string
	Size                 ByteSize // bytes of each large run, as 4 objects (default 1 GiB)
	Small                int      // small objects per small run (default 1000)
	SmallSize            int64    // their size (default 100 KB)
	Runs                 int      // runs of each, the median reported (default 3)
	Binary               string   // skyfed, to run the site
	Dir                  string   // scratch dir (default: the system temp dir)
	Progress             io.Writer
	Seed                 uint64
}

// BucketIngestResult is the outcome: per run, skyfed's and the SDK's
// rates, and what skyfed asked of the bucket.
type BucketIngestResult struct {
	Machine     Machine
	Store       string
	Size        int64
	Small       int
	SmallSize   int64
	LargeSkyfed []Measure
	LargeSDK    []Measure
	// Small runs: objects put and how long.
	SmallSkyfed []Measure // Bytes counts objects
	SmallSDK    []Measure
	// SmallBucketPuts is the bucket PUTs skyfed made per small run (packs
	// and manifest log objects): fewer than the objects means puts
	// shared PUTs (group commit).
	SmallBucketPuts []int64
}

// RunBucketIngest measures a site whose store is a bucket against the
// AWS SDK for Go v2 putting the same bytes into the same bucket in the
// same run: large objects by 4 streams at once (the SDK as multipart
// uploads of 8 MiB parts, 4 at once), and small objects 4 at a time;
// each Runs times, with new bytes every run (skyfed would otherwise
// store nothing new).
func RunBucketIngest(ctx context.Context, cfg BucketIngestConfig) (*BucketIngestResult, error) {
	bc, err := bucket.ParseURL(cfg.Store)
	if err != nil {
		return nil, err
	}
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Small == 0 {
		cfg.Small = 1000
	}
	if cfg.SmallSize == 0 {
		cfg.SmallSize = 100_000
	}
	if cfg.Runs == 0 {
		cfg.Runs = 3
	}
	if cfg.Seed == 0 {
		cfg.Seed = DefaultSeed
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	progress := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, format+"\n", args...) }
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	benchPrefix := strings.TrimPrefix(bc.Prefix+"/bench-"+hex.EncodeToString(rnd[:]), "/")
	sdk, err := sdkClient(ctx, bc, cfg)
	if err != nil {
		return nil, err
	}
	defer cleanBucket(context.WithoutCancel(ctx), sdk, bc.Bucket, benchPrefix, progress)

	scratch, err := os.MkdirTemp(cfg.Dir, "skyfed-bench-bucket-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	siteStore := bc
	siteStore.Prefix = benchPrefix + "/site"
	s, err := startBucketSite(ctx, cfg, filepath.Join(scratch, "site"), siteStore.URL())
	if err != nil {
		return nil, err
	}
	defer s.stop()

	res := &BucketIngestResult{Store: bc.URL(), Size: int64(cfg.Size), Small: cfg.Small, SmallSize: cfg.SmallSize,
		Machine: Machine{Cores: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(),
			Platform: runtime.GOOS + "/" + runtime.GOARCH, Dir: scratch, LoadStart: loadAverage()}}
	objSize := int64(cfg.Size) / ingestStreams
	for run := range cfg.Runs {
		seed := cfg.Seed + uint64(run)*1_000_003
		// Large: 4 objects of Size/4 at once.
		m, err := timedGroup(ctx, ingestStreams, func(g *errgroup.Group, gctx context.Context) {
			for i := range ingestStreams {
				name := fmt.Sprintf("%s/large/run%d-%d.bin", benchDomain, run, i)
				g.Go(func() error {
					_, err := s.client.Put(gctx, name, NewRandom(seed+uint64(i), objSize), objSize, client.PutOptions{})
					return s.wrap(err)
				})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("skyfed large run %d: %w", run+1, err)
		}
		m.Bytes = objSize * ingestStreams
		res.LargeSkyfed = append(res.LargeSkyfed, m)
		progress("run %d/%d: skyfed large %.1f MB/s", run+1, cfg.Runs, m.MBps())
		start := time.Now()
		var objects []s3Object
		for i := range ingestStreams {
			objects = append(objects, s3Object{key: fmt.Sprintf("%s/sdk/large/run%d-%d.bin", benchPrefix, run, i), r: NewRandom(seed+500+uint64(i), objSize), size: objSize})
		}
		if _, err := s3MultipartAll(ctx, sdk, bc.Bucket, objects); err != nil {
			return nil, fmt.Errorf("AWS SDK large run %d: %w", run+1, err)
		}
		m = Measure{Bytes: objSize * ingestStreams, Elapsed: time.Since(start)}
		res.LargeSDK = append(res.LargeSDK, m)
		progress("run %d/%d: AWS SDK large %.1f MB/s", run+1, cfg.Runs, m.MBps())

		// Small: cfg.Small objects, 4 at a time.
		putsBefore, err := s.bucketPuts(ctx)
		if err != nil {
			return nil, err
		}
		m, err = timedGroup(ctx, ingestStreams, func(g *errgroup.Group, gctx context.Context) {
			for i := range cfg.Small {
				name := fmt.Sprintf("%s/small/run%d-%05d.bin", benchDomain, run, i)
				g.Go(func() error {
					body, _ := io.ReadAll(NewRandom(seed+10_000+uint64(i), cfg.SmallSize))
					_, err := s.client.Put(gctx, name, bytes.NewReader(body), cfg.SmallSize, client.PutOptions{})
					return s.wrap(err)
				})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("skyfed small run %d: %w", run+1, err)
		}
		putsAfter, err := s.bucketPuts(ctx)
		if err != nil {
			return nil, err
		}
		m.Bytes = int64(cfg.Small)
		res.SmallSkyfed = append(res.SmallSkyfed, m)
		res.SmallBucketPuts = append(res.SmallBucketPuts, putsAfter-putsBefore)
		progress("run %d/%d: skyfed small %.0f objects/s (%d bucket PUTs)", run+1, cfg.Runs, m.perSecond(), putsAfter-putsBefore)
		m, err = timedGroup(ctx, ingestStreams, func(g *errgroup.Group, gctx context.Context) {
			for i := range cfg.Small {
				key := fmt.Sprintf("%s/sdk/small/run%d-%05d.bin", benchPrefix, run, i)
				g.Go(func() error {
					body, _ := io.ReadAll(NewRandom(seed+20_000+uint64(i), cfg.SmallSize))
					_, err := sdk.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bc.Bucket), Key: aws.String(key),
						Body: bytes.NewReader(body), ContentLength: aws.Int64(cfg.SmallSize)})
					return err
				})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("AWS SDK small run %d: %w", run+1, err)
		}
		m.Bytes = int64(cfg.Small)
		res.SmallSDK = append(res.SmallSDK, m)
		progress("run %d/%d: AWS SDK small %.0f objects/s", run+1, cfg.Runs, m.perSecond())
	}
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

// perSecond is Bytes (here: objects) per second.
func (m Measure) perSecond() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Bytes) / m.Elapsed.Seconds()
}

// timedGroup runs the work queued by start with at most limit at once
// and times it.
func timedGroup(ctx context.Context, limit int, start func(g *errgroup.Group, gctx context.Context)) (Measure, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	t := time.Now()
	start(g, gctx)
	err := g.Wait()
	return Measure{Elapsed: time.Since(t)}, err
}

func sdkClient(ctx context.Context, bc bucket.Config, cfg BucketIngestConfig) (*s3.Client, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(cmp.Or(bc.Region, "us-east-1"))}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey}, nil
		})))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if bc.Endpoint != "" {
			o.BaseEndpoint = aws.String(bc.Endpoint)
		}
		o.UsePathStyle = true
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		o.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * ingestStreams}}
	}), nil
}

// cleanBucket deletes everything under prefix.
func cleanBucket(ctx context.Context, c *s3.Client, bucketName, prefix string, progress func(string, ...any)) {
	var token *string
	n := 0
	for {
		out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucketName), Prefix: aws.String(prefix + "/"), ContinuationToken: token})
		if err != nil {
			progress("cleaning up %s: %v", prefix, err)
			return
		}
		for _, o := range out.Contents {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucketName), Key: o.Key}); err == nil {
				n++
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		token = out.NextContinuationToken
	}
	progress("removed %d objects under %s", n, prefix)
}

// bucketSite is the site process the bench puts into.
type bucketSite struct{ *benchSite }

func startBucketSite(ctx context.Context, cfg BucketIngestConfig, dir, store string) (*bucketSite, error) {
	s, err := startSiteProcess(ctx, cfg.Binary, dir, "bench-bucket", func(c *site.Config) {
		c.Store, c.StoreAccessKey, c.StoreSecretKey = store, cfg.AccessKey, cfg.SecretKey
	})
	if err != nil {
		return nil, err
	}
	return &bucketSite{s}, nil
}

// bucketPuts reads the PUTs the site made to its bucket (its metrics).
func (s *bucketSite) bucketPuts(ctx context.Context) (int64, error) {
	st, err := s.client.Status(ctx)
	if err != nil {
		return 0, s.wrap(err)
	}
	var raw struct {
		Store site.StoreStatus `json:"store"`
	}
	if err := json.Unmarshal(st.Raw, &raw); err != nil {
		return 0, err
	}
	if raw.Store.Kind != "s3" {
		return 0, errors.New("the bench site does not keep its packs in the bucket")
	}
	return raw.Store.Puts, nil
}

// WriteTable prints the runs, medians and ratios with their goals.
func (r *BucketIngestResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "bench ingest --store %s: %d cores (%s), %s, load %s → %s\n", r.Store, r.Machine.Cores, r.Machine.CPU, r.Machine.GoVersion, r.Machine.LoadStart, r.Machine.LoadEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	runs := len(r.LargeSkyfed)
	header := "\t"
	for i := range runs {
		header += fmt.Sprintf("run %d\t", i+1)
	}
	fmt.Fprintln(tw, header+"median\tratio\tgoal\t")
	row := func(name string, ms []Measure, v func(Measure) float64, unit string) float64 {
		var xs []float64
		line := name + "\t"
		for _, m := range ms {
			xs = append(xs, v(m))
			line += fmt.Sprintf("%.1f %s\t", v(m), unit)
		}
		slices.Sort(xs)
		med := percentile(xs, 50)
		fmt.Fprint(tw, line+fmt.Sprintf("%.1f %s\t", med, unit))
		return med
	}
	mbps := func(m Measure) float64 { return m.MBps() }
	perSec := func(m Measure) float64 { return m.perSecond() }
	large := fmt.Sprintf("4 × %s", ByteSize(r.Size/ingestStreams))
	a := row("skyfed put, "+large+" at once", r.LargeSkyfed, mbps, "MB/s")
	fmt.Fprintln(tw, "\t\t")
	b := row("AWS SDK multipart, "+large+", 4 streams", r.LargeSDK, mbps, "MB/s")
	fmt.Fprintf(tw, "%.2f×\t≥ 0.80×\t\n", ratio(a, b))
	small := fmt.Sprintf("%d × %s, 4 at once", r.Small, ByteSize(r.SmallSize))
	a = row("skyfed put, "+small, r.SmallSkyfed, perSec, "obj/s")
	fmt.Fprintln(tw, "\t\t")
	b = row("AWS SDK PutObject, "+small, r.SmallSDK, perSec, "obj/s")
	fmt.Fprintf(tw, "%.2f×\t≥ 0.80×\t\n", ratio(a, b))
	if err := tw.Flush(); err != nil {
		return err
	}
	var puts []string
	for _, n := range r.SmallBucketPuts {
		puts = append(puts, fmt.Sprint(n))
	}
	fmt.Fprintf(w, "skyfed's bucket PUTs per small run (packs and manifest log objects; %d objects each): %v — group commit shares them\n", r.Small, puts)
	return nil
}
