package site

// GET /api/held/{manifest}: how many sites hold one version durably,
// with all its chunks. Confirmations (signed by the holding sites) live
// in the forwarding engine's memory and age out after an hour, so when
// they are too few the site floods a held query (wire.QueryHeld): every
// holder answers and confirms again. `skyfed watch --delete-after-sites`
// asks it before it frees a file.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// heldAskEvery bounds how often the site floods a held query for one
// manifest, however often clients ask: holders confirm by themselves as
// they complete a version, so the query only recovers confirmations
// this site lost, and must not crowd the lookup lane (which goes before
// bulk chunks) with a watcher's polls.
const heldAskEvery = 30 * time.Second

// heldAsked remembers when each manifest was last asked about.
type heldAsked struct {
	mu sync.Mutex
	at map[chunk.ID]time.Time
}

// due reports whether manifest id may be asked about now, and if so
// notes that it is.
func (h *heldAsked) due(id chunk.ID, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if last, ok := h.at[id]; ok && now.Sub(last) < heldAskEvery {
		return false
	}
	if h.at == nil {
		h.at = map[chunk.ID]time.Time{}
	}
	if len(h.at) >= 10000 {
		for k, t := range h.at {
			if now.Sub(t) >= heldAskEvery {
				delete(h.at, k)
			}
		}
	}
	h.at[id] = now
	return true
}

// heldGrace is how long, with no wait_sites, the site waits after a held
// query for the confirmations of the sites that answered found (each
// follows its reply, by whatever path).
const heldGrace = 2 * time.Second

func (s *Site) serveHeld(w http.ResponseWriter, r *http.Request) {
	var id chunk.ID
	b, err := hex.DecodeString(r.PathValue("manifest"))
	if err != nil || len(b) != len(id) {
		s.fail(w, r, "held", badRequest(fmt.Errorf("%q is not a manifest ID", r.PathValue("manifest")), "give the 64 hex digits of a put's manifest"))
		return
	}
	copy(id[:], b)
	want, timeout, err := waitOptions(r)
	if err != nil {
		s.fail(w, r, "held", err)
		return
	}
	if !s.authorizeLookup(w, r) {
		return
	}
	m, err := s.objects.Manifest(id)
	if errors.Is(err, naming.ErrNotFound) {
		s.askFederation(r.Context(), wire.QueryFetchManifest, id, "")
		m, err = s.objects.Manifest(id)
	}
	if err != nil {
		s.fail(w, r, "held", err)
		return
	}
	if !s.authorizeName(w, r, "held", m.Name) {
		return
	}
	ans := client.Held{Manifest: id.String(), Name: m.Name, Version: m.Version(), Wanted: want}
	ans.HeldBy, ans.Asked, ans.Answered = s.held(r.Context(), id, want, timeout)
	ans.Sites = len(ans.HeldBy)
	s.ok(w, "held", http.StatusOK, ans)
}

// held returns the sites known to hold manifest id durably with all its
// chunks: this one if so, and those whose signed confirmation the engine
// holds. When fewer than want (0: every reachable site), it floods a
// held query (at most once per heldAskEvery per manifest) and waits, up
// to timeout, for the confirmations it brings; asked and answered say
// how that query went (0 and 0 if none was sent).
func (s *Site) held(ctx context.Context, id chunk.ID, want int, timeout time.Duration) (sites []string, asked, answered int) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	self := 0
	if incomplete, err := s.objects.IsIncomplete(id); err == nil && !incomplete {
		self = 1
	}
	holders := func() []string {
		out := s.node.Confirmed(id)
		if self == 1 {
			out = append(out, s.Config().ID)
		}
		slices.Sort(out)
		return out
	}
	if want > 0 && len(holders()) >= want {
		return holders(), 0, 0
	}
	var ans forward.Answer
	if s.heldAsked.due(id, time.Now()) {
		askCtx, cancelAsk := context.WithTimeout(ctx, lookupTimeout)
		var err error
		ans, err = s.node.Ask(askCtx, wire.QueryHeld, id)
		cancelAsk()
		if errors.Is(err, forward.ErrIncomplete) {
			s.metrics.incomplete.Inc()
		}
		if h, ok := ctx.Value(answerHeaderKey{}).(http.Header); ok {
			h.Set(client.AskedHeader, strconv.Itoa(ans.Asked))
			h.Set(client.AnsweredHeader, strconv.Itoa(ans.Answered))
		}
	}
	target := want
	if target <= 0 && ans.Asked == 0 {
		return holders(), 0, 0 // asked a moment ago: what it brought is counted
	}
	if target <= 0 {
		target = self
		for _, rep := range ans.Replies {
			if rep.Found {
				target++
			}
		}
		var graceCancel context.CancelFunc
		ctx, graceCancel = context.WithTimeout(ctx, heldGrace)
		defer graceCancel()
	}
	// WaitConfirmed counts this site as one holder: ask one more of the
	// others when it is not.
	s.node.WaitConfirmed(ctx, id, target+1-self) // a timeout answers with the count so far
	return holders(), ans.Asked, ans.Answered
}
