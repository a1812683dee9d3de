package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Full disks. A site keeps disk_reserve free on the disk of its data
// dir: below it, puts are refused (507, ErrDiskFull) before they write,
// and the forwarding engine answers "later" to offers and tells its
// peers to hold them (forward.Node.SetFull), until space comes back.
//
// Reads never need space, but opening Pebble does: it flushes what its
// write-ahead log holds before Open returns, and on a disk with no byte
// free that flush fails and is retried without end (the bug this file
// answers: a site restarted on a full disk never served HTTP and logged
// "no space left on device" ~10,000 times a second). So a site keeps a
// ballast file in its data dir, as CockroachDB does: on a disk filled
// to the last byte by someone else it deletes the ballast, at start
// before opening Pebble and while running before Pebble's own small
// writes (cursors, the reconciliation table) fail, and makes it again
// once the disk has room for it above the reserve.

// ErrDiskFull is a put refused because the disk of the data dir has less
// free space than disk_reserve. It wraps syscall.ENOSPC, so HTTP answers
// it 507 with a hint.
var ErrDiskFull = fmt.Errorf("disk full: free space below disk_reserve: %w", syscall.ENOSPC)

// Space watching.
const (
	spaceEvery = time.Second // how often the watcher looks at the disk
	// ballastMax bounds the ballast file; it is half the reserve below that.
	ballastMax = 16 << 20
	// BallastFile is the ballast's name in the data dir.
	BallastFile = "space-ballast"
)

// diskUsage is what statfs says of the data dir's file system.
type diskUsage struct {
	free, total uint64 // bytes available to this (unprivileged) user; size of the file system
}

func statDisk(dir string) (diskUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return diskUsage{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return diskUsage{free: st.Bavail * uint64(st.Bsize), total: st.Blocks * uint64(st.Bsize)}, nil
}

// space watches the free space of a data dir against its reserve.
type space struct {
	dir     string
	reserve func(total uint64) uint64
	log     *slog.Logger
	// onChange hears every change of full (the site tells its node).
	onChange func(full bool)

	full                  atomic.Bool
	free, total, reserved atomic.Uint64
	ballastBytes          atomic.Uint64 // size of the ballast file now (0: none)
	changes               atomic.Int64  // times full changed
	check                 chan struct{}

	mu sync.Mutex // serializes looks (the watcher's and Open's)
}

func newSpace(dir string, reserve func(total uint64) uint64, log *slog.Logger) *space {
	sp := &space{dir: dir, reserve: reserve, log: log, check: make(chan struct{}, 1)}
	if fi, err := os.Stat(sp.ballastPath()); err == nil {
		sp.ballastBytes.Store(uint64(fi.Size()))
	}
	return sp
}

func (sp *space) ballastPath() string { return filepath.Join(sp.dir, BallastFile) }

// ballastSize is the size the ballast is made at: half the reserve, at
// most ballastMax.
func (sp *space) ballastSize(total uint64) uint64 { return min(sp.reserve(total)/2, ballastMax) }

// look reads the disk's free space, releases or makes the ballast, sets
// full and reports it (calling onChange if it changed).
func (sp *space) look() (bool, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	du, err := statDisk(sp.dir)
	if err != nil {
		return sp.full.Load(), err
	}
	reserve := sp.reserve(du.total)
	ballast := sp.ballastSize(du.total)
	switch have := sp.ballastBytes.Load(); {
	case have > 0 && du.free < ballast:
		// Filled to (almost) the last byte: give Pebble room to write.
		if err := os.Remove(sp.ballastPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			sp.log.Error("disk full: cannot delete the ballast file", "file", sp.ballastPath(), "err", err)
		} else {
			sp.ballastBytes.Store(0)
			du.free += have
			sp.log.Warn("disk full to the last bytes: deleted the ballast file so the index stays writable",
				"file", sp.ballastPath(), "bytes", have, "free", du.free)
		}
	case have == 0 && ballast > 0 && du.free >= reserve+2*ballast:
		if err := makeBallast(sp.ballastPath(), ballast); err != nil {
			sp.log.Warn("cannot make the ballast file; a disk filled to the last byte may keep this site from starting", "file", sp.ballastPath(), "err", err)
		} else {
			sp.ballastBytes.Store(ballast)
			du.free -= min(du.free, ballast)
		}
	}
	sp.free.Store(du.free)
	sp.total.Store(du.total)
	sp.reserved.Store(reserve)
	full := du.free < reserve
	if sp.full.Swap(full) != full {
		sp.changes.Add(1)
		if full {
			sp.log.Warn("disk full: free space below disk_reserve; refusing puts and pausing replication into this site (reads go on)",
				"free", du.free, "reserve", reserve, "dir", sp.dir,
				"hint", "free space (skyfed tools gc), grow the disk, or change disk_reserve in "+ConfigFile)
		} else {
			sp.log.Info("disk has room again: taking puts and replication", "free", du.free, "reserve", reserve)
		}
		if sp.onChange != nil {
			sp.onChange(full)
		}
	}
	return full, nil
}

// makeBallast allocates a file of n bytes (fallocate, or zeros where the
// file system cannot), written through a temporary name so a crash
// leaves no half ballast under the real one.
func makeBallast(path string, n uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = allocate(f, n)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func writeZeros(f *os.File, n uint64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, uint64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// lookSoon asks the watcher to look now (after an ENOSPC).
func (sp *space) lookSoon() {
	select {
	case sp.check <- struct{}{}:
	default:
	}
}

// watch looks every spaceEvery and when asked, until ctx ends.
func (sp *space) watch(ctx context.Context) {
	t := time.NewTicker(spaceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-sp.check:
		}
		if _, err := sp.look(); err != nil {
			sp.log.Warn("cannot read the disk's free space", "err", err)
		}
	}
}

// refuse returns ErrDiskFull, with the numbers, while the disk is full.
func (sp *space) refuse() error {
	if !sp.full.Load() {
		return nil
	}
	return fmt.Errorf("%w (%s free, disk_reserve %s)", ErrDiskFull, humanBytes(sp.free.Load()), humanBytes(sp.reserved.Load()))
}

// walBytes sums the sizes of Pebble's write-ahead logs in dir: at most
// what Open flushes before it returns (logs kept for reuse count too).
func walBytes(dir string) uint64 {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var n uint64
	for _, p := range logs {
		if fi, err := os.Stat(p); err == nil {
			n += uint64(fi.Size())
		}
	}
	return n
}

// roomToOpen gives Pebble room to flush its logs at open: on a full
// disk it deletes the ballast. If the disk has less free than the logs
// hold even then, Open may wait (Pebble retries its flush, held back
// and logged once a minute by pebbleEvents) until space is freed; that
// is said once, here.
func (sp *space) roomToOpen(indexDir string) {
	full, err := sp.look()
	if err != nil {
		return // cannot tell: try
	}
	if full && sp.ballastBytes.Load() > 0 {
		sp.mu.Lock()
		if err := os.Remove(sp.ballastPath()); err == nil {
			sp.log.Warn("disk full: deleted the ballast file so the index can open", "file", sp.ballastPath(), "bytes", sp.ballastBytes.Load())
			sp.ballastBytes.Store(0)
		}
		sp.mu.Unlock()
		sp.look()
	}
	if logs, free := walBytes(indexDir), sp.free.Load(); full && free < logs {
		sp.log.Warn("disk full: the index's logs hold up to more than is free; if it cannot flush them it opens once space is freed",
			"logs", logs, "free", free, "dir", sp.dir)
	}
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// spaceCollector exports the disk's state.
type spaceCollector struct{ sp *space }

var (
	descDiskFull    = prometheus.NewDesc("skyfed_disk_full", "1 while the data dir's disk has less free space than disk_reserve (puts refused, replication into this site paused).", nil, nil)
	descDiskFree    = prometheus.NewDesc("skyfed_disk_free_bytes", "Free space on the data dir's disk, as last looked at.", nil, nil)
	descDiskReserve = prometheus.NewDesc("skyfed_disk_reserve_bytes", "The free space puts and replication leave on the disk (disk_reserve).", nil, nil)
	descDiskChanges = prometheus.NewDesc("skyfed_disk_full_changes_total", "Times the disk became full or had room again.", nil, nil)
	descBallast     = prometheus.NewDesc("skyfed_disk_ballast_bytes", "Size of the ballast file kept to start on a disk filled to the last byte (0: released).", nil, nil)
)

func (c spaceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDiskFull, descDiskFree, descDiskReserve, descDiskChanges, descBallast} {
		ch <- d
	}
}

func (c spaceCollector) Collect(ch chan<- prometheus.Metric) {
	full := 0.0
	if c.sp.full.Load() {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(descDiskFull, prometheus.GaugeValue, full)
	ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(c.sp.free.Load()))
	ch <- prometheus.MustNewConstMetric(descDiskReserve, prometheus.GaugeValue, float64(c.sp.reserved.Load()))
	ch <- prometheus.MustNewConstMetric(descDiskChanges, prometheus.CounterValue, float64(c.sp.changes.Load()))
	ch <- prometheus.MustNewConstMetric(descBallast, prometheus.GaugeValue, float64(c.sp.ballastBytes.Load()))
}
