//go:build unix

package watch

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned when another watcher holds the state dir.
var ErrLocked = errors.New("another skyfed watch uses this state dir")

// lockDir takes an exclusive lock on dir/watch.lock, held until the
// returned file is closed (or the process ends, however it ends).
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir+"/watch.lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("watch state %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("watch state %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("watch state %s: lock: %w", dir, err)
	}
	return f, nil
}
