package site

import (
	"context"
	"net/http"
)

// registerHealing adds the scrub and gc endpoints.
func (s *Site) registerHealing(mux *http.ServeMux) {}

// startHealing starts the background scrub and garbage collection.
func (s *Site) startHealing(ctx context.Context) {}
