package forward

import (
	"runtime"
	"syscall"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD: the calling thread's usage.
const rusageThread = 1

// withThreadCPU runs fn on one OS thread and returns the CPU time that
// thread spent in it (user and system), so the compression metric
// counts the codec's CPU, not time spent waiting for a core. The codecs
// run on their caller's goroutine. ok is false if it cannot be read.
func withThreadCPU(fn func()) (cpu time.Duration, ok bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after syscall.Rusage
	if syscall.Getrusage(rusageThread, &before) != nil {
		fn()
		return 0, false
	}
	fn()
	if syscall.Getrusage(rusageThread, &after) != nil {
		return 0, false
	}
	used := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return used(after) - used(before), true
}
