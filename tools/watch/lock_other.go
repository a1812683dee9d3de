//go:build !unix

package watch

import (
	"errors"
	"os"
)

// ErrLocked is returned when another watcher holds the state dir.
var ErrLocked = errors.New("another skyfed watch uses this state dir")

// lockDir leaves the locking to Pebble where flock is missing.
func lockDir(dir string) (*os.File, error) { return nil, nil }
