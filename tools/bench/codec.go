package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/testlab"
)

// Kinds of FITS files in the codec bench, by what most of their image
// samples are.
const (
	KindInteger = "integer"
	KindFloat   = "float"
	KindOther   = "no image" // tables only, or an empty primary HDU
)

// Defaults of a codec run.
const (
	DefaultCodecMinSize = 100_000 // files smaller than this are left out
	DefaultCodecRepeat  = 3
)

// ErrCodecTools says fpack or zstd, the baselines, are not installed.
var ErrCodecTools = errors.New("baseline tools missing (apt-get install libcfitsio-bin zstd)")

// CodecConfig says what a codec run measures.
type CodecConfig struct {
	Dir       string // searched recursively for FITS files
	MinSize   int64  // smallest file measured; 0 → DefaultCodecMinSize
	ChunkSize int    // 0 → chunk.DefaultSize
	// Repeat is how many times each chunk is compressed and decoded; the
	// fastest time counts, which keeps a busy machine's noise out. 0 →
	// DefaultCodecRepeat.
	Repeat   int
	Progress io.Writer // nil → discarded
}

// CodecFile is one file's measurement.
type CodecFile struct {
	Path  string
	Kind  string
	Raw   int64
	Sky   int64  // sum of the chunk payloads skyfed would store
	Fpack int64  // fpack's best lossless output
	Mode  string // the fpack flags that gave it
	// FpackRefused is set when fpack fails on the file in every mode
	// (Fpack is then the raw size); such files are left out of the
	// skyfed ÷ fpack totals.
	FpackRefused bool
	Zstd         int64 // zstd -19 of the whole file
	// Compress and Decode are the fastest single-core times, summed over
	// the chunks, of chunk.CompressLayout and chunk.Decode.
	Compress, Decode time.Duration
	Codecs           map[chunk.Codec]int // chunks per codec chosen
	floats           bool                // the file holds float samples
}

// CodecTotal sums files of one kind.
type CodecTotal struct {
	Kind                   string
	Files                  int
	Raw, Sky, Zstd         int64
	Compress, Decode       time.Duration
	CompressMBps, DecodeMB float64
	// Fpack sums the files fpack compressed, SkyFpack skyfed's bytes for
	// the same files, FpackRefused counts the others.
	Fpack, SkyFpack, RawFpack int64
	FpackRefused              int
}

// CodecResult is a codec run.
type CodecResult struct {
	Config  CodecConfig
	Machine Machine
	Files   []CodecFile
}

// RunCodec measures every FITS file of at least MinSize bytes under Dir:
// skyfed's chunk codec as the put path uses it (the splitter, the FITS
// scanner and CompressLayout per chunk), fpack's best lossless mode and
// zstd -19, in one run.
func RunCodec(ctx context.Context, cfg CodecConfig) (*CodecResult, error) {
	if cfg.MinSize <= 0 {
		cfg.MinSize = DefaultCodecMinSize
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = chunk.DefaultSize
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = DefaultCodecRepeat
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	for _, tool := range []string{"fpack", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("bench codec: %s not found: %w", tool, ErrCodecTools)
		}
	}
	paths, err := testlab.FindFITS(cfg.Dir, cfg.MinSize)
	if err != nil {
		return nil, fmt.Errorf("bench codec: %w", err)
	}
	res := &CodecResult{Config: cfg, Machine: Machine{Cores: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Dir: cfg.Dir, LoadStart: loadAverage()}}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "bench codec: %s\n", p)
		f, err := measureCodecFile(ctx, p, cfg)
		if err != nil {
			return nil, err
		}
		res.Files = append(res.Files, f)
	}
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

// measureCodecFile measures one file against both baselines.
func measureCodecFile(ctx context.Context, path string, cfg CodecConfig) (CodecFile, error) {
	f, err := skyfedFile(path, cfg)
	if err != nil {
		return f, err
	}
	if f.Fpack, f.Mode, err = fpackBest(ctx, path, f.floats); err != nil {
		if ctx.Err() != nil {
			return f, err
		}
		// fpack refuses some valid files (e.g. a zero-length axis): it
		// leaves them as they are, and its bytes are the raw bytes.
		f.Fpack, f.Mode, f.FpackRefused = f.Raw, "refused", true
	}
	if f.Zstd, err = toolBytes(ctx, "zstd", "-19", "-q", "-c", path); err != nil {
		return f, err
	}
	return f, nil
}

// skyfedFile streams path through the splitter and the FITS scanner and
// codes each chunk as the put path would, checking every round trip.
func skyfedFile(path string, cfg CodecConfig) (CodecFile, error) {
	out := CodecFile{Path: path, Codecs: map[chunk.Codec]int{}}
	fh, err := os.Open(path)
	if err != nil {
		return out, err
	}
	defer fh.Close()
	sp := chunk.NewSplitter(fh, cfg.ChunkSize)
	scan := chunk.NewFITSScanner()
	var intBytes, floatBytes int64
	dec := make([]byte, 0, cfg.ChunkSize)
	for {
		raw, err := sp.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, err
		}
		l := scan.Next(raw)
		switch {
		case l.Bitpix > 0:
			intBytes += int64(l.DataEnd - l.DataStart)
		case l.Bitpix < 0:
			floatBytes += int64(l.DataEnd - l.DataStart)
		}
		var c chunk.Codec
		var payload []byte
		elapsed, err := timeRepeat(cfg.Repeat, func() (err error) {
			c, payload, err = chunk.CompressLayout(raw, l)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("compress %s: %w", path, err)
		}
		out.Compress += elapsed
		elapsed, err = timeRepeat(cfg.Repeat, func() (err error) {
			dec, err = chunk.Decode(c, payload, dec, len(raw))
			return err
		})
		if err != nil {
			return out, fmt.Errorf("decode %s chunk of %s: %w", c, path, err)
		}
		out.Decode += elapsed
		if !bytes.Equal(dec, raw) {
			return out, fmt.Errorf("bench codec: %s chunk of %s does not round-trip", c, path)
		}
		out.Codecs[c]++
		out.Raw += int64(len(raw))
		out.Sky += int64(len(payload))
	}
	out.floats = scan.FloatImages()
	switch {
	case intBytes == 0 && floatBytes == 0:
		out.Kind = KindOther
	case intBytes >= floatBytes:
		out.Kind = KindInteger
	default:
		out.Kind = KindFloat
	}
	return out, nil
}

// timeRepeat runs fn n times and returns the least CPU time one run took
// on this goroutine's thread (wall time where the kernel does not say).
func timeRepeat(n int, fn func() error) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := time.Duration(1<<63 - 1)
	for range n {
		cpu0, ok := threadCPU()
		start := time.Now()
		err := fn()
		took := time.Since(start)
		if cpu1, ok1 := threadCPU(); ok && ok1 {
			took = cpu1 - cpu0
		}
		if err != nil {
			return 0, err
		}
		best = min(best, took)
	}
	return best, nil
}

// fpackModes are fpack's lossless modes for integer images (Rice,
// Hcompress at scale 0, GZIP with and without byte shuffling), and for
// files holding float images the only lossless ones, GZIP with -q 0 (no
// quantization; fpack refuses -q 0 with the others, and without it
// quantizes floats, which loses data).
var (
	fpackIntModes   = [][]string{{"-r"}, {"-h"}, {"-g2"}, {"-g1"}}
	fpackFloatModes = [][]string{{"-g2", "-q", "0"}, {"-g1", "-q", "0"}}
)

// fpackBest runs fpack in each lossless mode and returns the smallest
// output and its flags.
func fpackBest(ctx context.Context, path string, floats bool) (int64, string, error) {
	modes := fpackIntModes
	if floats {
		modes = fpackFloatModes
	}
	best, mode := int64(-1), ""
	var lastErr error
	for _, m := range modes {
		n, err := toolBytes(ctx, "fpack", append(append([]string{}, m...), "-S", path)...)
		if err != nil {
			lastErr = err
			continue
		}
		if best < 0 || n < best {
			best, mode = n, strings.Join(m, " ")
		}
	}
	if best < 0 {
		return 0, "", fmt.Errorf("fpack %s: no lossless mode worked: %w", path, lastErr)
	}
	return best, mode, nil
}

// toolBytes runs a tool and returns how many bytes it wrote to stdout.
func toolBytes(ctx context.Context, name string, args ...string) (int64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var count countWriter
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &count, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return count.n, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// Totals sums the files by kind, integer images first, then floats,
// files without images, and all files.
func (r *CodecResult) Totals() []CodecTotal {
	kinds := []string{KindInteger, KindFloat, KindOther, "all"}
	out := make([]CodecTotal, len(kinds))
	for i, k := range kinds {
		t := &out[i]
		t.Kind = k
		for _, f := range r.Files {
			if f.Kind != k && k != "all" {
				continue
			}
			t.Files++
			t.Raw += f.Raw
			t.Sky += f.Sky
			t.Zstd += f.Zstd
			if f.FpackRefused {
				t.FpackRefused++
			} else {
				t.Fpack += f.Fpack
				t.SkyFpack += f.Sky
				t.RawFpack += f.Raw
			}
			t.Compress += f.Compress
			t.Decode += f.Decode
		}
		t.CompressMBps = Measure{Bytes: t.Raw, Elapsed: t.Compress}.MBps()
		t.DecodeMB = Measure{Bytes: t.Raw, Elapsed: t.Decode}.MBps()
	}
	return out
}

// CodecGoal is one goal line of the codec table.
type CodecGoal struct {
	Name   string
	Value  float64
	Limit  float64
	AtMost bool // Value must be ≤ Limit (else ≥)
	Unit   string
	Pass   bool
}

// Goals checks the totals against issue 13's goals: integer images at
// or below fpack's bytes, float images at or below zstd -19's, and the
// single-core speeds.
func (r *CodecResult) Goals() []CodecGoal {
	ts := r.Totals()
	ints, floats, all := ts[0], ts[1], ts[3]
	g := []CodecGoal{
		{Name: "integer images: skyfed ÷ fpack bytes", Value: ratio(float64(ints.SkyFpack), float64(ints.Fpack)), Limit: 1, AtMost: true, Unit: "×"},
		{Name: "float images: skyfed ÷ zstd -19 bytes", Value: ratio(float64(floats.Sky), float64(floats.Zstd)), Limit: 1, AtMost: true, Unit: "×"},
		{Name: "compress, one core", Value: all.CompressMBps, Limit: 150, Unit: " MB/s"},
		{Name: "decompress, one core", Value: all.DecodeMB, Limit: 500, Unit: " MB/s"},
	}
	for i := range g {
		if g[i].AtMost {
			g[i].Pass = g[i].Value <= g[i].Limit && g[i].Value > 0
		} else {
			g[i].Pass = g[i].Value >= g[i].Limit
		}
	}
	if ints.Files == 0 {
		g[0].Pass = false
	}
	if floats.Files == 0 {
		g[1].Pass = false
	}
	return g
}

// WriteTable prints the files, the totals by kind and the goals.
func (r *CodecResult) WriteTable(w io.Writer) error {
	var sb strings.Builder
	m := r.Machine
	fmt.Fprintf(&sb, "skyfed bench codec: %d FITS files of %s+ under %s, %s chunks, fastest of %d\n",
		len(r.Files), ByteSize(r.Config.MinSize), r.Config.Dir, ByteSize(r.Config.ChunkSize), r.Config.Repeat)
	fmt.Fprintf(&sb, "machine:  %d cores (%s), %s %s\n", m.Cores, m.CPU, m.GoVersion, m.Platform)
	if m.LoadStart != "" {
		fmt.Fprintf(&sb, "load:     %s at start, %s at end (1-min load average)\n", m.LoadStart, m.LoadEnd)
	}
	sb.WriteString("\n")
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "file\tkind\traw\tskyfed\tfpack best\tzstd -19\tsky÷fpack\tsky÷zstd\tcompress MB/s\tdecompress MB/s\tfpack mode\t")
	for _, f := range r.Files {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.0f\t%.0f\t%s\t\n", filepath.Base(f.Path), f.Kind,
			bytesX(f.Raw, f.Raw), bytesX(f.Sky, f.Raw), bytesX(f.Fpack, f.Raw), bytesX(f.Zstd, f.Raw),
			ratio(float64(f.Sky), float64(f.Fpack)), ratio(float64(f.Sky), float64(f.Zstd)),
			Measure{Bytes: f.Raw, Elapsed: f.Compress}.MBps(), Measure{Bytes: f.Raw, Elapsed: f.Decode}.MBps(), f.Mode)
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t")
	for _, t := range r.Totals() {
		refused := ""
		if t.FpackRefused > 0 {
			refused = fmt.Sprintf("%d refused", t.FpackRefused)
		}
		fmt.Fprintf(tw, "total %s (%d files)\t\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.0f\t%.0f\t%s\t\n", t.Kind, t.Files,
			bytesX(t.Raw, t.Raw), bytesX(t.Sky, t.Raw), bytesX(t.Fpack, t.RawFpack), bytesX(t.Zstd, t.Raw),
			ratio(float64(t.SkyFpack), float64(t.Fpack)), ratio(float64(t.Sky), float64(t.Zstd)), t.CompressMBps, t.DecodeMB, refused)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sb.WriteString("\n")
	tw = tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "goal\tvalue\ttarget\tresult")
	for _, g := range r.Goals() {
		op, result := "≥", "FAIL"
		if g.AtMost {
			op = "≤"
		}
		if g.Pass {
			result = "PASS"
		}
		fmt.Fprintf(tw, "%s\t%.3f%s\t%s %g%s\t%s\n", g.Name, g.Value, g.Unit, op, g.Limit, g.Unit, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sb.WriteString("\n")
	notes := []string{
		"Bytes are totals of the file, with the compression ratio raw ÷ bytes in parentheses. skyfed is the sum of the chunk payloads a put would store: the file cut into chunks by chunk.Splitter, each chunk's layout found by chunk.FITSScanner as the put path finds it, and coded by chunk.CompressLayout (raw when nothing saves 2%); every chunk is decoded and compared with the original.",
		"fpack best is the smallest output (fpack -S) of fpack -r, -h (scale 0), -g2 and -g1 for files of integer images, and of -g2 -q 0 and -g1 -q 0 for files holding float images: fpack's lossless modes (without -q 0 it quantizes floats, and it allows -q 0 only with GZIP). fpack copies tables uncompressed. A file fpack refuses in every mode (it stops at a header it cannot read, e.g. bytes after the last HDU) shows its raw size with mode refused and is left out of the totals' fpack column and sky÷fpack. zstd -19 is the zstd command on the whole file.",
		"MB/s is 10^6 raw bytes per CPU second of the thread calling the codec (zstd inside it runs on the same thread), the fastest of the repeats of each chunk: one core's speed, apart from the load of the machine (wall time where the kernel does not report thread CPU time).",
		"Kind is what most image samples of a file are (the scanner's layouts): integer BITPIX 8/16/32/64, float -32/-64, or no image data at all.",
	}
	for i, n := range notes {
		sb.WriteString(wrap(fmt.Sprintf("[%d] %s", i+1, n), 100, "    "))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// bytesX formats bytes with the ratio of raw to them.
func bytesX(n, raw int64) string {
	if n == raw {
		return ByteSize(n).String()
	}
	return fmt.Sprintf("%s (%.2f×)", ByteSize(n), ratio(float64(raw), float64(n)))
}
