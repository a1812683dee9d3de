package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// writeSize is the size of one write (and read) of the baselines.
const writeSize = 1 << 20

// measureSource times the random stream alone: the cost every writer
// below pays for its input.
func (b *ingestRun) measureSource(ctx context.Context) (Measure, error) {
	buf := make([]byte, writeSize)
	src := NewRandom(b.cfg.Seed, int64(b.cfg.Size))
	start := time.Now()
	n, err := fill(ctx, src, buf, func(p []byte) error { return nil })
	if err != nil {
		return Measure{}, err
	}
	b.res.Source = Measure{Bytes: n, Elapsed: time.Since(start)}
	return b.res.Source, nil
}

// measureRawWrite times writing the random stream to one file in 1 MiB
// writes with one fsync at the end: the disk baseline.
func (b *ingestRun) measureRawWrite(ctx context.Context) (Measure, error) {
	dir, err := b.subdir("raw")
	if err != nil {
		return Measure{}, err
	}
	defer os.RemoveAll(dir)
	buf := make([]byte, writeSize)
	var n int64
	d, err := b.timed(func() error {
		f, err := os.Create(filepath.Join(dir, "raw.dat"))
		if err != nil {
			return err
		}
		n, err = fill(ctx, NewRandom(b.cfg.Seed, int64(b.cfg.Size)), buf, func(p []byte) error {
			_, err := f.Write(p)
			return err
		})
		if err == nil {
			err = f.Sync()
		}
		return errors.Join(err, f.Close())
	})
	if err != nil {
		return Measure{}, fmt.Errorf("raw write: %w", err)
	}
	b.res.RawWrite = Measure{Bytes: n, Elapsed: d}
	return b.res.RawWrite, nil
}

// measureSHA256 times SHA-256 over the random stream in memory, counting
// only the time spent hashing: the per-core hashing ceiling.
func (b *ingestRun) measureSHA256(ctx context.Context) (Measure, error) {
	buf := make([]byte, writeSize)
	h := sha256.New()
	var hashing time.Duration
	n, err := fill(ctx, NewRandom(b.cfg.Seed, int64(b.cfg.Size)), buf, func(p []byte) error {
		start := time.Now()
		h.Write(p)
		hashing += time.Since(start)
		return nil
	})
	if err != nil {
		return Measure{}, err
	}
	b.res.SHA256 = Measure{Bytes: n, Elapsed: hashing}
	return b.res.SHA256, nil
}

// fill reads src to its end in len(buf) pieces and hands each to sink. It
// returns the bytes read.
func fill(ctx context.Context, src io.Reader, buf []byte, sink func([]byte) error) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if serr := sink(buf[:n]); serr != nil {
				return total, serr
			}
			total += int64(n)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}
