package watch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
)

// ErrBadRecord is wrapped by the error of a state record that does not
// decode: a state dir from a newer skyfed, or a damaged one.
var ErrBadRecord = errors.New("malformed watch state record")

// recordVersion is the first byte of every stored record.
const recordVersion = 1

// Limits of a record's strings.
const (
	maxNameLen    = 4096
	maxVersionLen = 256
)

// keyPrefix starts the key of every file record: keyPrefix + the path
// relative to the watched directory, with slashes.
const keyPrefix = "f/"

// State is the watcher's memory across restarts: one record per file,
// in a Pebble DB, every write synced before the watcher acts on it.
type State struct {
	db   *pebble.DB
	lock *os.File
}

// OpenState opens (creating) the state in dir. Pebble locks it: a second
// watcher on the same state fails here.
func OpenState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("watch state %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("watch state %s: %w", dir, err)
	}
	return &State{db: db, lock: lock}, nil
}

// Close closes the state and lets another watcher open it.
func (s *State) Close() error {
	err := s.db.Close()
	s.lock.Close()
	return err
}

// Get returns the record of rel, or nil.
func (s *State) Get(rel string) (*Record, error) {
	v, closer, err := s.db.Get([]byte(keyPrefix + rel))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watch state: read %s: %w", rel, err)
	}
	defer closer.Close()
	r, err := DecodeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("watch state: %s: %w", rel, err)
	}
	return r, nil
}

// Put records r for rel, durably.
func (s *State) Put(rel string, r *Record) error {
	if err := s.db.Set([]byte(keyPrefix+rel), r.Encode(), pebble.Sync); err != nil {
		return fmt.Errorf("watch state: write %s: %w", rel, err)
	}
	return nil
}

// Delete drops the record of rel, durably.
func (s *State) Delete(rel string) error {
	if err := s.db.Delete([]byte(keyPrefix+rel), pebble.Sync); err != nil {
		return fmt.Errorf("watch state: delete %s: %w", rel, err)
	}
	return nil
}

// Paths calls fn with the path of every record, in order.
func (s *State) Paths(fn func(rel string) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(keyPrefix), UpperBound: []byte("f0")})
	if err != nil {
		return fmt.Errorf("watch state: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(string(it.Key()[len(keyPrefix):])); err != nil {
			return err
		}
	}
	return it.Error()
}

// Encode returns r's stored form:
//
//	version(1) status(u8) size(uvarint) mtime(varint) sha256[32]
//	name(uvarint len + bytes) version(uvarint len + bytes)
//	manifest(uvarint len + bytes) sites(uvarint)
func (r *Record) Encode() []byte {
	b := make([]byte, 0, 64+len(r.Name)+len(r.Version)+len(r.Manifest))
	b = append(b, recordVersion, byte(r.Status))
	b = binary.AppendUvarint(b, uint64(r.Size))
	b = binary.AppendVarint(b, r.MTime)
	b = append(b, r.SHA256[:]...)
	for _, s := range []string{r.Name, r.Version, r.Manifest} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return binary.AppendUvarint(b, uint64(r.Sites))
}

// DecodeRecord decodes a stored record. It is strict: what Encode did
// not write is refused (wrapping ErrBadRecord), so a record decodes to
// one value and encodes back to the same bytes.
func DecodeRecord(b []byte) (*Record, error) {
	d := recordReader{b: b}
	if v := d.byte(); d.err == nil && v != recordVersion {
		return nil, fmt.Errorf("%w: version %d (a newer skyfed's state?)", ErrBadRecord, v)
	}
	r := &Record{Status: Status(d.byte())}
	size := d.uvarint()
	r.MTime = d.varint()
	copy(r.SHA256[:], d.take(32))
	r.Name = d.str(maxNameLen)
	r.Version = d.str(maxVersionLen)
	r.Manifest = d.str(64)
	sites := d.uvarint()
	switch {
	case d.err != nil:
		return nil, d.err
	case len(d.b) != 0:
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadRecord, len(d.b))
	case r.Status < StatusPutting || r.Status > StatusDeleted:
		return nil, fmt.Errorf("%w: status %d", ErrBadRecord, r.Status)
	case size > 1<<62 || sites > 1<<20:
		return nil, fmt.Errorf("%w: size %d, sites %d", ErrBadRecord, size, sites)
	}
	r.Size, r.Sites = int64(size), int(sites)
	return r, nil
}

type recordReader struct {
	b   []byte
	err error
}

func (d *recordReader) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadRecord, what)
	}
	d.b = nil
}

func (d *recordReader) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *recordReader) take(n int) []byte {
	if len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *recordReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordReader) str(max int) string {
	n := d.uvarint()
	if d.err == nil && n > uint64(max) {
		d.fail(fmt.Sprintf("string of %d bytes", n))
	}
	if d.err != nil {
		return ""
	}
	return string(d.take(int(n)))
}

// quietPebble keeps Pebble's own logs out of the watcher's output.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
