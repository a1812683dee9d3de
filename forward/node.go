package forward

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// LinkConfig is one link this site dials.
type LinkConfig struct {
	Peer    string
	URL     string
	MaxRate uint64 // bytes/s, 0 unlimited
	Mode    string // ModeOffer or ModeFlood
}

// NodeConfig wires a Node to its site.
type NodeConfig struct {
	Site   string
	Signer interface {
		manifest.Signer
		Seed() []byte
	}
	Stores *Stores
	// PeerKey returns the trusted key of a peer site.
	PeerKey func(peer string) (manifest.PublicKey, bool)
	Logger  *slog.Logger
	Timing  Timing
	// OnReject, if set, hears of every input refused after the NATS
	// server admitted it (bad handshakes, malformed messages, payloads
	// that fail verification), by reason.
	OnReject func(reason string)
}

// Node is a site's forwarding engine: the links it dialed, the links
// dialed to it, and the claims that make a payload cross into the site
// once.
type Node struct {
	site    string
	signer  NodeConfig
	stores  *Stores
	log     *slog.Logger
	timing  Timing
	peerKey func(string) (manifest.PublicKey, bool)

	ctx     context.Context
	cancel  context.CancelFunc
	local   *nats.Conn
	hello   *nats.Subscription
	helloMu sync.RWMutex // held (read) by the hello callback; Close waits for it
	closed  bool

	mu       sync.Mutex
	links    map[string]*Link
	dialed   map[string]LinkConfig
	refusals map[string]int64      // in-link refusals by claimed peer
	rejects  map[string]int64      // refused inputs by kind
	nonces   map[string][][32]byte // per dialing peer, the nonces of recent hello-acks

	claimMu sync.Mutex
	claims  map[chunk.ID]claim

	q *queries

	incMu      sync.Mutex
	incomplete map[chunk.ID]*incomplete
	wg         sync.WaitGroup
}

// incomplete is a manifest stored here whose chunks are not all here yet.
type incomplete struct {
	m    *manifest.Manifest
	next int // chunks before next are known present
	at   time.Time
}

type claim struct {
	link string
	at   time.Time
}

// claimTTL bounds how long a want holds off other links.
const claimTTL = time.Minute

// NewNode returns a node; Serve starts accepting links, SetLinks dials.
func NewNode(cfg NodeConfig) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Node{
		site: cfg.Site, signer: cfg, stores: cfg.Stores, log: cfg.Logger, timing: cfg.Timing, peerKey: cfg.PeerKey,
		ctx: ctx, cancel: cancel,
		links: map[string]*Link{}, dialed: map[string]LinkConfig{}, refusals: map[string]int64{}, rejects: map[string]int64{}, nonces: map[string][][32]byte{},
		claims: map[chunk.ID]claim{}, q: newQueries(), incomplete: map[chunk.ID]*incomplete{},
	}
}

// helloSubject is where dialers announce themselves on this site's server.
func helloSubject(dialer, acceptor string) string {
	return "sf." + dialer + "." + acceptor + ".up.hello"
}

// Serve accepts links dialed to this site, over local, a connection to
// the site's own NATS server.
func (n *Node) Serve(local *nats.Conn) error {
	n.local = local
	sub, err := local.Subscribe(helloSubject("*", n.site), func(m *nats.Msg) {
		n.helloMu.RLock()
		defer n.helloMu.RUnlock()
		if !n.closed {
			n.onHello(m)
		}
	})
	if err != nil {
		return fmt.Errorf("accept links: %w", err)
	}
	n.hello = sub
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.completenessLoop() }()
	return nil
}

// Close stops every link.
func (n *Node) Close() {
	n.cancel()
	n.wg.Wait()
	if n.hello != nil {
		n.hello.Unsubscribe()
	}
	n.helloMu.Lock() // waits for a hello under way
	n.closed = true
	n.helloMu.Unlock()
	n.mu.Lock()
	links := n.links
	n.links = map[string]*Link{}
	n.mu.Unlock()
	for _, l := range links {
		l.stop()
		if l.dir == DirOut {
			l.closeConn()
		}
	}
}

// SetLinks makes the dialed links match cfgs: new ones start, removed
// ones stop, changed ones restart.
func (n *Node) SetLinks(cfgs []LinkConfig) {
	want := map[string]LinkConfig{}
	for _, c := range cfgs {
		want[c.Peer] = c
	}
	n.mu.Lock()
	var stop []*Link
	var start []LinkConfig
	for peer, old := range n.dialed {
		if c, ok := want[peer]; !ok || c != old {
			stop = append(stop, n.links["out:"+peer])
			delete(n.links, "out:"+peer)
			delete(n.dialed, peer)
		}
	}
	for peer, c := range want {
		if _, ok := n.dialed[peer]; !ok {
			n.dialed[peer] = c
			start = append(start, c)
		}
	}
	n.mu.Unlock()
	for _, l := range stop {
		if l != nil {
			l.stop()
			l.closeConn()
		}
	}
	for _, c := range start {
		l := newLink(n, "out:"+c.Peer, c.Peer, DirOut, c.Mode, c.MaxRate)
		l.tx, l.rx = "sf."+n.site+"."+c.Peer+".up", "sf."+n.site+"."+c.Peer+".dn"
		l.url = c.URL
		n.mu.Lock()
		n.links[l.name] = l
		n.mu.Unlock()
		l.start(n.ctx)
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.dialLoop() }()
	}
}

// answer decides the answer to an offered ID and, on want, claims it for
// link so that other links hear "later" until it is stored.
//
// The look-up happens under the claim lock: a payload is stored before
// its claim is released, so "no claim and not stored" is then truly
// "not here".
func (n *Node) answer(k Kind, id chunk.ID, link string) (wire.Answer, error) {
	n.claimMu.Lock()
	defer n.claimMu.Unlock()
	c, ok := n.claims[id]
	owner := ""
	if ok && time.Since(c.at) < claimTTL {
		owner = c.link
	}
	if owner == "" && k == KindChunk && n.fetching(id) {
		owner = "fetch" // coming in on the lookup lane right now
	}
	have := false
	if owner == "" || owner == link {
		var err error
		if have, err = n.stores.Has(k, id); err != nil {
			return wire.AnswerLater, err
		}
	}
	a := AnswerFor(have, owner, link)
	if a == wire.AnswerWant {
		n.claims[id] = claim{link: link, at: time.Now()}
	}
	return a, nil
}

// touchClaim keeps link's claim on id alive while its frames arrive.
func (n *Node) touchClaim(id chunk.ID, link string) {
	n.claimMu.Lock()
	defer n.claimMu.Unlock()
	if c, ok := n.claims[id]; ok && c.link == link {
		n.claims[id] = claim{link: link, at: time.Now()}
	}
}

func (n *Node) release(id chunk.ID, link string) {
	n.claimMu.Lock()
	defer n.claimMu.Unlock()
	if c, ok := n.claims[id]; ok && c.link == link {
		delete(n.claims, id)
	}
}

func (n *Node) releaseClaims(link string) {
	n.claimMu.Lock()
	defer n.claimMu.Unlock()
	for id, c := range n.claims {
		if c.link == link || time.Since(c.at) >= claimTTL {
			delete(n.claims, id)
		}
	}
}

func (n *Node) rejected(kind string) {
	n.mu.Lock()
	n.rejects[kind]++
	n.mu.Unlock()
	if n.signer.OnReject != nil {
		n.signer.OnReject(kind)
	}
}

// refusedHandshake records a handshake refused after the NATS server
// admitted the client.
func (n *Node) refusedHandshake(peer, why string) {
	n.Refused(peer, why)
	n.rejected("handshake")
}

// DropUntrusted stops accepted links whose peer is no longer trusted, or
// is trusted under another key than the one it proved (the trust store
// was edited while the site runs).
func (n *Node) DropUntrusted() {
	n.mu.Lock()
	var drop []*Link
	for name, l := range n.links {
		if l.dir != DirIn {
			continue
		}
		if key, ok := n.peerKey(l.peer); !ok || key != l.peerKey {
			drop = append(drop, l)
			delete(n.links, name)
		}
	}
	n.mu.Unlock()
	for _, l := range drop {
		n.log.Warn("peer no longer trusted; link dropped", "peer", l.peer)
		l.stop()
	}
}

// Refused counts a dialer refused before it became a link (untrusted
// key, anonymous, bad handshake), for status and metrics.
func (n *Node) Refused(peer, why string) {
	if peer == "" {
		peer = "unknown"
	}
	n.mu.Lock()
	n.refusals[peer]++
	n.mu.Unlock()
	n.log.Warn("link refused", "peer", peer, "why", why)
}

func newNonce() [32]byte {
	var b [32]byte
	rand.Read(b[:])
	return b
}

// ProofMessage is what each side signs: the other's nonce bound to both
// site IDs and the signer's role, so a proof cannot be replayed elsewhere.
func ProofMessage(nonce [32]byte, signer, other, role string) []byte {
	return []byte("skyfed-link-v1\x00" + role + "\x00" + signer + "\x00" + other + "\x00" + string(nonce[:]))
}

// nkeyOptions authenticates to a NATS server as this site's nkey user.
func (n *Node) nkeyOption() (nats.Option, error) {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, n.signer.Signer.Seed())
	if err != nil {
		return nil, fmt.Errorf("site key as nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, kp.Sign), nil
}

// LinkStatus is one link as status shows it.
type LinkStatus struct {
	Peer              string  `json:"peer"`
	Direction         string  `json:"direction"`
	State             string  `json:"state"`
	Mode              string  `json:"mode"`
	MaxRate           uint64  `json:"max_rate"`
	Backlog           uint64  `json:"backlog"`
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
}

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
	n.mu.Unlock()
	out := []LinkStatus{}
	for _, l := range links {
		st := l.status()
		if l.dir == DirIn {
			st.Refused = refusals[l.peer]
			delete(refusals, l.peer)
		}
		out = append(out, st)
	}
	for p, c := range refusals {
		out = append(out, LinkStatus{Peer: p, Direction: DirIn, State: StateRefused, Refused: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].Direction > out[j].Direction
	})
	return out
}

// Rejected returns refused inputs by kind.
func (n *Node) Rejected() map[string]int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]int64, len(n.rejects))
	for k, v := range n.rejects {
		out[k] = v
	}
	return out
}

func (l *Link) status() LinkStatus {
	st := LinkStatus{
		Peer: l.peer, Direction: l.dir, State: l.State(), Mode: l.mode, MaxRate: l.lim.Rate(),
		SentChunks: l.c.sentChunks.Load(), ReceivedChunks: l.c.receivedChunks.Load(),
		SentManifests: l.c.sentManifests.Load(), ReceivedManifests: l.c.receivedManifests.Load(),
		SentRawBytes: l.c.sentRaw.Load(), SentWireBytes: l.c.sentWire.Load(), SentPayloadBytes: l.c.sentPayload.Load(),
		SendRate: l.c.sendRate.Load(), ReceiveRate: l.c.receiveRate.Load(),
		ReceivedRawBytes: l.c.receivedRaw.Load(), ReceivedWireBytes: l.c.receivedWire.Load(),
		Offered: l.c.offered.Load(), Wanted: l.c.wanted.Load(),
		Duplicates: l.c.duplicates.Load(), DuplicateBytes: l.c.duplicateBytes.Load(), DuplicateChunks: l.c.duplicateChunks.Load(),
		SentMessages: l.c.sentMessages.Load(), ReceivedMessages: l.c.messages.Load(), Rejected: l.c.rejected.Load(),
	}
	log := l.node.stores.Log
	oldest := time.Time{}
	for _, k := range kinds {
		l.mu.Lock()
		w := l.windows[k]
		cur, seq, ok := w.Cursor(), uint64(0), false
		if s, has := w.Oldest(); has {
			seq, ok = s, true
		}
		l.mu.Unlock()
		head := log.Head(k)
		if head > cur {
			st.Backlog += head - cur
		}
		if !ok && head > cur {
			seq, ok = cur+1, true
		}
		if ok {
			if a, found, err := log.At(k, seq); err == nil && found && (oldest.IsZero() || a.At.Before(oldest)) {
				oldest = a.At
			}
		}
	}
	if !oldest.IsZero() {
		st.LagSeconds = max(0, time.Since(oldest).Seconds())
	}
	return st
}

// Describe implements prometheus.Collector.
func (n *Node) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(n, ch) }

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
	descCounters = map[string]*prometheus.Desc{
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
		for name, v := range map[string]int64{
			"sent_chunks": st.SentChunks, "received_chunks": st.ReceivedChunks,
			"sent_manifests": st.SentManifests, "received_manifests": st.ReceivedManifests,
			"sent_raw_bytes": st.SentRawBytes, "sent_wire_bytes": st.SentWireBytes, "sent_payload_bytes": st.SentPayloadBytes,
			"received_raw_bytes": st.ReceivedRawBytes, "received_wire_bytes": st.ReceivedWireBytes,
			"sent_messages": st.SentMessages, "received_messages": st.ReceivedMessages,
			"offered": st.Offered, "wanted": st.Wanted, "duplicates": st.Duplicates, "duplicate_bytes": st.DuplicateBytes,
			"rejected": st.Rejected, "refused": st.Refused,
		} {
			ch <- prometheus.MustNewConstMetric(descCounters[name], prometheus.CounterValue, float64(v), labels...)
		}
	}
}

func isAuthError(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization"))
}

// maxIncomplete bounds the manifests tracked for confirmation.
const maxIncomplete = 100000

// Track notes a manifest that became known here from elsewhere (a link
// or a lookup), to confirm it to the federation once all its chunks are
// here.
func (n *Node) Track(id chunk.ID) { n.trackManifest(id) }

func (n *Node) trackManifest(id chunk.ID) {
	m, err := n.stores.Objects.Manifest(id)
	if err != nil {
		return
	}
	n.incMu.Lock()
	defer n.incMu.Unlock()
	if len(n.incomplete) < maxIncomplete {
		n.incomplete[id] = &incomplete{m: m, at: time.Now()}
	}
}

// completenessLoop confirms tracked manifests whose chunks have all
// arrived, so --wait-sites at their origin can count this site.
func (n *Node) completenessLoop() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		for _, id := range n.completeNow() {
			n.Confirm(id)
		}
	}
}

func (n *Node) completeNow() []chunk.ID {
	n.incMu.Lock()
	defer n.incMu.Unlock()
	var done []chunk.ID
	for id, inc := range n.incomplete {
		for inc.next < len(inc.m.Chunks) {
			have, err := n.stores.HasChunk(inc.m.Chunks[inc.next])
			if err != nil || !have {
				break
			}
			inc.next++
		}
		if inc.next == len(inc.m.Chunks) {
			done = append(done, id)
			delete(n.incomplete, id)
		} else if time.Since(inc.at) > 24*time.Hour {
			delete(n.incomplete, id)
		}
	}
	return done
}
