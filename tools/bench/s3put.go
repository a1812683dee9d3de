package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/skyfed/skyfed/site/client"
)

// ingestStreams is how many streams the parallel rows write with.
const ingestStreams = 4

// s3PartSize is the part size of the S3 row's multipart uploads: the
// AWS SDKs' default, and a multiple of the site's chunk size.
const s3PartSize = 8 << 20

// measureSitePut4 times the random stream put over the REST API by 4
// streams at once (objects handed out in turn): the baseline of the S3
// row.
func (b *ingestRun) measureSitePut4(ctx context.Context) (Measure, error) {
	s, err := b.startSite(ctx, "put4")
	if err != nil {
		return Measure{}, err
	}
	out, err := b.putParallel(ctx, func(ctx context.Context, name string, r io.Reader, size int64) error {
		res, err := s.client.Put(ctx, name, r, size, client.PutOptions{})
		if err == nil && res.Size != size {
			err = fmt.Errorf("put %s: site stored %d bytes of %d", name, res.Size, size)
		}
		return s.wrap(err)
	}, s)
	if serr := s.stop(); err == nil {
		err = serr
	}
	b.res.Put4 = out
	return out.Measure, err
}

// measureS3Multipart times the random stream put through the site's S3
// API with the AWS SDK for Go v2: each object a multipart upload of
// 8 MiB parts, 4 part uploads at once.
func (b *ingestRun) measureS3Multipart(ctx context.Context) (Measure, error) {
	s, err := b.startSite(ctx, "s3")
	if err != nil {
		return Measure{}, err
	}
	defer s.stop()
	c, err := b.s3Site(ctx, s)
	if err != nil {
		return Measure{}, s.wrap(err)
	}
	var out SitePut
	if err := s.idleRSS(&out); err != nil {
		return Measure{}, err
	}
	d, err := b.timed(func() error {
		var objects []s3Object
		for i, size := range randomObjects(int64(b.cfg.Size)) {
			objects = append(objects, s3Object{key: fmt.Sprintf("random/object-%04d.bin", i), r: NewRandom(b.cfg.Seed+uint64(i), size), size: size})
			out.Bytes += size
			out.Objects++
		}
		_, err := s3MultipartAll(ctx, c, benchDomain, objects)
		return s.wrap(err)
	})
	if err != nil {
		return Measure{}, err
	}
	out.Elapsed = d
	if err := s.peakRSS(&out); err != nil {
		return Measure{}, err
	}
	b.res.S3Multipart = out
	return out.Measure, nil
}

// s3Site turns the S3 API on for s (it restarts the process), makes a
// token, and returns an SDK client for it.
func (b *ingestRun) s3Site(ctx context.Context, s *benchSite) (*s3.Client, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := s.proc.Stop(); err != nil {
		return nil, err
	}
	if out, err := exec.Command(b.cfg.Binary, "site", "s3", "--dir", s.proc.Dir, "--listen", addr).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("skyfed site s3: %w\n%s", err, out)
	}
	tok, err := exec.Command(b.cfg.Binary, "site", "token", "create", "--dir", s.proc.Dir, "--name", "bench", "--write", benchDomain+"/").Output()
	if err != nil {
		return nil, fmt.Errorf("skyfed site token create: %w", err)
	}
	if err := s.restart(ctx, b.cfg.Binary); err != nil {
		return nil, err
	}
	id, secret, _ := strings.Cut(strings.TrimSpace(string(tok)), ".")
	return s3.New(s3.Options{
		BaseEndpoint: aws.String("http://" + addr), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: ingestStreams}},
	}), nil
}

// s3Object is one object an S3 row uploads: size bytes of r as key.
type s3Object struct {
	key  string
	r    io.Reader
	size int64
}

// s3MultipartAll uploads each object as a multipart upload of parts of
// s3PartSize, ingestStreams part uploads at once across the objects, as
// `aws s3 cp --recursive` and rclone run theirs: an object's parts go
// while the one before completes. Each object's parts are read from its
// reader in turn, so at most ingestStreams+1 parts are in memory. It
// returns how long the last completion call took.
func s3MultipartAll(ctx context.Context, c *s3.Client, bucket string, objects []s3Object) (time.Duration, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ingestStreams)
	var mu sync.Mutex
	var lastComplete time.Duration
	err := func() error {
		for _, o := range objects {
			up, err := c.CreateMultipartUpload(gctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(o.key)})
			if err != nil {
				return err
			}
			parts := int((o.size + s3PartSize - 1) / s3PartSize)
			done := make([]types.CompletedPart, parts)
			var left atomic.Int64
			left.Store(int64(parts))
			for i := range parts {
				buf := make([]byte, min(s3PartSize, o.size-int64(i)*s3PartSize))
				if _, err := io.ReadFull(o.r, buf); err != nil {
					return err
				}
				g.Go(func() error {
					res, err := c.UploadPart(gctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(o.key), UploadId: up.UploadId,
						PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf)))})
					if err != nil {
						return fmt.Errorf("part %d of %s: %w", i+1, o.key, err)
					}
					done[i] = types.CompletedPart{ETag: res.ETag, PartNumber: aws.Int32(int32(i + 1))}
					if left.Add(-1) > 0 {
						return nil
					}
					start := time.Now()
					_, err = c.CompleteMultipartUpload(gctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(o.key),
						UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
					mu.Lock()
					lastComplete = time.Since(start)
					mu.Unlock()
					if err != nil {
						return fmt.Errorf("complete %s: %w", o.key, err)
					}
					return nil
				})
			}
		}
		return nil
	}()
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return lastComplete, err
}

// putParallel puts the random objects with ingestStreams writers at
// once, each object streamed from its own seeded stream.
func (b *ingestRun) putParallel(ctx context.Context, put func(ctx context.Context, name string, r io.Reader, size int64) error, s *benchSite) (SitePut, error) {
	var out SitePut
	if err := s.idleRSS(&out); err != nil {
		return out, err
	}
	d, err := b.timed(func() error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(ingestStreams)
		for i, size := range randomObjects(int64(b.cfg.Size)) {
			name := fmt.Sprintf("%s/random/object-%04d.bin", benchDomain, i)
			g.Go(func() error { return put(gctx, name, NewRandom(b.cfg.Seed+uint64(i), size), size) })
			out.Bytes += size
			out.Objects++
		}
		return g.Wait()
	})
	if err != nil {
		return out, err
	}
	out.Elapsed = d
	return out, s.peakRSS(&out)
}
