package site

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestSpaceReserve: below the reserve a site is full and refuses with
// ErrDiskFull (an ENOSPC, so HTTP answers 507); above it, it makes its
// ballast and takes puts. Real statfs on the test's disk.
func TestSpaceReserve(t *testing.T) {
	dir := t.TempDir()
	reserve := uint64(0)
	sp := newSpace(dir, func(uint64) uint64 { return reserve }, slog.New(slog.DiscardHandler))
	var told []bool
	sp.onChange = func(full bool) { told = append(told, full) }

	reserve = 1 << 62 // more than any disk: full
	if full, err := sp.look(); err != nil || !full {
		t.Fatalf("look = %v, %v; want full", full, err)
	}
	err := sp.refuse()
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("refuse = %v; want ErrDiskFull wrapping ENOSPC", err)
	}
	if status, hint := statusOf(err); status != 507 || hint == "" {
		t.Fatalf("statusOf = %d %q; want 507 with a hint", status, hint)
	}

	reserve = 2 << 20 // 2 MiB: room, and a 1 MiB ballast
	if full, err := sp.look(); err != nil || full || sp.refuse() != nil {
		t.Fatalf("look = %v, %v; refuse = %v; want room", full, err, sp.refuse())
	}
	if fi, err := os.Stat(filepath.Join(dir, BallastFile)); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("ballast: %v, %v; want 1 MiB", fi, err)
	}
	if len(told) != 2 || !told[0] || told[1] {
		t.Fatalf("told %v; want [true false]", told)
	}
}

// TestPebbleEventsOncePerMinute: Pebble's events are all counted and
// logged once per kind a minute.
func TestPebbleEventsOncePerMinute(t *testing.T) {
	var logged int
	h := slog.New(countHandler{&logged})
	p := newPebbleEvents(h, func() {})
	for range 1000 {
		p.event("background", slog.LevelError, "background error", errors.New("boom"))
	}
	p.event("write_stall", slog.LevelWarn, "writes stalled", nil)
	if logged != 2 {
		t.Fatalf("logged %d lines; want 2 (one per kind)", logged)
	}
	var m dto.Metric
	if err := p.count.WithLabelValues("background").Write(&m); err != nil || m.GetCounter().GetValue() != 1000 {
		n := m.GetCounter().GetValue()
		t.Fatalf("counted %v background errors; want 1000", n)
	}
	p.mu.Lock()
	p.last["background"] = time.Now().Add(-pebbleLogEvery)
	p.mu.Unlock()
	p.event("background", slog.LevelError, "background error", errors.New("boom"))
	if logged != 3 {
		t.Fatalf("logged %d lines after a minute; want 3", logged)
	}
}

type countHandler struct{ n *int }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(context.Context, slog.Record) error {
	*h.n++
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }
