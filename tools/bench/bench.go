// Package bench owns skyfed's benchmarks: the harness behind `skyfed
// bench`, which measures skyfed against baselines taken in the same run on
// the same machine and disk (raw sequential write, SHA-256 throughput, a
// JetStream Object Store doing the same job) and prints one table with the
// ratios and the goals they are held to. It drives real site processes
// (the skyfed binary, through testlab) and a real embedded nats-server; it
// holds no storage or forwarding logic, and tests never assert its times.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Defaults of an ingest run.
const (
	DefaultSize          = ByteSize(1 << 30)
	DefaultSeed          = 20261121
	DefaultSyntheticSide = 2048 // 8 MiB 16-bit frames
)

// IngestConfig says what an ingest run measures and where.
type IngestConfig struct {
	Size ByteSize // bytes each writer writes; 0 → DefaultSize
	// Dir is where the disk is measured: the run works in a new
	// subdirectory of it and removes that at the end. "" → os.TempDir().
	Dir string
	// FITS is a directory holding real FITS frames (searched recursively);
	// "" → synthetic 16-bit frames.
	FITS string
	// Binary is the skyfed binary that runs the sites (required).
	Binary string
	Seed   uint64 // seed of the random stream; 0 → DefaultSeed
	// SyntheticSide is the width and height of synthetic frames; 0 →
	// DefaultSyntheticSide.
	SyntheticSide int
	Progress      io.Writer // progress lines; nil → discarded
}

// Machine describes where a run happened.
type Machine struct {
	Cores     int
	CPU       string // model name, "" if unknown
	GoVersion string
	Platform  string // GOOS/GOARCH
	Dir       string // the scratch dir on the measured disk
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// started and ended ("" if unknown): a busy machine skews every row.
	LoadStart, LoadEnd string
}

// Measure is bytes moved in some time.
type Measure struct {
	Bytes   int64
	Elapsed time.Duration
}

// MBps returns the rate in MB/s (10^6 bytes per second); 0 if nothing was timed.
func (m Measure) MBps() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Bytes) / 1e6 / m.Elapsed.Seconds()
}

// SitePut is a put into a real site process.
type SitePut struct {
	Measure
	Objects int
	IdleRSS int64 // VmRSS after start, before the first put
	PeakRSS int64 // VmHWM after the last put
}

// FITSPut is the put of image frames, one frame per object.
type FITSPut struct {
	SitePut
	Synthetic    bool
	Frames       string // where the base frames came from
	BaseFrames   int    // distinct frames the objects were varied from
	TotalChunks  int64  // chunks over all puts
	UniqueChunks int64  // chunks the site stored
	StoredBytes  int64  // bytes the site's chunks take on disk
	RawBytes     int64  // raw bytes of those chunks
}

// IngestResult is everything an ingest run measured.
type IngestResult struct {
	Size            int64
	Seed            uint64
	Machine         Machine
	Source          Measure // the random stream into memory
	RawWrite        Measure // the random stream to one file, fsync at the end
	SHA256          Measure // the random stream through SHA-256, one core
	Random          SitePut // skyfed put of the random stream as one object
	FITS            FITSPut
	Put4            SitePut // skyfed PUT over HTTP, 4 streams
	S3Multipart     SitePut // the S3 API, AWS SDK for Go v2 multipart, 4 part streams
	RePut           RePut   // the random objects put again under new names by their chunk lists
	StoreDefault    Measure // JetStream Object Store, default sync
	StoreSyncAlways Measure // JetStream Object Store, sync always
}

// ingestRun is one run in progress.
type ingestRun struct {
	cfg     IngestConfig
	scratch string
	res     *IngestResult
	step    int
}

// ingestSteps is the order of the measurements.
var ingestSteps = []struct {
	name string
	run  func(*ingestRun, context.Context) (Measure, error)
}{
	{"random stream into memory", (*ingestRun).measureSource},
	{"raw sequential write + fsync", (*ingestRun).measureRawWrite},
	{"SHA-256, one core", (*ingestRun).measureSHA256},
	{"skyfed put, random data", (*ingestRun).measureSiteRandom},
	{"skyfed put, FITS frames", (*ingestRun).measureSiteFITS},
	{"skyfed put, 4 streams", (*ingestRun).measureSitePut4},
	{"S3 multipart put (AWS SDK for Go v2), 4 streams", (*ingestRun).measureS3Multipart},
	{"skyfed re-put of renamed files, by chunk list", (*ingestRun).measureRePut},
	{"JetStream Object Store, default sync", func(b *ingestRun, ctx context.Context) (Measure, error) {
		return b.measureObjectStore(ctx, false)
	}},
	{"JetStream Object Store, sync always", func(b *ingestRun, ctx context.Context) (Measure, error) {
		return b.measureObjectStore(ctx, true)
	}},
}

// RunIngest runs every ingest measurement, one after the other, in a new
// scratch directory under cfg.Dir that it removes at the end. Each
// measurement starts with the file system synced and ends by syncing it
// (timed), and removes its data before the next one starts, so the disk
// holds at most about one copy of the data at a time.
func RunIngest(ctx context.Context, cfg IngestConfig) (*IngestResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench ingest: scratch dir: %w (pick a writable --dir)", err)
	}
	scratch, err := os.MkdirTemp(cfg.Dir, "skyfed-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench ingest: scratch dir: %w (pick a writable --dir)", err)
	}
	defer os.RemoveAll(scratch)
	b := &ingestRun{cfg: cfg, scratch: scratch, res: &IngestResult{
		Size: int64(cfg.Size), Seed: cfg.Seed,
		Machine: Machine{Cores: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(),
			Platform: runtime.GOOS + "/" + runtime.GOARCH, Dir: scratch, LoadStart: loadAverage()},
	}}
	b.progressf("bench ingest: %s per measurement in %s", cfg.Size, scratch)
	for i, st := range ingestSteps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench ingest: %w", err)
		}
		b.step = i + 1
		b.progressf("[%d/%d] %s …", b.step, len(ingestSteps), st.name)
		m, err := st.run(b, ctx)
		if err != nil {
			return nil, fmt.Errorf("bench ingest: %s: %w", st.name, err)
		}
		b.progressf("[%d/%d] %s: %s in %.2fs, %.1f MB/s", b.step, len(ingestSteps), st.name,
			ByteSize(m.Bytes), m.Elapsed.Seconds(), m.MBps())
	}
	b.res.Machine.LoadEnd = loadAverage()
	return b.res, nil
}

func (c IngestConfig) withDefaults() (IngestConfig, error) {
	if c.Binary == "" {
		return c, errors.New("bench ingest: no skyfed binary to run sites with")
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Size < 0 {
		return c, fmt.Errorf("bench ingest: %w: size %d", ErrBadSize, c.Size)
	}
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.SyntheticSide <= 0 {
		c.SyntheticSide = DefaultSyntheticSide
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}

func (b *ingestRun) progressf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Progress, format+"\n", args...)
}

// subdir returns a new empty directory for one measurement.
func (b *ingestRun) subdir(name string) (string, error) {
	dir := filepath.Join(b.scratch, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make %s: %w", dir, err)
	}
	return dir, nil
}

// timed syncs the file system (untimed), then times fn followed by a
// sync of the file system, so every writer pays for making its data durable.
func (b *ingestRun) timed(fn func() error) (time.Duration, error) {
	if err := syncDir(b.scratch); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return 0, err
	}
	if err := syncDir(b.scratch); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage returns the 1-minute load average from /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(b), " ")
	return first
}

// thisMachine describes the machine the bench runs on, its scratch dir
// dir, and the load as the run starts.
func thisMachine(dir string) Machine {
	return Machine{Cores: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Dir: dir, LoadStart: loadAverage()}
}

// scratchDir makes the bench's working directory under base (the
// system temp dir when ""); the caller removes it.
func scratchDir(base, bench string) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	return os.MkdirTemp(base, "skyfed-bench-"+bench+"-")
}
