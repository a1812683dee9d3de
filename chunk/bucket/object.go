package bucket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/skyfed/skyfed/chunk"
)

// errSealed: a pack takes no writes after its sync put it in the bucket.
var errSealed = errors.New("pack already sealed in the bucket")

// writer spools one pack to a local file and puts it, with its trailer,
// at the first Sync.
type writer struct {
	p   *Packs
	num uint32

	mu      sync.Mutex // held across the PUT: a Sync waits for the one running
	f       *os.File
	written int64
	entries []byte // the trailer's entries so far
	sealed  bool
	syncErr error // sticky: the pack is not in the bucket
}

// Write appends one record (header and payload, as the Store writes
// them) and notes it for the trailer.
func (w *writer) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sealed {
		return 0, fmt.Errorf("write to pack %s: %w", chunk.PackName(w.num), errSealed)
	}
	if _, err := chunk.ParseRecordHeader(b); err != nil {
		return 0, fmt.Errorf("write to pack %s: not one record: %w", chunk.PackName(w.num), err)
	}
	n, err := w.f.Write(b)
	if err != nil {
		return n, fmt.Errorf("spool pack %s: %w", chunk.PackName(w.num), err)
	}
	w.entries = binary.BigEndian.AppendUint64(w.entries, uint64(w.written))
	w.entries = append(w.entries, b[:chunk.RecordHeaderSize]...)
	w.written += int64(n)
	return n, nil
}

// Sync seals the pack and puts it, trailer included, in the bucket;
// the Store calls it once the pack takes no more appends, and later
// Syncs return what the first did.
func (w *writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sealed {
		return w.syncErr
	}
	w.sealed = true
	if w.written == 0 {
		return nil // nothing was ever written: no object
	}
	w.syncErr = w.put()
	return w.syncErr
}

func (w *writer) put() error {
	trailer := appendTrailer(nil, w.entries, w.written)
	if _, err := w.f.WriteAt(trailer, w.written); err != nil {
		return fmt.Errorf("spool pack %s: %w", chunk.PackName(w.num), err)
	}
	size := w.written + int64(len(trailer))
	p := w.p
	ctx, cancel, err := p.fenced(context.Background())
	if err != nil {
		return fmt.Errorf("put pack %s in %s: %w", chunk.PackName(w.num), p.Where(), err)
	}
	defer cancel()
	err = p.do(ctx, &p.stats.Puts, func(ctx context.Context) error {
		_, err := p.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(p.packKey(w.num)),
			Body: io.NewSectionReader(w.f, 0, size), ContentLength: aws.Int64(size)})
		return err
	})
	if err != nil {
		return fmt.Errorf("put pack %s in %s: %w", chunk.PackName(w.num), p.Where(), err)
	}
	p.stats.BytesUp.Add(size)
	return nil
}

// Writeback does nothing: the bytes go up whole at Sync.
func (w *writer) Writeback(int64) {}

// Close removes the spool file.
func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	name := w.f.Name()
	err := errors.Join(w.f.Close(), os.Remove(name))
	w.f = nil
	w.sealed = true
	return err
}

// reader reads one pack object by ranged GETs.
type reader struct {
	p    *Packs
	key  string
	size int64
}

// ReadAt reads len(b) bytes at off with one ranged GET.
func (r *reader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(b)), r.size-off)
	var got int
	p := r.p
	err := p.do(context.Background(), &p.stats.Gets, func(ctx context.Context) error {
		out, err := p.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(r.key),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		got, err = io.ReadFull(out.Body, b[:n])
		return err
	})
	p.stats.BytesDown.Add(int64(got))
	if err != nil {
		if isNotFound(err) {
			return got, fmt.Errorf("read %s: %w", r.key, chunk.ErrPackMissing)
		}
		return got, fmt.Errorf("read %s at %d: %w", r.key, off, err)
	}
	if int64(got) < int64(len(b)) {
		return got, io.EOF
	}
	return got, nil
}

// Close does nothing: a reader holds no connection between reads.
func (r *reader) Close() error { return nil }

// Records returns the records pack num, of size bytes (as List gave
// them), lists in its trailer, with two ranged reads (the tail, then
// the entries).
func (p *Packs) Records(num uint32, size int64) ([]chunk.Record, error) {
	r := &reader{p: p, key: p.packKey(num), size: size}
	if r.size < int64(tailSize) {
		return nil, fmt.Errorf("pack %s: %d bytes: %w", chunk.PackName(num), r.size, ErrBadTrailer)
	}
	tail := make([]byte, tailSize)
	if _, err := r.ReadAt(tail, r.size-int64(tailSize)); err != nil {
		return nil, err
	}
	n, end, sum, err := parseTail(tail)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", chunk.PackName(num), err)
	}
	start := r.size - int64(tailSize) - int64(n)*entrySize
	if start != end {
		return nil, fmt.Errorf("pack %s: %w: trailer of %d entries does not start where the records end (%d)", chunk.PackName(num), ErrBadTrailer, n, end)
	}
	b := make([]byte, int64(n)*entrySize+12)
	if _, err := r.ReadAt(b, start); err != nil {
		return nil, err
	}
	recs, err := parseEntries(b, n, end, sum)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", chunk.PackName(num), err)
	}
	return recs, nil
}
