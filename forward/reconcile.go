package forward

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/forward/recon"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// ReconCounts is what one side lacks: versions, chunks and their bytes.
type ReconCounts struct {
	Versions int64 `json:"versions"`
	Chunks   int64 `json:"chunks"`
	Bytes    int64 `json:"bytes"`
}

// ReconRefused counts versions one side refuses for good.
type ReconRefused struct {
	Versions int64 `json:"versions"`
}

// ReconName is one version that differs (with names asked for).
type ReconName struct {
	Lacks   string `json:"lacks"` // "here" or "there"
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ReconReport is the outcome of a reconciliation with a peer, as `skyfed
// diff` prints it and link status shows it.
type ReconReport struct {
	Peer         string       `json:"peer"`
	ReconciledAt time.Time    `json:"reconciled_at"`
	InSync       bool         `json:"in_sync"`
	PeerLacks    ReconCounts  `json:"peer_lacks"`
	LocalLacks   ReconCounts  `json:"local_lacks"`
	Refused      ReconRefused `json:"refused"`
	// Manifests and Chunks are what this site's inventory held.
	Manifests int64       `json:"manifests"`
	Chunks    int64       `json:"chunks"`
	Names     []ReconName `json:"names,omitempty"`
	// RoundTrips and the bytes are the session's cost on the wire.
	RoundTrips    int   `json:"round_trips"`
	SentBytes     int64 `json:"sent_bytes"`
	ReceivedBytes int64 `json:"received_bytes"`
}

// reconStats is the node's record of a peer's reconciliations.
type reconStats struct {
	last                     *ReconReport
	runs                     map[string]int64 // by result: in_sync, differ, error
	sentBytes, receivedBytes int64
}

func (n *Node) reconOf(peer string) *reconStats {
	rs := n.recons[peer]
	if rs == nil {
		rs = &reconStats{runs: map[string]int64{}}
		n.recons[peer] = rs
	}
	return rs
}

// reconEnded records a session's end and answers whoever asked for it.
func (n *Node) reconEnded(x engine.ReconEnded) {
	var rep *ReconReport
	if x.Result != nil {
		rep = n.report(x.Link.Peer, x.Result, x.SentBytes, x.ReceivedBytes)
	}
	if x.Link.Dir != 0 || rep != nil {
		result := "error"
		switch {
		case rep != nil && rep.InSync:
			result = "in_sync"
		case rep != nil:
			result = "differ"
		}
		n.mu.Lock()
		rs := n.reconOf(x.Link.Peer)
		rs.runs[result]++
		rs.sentBytes += x.SentBytes
		rs.receivedBytes += x.ReceivedBytes
		if rep != nil {
			rs.last = rep
		}
		n.mu.Unlock()
		switch {
		case rep != nil && !rep.InSync && x.Initiator:
			// The responder learns the same; one line per session.
			n.log.Info("reconciliation found differences", "peer", x.Link.Peer,
				"peer_lacks_versions", rep.PeerLacks.Versions, "peer_lacks_chunks", rep.PeerLacks.Chunks,
				"local_lacks_versions", rep.LocalLacks.Versions, "local_lacks_chunks", rep.LocalLacks.Chunks,
				"refused_versions", rep.Refused.Versions)
		case x.Err != nil && x.Req == 0 && !errors.Is(x.Err, engine.ErrLinkDown):
			n.log.Warn("reconciliation failed", "peer", x.Link.Peer, "err", x.Err)
		}
	}
	if x.Req != 0 {
		if rep != nil {
			n.answer(x.Req, *rep)
		} else {
			n.answer(x.Req, x.Err)
		}
	}
}

func (n *Node) report(peer string, r *recon.Result, sent, received int64) *ReconReport {
	rep := &ReconReport{
		Peer: peer, ReconciledAt: time.Now().UTC(), InSync: r.InSync,
		PeerLacks:  ReconCounts(r.PeerLacks),
		LocalLacks: ReconCounts(r.LocalLacks),
		Refused:    ReconRefused{Versions: r.Refused},
		RoundTrips: r.RoundTrips, SentBytes: sent, ReceivedBytes: received,
	}
	if n.inv != nil {
		rep.Manifests, rep.Chunks = n.inv.Counts()
	}
	for _, d := range r.Names {
		lacks := "there"
		if d.LacksHere {
			lacks = "here"
		}
		rep.Names = append(rep.Names, ReconName{Lacks: lacks, Name: d.Name, Version: d.Version})
	}
	return rep
}

// Errors of Reconcile callers branch on.
var (
	// ErrNoLink means there is no up link to the peer that can reconcile.
	ErrNoLink = engine.ErrNoLink
	// ErrReconTimeout means the peer stopped answering during a session.
	ErrReconTimeout = engine.ErrReconTimeout
	// ErrCannotReconcile means the peer runs a skyfed from before reconciliation.
	ErrCannotReconcile = engine.ErrCannotReconcile
)

// Reconcile reconciles this site's inventory with peer's now, over an up
// link to it; whatever either side lacks is then offered over the link.
// names asks for the versions that differ by name.
func (n *Node) Reconcile(ctx context.Context, peer string, names bool) (ReconReport, error) {
	if n.inv == nil {
		return ReconReport{}, errors.New("reconciliation is off at this site")
	}
	for {
		rep, err := n.reconcileOnce(ctx, peer, names)
		if !errors.Is(err, ErrNoLink) || !n.linkedTo(peer) {
			return rep, err
		}
		// Linked but not up now: wait for it as long as ctx allows.
		select {
		case <-ctx.Done():
			return ReconReport{}, fmt.Errorf("reconcile with %s: the link is not up: %w", peer, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *Node) reconcileOnce(ctx context.Context, peer string, names bool) (ReconReport, error) {
	req, ch := n.request()
	defer n.forget(req)
	n.postCtx(ctx, engine.Reconcile{Now: time.Now(), Req: req, Peer: peer, Names: names})
	select {
	case v := <-ch:
		switch v := v.(type) {
		case ReconReport:
			return v, nil
		case error:
			return ReconReport{}, v
		}
		return ReconReport{}, fmt.Errorf("reconcile with %s: unexpected answer %T", peer, v)
	case <-ctx.Done():
		return ReconReport{}, fmt.Errorf("reconcile with %s: %w", peer, ctx.Err())
	}
}

// linkedTo reports whether this site dials peer or peer has dialed it
// (up or not).
func (n *Node) linkedTo(peer string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.dialed[peer]; ok {
		return true
	}
	return n.links[engine.LinkID{Peer: peer, Dir: engine.DirIn}] != nil
}

// LastRecon returns the last reconciliation with peer, if any ran since
// this site started.
func (n *Node) LastRecon(peer string) (ReconReport, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if rs := n.recons[peer]; rs != nil && rs.last != nil {
		return *rs.last, true
	}
	return ReconReport{}, false
}

// syncEvery is how often the loop folds the log into the table.
const syncEvery = 5 * time.Second

// syncInventory keeps the reconciliation table, and its persisted copy,
// close to the log. It runs on the engine's loop, the only goroutine
// whose sessions read the table, so a fold never changes it under them.
func (n *Node) syncInventory() {
	if n.inv == nil || time.Since(n.syncedAt) < syncEvery {
		return
	}
	n.syncedAt = time.Now()
	if err := n.inv.Sync(false); err != nil {
		n.log.Warn("reconciliation: persist table", "err", err)
	}
}

var (
	descReconRuns     = prometheus.NewDesc("skyfed_reconcile_runs_total", "Reconciliations with a peer by result (in_sync, differ, error), either side started.", []string{"peer", "result"}, nil)
	descReconSent     = prometheus.NewDesc("skyfed_reconcile_sent_bytes_total", "Wire bytes of reconciliation messages sent to a peer.", []string{"peer"}, nil)
	descReconReceived = prometheus.NewDesc("skyfed_reconcile_received_bytes_total", "Wire bytes of reconciliation messages received from a peer.", []string{"peer"}, nil)
	descReconMissing  = prometheus.NewDesc("skyfed_reconcile_missing", "Versions plus chunks missing as of the last reconciliation with a peer: side=here lacks at this site, side=there at the peer.", []string{"peer", "side"}, nil)
)

func (n *Node) describeRecon(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReconRuns, descReconSent, descReconReceived, descReconMissing} {
		ch <- d
	}
}

func (n *Node) collectRecon(ch chan<- prometheus.Metric) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Every linked peer has its counters from the start, at zero, so a
	// dashboard's rate() has a series before the first session ends.
	for id := range n.links {
		n.reconOf(id.Peer)
	}
	peers := make([]string, 0, len(n.recons))
	for p := range n.recons {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	for _, p := range peers {
		rs := n.recons[p]
		for _, result := range []string{"in_sync", "differ", "error"} {
			ch <- prometheus.MustNewConstMetric(descReconRuns, prometheus.CounterValue, float64(rs.runs[result]), p, result)
		}
		ch <- prometheus.MustNewConstMetric(descReconSent, prometheus.CounterValue, float64(rs.sentBytes), p)
		ch <- prometheus.MustNewConstMetric(descReconReceived, prometheus.CounterValue, float64(rs.receivedBytes), p)
		if rs.last != nil {
			ch <- prometheus.MustNewConstMetric(descReconMissing, prometheus.GaugeValue, float64(rs.last.LocalLacks.Versions+rs.last.LocalLacks.Chunks), p, "here")
			ch <- prometheus.MustNewConstMetric(descReconMissing, prometheus.GaugeValue, float64(rs.last.PeerLacks.Versions+rs.last.PeerLacks.Chunks), p, "there")
		}
	}
}

// reconStorage is the engine's view of the site with reconciliation on:
// a manifest refused here for good, or garbage-collected, counts as
// held, so offers of it
// (from the log or a reconciliation) are answered "have" and it is not
// sent again.
type reconStorage struct {
	storage
	inv *Inventory
}

func (st reconStorage) Has(k engine.Kind, id chunk.ID) (bool, error) {
	has, err := st.storage.Has(k, id)
	if err != nil || has || k != engine.KindManifest {
		return has, err
	}
	if st.inv.Refused(id) {
		return true, nil
	}
	// A version garbage-collected here must not come back.
	return st.s.Objects.IsCollected(id)
}

// caps are the capability bits this site announces in its hellos.
func (n *Node) caps() uint32 {
	c := wire.CapClock | wire.CapSpace | wire.CapHeld | wire.CapBeacon
	if n.inv != nil {
		c |= wire.CapRecon
	}
	return c
}

// noteRefused remembers a manifest refused for good, for reconciliation.
func (n *Node) noteRefused(s engine.Store, err error) {
	if n.inv == nil || s.Kind != engine.KindManifest {
		return
	}
	if m, derr := manifest.Decode(s.Payload); derr == nil {
		n.inv.NoteRefused(m, err)
	}
}
