package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3StreamConfig configures `skyfed bench s3`.
type S3StreamConfig struct {
	Size     ByteSize // the one object's size
	Dir      string   // scratch directory (a subdirectory is made and removed)
	Binary   string   // the skyfed binary the site runs as
	Progress io.Writer
}

// S3StreamResult is one object through a site's S3 API: a multipart
// upload, then a ranged download of all of it, with the site's memory.
type S3StreamResult struct {
	Size          int64
	Machine       Machine
	Upload        Measure
	Download      Measure
	IdleRSS       int64 // site VmRSS before the upload
	UploadPeakRSS int64 // VmHWM after the upload
	PeakRSS       int64 // VmHWM after the download
	RangeSize     int64
	Complete      time.Duration // the CompleteMultipartUpload call
}

// s3RangeSize is the size of each ranged GET of the download.
const s3RangeSize = 64 << 20

// RunS3Stream puts one object of cfg.Size through a fresh site process's
// S3 API with the AWS SDK for Go v2 (multipart, 8 MiB parts, 4 at once),
// reads it back in ranges of 64 MiB, checks the bytes by SHA-256, and
// measures the site's resident memory.
func RunS3Stream(ctx context.Context, cfg S3StreamConfig) (*S3StreamResult, error) {
	if cfg.Size <= 0 {
		cfg.Size = 4 << 30
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	scratch, err := os.MkdirTemp(cfg.Dir, "skyfed-bench-s3-")
	if err != nil {
		return nil, fmt.Errorf("bench s3: scratch dir: %w (pick a writable --dir)", err)
	}
	defer os.RemoveAll(scratch)
	b := &ingestRun{cfg: IngestConfig{Binary: cfg.Binary, Dir: cfg.Dir, Seed: DefaultSeed, Progress: cfg.Progress}, scratch: scratch}
	res := &S3StreamResult{Size: int64(cfg.Size), RangeSize: s3RangeSize, Machine: Machine{Cores: runtime.NumCPU(), CPU: cpuModel(),
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Dir: scratch, LoadStart: loadAverage()}}
	s, err := b.startSite(ctx, "s3")
	if err != nil {
		return nil, err
	}
	defer s.stop()
	c, err := b.s3Site(ctx, s)
	if err != nil {
		return nil, s.wrap(err)
	}
	if res.IdleRSS, err = s.proc.RSS(); err != nil {
		return nil, s.wrap(err)
	}
	const key = "stream/object.bin"
	sent := sha256.New()
	fmt.Fprintf(cfg.Progress, "bench s3: uploading %s …\n", cfg.Size)
	d, err := b.timed(func() error {
		var err error
		res.Complete, err = s3MultipartAll(ctx, c, benchDomain, []s3Object{{key: key, r: io.TeeReader(NewRandom(DefaultSeed, int64(cfg.Size)), sent), size: int64(cfg.Size)}})
		return err
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	res.Upload = Measure{Bytes: int64(cfg.Size), Elapsed: d}
	if res.UploadPeakRSS, err = s.proc.PeakRSS(); err != nil {
		return nil, s.wrap(err)
	}
	fmt.Fprintf(cfg.Progress, "bench s3: reading it back in ranges of %s …\n", ByteSize(s3RangeSize))
	got := sha256.New()
	start := time.Now()
	for off := int64(0); off < int64(cfg.Size); off += s3RangeSize {
		end := min(off+s3RangeSize, int64(cfg.Size)) - 1
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(benchDomain), Key: aws.String(key), Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end))})
		if err != nil {
			return nil, s.wrap(err)
		}
		n, err := io.Copy(got, out.Body)
		out.Body.Close()
		if err != nil || n != end-off+1 {
			return nil, s.wrap(fmt.Errorf("range %d-%d: %d bytes, %v", off, end, n, err))
		}
	}
	res.Download = Measure{Bytes: int64(cfg.Size), Elapsed: time.Since(start)}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		return nil, fmt.Errorf("bench s3: the object read back differs from the one put")
	}
	if res.PeakRSS, err = s.proc.PeakRSS(); err != nil {
		return nil, s.wrap(err)
	}
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

// WriteTable prints the result with the memory goal.
func (r *S3StreamResult) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "skyfed bench s3: one object of %s through a site's S3 API (AWS SDK for Go v2)\n", ByteSize(r.Size))
	fmt.Fprintf(w, "machine:  %d cores (%s), %s %s\n", m.Cores, m.CPU, m.GoVersion, m.Platform)
	fmt.Fprintf(w, "load:     %s at start, %s at end (1-min load average)\n\n", m.LoadStart, m.LoadEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tMB/s\tseconds\tnotes")
	fmt.Fprintf(tw, "multipart upload\t%.1f\t%.2f\t%s parts, 4 at once; syncfs at the end; the completion call took %.2fs\n",
		r.Upload.MBps(), r.Upload.Elapsed.Seconds(), ByteSize(s3PartSize), r.Complete.Seconds())
	fmt.Fprintf(tw, "ranged download\t%.1f\t%.2f\tGETs of %s ranges, one after another; bytes checked by SHA-256\n", r.Download.MBps(), r.Download.Elapsed.Seconds(), ByteSize(r.RangeSize))
	fmt.Fprintln(tw, "\t\t\t")
	growth := r.PeakRSS - r.IdleRSS
	result := "MISS"
	if growth <= ingestRSSGoal {
		result = "PASS"
	}
	fmt.Fprintln(tw, "goal\tvalue\tgoal\tresult")
	fmt.Fprintf(tw, "%s\t%s\t≤ %s\t%s\n", RowRSSGrowth, ByteSize(max(growth, 0)), ByteSize(ingestRSSGoal), result)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nsite RSS: idle %s, peak after the upload %s, peak after the download %s (VmRSS, then VmHWM of the site process)\n",
		ByteSize(r.IdleRSS), ByteSize(r.UploadPeakRSS), ByteSize(r.PeakRSS))
	return err
}
