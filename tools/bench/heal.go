package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/testlab"
)

// HealConfig configures `skyfed bench heal`.
type HealConfig struct {
	Size     ByteSize  // raw bytes stored before the passes
	Dir      string    // scratch dir on the disk to measure ("" → temp dir)
	Progress io.Writer // nil → discard
}

// HealResult is the scrub and compaction speeds beside their baselines.
type HealResult struct {
	Config  HealConfig
	Machine Machine
	Chunks  int
	// Baselines: reading the pack files straight (the page cache is warm
	// for both this and the scrub), SHA-256 of the same bytes in memory,
	// and copying bytes from file to file with an fsync at the end.
	RawRead, SHA256, RawCopy Measure
	// Scrub reads and re-hashes every chunk; Compact moves the live half
	// of packs half dead and removes them.
	Scrub, Compact Measure
	Reclaimed      int64
}

// RunHeal stores Size bytes of random 1 MiB chunks in a chunk store on a
// real Pebble and pack files, then measures scrub and compaction against
// the baselines, in one run.
func RunHeal(ctx context.Context, cfg HealConfig) (*HealResult, error) {
	if cfg.Size <= 0 {
		cfg.Size = 1 << 30
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir, err := scratchDir(cfg.Dir, "heal")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &HealResult{Config: cfg, Machine: thisMachine(dir)}
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{Logger: quietPebbleLog{}})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := chunk.Open(db, chunk.Options{Dir: filepath.Join(dir, "packs"), PackSize: 64 << 20, Logger: log})
	if err != nil {
		return nil, err
	}
	defer store.Close()

	fmt.Fprintf(progress, "bench heal: storing %s of random 1 MiB chunks\n", cfg.Size)
	ids, err := fillStore(ctx, store, int64(cfg.Size))
	if err != nil {
		return nil, err
	}
	res.Chunks = len(ids)
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "pack-*.dat"))

	fmt.Fprintln(progress, "bench heal: raw read of the pack files")
	res.RawRead, err = timeIt(func() (int64, error) { return readFiles(packs) })
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(progress, "bench heal: SHA-256 in memory")
	res.SHA256 = measureSHA(int64(cfg.Size))
	fmt.Fprintln(progress, "bench heal: scrub")
	res.Scrub, err = timeIt(func() (int64, error) {
		r, err := store.Scrub(ctx, chunk.ScrubOptions{})
		if err == nil && r.Corrupt > 0 {
			err = fmt.Errorf("scrub found %d corrupt chunks in a fresh store", r.Corrupt)
		}
		return r.Bytes, err
	})
	if err != nil {
		return nil, err
	}

	// Every other chunk is garbage: compaction moves the other half.
	var dead []chunk.ID
	for i := 0; i < len(ids); i += 2 {
		dead = append(dead, ids[i])
	}
	if _, err := store.Sweep(dead); err != nil {
		return nil, err
	}
	fmt.Fprintln(progress, "bench heal: compaction of packs half dead")
	var rep chunk.CompactReport
	res.Compact, err = timeIt(func() (int64, error) {
		rep, err = store.Compact(ctx, chunk.CompactOptions{MinDead: 0.4})
		return rep.ChunksMoved << 20, err
	})
	if err != nil {
		return nil, err
	}
	res.Reclaimed = rep.Reclaimed()
	fmt.Fprintln(progress, "bench heal: raw copy with fsync")
	res.RawCopy, err = timeIt(func() (int64, error) { return writeSynced(filepath.Join(dir, "copy"), rep.ChunksMoved<<20) })
	if err != nil {
		return nil, err
	}
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

func fillStore(ctx context.Context, store *chunk.Store, size int64) ([]chunk.ID, error) {
	src := testlab.RandomStream(7, size)
	buf := make([]byte, 1<<20)
	var ids []chunk.ID
	b := store.NewBatch()
	for n := int64(0); n < size; n += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			b.Abort()
			return nil, err
		}
		if _, err := io.ReadFull(src, buf); err != nil {
			b.Abort()
			return nil, err
		}
		id := chunk.Sum(buf)
		if _, err := b.Add(id, buf); err != nil {
			b.Abort()
			return nil, err
		}
		ids = append(ids, id)
		if len(ids)%256 == 0 {
			if err := b.Commit(nil); err != nil {
				return nil, err
			}
			b = store.NewBatch()
		}
	}
	return ids, b.Commit(nil)
}

func timeIt(fn func() (int64, error)) (Measure, error) {
	start := time.Now()
	n, err := fn()
	return Measure{Bytes: n, Elapsed: time.Since(start)}, err
}

func readFiles(paths []string) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue // removed by compaction meanwhile
		}
		for {
			k, err := f.Read(buf)
			n += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return n, err
			}
		}
		f.Close()
	}
	return n, nil
}

func measureSHA(size int64) Measure {
	buf := make([]byte, 1<<20)
	_, _ = io.ReadFull(testlab.RandomStream(9, int64(len(buf))), buf)
	start := time.Now()
	for n := int64(0); n < size; n += int64(len(buf)) {
		_ = sha256.Sum256(buf)
	}
	return Measure{Bytes: size, Elapsed: time.Since(start)}
}

// writeSynced writes limit bytes of random data into a new file and
// fsyncs it: what compaction does besides reading and checking.
func writeSynced(to string, limit int64) (int64, error) {
	f, err := os.Create(to)
	if err != nil {
		return 0, err
	}
	defer os.Remove(to)
	n, err := io.Copy(f, testlab.RandomStream(11, limit))
	if err == nil {
		err = f.Sync()
	}
	return n, errors.Join(err, f.Close())
}

// WriteTable prints the result.
func (r *HealResult) WriteTable(w io.Writer) error {
	var sb strings.Builder
	m := r.Machine
	fmt.Fprintf(&sb, "skyfed bench heal: %s in %d chunks of 1 MiB (random, stored raw), packs of 64 MiB, in %s\n", r.Config.Size, r.Chunks, m.Dir)
	fmt.Fprintf(&sb, "machine: %d cores (%s), %s %s\n", m.Cores, m.CPU, m.GoVersion, m.Platform)
	if m.LoadStart != "" {
		fmt.Fprintf(&sb, "load:    %s at start, %s at end (1-min load average)\n", m.LoadStart, m.LoadEnd)
	}
	fmt.Fprintln(&sb)
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\tbytes\tseconds\tMB/s\tratio\tagainst\t")
	row := func(what string, m Measure, ratio float64, against string) {
		r := "—"
		if ratio > 0 {
			r = fmt.Sprintf("%.2f", ratio)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%s\t%s\t\n", what, m.Bytes, m.Elapsed.Seconds(), m.MBps(), r, against)
	}
	row("raw read of packs (warm)", r.RawRead, 0, "")
	row("SHA-256 in memory", r.SHA256, 0, "")
	row("scrub (read + check + hash)", r.Scrub, r.Scrub.MBps()/min(r.RawRead.MBps(), r.SHA256.MBps()), "min(raw read, SHA-256)")
	row("raw write + fsync", r.RawCopy, 0, "")
	row("compaction (live bytes moved)", r.Compact, r.Compact.MBps()/r.RawCopy.MBps(), "raw write + fsync")
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&sb, "\ncompaction reclaimed %s (every other chunk swept first); background passes run at scrub_rate (50 MB/s by default), far below these.\n", ByteSize(r.Reclaimed))
	_, err := io.WriteString(w, sb.String())
	return err
}

// quietPebbleLog keeps Pebble's own logs out of the bench's output.
type quietPebbleLog struct{}

func (quietPebbleLog) Infof(string, ...any)  {}
func (quietPebbleLog) Errorf(string, ...any) {}
func (quietPebbleLog) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
