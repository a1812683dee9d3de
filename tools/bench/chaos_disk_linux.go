package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// canMount reports whether this run may mount a tmpfs, and if not why.
func canMount() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "not root: the run mounts a tmpfs only as root"
	}
	return true, ""
}

// mountTmpfs mounts a tmpfs of size bytes at dir, which it creates.
func mountTmpfs(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	opts := fmt.Sprintf("size=%d,mode=0750", size)
	if err := syscall.Mount("skyfed-chaos", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount a tmpfs of %s at %s: %w", ByteSize(size), dir, err)
	}
	return nil
}

// unmountTmpfs unmounts dir; a mount still busy (a process that did not
// go away) is detached instead, so no mount outlives the run.
func unmountTmpfs(dir string) error {
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		if derr := syscall.Unmount(dir, syscall.MNT_DETACH); derr == nil {
			return fmt.Errorf("unmount %s: busy, detached instead", dir)
		}
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// freeBytes returns the bytes an unprivileged writer may still use on the
// filesystem of path, and its size.
func freeBytes(path string) (free, size int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}

// fillDisk writes the file path so that its filesystem has about leave
// bytes left, and returns the bytes it took. fallocate takes them at once
// (a tmpfs supports it); else zeros are written until the disk is full
// enough or says it is full.
func fillDisk(path string, leave int64) (int64, error) {
	free, _, err := freeBytes(filepath.Dir(path))
	if err != nil {
		return 0, err
	}
	n := free - leave
	if n <= 0 {
		return 0, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err == nil {
		return n, nil
	}
	w, err := io.CopyN(f, zeros{}, n)
	if errors.Is(err, syscall.ENOSPC) {
		err = nil
	}
	return w, err
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
