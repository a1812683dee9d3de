package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Events the watcher asks for on every directory: a file closed after
// writing or renamed in is complete; new directories are watched in
// turn; files removed or renamed away are looked at (their records go).
const notifyMask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// Bits of an event's mask the watcher reads.
const (
	evClosed   = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO
	evGone     = unix.IN_DELETE | unix.IN_MOVED_FROM
	evCreate   = unix.IN_CREATE
	evIsDir    = unix.IN_ISDIR
	evOverflow = unix.IN_Q_OVERFLOW
	evDirGone  = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED
)

// notifier is one inotify instance watching a tree of directories.
type notifier struct {
	f *os.File

	mu   sync.Mutex
	dirs map[int32]string // watch descriptor → directory, relative ("" the root)
	wds  map[string]int32
}

func newNotifier() (*notifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// Non-blocking: os.File reads it through the runtime's poller, and
	// Close wakes a read in progress.
	return &notifier{f: os.NewFile(uintptr(fd), "inotify"), dirs: map[int32]string{}, wds: map[string]int32{}}, nil
}

// add watches directory abs, known as rel; a directory watched already
// is not added twice.
func (n *notifier) add(abs, rel string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.wds[rel]; ok {
		return nil
	}
	var wd int
	var err error
	cerr := withFD(n.f, func(fd int) { wd, err = unix.InotifyAddWatch(fd, abs, notifyMask) })
	if err = errors.Join(cerr, err); err != nil {
		return fmt.Errorf("inotify: watch %s: %w", abs, err)
	}
	if old, ok := n.dirs[int32(wd)]; ok { // the same directory under another name (moved)
		delete(n.wds, old)
	}
	n.dirs[int32(wd)], n.wds[rel] = rel, int32(wd)
	return nil
}

func withFD(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// dir returns the directory of watch wd, and forgets it if gone.
func (n *notifier) dir(wd int32, gone bool) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rel, ok := n.dirs[wd]
	if ok && gone {
		delete(n.dirs, wd)
		if n.wds[rel] == wd {
			delete(n.wds, rel)
		}
	}
	return rel, ok
}

// run reads events until ctx ends, handing each to fn with the
// directory it happened in.
func (n *notifier) run(ctx context.Context, fn func(dir string, ev event)) error {
	stop := context.AfterFunc(ctx, func() { n.f.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		k, err := n.f.Read(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("inotify: read: %w", err)
		}
		evs, err := parseEvents(buf[:k])
		for _, ev := range evs {
			if ev.mask&evOverflow != 0 {
				fn("", ev)
				continue
			}
			if dir, ok := n.dir(ev.wd, ev.name == "" && ev.mask&evDirGone != 0); ok {
				fn(dir, ev)
			}
		}
		if err != nil {
			return err
		}
	}
}
