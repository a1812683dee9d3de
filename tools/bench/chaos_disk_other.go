//go:build !linux

package bench

import "errors"

var errNoTmpfs = errors.New("tmpfs mounts are made on Linux only")

// canMount reports whether this run may mount a tmpfs, and if not why.
func canMount() (bool, string) { return false, "not Linux: the run mounts a tmpfs only on Linux" }

func mountTmpfs(string, int64) error         { return errNoTmpfs }
func unmountTmpfs(string) error              { return errNoTmpfs }
func freeBytes(string) (int64, int64, error) { return 0, 0, errNoTmpfs }
func fillDisk(string, int64) (int64, error)  { return 0, errNoTmpfs }
