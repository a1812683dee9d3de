package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/site/client"
	"github.com/skyfed/skyfed/testlab"
)

// benchDomain is the domain the benchmark sites write under.
const benchDomain = "bench.skyfed.test"

// benchSite is one site process started for a measurement.
type benchSite struct {
	proc   *testlab.Process
	client *client.Client
	dir    string
	log    *tailWriter
}

// startSite creates a site in a new subdirectory and runs it as a process
// of the skyfed binary.
func (b *ingestRun) startSite(ctx context.Context, name string) (*benchSite, error) {
	dir, err := b.subdir("site-" + name)
	if err != nil {
		return nil, err
	}
	return startSiteProcess(ctx, b.cfg.Binary, dir, "bench-"+name, nil)
}

// startSiteProcess creates site id with its data dir under dir, edits
// its config (edit may be nil) and runs it as a process of bin; on
// failure dir is removed.
func startSiteProcess(ctx context.Context, bin, dir, id string, edit func(*site.Config)) (*benchSite, error) {
	dataDir := filepath.Join(dir, "data")
	url, _, err := testlab.InitSite(bin, dataDir, id, benchDomain)
	if err == nil && edit != nil {
		err = site.EditConfig(dataDir, func(c *site.Config) error { edit(c); return nil })
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logw := &tailWriter{max: 16 << 10}
	p, err := testlab.StartProcess(ctx, bin, dataDir, logw)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\nsite log:\n%s", err, logw.String())
	}
	return &benchSite{proc: p, client: client.New(url, ""), dir: dir, log: logw}, nil
}

// restart starts the site's process again (after proc.Stop and a
// config change).
func (s *benchSite) restart(ctx context.Context, bin string) error {
	p, err := testlab.StartProcess(ctx, bin, s.proc.Dir, s.log)
	if err != nil {
		return s.wrap(err)
	}
	s.proc = p
	return nil
}

// stop stops the process and removes the site's data.
func (s *benchSite) stop() error {
	s.client.CloseIdleConnections()
	err := s.proc.Stop()
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return s.wrap(err)
}

// wrap adds the tail of the site's log to err.
func (s *benchSite) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w\nsite log (tail):\n%s", err, s.log.String())
}

// idleRSS records the site's resident set size; read before any put.
func (s *benchSite) idleRSS(into *SitePut) error {
	v, err := s.proc.RSS()
	into.IdleRSS = v
	return s.wrap(err)
}

// peakRSS records the site's peak resident set size (VmHWM); read after
// the last put.
func (s *benchSite) peakRSS(into *SitePut) error {
	v, err := s.proc.PeakRSS()
	into.PeakRSS = v
	return s.wrap(err)
}

// RandomObjectSize is the size of the objects the random stream is put as,
// into skyfed and into the Object Store alike: a frame-sized object (the
// telescopes dump 10–200 MB), and small enough for the stock Object Store
// with sync always (see measureObjectStore).
const RandomObjectSize = 64 << 20

// measureSiteRandom times a put of the random stream, as objects of
// RandomObjectSize, into a fresh site process over HTTP.
func (b *ingestRun) measureSiteRandom(ctx context.Context) (Measure, error) {
	s, err := b.startSite(ctx, "random")
	if err != nil {
		return Measure{}, err
	}
	out, err := b.putRandom(ctx, s)
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return Measure{}, err
	}
	b.res.Random = out
	return out.Measure, nil
}

func (b *ingestRun) putRandom(ctx context.Context, s *benchSite) (SitePut, error) {
	var out SitePut
	if err := s.idleRSS(&out); err != nil {
		return out, err
	}
	src := NewRandom(b.cfg.Seed, int64(b.cfg.Size))
	d, err := b.timed(func() error {
		for i, size := range randomObjects(int64(b.cfg.Size)) {
			name := fmt.Sprintf("%s/random/object-%04d.bin", benchDomain, i)
			res, err := s.client.Put(ctx, name, io.LimitReader(src, size), size, client.PutOptions{})
			if err != nil {
				return s.wrap(err)
			}
			if res.Size != size {
				return fmt.Errorf("put %s: site stored %d bytes of %d", name, res.Size, size)
			}
			out.Bytes += size
			out.Objects++
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	out.Elapsed = d
	return out, s.peakRSS(&out)
}

// randomObjects splits size into the sizes of the random-data objects:
// RandomObjectSize each, the last one shorter.
func randomObjects(size int64) []int64 {
	var out []int64
	for size > 0 {
		n := min(size, RandomObjectSize)
		out = append(out, n)
		size -= n
	}
	return out
}

// tailWriter keeps the last max bytes written to it; safe for concurrent use.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
