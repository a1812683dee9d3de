package forward

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/forward/engine"
)

// The values of LinkStatus.Direction and Mode (and of a link's mode in
// the site's config): the String forms of engine.Direction and
// engine.Mode.
const (
	DirOut    = "out"
	DirIn     = "in"
	ModeOffer = "offer"
	ModeFlood = "flood"
)

// LinkStatus is one link as status shows it.
type LinkStatus struct {
	Peer      string `json:"peer"`
	Direction string `json:"direction"`
	State     string `json:"state"`
	Mode      string `json:"mode"`
	MaxRate   uint64 `json:"max_rate"`
	Backlog   uint64 `json:"backlog"`
	// BacklogBytes is the raw bytes of those entries (chunks and
	// manifests), from the arrival log's running totals; null when the
	// backlog reaches back into entries logged before totals were kept.
	BacklogBytes      *uint64 `json:"backlog_bytes"`
	LagSeconds        float64 `json:"lag_seconds"`
	SentChunks        int64   `json:"sent_chunks"`
	ReceivedChunks    int64   `json:"received_chunks"`
	SentManifests     int64   `json:"sent_manifests"`
	ReceivedManifests int64   `json:"received_manifests"`
	SentRawBytes      int64   `json:"sent_raw_bytes"`
	SentWireBytes     int64   `json:"sent_wire_bytes"`
	SentPayloadBytes  int64   `json:"sent_payload_bytes"`
	SendRate          int64   `json:"send_rate"`    // wire bytes/s, last few seconds
	ReceiveRate       int64   `json:"receive_rate"` // wire bytes/s, last few seconds
	ReceivedRawBytes  int64   `json:"received_raw_bytes"`
	ReceivedWireBytes int64   `json:"received_wire_bytes"`
	Offered           int64   `json:"offered"`
	Wanted            int64   `json:"wanted"`
	Duplicates        int64   `json:"duplicates"`
	DuplicateBytes    int64   `json:"duplicate_bytes"`
	DuplicateChunks   int64   `json:"duplicate_chunks"`
	SentMessages      int64   `json:"sent_messages"`
	ReceivedMessages  int64   `json:"received_messages"`
	Rejected          int64   `json:"rejected"`
	Refused           int64   `json:"refused"`
	FrameTimeouts     int64   `json:"frame_timeouts"`
	// Window is the bulk lane's window, measured from the link (window.go).
	Window WindowStatus `json:"window"`
	// Reason says why the link is not up, one of the Reason constants;
	// empty when up, except ReasonClockSkew, which an up link shows
	// while its peer's clock is off by more than the allowed skew, and
	// ReasonPeerFull, while the peer said its disk is full.
	Reason string `json:"reason"`
	// Since is when the state last changed (RFC 3339 in JSON).
	Since time.Time `json:"since"`
	// LastError is the text of the last error the link saw (kept after
	// it recovers); passwords in URLs are redacted.
	LastError string `json:"last_error"`
	// ClockOffsetSeconds is the peer's clock minus this site's, measured
	// at the handshake and at each ping; null until measured (a peer from
	// before the measurement never sends its clock).
	ClockOffsetSeconds *float64 `json:"clock_offset_seconds"`
	// The last reconciliation with the peer (either side started it),
	// null until one ran since this site started: when, whether the two
	// inventories matched, and what each side lacked then.
	ReconciledAt *time.Time   `json:"reconciled_at"`
	InSync       *bool        `json:"in_sync"`
	PeerLacks    *ReconCounts `json:"peer_lacks"`
	LocalLacks   *ReconCounts `json:"local_lacks"`
	// Full disks: "full" and "room again" messages heard from the peer
	// and sent to it, and the entries offered again at once because the
	// peer said it has room again (rather than after a timeout).
	PeerFullSignals  int64 `json:"peer_full_signals"`
	PeerRoomSignals  int64 `json:"peer_room_signals"`
	SpaceSignalsSent int64 `json:"space_signals_sent"`
	Resumed          int64 `json:"resumed"`
	// TLS is the TLS state of the link's connection (version, cipher,
	// and how the peer was verified); null in plain text or while down.
	TLS *TLSStatus `json:"tls"`
}

// ReasonPeerFull: the link is up, but the peer said its disk is full
// (below its disk_reserve); this site holds its offers until the peer
// says it has room again. Never changed, as the other Reason strings.
const ReasonPeerFull = "peer full"

// Links returns the status of every link, sorted by peer and direction,
// including peers whose dials this site refused.
func (n *Node) Links() []LinkStatus {
	n.mu.Lock()
	links := make([]*Link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	refusals := make(map[string]int64, len(n.refusals))
	for p, c := range n.refusals {
		refusals[p] = c
	}
	lastRefusal := make(map[string]refusal, len(n.refusedAt))
	for p, r := range n.refusedAt {
		lastRefusal[p] = r
	}
	n.mu.Unlock()
	out := []LinkStatus{}
	for _, l := range links {
		st := n.status(l)
		if l.id.Dir == engine.DirIn {
			st.Refused = refusals[l.id.Peer]
			delete(refusals, l.id.Peer)
		}
		out = append(out, st)
	}
	for p, c := range refusals {
		out = append(out, LinkStatus{Peer: p, Direction: engine.DirIn.String(), State: StateRefused, Refused: c,
			Reason: ReasonAuth, Since: lastRefusal[p].at, LastError: lastRefusal[p].why})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].Direction > out[j].Direction
	})
	return out
}

func (n *Node) status(l *Link) LinkStatus {
	state, h := l.healthNow()
	st := LinkStatus{
		Peer: l.id.Peer, Direction: l.id.Dir.String(), State: state.String(), Mode: l.mode.String(), MaxRate: l.lim.Rate(),
		Reason: h.reason, Since: h.since, LastError: h.lastErr,
		SentChunks: l.c.sentChunks.Load(), ReceivedChunks: l.c.receivedChunks.Load(),
		SentManifests: l.c.sentManifests.Load(), ReceivedManifests: l.c.receivedManifests.Load(),
		SentRawBytes: l.c.sentRaw.Load(), SentWireBytes: l.c.sentWire.Load(), SentPayloadBytes: l.c.sentPayload.Load(),
		SendRate: l.c.sendRate.Load(), ReceiveRate: l.c.receiveRate.Load(),
		ReceivedRawBytes: l.c.receivedRaw.Load(), ReceivedWireBytes: l.c.receivedWire.Load(),
		Duplicates: l.c.duplicates.Load(), DuplicateBytes: l.c.duplicateBytes.Load(), DuplicateChunks: l.c.duplicateChunks.Load(),
		SentMessages: l.c.sentMessages.Load(), ReceivedMessages: l.c.messages.Load(), Rejected: l.c.rejected.Load(),
		FrameTimeouts: l.c.frameTimeouts.Load(), Window: l.win.status(),
	}
	log := n.stores.Log
	var progress [2]engine.Progress
	var up [2]bool
	n.engMu.Lock()
	stats := n.eng.Stats(l.id)
	peerFull := n.eng.PeerFull(l.id)
	for _, k := range engine.Kinds {
		progress[k.Index()], up[k.Index()] = n.eng.Progress(l.id, k)
	}
	n.engMu.Unlock()
	st.Offered, st.Wanted = stats.Offered, stats.Wanted
	st.PeerFullSignals, st.PeerRoomSignals, st.SpaceSignalsSent, st.Resumed = stats.PeerFullSignals, stats.PeerRoomSignals, stats.SpaceSent, stats.Resumed
	if peerFull && st.Reason == "" {
		st.Reason = ReasonPeerFull
	}
	if st.State == StateUp {
		st.TLS = l.tlsStatus()
	}
	if rep, ok := n.LastRecon(l.id.Peer); ok {
		st.ReconciledAt, st.InSync, st.PeerLacks, st.LocalLacks = &rep.ReconciledAt, &rep.InSync, &rep.PeerLacks, &rep.LocalLacks
	}
	if h.measured {
		secs := h.offset.Seconds()
		st.ClockOffsetSeconds = &secs
	}
	oldest := time.Time{}
	var backlogBytesTotal uint64
	backlogBytesKnown := true
	for _, k := range engine.Kinds {
		p := progress[k.Index()]
		if !up[k.Index()] {
			p.Cursor, _ = log.Cursor(k, l.id.String())
		}
		head, through := log.Tip(k)
		if head > p.Cursor {
			st.Backlog += head - p.Cursor
		}
		bytes, ok := backlogBytes(log, k, p.Cursor, head, through)
		backlogBytesTotal += bytes
		backlogBytesKnown = backlogBytesKnown && ok
		seq := p.Oldest
		if seq == 0 && head > p.Cursor {
			seq = p.Cursor + 1
		}
		if seq != 0 {
			if a, found, err := log.At(k, seq); err == nil && found && (oldest.IsZero() || a.At.Before(oldest)) {
				oldest = a.At
			}
		}
	}
	if backlogBytesKnown {
		st.BacklogBytes = &backlogBytesTotal
	}
	if !oldest.IsZero() {
		st.LagSeconds = max(0, time.Since(oldest).Seconds())
	}
	return st
}

// backlogBytes returns the bytes of kind k logged after cursor up to
// head (whose running total is through), false when the cursor's entry
// has no running total.
func backlogBytes(log *Log, k Kind, cursor, head, through uint64) (uint64, bool) {
	if head <= cursor {
		return 0, true
	}
	from, ok, err := log.BytesThrough(k, cursor)
	if err != nil || !ok || through < from {
		return 0, false
	}
	return through - from, true
}

// Describe implements prometheus.Collector. It lists every metric Collect
// may send, so the registry checks them whether or not links exist yet.
func (n *Node) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descBacklog, descLag, descSendRate, descRecvRate, descClockOffset, descWarnings, descWindow, descDeliveryRate, descMinRTT} {
		ch <- d
	}
	for _, d := range descCounters {
		ch <- d
	}
	n.describeRecon(ch)
}

var linkLabels = []string{"peer", "direction"}

func linkDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("skyfed_link_"+name, help, linkLabels, nil)
}

var (
	descUp       = linkDesc("up", "1 if the link is up.")
	descBacklog  = linkDesc("backlog_entries", "Arrival-log entries not yet confirmed by the peer.")
	descLag      = linkDesc("lag_seconds", "Age of the oldest entry not yet confirmed by the peer.")
	descSendRate = linkDesc("send_rate_bytes_per_second", "Wire bytes per second sent over the last few seconds.")
	descRecvRate = linkDesc("receive_rate_bytes_per_second", "Wire bytes per second received over the last few seconds.")
	// descClockOffset is sent only for links whose peer's clock was measured.
	descClockOffset = linkDesc("clock_offset_seconds", "The peer's clock minus this site's, as last measured on the link.")
	descCounters    = map[string]*prometheus.Desc{
		"sent_chunks":         linkDesc("sent_chunks_total", "Chunk payloads sent."),
		"received_chunks":     linkDesc("received_chunks_total", "Chunk payloads received and stored."),
		"sent_manifests":      linkDesc("sent_manifests_total", "Manifests sent."),
		"received_manifests":  linkDesc("received_manifests_total", "Manifests received and stored."),
		"sent_raw_bytes":      linkDesc("sent_raw_bytes_total", "Raw (uncompressed) payload bytes sent."),
		"sent_wire_bytes":     linkDesc("sent_wire_bytes_total", "Message bytes published on the link."),
		"sent_payload_bytes":  linkDesc("sent_payload_bytes_total", "Payload bytes (stored form) sent; the rest of the wire bytes is control."),
		"received_raw_bytes":  linkDesc("received_raw_bytes_total", "Raw payload bytes received and stored."),
		"received_wire_bytes": linkDesc("received_wire_bytes_total", "Message bytes received on the link."),
		"sent_messages":       linkDesc("sent_messages_total", "Messages published on the link."),
		"received_messages":   linkDesc("received_messages_total", "Messages received on the link."),
		"offered":             linkDesc("offered_total", "IDs offered to the peer."),
		"wanted":              linkDesc("wanted_total", "Offered IDs the peer wanted."),
		"duplicates":          linkDesc("duplicates_total", "Payloads that arrived although this site had them."),
		"duplicate_bytes":     linkDesc("duplicate_bytes_total", "Payload bytes that arrived although this site had them."),
		"rejected":            linkDesc("rejected_total", "Payloads or messages refused by verification."),
		"refused":             linkDesc("refused_total", "Dial attempts refused (untrusted, anonymous, bad handshake)."),
		"frame_timeouts":      linkDesc("frame_timeouts_total", "Payloads given up on the link for silence or lost frames: sent whole and offered again for want of an ack, or asked again because their frames stopped arriving."),
		"peer_full_signals":   linkDesc("peer_full_signals_total", "Messages from the peer saying its disk is full (this site holds its offers)."),
		"peer_room_signals":   linkDesc("peer_room_signals_total", "Messages from the peer saying its disk has room again (this site offers at once)."),
		"space_signals_sent":  linkDesc("space_signals_sent_total", "Messages to the peer saying this site's disk is full or has room again."),
		"resumed":             linkDesc("resumed_total", "Entries offered again at once because the peer said its disk has room again."),
	}
)

// Collect implements prometheus.Collector.
func (n *Node) Collect(ch chan<- prometheus.Metric) {
	for _, st := range n.Links() {
		labels := []string{st.Peer, st.Direction}
		up := 0.0
		if st.State == StateUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, labels...)
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(st.Backlog), labels...)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, st.LagSeconds, labels...)
		ch <- prometheus.MustNewConstMetric(descSendRate, prometheus.GaugeValue, float64(st.SendRate), labels...)
		ch <- prometheus.MustNewConstMetric(descRecvRate, prometheus.GaugeValue, float64(st.ReceiveRate), labels...)
		if st.ClockOffsetSeconds != nil {
			ch <- prometheus.MustNewConstMetric(descClockOffset, prometheus.GaugeValue, *st.ClockOffsetSeconds, labels...)
		}
		for name, v := range map[string]int64{
			"sent_chunks": st.SentChunks, "received_chunks": st.ReceivedChunks,
			"sent_manifests": st.SentManifests, "received_manifests": st.ReceivedManifests,
			"sent_raw_bytes": st.SentRawBytes, "sent_wire_bytes": st.SentWireBytes, "sent_payload_bytes": st.SentPayloadBytes,
			"received_raw_bytes": st.ReceivedRawBytes, "received_wire_bytes": st.ReceivedWireBytes,
			"sent_messages": st.SentMessages, "received_messages": st.ReceivedMessages,
			"offered": st.Offered, "wanted": st.Wanted, "duplicates": st.Duplicates, "duplicate_bytes": st.DuplicateBytes,
			"rejected": st.Rejected, "refused": st.Refused, "frame_timeouts": st.FrameTimeouts,
			"peer_full_signals": st.PeerFullSignals, "peer_room_signals": st.PeerRoomSignals,
			"space_signals_sent": st.SpaceSignalsSent, "resumed": st.Resumed,
		} {
			ch <- prometheus.MustNewConstMetric(descCounters[name], prometheus.CounterValue, float64(v), labels...)
		}
		collectWindow(ch, st.Window, labels)
	}
	n.collectWarnings(ch)
	n.collectRecon(ch)
}
