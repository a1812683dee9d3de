package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncDir makes everything written to the file system holding dir durable
// (syncfs(2)), whichever process wrote it: a writer that does not fsync
// (the Object Store with default sync) pays for its data here, and dirty
// pages left by an earlier measurement do not slow the next one.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync file system of %s: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync file system of %s: %w", dir, err)
	}
	return nil
}
