package site

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// Bounds of requests that cross the federation.
const (
	lookupTimeout = 5 * time.Second
	fetchTimeout  = 60 * time.Second
	waitTimeout   = 60 * time.Second
)

// askFederation floods a query and indexes every valid manifest the
// replies carry; forged ones are refused and counted. An incomplete
// answer (a site did not answer in time) is not an error: the newest
// version heard of wins, and skyfed_federation_lookups_incomplete_total
// counts it. The answer of the request that asked says how many sites
// were asked and how many answered (see forward.Answer), so a client can
// tell that a newer version may exist.
func (s *Site) askFederation(ctx context.Context, kind wire.QueryKind, key [32]byte, wantName string) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	start := time.Now()
	ans, err := s.node.Ask(ctx, kind, key)
	s.metrics.fedLookup.Observe(time.Since(start).Seconds())
	if errors.Is(err, forward.ErrIncomplete) {
		s.metrics.incomplete.Inc()
	}
	if err != nil {
		s.log.Info("federation lookup incomplete", "err", err, "asked", ans.Asked, "answered", ans.Answered)
	}
	if h, ok := ctx.Value(answerHeaderKey{}).(http.Header); ok {
		h.Set(client.AskedHeader, strconv.Itoa(ans.Asked))
		h.Set(client.AnsweredHeader, strconv.Itoa(ans.Answered))
	}
	for _, r := range ans.Replies {
		for _, enc := range r.Manifests {
			if err := s.acceptFromLookup(enc, wantName, r.Site); err != nil {
				s.metrics.rejected.WithLabelValues("lookup_manifest").Inc()
				s.log.Warn("manifest from a lookup refused", "site", r.Site, "err", err)
			}
		}
	}
}

// answerHeaderKey keys the header map of a request's answer in its
// context, so that a lookup deep in resolving a request can say how it
// went: every handler asks before it writes, so the headers still go out.
type answerHeaderKey struct{}

func (s *Site) acceptFromLookup(enc []byte, wantName, from string) error {
	m, err := manifest.Decode(enc)
	if err != nil {
		return err
	}
	if wantName != "" && m.Name != wantName {
		return fmt.Errorf("%w: asked for %s, got %s", manifest.ErrMalformed, wantName, m.Name)
	}
	isNew, err := s.objects.Accept(m, "lookup:"+from)
	if isNew {
		s.node.Track(m.ID())
	}
	return err
}

// isFresh reports whether the request asks for the federation's newest.
func isFresh(r *http.Request) bool {
	q := r.URL.Query()
	v := q.Get("fresh")
	if v == "" {
		return q.Has("fresh")
	}
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

// latest resolves name to its newest version: locally, and across the
// federation when asked to (fresh) or when the name is unknown here.
func (s *Site) latest(r *http.Request, name naming.Name) (*manifest.Manifest, error) {
	if isFresh(r) {
		s.askFederation(r.Context(), wire.QueryLatest, name.Hash(), name.String())
	}
	m, err := s.objects.Latest(name)
	if errors.Is(err, naming.ErrNotFound) && !isFresh(r) {
		s.askFederation(r.Context(), wire.QueryLatest, name.Hash(), name.String())
		m, err = s.objects.Latest(name)
	}
	return m, err
}

// version resolves one version of name, asking the federation when it is
// unknown here.
func (s *Site) version(r *http.Request, name naming.Name, stamp manifest.Stamp) (*manifest.Manifest, error) {
	m, err := s.objects.Version(name, stamp)
	if errors.Is(err, naming.ErrNotFound) {
		s.askFederation(r.Context(), wire.QueryVersions, name.Hash(), name.String())
		m, err = s.objects.Version(name, stamp)
	}
	return m, err
}

// history returns every version of name, those any reachable site knows
// included when fresh or unknown here.
func (s *Site) history(r *http.Request, name naming.Name) ([]*manifest.Manifest, error) {
	if isFresh(r) {
		s.askFederation(r.Context(), wire.QueryVersions, name.Hash(), name.String())
	}
	hist, err := s.objects.History(name)
	if errors.Is(err, naming.ErrNotFound) && !isFresh(r) {
		s.askFederation(r.Context(), wire.QueryVersions, name.Hash(), name.String())
		hist, err = s.objects.History(name)
	}
	return hist, err
}

// bySHA256 finds an object by content, across the federation if needed.
func (s *Site) bySHA256(r *http.Request, sum [32]byte) (*manifest.Manifest, error) {
	m, err := s.objects.BySHA256(sum)
	if errors.Is(err, naming.ErrNotFound) {
		s.askFederation(r.Context(), wire.QueryContent, sum, "")
		m, err = s.objects.BySHA256(sum)
	}
	return m, err
}

// readThrough reads chunks locally, fetches missing ones through the
// links (nearest holder first; fetched chunks are kept), and repairs
// damaged ones from the other sites before going on. name ("name@version")
// is reported with a chunk that cannot be repaired.
type readThrough struct {
	ctx  context.Context
	s    *Site
	name string
	// primed is a chunk read ahead (to answer an error before the first
	// byte), handed over to the first Get of it.
	primedID  chunk.ID
	primedRaw []byte
}

func (g *readThrough) Get(id chunk.ID, dst []byte) ([]byte, error) {
	if g.primedRaw != nil && id == g.primedID {
		raw := g.primedRaw
		g.primedRaw = nil
		return raw, nil
	}
	raw, err := g.s.chunks.Get(id, dst)
	switch {
	case err == nil:
		return raw, nil
	case errors.Is(err, chunk.ErrNotFound):
		if g.s.heal != nil && g.s.heal.repair.IsUnrepairable(id) {
			// Lost here and no site had it: repair says so at once
			// (and asks again after a while).
			if rerr := g.s.heal.repair.Repair(g.ctx, id, g.name); rerr != nil {
				return nil, rerr
			}
			return g.s.chunks.Get(id, dst)
		}
		ctx, cancel := context.WithTimeout(g.ctx, fetchTimeout)
		defer cancel()
		if err := g.s.node.Fetch(ctx, id); err != nil {
			return nil, err
		}
		g.s.metrics.fetched.Inc()
		return g.s.chunks.Get(id, dst)
	case errors.Is(err, chunk.ErrCorrupt) && g.s.heal != nil:
		if rerr := g.s.heal.repair.Repair(g.ctx, id, g.name); rerr != nil {
			return nil, rerr
		}
		return g.s.chunks.Get(id, dst)
	}
	return nil, err
}

// waitSites waits until want sites hold m durably; 0 or 1 returns at once.
func (s *Site) waitSites(ctx context.Context, m *manifest.Manifest, want int, timeout time.Duration) (int, error) {
	if want <= 1 {
		return 1, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.node.WaitConfirmed(ctx, m.ID(), want)
}
