package site

import (
	"context"
	"net/http"
	"sync"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/tools/heal"
)

// healing is the site's self-healing: the repairer that reads, relays
// and scrubs call on, and the scrub and garbage collection passes, run
// in the background and on request, one of each at a time.
type healing struct {
	repair *forward.Repairer
	passes *heal.Site

	scrubMu sync.Mutex // held while a scrub runs
	gcMu    sync.Mutex // held while a collection runs

	mu        sync.Mutex
	lastScrub *heal.ScrubReport // the last scrub finished, or the one running
	lastGC    *heal.GCReport
}

// registerHealing adds the scrub and gc endpoints.
func (s *Site) registerHealing(mux *http.ServeMux) {}

// startHealing starts the background scrub and garbage collection.
func (s *Site) startHealing(ctx context.Context) {}
