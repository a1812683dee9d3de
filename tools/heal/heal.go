// Package heal owns a site's self-healing passes: scrub (re-hash every
// chunk, check every manifest and that its chunks are here, hand what is
// bad to repair, name the objects affected) and garbage collection
// (versions hidden past the grace period, chunks no kept manifest
// references, pack bytes nothing refers to). The site runs them in the
// background at a bounded rate and on request (skyfed tools scrub, skyfed
// tools gc); the decisions about bytes stay in chunk and naming.
package heal

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
)

// Site is what the passes work on: one site's stores.
type Site struct {
	DB       *pebble.DB
	Chunks   *chunk.Store
	Objects  *naming.Store
	Arrivals *forward.Log
	Repairer *forward.Repairer
	// Inventory, if set, is told what the passes take out of the stores.
	Inventory *forward.Inventory
	Log       *slog.Logger

	namingMu sync.Mutex
	looked   map[chunk.ID]bool // unrepairable chunks NameUnrepairable looked for
}

// Affected is an object version that uses a chunk a pass found damaged
// or missing.
type Affected struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Chunk    string `json:"chunk"`
	Repaired bool   `json:"repaired"`
}

// maxAffected bounds the versions a report names.
const maxAffected = 1000

// pacer returns a rate limiter's wait, or nil for no limit.
func pacer(bytesPerSecond uint64) func(ctx context.Context, n int) error {
	if bytesPerSecond == 0 {
		return nil
	}
	l := forward.NewLimiter(bytesPerSecond, nil)
	return l.Wait
}

func (s *Site) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// seconds rounds a duration for a report.
func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}
