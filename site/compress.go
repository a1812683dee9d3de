package site

import (
	"context"

	"github.com/skyfed/skyfed/forward"
)

// startCompressor runs the background compression pass for as long as
// the site runs: chunks put here are compressed soon after their put
// commits, off the put's path, once (forward/compress.go).
func (s *Site) startCompressor(ctx context.Context) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.stores.RunCompressor(ctx, forward.CompressOptions{Logger: s.log})
	}()
}
