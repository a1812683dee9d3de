//go:build !linux

package bench

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// syncDir makes everything under dir durable by fsyncing every file and
// directory in it, whichever process wrote them: a writer that does not
// fsync (the Object Store with default sync) pays for its data here.
func syncDir(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
