package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/skyfed/skyfed/site/client"
)

// RePut is the re-put row: the random objects, already put, put again
// from files under new names by their chunk lists (as `skyfed put` of a
// renamed file does).
type RePut struct {
	Measure
	Objects int
	// MovedBytes are the chunk bytes the site took in during the re-put
	// (none when every chunk was there).
	MovedBytes int64
}

// measureRePut writes the random objects to files and puts them (both
// untimed), then times putting the same files under new names by their
// chunk lists.
func (b *ingestRun) measureRePut(ctx context.Context) (Measure, error) {
	dir, err := b.subdir("reput-files")
	if err != nil {
		return Measure{}, err
	}
	defer os.RemoveAll(dir)
	var files []string
	src := NewRandom(b.cfg.Seed, int64(b.cfg.Size))
	for i, size := range randomObjects(int64(b.cfg.Size)) {
		path := filepath.Join(dir, fmt.Sprintf("object-%04d.bin", i))
		if err := writeFile(path, io.LimitReader(src, size)); err != nil {
			return Measure{}, err
		}
		files = append(files, path)
	}
	s, err := b.startSite(ctx, "reput")
	if err != nil {
		return Measure{}, err
	}
	defer s.stop()
	put := func(name, path string, byList bool) (int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return 0, err
		}
		if byList {
			_, err = s.client.PutFile(ctx, name, f, fi.Size(), client.PutOptions{})
		} else {
			_, err = s.client.Put(ctx, name, f, fi.Size(), client.PutOptions{})
		}
		return fi.Size(), s.wrap(err)
	}
	for i, path := range files {
		if _, err := put(fmt.Sprintf("%s/random/object-%04d.bin", benchDomain, i), path, false); err != nil {
			return Measure{}, err
		}
	}
	before, err := s.client.Status(ctx)
	if err != nil {
		return Measure{}, s.wrap(err)
	}
	var out RePut
	d, err := b.timed(func() error {
		for i, path := range files {
			n, err := put(fmt.Sprintf("%s/renamed/object-%04d.bin", benchDomain, i), path, true)
			if err != nil {
				return err
			}
			out.Bytes += n
			out.Objects++
		}
		return nil
	})
	if err != nil {
		return Measure{}, err
	}
	after, err := s.client.Status(ctx)
	if err != nil {
		return Measure{}, s.wrap(err)
	}
	out.Elapsed, out.MovedBytes = d, after.RawBytes-before.RawBytes
	b.res.RePut = out
	return out.Measure, nil
}

// writeFile writes r to a new file at path.
func writeFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
