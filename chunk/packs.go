package chunk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Packs is where a Store keeps its pack files: a directory of files
// (DirPacks, the default) or the objects of a bucket (chunk/bucket).
// The Store numbers packs, never reuses a number, writes each pack
// through one PackWriter, and reads records back by offset.
type Packs interface {
	// Create starts pack num, empty.
	Create(num uint32) (PackWriter, error)
	// Open returns a reader of pack num; a pack that is not there is
	// ErrPackMissing.
	Open(num uint32) (PackReader, error)
	// Remove deletes pack num; one that is not there is not an error.
	Remove(num uint32) error
	// List returns the size of every pack by number.
	List() (map[uint32]int64, error)
	// SealOnSync reports whether a synced pack takes no more appends: an
	// object is written whole, so each Sync closes its pack and the Store
	// goes on in a new one (concurrent commits still share one Sync).
	SealOnSync() bool
	// Where names the place for messages (a directory, a bucket URL
	// without credentials).
	Where() string
}

// PackWriter appends to one pack. The Store calls Write once per
// record (header and payload together, so a writer may read the header
// with ParseRecordHeader), never concurrently, and Sync from any
// goroutine, possibly while another Write runs. Write may modify the
// buffer it is given (as Pebble's vfs.File.Write may).
type PackWriter interface {
	io.Writer
	// Sync makes every byte written before it began durable.
	Sync() error
	// Writeback is a hint that the first end bytes may start on their
	// way to durable storage; errors are left to Sync.
	Writeback(end int64)
	// Close releases the writer; bytes not synced may be lost.
	Close() error
}

// PackReader reads a pack at offsets, concurrently.
type PackReader interface {
	io.ReaderAt
	io.Closer
}

// ErrPackMissing says that a pack the index refers to is not there.
var ErrPackMissing = errors.New("pack missing")

// DirPacks keeps packs as files pack-NNNNNN.dat in one directory,
// through a Pebble vfs.FS (vfs.Default, or a MemFS or fault-injecting FS
// in tests). Every file created, and its directory entry, is synced.
type DirPacks struct {
	fs  vfs.FS
	dir string
}

// NewDirPacks returns the packs in dir (created, and its entry synced,
// if missing). A nil fsys is vfs.Default.
func NewDirPacks(fsys vfs.FS, dir string) (*DirPacks, error) {
	if fsys == nil {
		fsys = vfs.Default
	}
	if err := mkdirAllSynced(fsys, dir); err != nil {
		return nil, err
	}
	return &DirPacks{fs: fsys, dir: dir}, nil
}

// Where returns the directory.
func (d *DirPacks) Where() string { return d.dir }

// SealOnSync is false: a file takes appends after a sync.
func (d *DirPacks) SealOnSync() bool { return false }

func (d *DirPacks) path(num uint32) string { return d.fs.PathJoin(d.dir, packName(num)) }

// Create creates the file and syncs the directory before anything is
// written to it.
func (d *DirPacks) Create(num uint32) (PackWriter, error) {
	f, err := d.fs.Create(d.path(num), packCategory)
	if err != nil {
		return nil, fmt.Errorf("create pack %s: %w", d.path(num), err)
	}
	if err := syncDir(d.fs, d.dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create pack %s: %w", d.path(num), err)
	}
	return fileWriter{f}, nil
}

// fileWriter is a pack file being appended.
type fileWriter struct{ f vfs.File }

func (w fileWriter) Write(b []byte) (int, error) { return w.f.Write(b) }
func (w fileWriter) Sync() error                 { return w.f.Sync() }
func (w fileWriter) Close() error                { return w.f.Close() }
func (w fileWriter) Writeback(end int64)         { _, _ = w.f.SyncTo(end) }

// ReadAt lets the Store read back a pack it is still writing.
func (w fileWriter) ReadAt(b []byte, off int64) (int, error) { return w.f.ReadAt(b, off) }

// Open opens the file for random reads.
func (d *DirPacks) Open(num uint32) (PackReader, error) {
	f, err := d.fs.Open(d.path(num), vfs.RandomReadsOption)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pack %s: %w", d.path(num), ErrPackMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("open pack %s: %w", d.path(num), err)
	}
	return f, nil
}

// Remove deletes the file and syncs the directory.
func (d *DirPacks) Remove(num uint32) error {
	if err := d.fs.Remove(d.path(num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pack %s: %w", d.path(num), err)
	}
	return syncDir(d.fs, d.dir)
}

// List returns the size of every pack file in the directory.
func (d *DirPacks) List() (map[uint32]int64, error) { return packSizes(d.fs, d.dir) }

// PackName returns the name of pack num (a file name, an object's last
// path element): pack-000012.dat.
func PackName(num uint32) string { return packName(num) }

// ParsePackName returns the number of a pack name, false if it is not one.
func ParsePackName(name string) (uint32, bool) { return parsePackName(name) }
