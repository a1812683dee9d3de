//go:build !linux

package forward

import "time"

// withThreadCPU runs fn; the CPU time of one thread is not read on this
// platform (ok is false).
func withThreadCPU(fn func()) (time.Duration, bool) {
	fn()
	return 0, false
}
