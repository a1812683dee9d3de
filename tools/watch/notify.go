package watch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNoNotify is returned where the system has no inotify: the watcher
// then finds files by its periodic rescan alone.
var ErrNoNotify = errors.New("inotify is not available here")

// event is one inotify event: the watch it came on, what happened, and
// the name in the watched directory ("" for the directory itself).
type event struct {
	wd   int32
	mask uint32
	name string
}

// eventHeader is the size of struct inotify_event before its name.
const eventHeader = 16

// parseEvents decodes a read from an inotify descriptor: a run of
// struct inotify_event {wd int32; mask, cookie, len uint32; name[len]}
// in the host's byte order (little-endian on every platform skyfed
// runs on), each name NUL-padded.
func parseEvents(b []byte) ([]event, error) {
	var out []event
	for len(b) > 0 {
		if len(b) < eventHeader {
			return out, fmt.Errorf("inotify: %d bytes left, short of an event", len(b))
		}
		n := binary.LittleEndian.Uint32(b[12:16])
		if uint64(n) > uint64(len(b)-eventHeader) {
			return out, fmt.Errorf("inotify: an event names %d bytes, %d left", n, len(b)-eventHeader)
		}
		name := b[eventHeader : eventHeader+int(n)]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, event{wd: int32(binary.LittleEndian.Uint32(b[0:4])), mask: binary.LittleEndian.Uint32(b[4:8]), name: string(name)})
		b = b[eventHeader+int(n):]
	}
	return out, nil
}
