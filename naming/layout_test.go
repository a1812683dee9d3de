package naming

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
)

// layoutLog is a LayoutSink that keeps what it is told.
type layoutLog struct {
	mu    sync.Mutex
	notes map[chunk.ID]chunk.Layout
}

func (l *layoutLog) NoteLayout(id chunk.ID, lay chunk.Layout) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notes[id] = lay
}

// fitsObject returns a FITS file of one 16-bit image, width×height.
func fitsObject(width, height int) []byte {
	var h strings.Builder
	for _, c := range []string{"SIMPLE  =                    T", "BITPIX  =                   16", "NAXIS   =                    2",
		fmt.Sprintf("NAXIS1  = %20d", width), fmt.Sprintf("NAXIS2  = %20d", height), "END"} {
		fmt.Fprintf(&h, "%-80s", c)
	}
	b := []byte(h.String() + strings.Repeat(" ", 2880-h.Len()))
	for i := range width * height {
		b = binary.BigEndian.AppendUint16(b, uint16(i%width+i/width))
	}
	return append(b, make([]byte, 2880-len(b)%2880)...)
}

func TestPutReportsLayouts(t *testing.T) {
	e := openEnv(t, vfs.Default, t.TempDir())
	defer e.close(t)
	log := &layoutLog{notes: map[chunk.ID]chunk.Layout{}}
	e.store.cfg.Layouts = log

	obj := fitsObject(100, 50) // 2880 + 10000 samples bytes: chunks of 4096
	m := e.put(t, "gloria.eu/frames/a.fits", obj)
	samples := 0
	for i, id := range m.Chunks {
		l, ok := log.notes[id]
		first := i * 4096
		wantStart := max(2880-first, 0)
		if first+4096 <= 2880 || first >= 2880+2*100*50 {
			if ok {
				t.Errorf("chunk %d: layout %+v reported for a chunk without samples", i, l)
			}
			continue
		}
		if !ok || l.Bitpix != 16 || l.DataStart != wantStart || l.Row != 100 || l.RowPhase != (first+wantStart-2880)/2%100 {
			t.Fatalf("chunk %d: layout %+v (reported %v), want BITPIX 16 from %d, row 100", i, l, ok, wantStart)
		}
		samples += l.DataEnd - l.DataStart
	}
	if samples != 2*100*50 {
		t.Errorf("layouts cover %d sample bytes, want %d", samples, 2*100*50)
	}

	log.notes = map[chunk.ID]chunk.Layout{}
	e.put(t, "gloria.eu/frames/b.bin", randomBytes(3, 3*4096))
	if len(log.notes) != 0 {
		t.Errorf("layouts %v reported for an object that is not FITS", log.notes)
	}
}
