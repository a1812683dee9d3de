//go:build !linux

package site

import "os"

// allocate gives f n bytes of disk by writing zeros.
func allocate(f *os.File, n uint64) error { return writeZeros(f, n) }
