package testlab

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/site"
)

// Domain is the default domain of a lab federation: every site writes
// under it, and every site trusts every other site's key for it.
const Domain = "lab.test"

// Defaults of a lab federation.
const (
	DefaultChunkSize = 64 << 10              // many chunks from small objects
	reloadEvery      = 50 * time.Millisecond // how fast sites see config edits
	convergePoll     = 100 * time.Millisecond
)

// ErrStopped is returned for operations on a site that is not running.
var ErrStopped = errors.New("site is not running")

// ErrStart is wrapped by the error of a site that failed to start (a port
// in use, for one).
var ErrStart = errors.New("site did not start")

// FedOptions shape a lab federation.
type FedOptions struct {
	N        int    // sites, s0 … s(N-1)
	Topology string // a name Topology knows; "" is line
	Seed     int64  // for the random topology
	Mode     string // link mode: offer (default) or flood
	// MaxRate limits every link ("2MB/s"); "" or "0" is unlimited.
	MaxRate string
	// LinkRates overrides MaxRate for single links, keyed by the pair of
	// site indexes in either order.
	LinkRates map[[2]int]string
	// ChunkSize of every site; 0 is DefaultChunkSize.
	ChunkSize int
	// Logger receives the in-process sites' logs; nil discards them.
	Logger *slog.Logger

	// Dir holds site i's data dir as Dir/<its ID> (and a process site's
	// log as Dir/<its ID>.log); "" is a new temp dir that Close removes.
	// An in-process federation reuses the sites already in Dir as they are
	// (their config and key), with trust and links set anew.
	Dir string
	// IDs names the sites; nil is s0 … s(N-1) (SiteID).
	IDs []string
	// Domain every site writes under and trusts every other site for;
	// "" is Domain.
	Domain string
	// ReconcileInterval of every site (reconcile_interval, a Go
	// duration); "" keeps the default (10m).
	ReconcileInterval string
	// NATSTLS is every site's nats_tls (auto, on, off); "" is on, so
	// the lab's links run in TLS as WAN links do.
	NATSTLS string

	// Edit, if set, changes new site i's config before it is created.
	Edit func(i int, c *site.Config)

	// Binary is the skyfed binary a process federation runs; "" builds
	// one from this module (Binary). Ignored by in-process federations.
	Binary string

	// The options below are for in-process federations only.

	// HTTPAddr and NATSAddr return the fixed listen addresses of new site
	// i; nil picks a random port (for NATS, anew at every start).
	HTTPAddr, NATSAddr func(i int) string
	// S3Addr, if set, turns each new site's S3 API on at that address.
	S3Addr func(i int) string
	// Direct links dial the acceptor's NATS address itself instead of a
	// Proxy (which Proxy, Cut and Heal need). It needs NATSAddr.
	Direct bool
}

func (o FedOptions) withDefaults() FedOptions {
	if o.Topology == "" {
		o.Topology = "line"
	}
	if o.Mode == "" {
		o.Mode = forward.ModeOffer
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Domain == "" {
		o.Domain = Domain
	}
	return o
}

// rateOf returns the max rate of the link between i and j.
func (o FedOptions) rateOf(i, j int) string {
	if r, ok := o.LinkRates[[2]int{i, j}]; ok {
		return r
	}
	if r, ok := o.LinkRates[[2]int{j, i}]; ok {
		return r
	}
	return o.MaxRate
}

// SiteID returns the default ID of lab site i.
func SiteID(i int) string { return fmt.Sprintf("s%d", i) }

// FullName returns the object name of path in Domain; a name that
// already starts with the domain is returned as is.
func FullName(path string) string { return fullName(Domain, path) }

func fullName(domain, path string) string {
	if strings.HasPrefix(path, domain+"/") {
		return path
	}
	return domain + "/" + path
}

// Object is what the lab recorded of one put.
type Object struct {
	Site     int      // index of the site it was put at
	Name     string   // full name
	Version  string   // version stamp text
	SHA256   [32]byte // of the whole content
	Size     int64
	Chunks   []chunk.ID
	Manifest chunk.ID // zero when put through HTTP (process mode)
}

// member is one site of a lab, running or not.
type member struct {
	id, dir string
	key     string      // ed25519:<hex>
	cfg     site.Config // as created (or found, when reused)
	// nats is where the links to it go: the address of its NATS server,
	// "" while an in-process site is stopped.
	nats string
}

// labLink is one link: from dials to, through proxy (nil: directly).
type labLink struct {
	from, to int
	proxy    *Proxy
}

// lab is what in-process and process federations share: the members,
// the links with their proxies, the record of puts, and the one way they
// are built (build).
type lab struct {
	opts   FedOptions
	edges  [][2]int
	dir    string
	ownDir bool // dir is a temp dir of the lab's own, removed by close

	mu      sync.Mutex
	members []member
	links   []*labLink
	puts    []Object
}

// setUp checks the options, fills in their defaults and the topology's
// links, and makes the base dir.
func (l *lab) setUp(opts FedOptions) error {
	l.opts = opts.withDefaults()
	if l.opts.IDs != nil && len(l.opts.IDs) != l.opts.N {
		return fmt.Errorf("lab: %d IDs for %d sites", len(l.opts.IDs), l.opts.N)
	}
	if l.opts.Direct && l.opts.NATSAddr == nil {
		return errors.New("lab: direct links need fixed NATS addresses (NATSAddr)")
	}
	edges, err := Topology(l.opts.Topology, l.opts.N, l.opts.Seed)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	l.edges, l.dir = edges, l.opts.Dir
	if l.dir == "" {
		if l.dir, err = os.MkdirTemp("", "skyfed-lab-"); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		l.ownDir = true
	}
	return nil
}

// build initializes every member, makes every site trust every other,
// links them by the topology and starts them.
func (l *lab) build(initMember, start func(int) error) error {
	for i := range l.opts.N {
		if err := initMember(i); err != nil {
			return err
		}
	}
	if err := l.trustAll(); err != nil {
		return err
	}
	for _, e := range l.edges {
		if err := l.link(e[0], e[1]); err != nil {
			return err
		}
	}
	for i := range l.opts.N {
		if err := start(i); err != nil {
			return err
		}
	}
	return nil
}

// id returns the ID of site i: from the options, else SiteID.
func (l *lab) id(i int) string {
	if i < len(l.opts.IDs) {
		return l.opts.IDs[i]
	}
	return SiteID(i)
}

// trustAll makes every member trust every other member for the domain.
func (l *lab) trustAll() error {
	l.mu.Lock()
	members := slices.Clone(l.members)
	l.mu.Unlock()
	for i, a := range members {
		for j, b := range members {
			if i == j {
				continue
			}
			if err := site.Trust(a.dir, site.Peer{ID: b.id, Key: b.key, Domains: []string{l.opts.Domain}}); err != nil {
				return fmt.Errorf("lab: %s trusts %s: %w", a.id, b.id, err)
			}
		}
	}
	return nil
}

// link makes member from dial member to, through a new proxy unless the
// links are direct.
func (l *lab) link(from, to int) error {
	l.mu.Lock()
	target := l.members[to]
	dir := l.members[from].dir
	l.mu.Unlock()
	lk := &labLink{from: from, to: to}
	url := "nats://" + target.cfg.NATS
	if !l.opts.Direct {
		p, err := l.newProxy(target.nats)
		if err != nil {
			return fmt.Errorf("lab: link %d→%d: %w", from, to, err)
		}
		lk.proxy, url = p, "nats://"+p.Addr()
	}
	err := site.LinkTo(dir, site.Link{Peer: target.id, URL: url, MaxRate: l.opts.rateOf(from, to), Mode: l.opts.Mode})
	if err != nil {
		if lk.proxy != nil {
			lk.proxy.Close()
		}
		return fmt.Errorf("lab: link %d→%d: %w", from, to, err)
	}
	l.mu.Lock()
	l.links = append(l.links, lk)
	l.mu.Unlock()
	return nil
}

// newProxy starts a proxy to target whose port is none of the members'
// own addresses: those are picked before the sites listen on them, so the
// kernel could hand one to a proxy meanwhile.
func (l *lab) newProxy(target string) (*Proxy, error) {
	l.mu.Lock()
	reserved := map[string]bool{}
	for _, m := range l.members {
		reserved[m.cfg.NATS], reserved[m.cfg.HTTP] = true, true
	}
	l.mu.Unlock()
	var taken []*Proxy
	defer func() {
		for _, p := range taken {
			p.Close()
		}
	}()
	for range 16 {
		p, err := NewProxy(target)
		if err != nil {
			return nil, err
		}
		if !reserved[p.Addr()] {
			return p, nil
		}
		taken = append(taken, p) // hold it, so the next one differs
	}
	return nil, errors.New("no proxy port apart from the sites' own")
}

// N returns the number of sites.
func (l *lab) N() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.members)
}

// Dir returns the data dir of site i.
func (l *lab) Dir(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.members[i].dir
}

// ID returns the ID of site i.
func (l *lab) ID(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.members[i].id
}

// Edges returns the links as [dialer, acceptor] pairs.
func (l *lab) Edges() [][2]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][2]int, len(l.links))
	for k, lk := range l.links {
		out[k] = [2]int{lk.from, lk.to}
	}
	return out
}

// Proxy returns the proxy of the link between sites i and j (either
// direction), or nil if they are not linked or linked directly.
func (l *lab) Proxy(i, j int) *Proxy {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lk := range l.links {
		if lk.from == i && lk.to == j || lk.from == j && lk.to == i {
			return lk.proxy
		}
	}
	return nil
}

// Cut cuts the link between i and j: its connections close and new ones
// are refused until Heal. It panics if they are not linked through a
// proxy.
func (l *lab) Cut(i, j int) { l.mustProxy(i, j).Cut() }

// Heal lets the link between i and j connect again.
func (l *lab) Heal(i, j int) { l.mustProxy(i, j).Heal() }

func (l *lab) mustProxy(i, j int) *Proxy {
	p := l.Proxy(i, j)
	if p == nil {
		panic(fmt.Sprintf("lab: sites %d and %d are not linked through a proxy", i, j))
	}
	return p
}

// SetMaxRate changes the max rate of the link between i and j on the
// dialing site's config; the site restarts the link within its reload
// period.
func (l *lab) SetMaxRate(i, j int, rate string) error {
	lk, err := l.labLink(i, j)
	if err != nil {
		return err
	}
	l.mu.Lock()
	dir, to := l.members[lk.from].dir, l.members[lk.to]
	l.mu.Unlock()
	url := "nats://" + to.cfg.NATS
	if lk.proxy != nil {
		url = "nats://" + lk.proxy.Addr()
	}
	return site.LinkTo(dir, site.Link{Peer: to.id, URL: url, MaxRate: rate, Mode: l.opts.Mode})
}

// Puts returns what was put through the lab, in order.
func (l *lab) Puts() []Object {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.puts)
}

func (l *lab) record(o Object) {
	l.mu.Lock()
	l.puts = append(l.puts, o)
	l.mu.Unlock()
}

// UniqueChunks returns the distinct chunks of everything put, and of
// those, how many were put at each site (a chunk put at two sites counts
// for both).
func (l *lab) UniqueChunks() (total int, bySite map[int]int) {
	all := map[chunk.ID]bool{}
	per := map[int]map[chunk.ID]bool{}
	for _, o := range l.Puts() {
		if per[o.Site] == nil {
			per[o.Site] = map[chunk.ID]bool{}
		}
		for _, id := range o.Chunks {
			all[id] = true
			per[o.Site][id] = true
		}
	}
	bySite = map[int]int{}
	for i, ids := range per {
		bySite[i] = len(ids)
	}
	return len(all), bySite
}

// linksUp reports an error unless every link is up at both ends, as
// links(i) reports site i's links.
func (l *lab) linksUp(links func(int) ([]forward.LinkStatus, error)) error {
	for _, e := range l.Edges() {
		for end, peer := range map[int]int{e[0]: e[1], e[1]: e[0]} {
			dir := forward.DirOut
			if end == e[1] {
				dir = forward.DirIn
			}
			ls, err := links(end)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(ls, func(s forward.LinkStatus) bool { return s.Peer == l.ID(peer) && s.Direction == dir })
			if i < 0 || ls[i].State != forward.StateUp {
				return fmt.Errorf("link %s→%s is not up at %s", l.ID(e[0]), l.ID(e[1]), l.ID(end))
			}
		}
	}
	return nil
}

// close closes the proxies and removes the lab's own temp dir.
func (l *lab) close() error {
	l.mu.Lock()
	links := l.links
	l.mu.Unlock()
	for _, lk := range links {
		if lk.proxy != nil {
			lk.proxy.Close()
		}
	}
	if l.ownDir {
		return os.RemoveAll(l.dir)
	}
	return nil
}

// memberDir returns the data dir of new site i.
func (l *lab) memberDir(i int) string { return filepath.Join(l.dir, l.id(i)) }

// PollUntil calls check until it returns nil or timeout passes; then it
// returns check's last error.
func PollUntil(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(convergePoll)
	}
}
