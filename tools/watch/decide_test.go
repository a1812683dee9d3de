package watch

import (
	"testing"
	"time"
)

var (
	sumA = [32]byte{0xa}
	sumB = [32]byte{0xb}
)

const name = "gloria.eu/bootes-2/img-0001.fits"

func rec(status Status, size, mtime int64, sum [32]byte) *Record {
	return &Record{Size: size, MTime: mtime, SHA256: sum, Name: name, Version: "v1", Manifest: "m1", Status: status}
}

var file = File{Exists: true, Size: 100, MTime: 5, Complete: true}

// decideCases are the watcher's decisions, from a new file to its
// removal, restarts and changes included.
var decideCases = []struct {
	name   string
	rec    *Record
	f      File
	k      Known
	delete int
	want   Action
}{
	{"nothing there, nothing known", nil, File{}, Known{}, 0, Idle},
	{"file gone: forget its record", rec(StatusPut, 100, 5, sumA), File{}, Known{}, 0, Forget},
	{"removed by the watcher: forget", rec(StatusDeleted, 100, 5, sumA), File{}, Known{}, 2, Forget},
	{"new file still being written", nil, File{Exists: true, Size: 10, MTime: 5}, Known{}, 0, Wait},
	{"new complete file: hash it", nil, file, Known{}, 0, Hash},
	{"new file hashed: ask the latest", nil, file, Known{HaveSum: true, Sum: sumA}, 0, AskLatest},
	{"new name: put", nil, file, Known{HaveSum: true, Sum: sumA, HaveLatest: true}, 0, Put},
	{"latest has other bytes: put", nil, file, Known{HaveSum: true, Sum: sumA, HaveLatest: true, Latest: Latest{Found: true, SHA256: sumB}}, 0, Put},
	{"latest has these bytes: same", nil, file, Known{HaveSum: true, Sum: sumA, HaveLatest: true, Latest: Latest{Found: true, SHA256: sumA}}, 0, Same},
	{"crashed between ack and record: the latest tells", rec(StatusPutting, 100, 5, sumA), file, Known{HaveSum: true, Sum: sumA}, 0, AskLatest},
	{"crashed between ack and record: same", rec(StatusPutting, 100, 5, sumA), file, Known{HaveSum: true, Sum: sumA, HaveLatest: true, Latest: Latest{Found: true, SHA256: sumA}}, 0, Same},
	{"crashed before the put: put", rec(StatusPutting, 100, 5, sumA), file, Known{HaveSum: true, Sum: sumA, HaveLatest: true}, 0, Put},
	{"putting, file changed meanwhile: hash first", rec(StatusPutting, 100, 5, sumA), File{Exists: true, Size: 200, MTime: 9, Complete: true}, Known{}, 0, Hash},
	{"put and unchanged, kept: idle", rec(StatusPut, 100, 5, sumA), file, Known{}, 0, Idle},
	{"put and unchanged, incomplete look: still idle", rec(StatusPut, 100, 5, sumA), File{Exists: true, Size: 100, MTime: 5}, Known{}, 0, Idle},
	{"put, to be removed: ask holders", rec(StatusPut, 100, 5, sumA), file, Known{}, 2, AskHeld},
	{"held by too few: wait", rec(StatusPut, 100, 5, sumA), file, Known{HaveHeld: true, Held: 1}, 2, Wait},
	{"held by enough: remove", rec(StatusPut, 100, 5, sumA), file, Known{HaveHeld: true, Held: 3}, 3, Remove},
	{"confirmed before a crash: remove", rec(StatusConfirmed, 100, 5, sumA), file, Known{}, 3, Remove},
	{"touched, same bytes: record the mtime", rec(StatusPut, 100, 5, sumA), File{Exists: true, Size: 100, MTime: 7, Complete: true}, Known{HaveSum: true, Sum: sumA}, 0, Touch},
	{"changed: hash", rec(StatusPut, 100, 5, sumA), File{Exists: true, Size: 120, MTime: 7, Complete: true}, Known{}, 0, Hash},
	{"changed, other bytes: ask the latest", rec(StatusPut, 100, 5, sumA), File{Exists: true, Size: 120, MTime: 7, Complete: true}, Known{HaveSum: true, Sum: sumB}, 0, AskLatest},
	{"changed, other bytes: put a new version", rec(StatusPut, 100, 5, sumA), File{Exists: true, Size: 120, MTime: 7, Complete: true},
		Known{HaveSum: true, Sum: sumB, HaveLatest: true, Latest: Latest{Found: true, SHA256: sumA}}, 0, Put},
	{"changed and still being written: wait", rec(StatusPut, 100, 5, sumA), File{Exists: true, Size: 120, MTime: 7}, Known{}, 0, Wait},
	{"a removed file back again: hash", rec(StatusDeleted, 100, 5, sumA), file, Known{}, 2, Hash},
	{"a removed file back again, same bytes: the latest tells", rec(StatusDeleted, 100, 5, sumA), file, Known{HaveSum: true, Sum: sumA}, 2, AskLatest},
	{"another prefix now: the latest of the new name", &Record{Size: 100, MTime: 5, SHA256: sumA, Name: "gloria.eu/old/x", Status: StatusPut}, file, Known{HaveSum: true, Sum: sumA}, 0, AskLatest},
}

func TestDecide(t *testing.T) {
	for _, tc := range decideCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.rec, tc.f, tc.k, name, tc.delete); got != tc.want {
				t.Errorf("Decide = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestComplete(t *testing.T) {
	now := time.Unix(1000, 0)
	settle := 10 * time.Second
	for _, tc := range []struct {
		name   string
		mtime  time.Time
		closed bool
		want   bool
		at     time.Time
	}{
		{"closed after writing", now, true, true, time.Time{}},
		{"written just now", now.Add(-time.Second), false, false, now.Add(9 * time.Second)},
		{"untouched for the settle time", now.Add(-settle), false, true, time.Time{}},
		{"written while skyfed was down", now.Add(-time.Hour), false, true, time.Time{}},
		{"mtime in the future (clock step)", now.Add(time.Minute), false, false, now.Add(time.Minute + settle)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, at := Complete(File{Exists: true, MTime: tc.mtime.UnixNano()}, tc.closed, now, settle)
			if ok != tc.want || !at.Equal(tc.at) {
				t.Errorf("Complete = %v, %s; want %v, %s", ok, at, tc.want, tc.at)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 30 * time.Second}, {1000, 30 * time.Second}} {
		if got := Backoff(tc.n, time.Second, 30*time.Second); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}
