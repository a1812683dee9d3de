// Package crashpoint owns the named crash points that storage code passes
// through, used to prove crash safety.
//
// Storage code calls Hit(name) at each point. In-process tests install a
// handler with Set (for example one that snapshots a crashable filesystem
// and returns ErrCrashed, which aborts the operation). End-to-end tests of
// real processes set the environment variable SKYFED_CRASHPOINT to a name:
// the process then kills itself with SIGKILL when it reaches that point.
//
// Points in package chunk:
//
//	after-pack-write    Batch.Add/AddStored, after a record is appended to a pack file, before any fsync
//	after-pack-sync     Batch.Commit, after the pack files are fsynced, before the Pebble index commit
//	after-index-commit  Batch.Commit, after the synced Pebble commit (chunks are durable and visible)
package crashpoint

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Names of the crash points in package chunk.
const (
	AfterPackWrite   = "after-pack-write"
	AfterPackSync    = "after-pack-sync"
	AfterIndexCommit = "after-index-commit"
)

// EnvVar names the environment variable that makes a process kill itself at a point.
const EnvVar = "SKYFED_CRASHPOINT"

// ErrCrashed is what test handlers return to simulate a crash at a point.
var ErrCrashed = errors.New("crash point reached")

var (
	mu       sync.RWMutex
	handlers = map[string]func() error{}
	nHandler atomic.Int32 // len(handlers), read without the lock on the fast path

	envOnce sync.Once
	envName string
)

// Hit is called by storage code at the named point. If a handler is
// installed for name (Set), it returns the handler's result. Else, if the
// environment variable SKYFED_CRASHPOINT equals name, the process kills
// itself with SIGKILL. Otherwise it returns nil. Cheap when unused.
func Hit(name string) error {
	if nHandler.Load() > 0 {
		mu.RLock()
		fn := handlers[name]
		mu.RUnlock()
		if fn != nil {
			return fn()
		}
	}
	envOnce.Do(func() { envName = os.Getenv(EnvVar) })
	if envName != "" && envName == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		for { // SIGKILL cannot be caught; wait for it to land
			time.Sleep(time.Second)
		}
	}
	return nil
}

// Set installs fn as the handler of the named point (nil removes it) and
// returns a function that restores the previous handler. Safe for concurrent use.
func Set(name string, fn func() error) (restore func()) {
	mu.Lock()
	defer mu.Unlock()
	prev, had := handlers[name]
	put(name, fn)
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if had {
				put(name, prev)
			} else {
				put(name, nil)
			}
		})
	}
}

// put sets or deletes a handler; mu must be held.
func put(name string, fn func() error) {
	if fn == nil {
		delete(handlers, name)
	} else {
		handlers[name] = fn
	}
	nHandler.Store(int32(len(handlers)))
}
