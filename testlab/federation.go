package testlab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
)

// Domain is the one domain of a lab federation: every site writes under
// it, and every site trusts every other site's key for it.
const Domain = "lab.test"

// Defaults of a lab federation.
const (
	DefaultChunkSize = 64 << 10              // many chunks from small objects
	reloadEvery      = 50 * time.Millisecond // how fast sites see config edits
	convergePoll     = 100 * time.Millisecond
)

// ErrStopped is returned for operations on a site that is not running.
var ErrStopped = errors.New("site is not running")

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
	// Logger receives the sites' logs; nil writes them to a file in a temp
	// dir whose tail is shown when the test fails.
	Logger *slog.Logger
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

// SiteID returns the ID of lab site i.
func SiteID(i int) string { return fmt.Sprintf("s%d", i) }

// FullName returns the object name of path in the lab domain; a name that
// already starts with the domain is returned as is.
func FullName(path string) string {
	if strings.HasPrefix(path, Domain+"/") {
		return path
	}
	return Domain + "/" + path
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

func objectOf(i int, m *manifest.Manifest) Object {
	return Object{Site: i, Name: m.Name, Version: m.Version(), SHA256: m.SHA256, Size: m.Size,
		Chunks: slices.Clone(m.Chunks), Manifest: m.ID()}
}

// member is one site of a lab, running or not.
type member struct {
	id, dir string
	nats    string // address of its NATS server ("" while a lab site is stopped)
	http    string // its fixed HTTP address, if any
	key     string // ed25519:<hex>
}

// labLink is one link: from dials to through proxy.
type labLink struct {
	from, to int
	proxy    *Proxy
}

// lab is what in-process and process federations share: the members,
// the links with their proxies, and the record of puts.
type lab struct {
	t    testing.TB
	opts FedOptions

	mu      sync.Mutex
	members []member
	links   []*labLink
	puts    []Object
}

// build initializes every member, makes every site trust every other,
// links them by edges and starts them.
func (l *lab) build(edges [][2]int, initMember, start func(int) error) error {
	for i := range l.opts.N {
		if err := initMember(i); err != nil {
			return err
		}
	}
	if err := l.trustAll(); err != nil {
		return err
	}
	for _, e := range edges {
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

// trustAll makes every member trust every other member for Domain.
func (l *lab) trustAll() error {
	for i, a := range l.members {
		for j, b := range l.members {
			if i == j {
				continue
			}
			if err := site.Trust(a.dir, site.Peer{ID: b.id, Key: b.key, Domains: []string{Domain}}); err != nil {
				return fmt.Errorf("lab: %s trusts %s: %w", a.id, b.id, err)
			}
		}
	}
	return nil
}

// link makes member from dial member to through a new proxy.
func (l *lab) link(from, to int) error {
	l.mu.Lock()
	target := l.members[to]
	dir := l.members[from].dir
	l.mu.Unlock()
	p, err := l.newProxy(target.nats)
	if err != nil {
		return fmt.Errorf("lab: link %d→%d: %w", from, to, err)
	}
	err = site.LinkTo(dir, site.Link{Peer: target.id, URL: "nats://" + p.Addr(), MaxRate: l.opts.rateOf(from, to), Mode: l.opts.Mode})
	if err != nil {
		p.Close()
		return fmt.Errorf("lab: link %d→%d: %w", from, to, err)
	}
	l.mu.Lock()
	l.links = append(l.links, &labLink{from: from, to: to, proxy: p})
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
		reserved[m.nats], reserved[m.http] = true, true
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
// direction), or nil if they are not linked.
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
// are refused until Heal.
func (l *lab) Cut(i, j int) { l.mustProxy(i, j).Cut() }

// Heal lets the link between i and j connect again.
func (l *lab) Heal(i, j int) { l.mustProxy(i, j).Heal() }

func (l *lab) mustProxy(i, j int) *Proxy {
	p := l.Proxy(i, j)
	if p == nil {
		l.t.Fatalf("lab: sites %d and %d are not linked", i, j)
	}
	return p
}

// SetMaxRate changes the max rate of the link between i and j on the
// dialing site's config; the site restarts the link within its reload
// period.
func (l *lab) SetMaxRate(i, j int, rate string) error {
	l.mu.Lock()
	var lk *labLink
	for _, x := range l.links {
		if x.from == i && x.to == j || x.from == j && x.to == i {
			lk = x
		}
	}
	if lk == nil {
		l.mu.Unlock()
		return fmt.Errorf("lab: sites %d and %d are not linked", i, j)
	}
	dir, peer := l.members[lk.from].dir, l.members[lk.to].id
	l.mu.Unlock()
	return site.LinkTo(dir, site.Link{Peer: peer, URL: "nats://" + lk.proxy.Addr(), MaxRate: rate, Mode: l.opts.Mode})
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

func (l *lab) closeProxies() {
	l.mu.Lock()
	links := l.links
	l.mu.Unlock()
	for _, lk := range links {
		lk.proxy.Close()
	}
}

// RandomStream returns size bytes of a ChaCha8 stream picked by seed.
func RandomStream(seed uint64, size int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), size)
}

// Federation is a lab federation of in-process sites, each with its own
// embedded NATS server and data dir, linked through one Proxy per link.
// Create it with NewFederation; it closes itself when the test ends.
type Federation struct {
	lab
	logger  *slog.Logger
	logFile *os.File
	sites   []*site.Site // nil while stopped
}

// NewFederation starts opts.N sites linked by opts.Topology. It fails t
// if the federation cannot be built.
func NewFederation(t testing.TB, opts FedOptions) *Federation {
	t.Helper()
	opts = opts.withDefaults()
	edges, err := Topology(opts.Topology, opts.N, opts.Seed)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	f := &Federation{lab: lab{t: t, opts: opts}}
	f.setLogger()
	t.Cleanup(f.close)
	if err := f.build(edges, f.initMember, f.RestartSite); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *Federation) setLogger() {
	f.logger = f.opts.Logger
	if f.logger != nil {
		return
	}
	lf, err := os.Create(filepath.Join(f.t.TempDir(), "lab.log"))
	if err != nil {
		f.t.Fatalf("lab: log file: %v", err)
	}
	f.logFile = lf
	f.logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// initMember creates site i's dir and config (not yet running). Its NATS
// server takes a random port each time it starts (a port picked ahead
// could be taken meanwhile, by a listener or an outgoing connection), and
// the proxies of the links to it follow (see RestartSite).
func (f *Federation) initMember(i int) error {
	dir := filepath.Join(f.t.TempDir(), SiteID(i))
	key, err := site.Init(dir, site.Config{ID: SiteID(i), Domain: Domain, HTTP: "127.0.0.1:0", NATS: "127.0.0.1:0", ChunkSize: f.opts.ChunkSize})
	if err != nil {
		return fmt.Errorf("lab: init %s: %w", SiteID(i), err)
	}
	f.mu.Lock()
	f.members = append(f.members, member{id: SiteID(i), dir: dir, key: key.String()})
	f.sites = append(f.sites, nil)
	f.mu.Unlock()
	return nil
}

// Site returns site i, or nil while it is stopped.
func (f *Federation) Site(i int) *site.Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sites[i]
}

func (f *Federation) running(i int) (*site.Site, error) {
	s := f.Site(i)
	if s == nil {
		return nil, fmt.Errorf("lab: %s: %w", SiteID(i), ErrStopped)
	}
	return s, nil
}

// StopSite stops site i cleanly; its dir stays for RestartSite.
func (f *Federation) StopSite(i int) error {
	f.mu.Lock()
	s := f.sites[i]
	f.sites[i] = nil
	f.mu.Unlock()
	if s == nil {
		return nil
	}
	f.setNATS(i, "")
	if err := s.Stop(); err != nil {
		return fmt.Errorf("lab: stop %s: %w", SiteID(i), err)
	}
	return nil
}

// setNATS records site i's NATS address and points the proxies of the
// links dialed to it there ("": they refuse while it is stopped).
func (f *Federation) setNATS(i int, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[i].nats = addr
	for _, lk := range f.links {
		if lk.to == i {
			lk.proxy.SetTarget(addr) // addr comes from the server: valid
		}
	}
}

// RestartSite opens site i from its dir and starts it (a no-op while it
// runs). Its link counters start from zero.
func (f *Federation) RestartSite(i int) error {
	if f.Site(i) != nil {
		return nil
	}
	s, err := site.Open(f.Dir(i), site.Options{Logger: f.logger, ReloadEvery: reloadEvery, NATSPort: -1})
	if err != nil {
		return fmt.Errorf("lab: open %s: %w", SiteID(i), err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		return fmt.Errorf("lab: start %s: %w", SiteID(i), err)
	}
	u, err := url.Parse(s.NATSURL())
	if err != nil || u.Host == "" {
		s.Stop()
		return fmt.Errorf("lab: %s's NATS URL %q: %v", SiteID(i), s.NATSURL(), err)
	}
	f.setNATS(i, u.Host)
	f.mu.Lock()
	f.sites[i] = s
	f.mu.Unlock()
	return nil
}

// AddSite creates a new site that every site trusts (and that trusts
// every site), links it to the given sites (it dials them), starts it and
// returns its index. It fails the test on error: call it from the test's
// goroutine.
func (f *Federation) AddSite(linkTo ...int) int {
	f.t.Helper()
	k := f.N()
	if err := f.initMember(k); err != nil {
		f.t.Fatal(err)
	}
	if err := f.trustAll(); err != nil {
		f.t.Fatal(err)
	}
	if err := f.waitTrusted(SiteID(k), 10*time.Second); err != nil {
		f.t.Fatal(err)
	}
	for _, j := range linkTo {
		if err := f.link(k, j); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.RestartSite(k); err != nil {
		f.t.Fatal(err)
	}
	return k
}

// waitTrusted waits until every running site has reloaded a config that
// trusts peer, so the new site's first dial is not refused.
func (f *Federation) waitTrusted(peer string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i := range f.N() {
		for {
			s := f.Site(i)
			if s == nil || s.Config().ID == peer || slices.ContainsFunc(s.Config().Peers, func(p site.Peer) bool { return p.ID == peer }) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("lab: %s did not reload its trust of %s within %s", SiteID(i), peer, timeout)
			}
			time.Sleep(reloadEvery / 2)
		}
	}
	return nil
}

// Put stores data under path (in Domain) at site i and records it.
func (f *Federation) Put(i int, path string, data io.Reader) (*manifest.Manifest, error) {
	s, err := f.running(i)
	if err != nil {
		return nil, err
	}
	name, err := naming.ParseName(FullName(path))
	if err != nil {
		return nil, fmt.Errorf("lab: put at %s: %w", SiteID(i), err)
	}
	m, err := s.Objects().Put(context.Background(), name, data, naming.PutOptions{})
	if err != nil {
		return nil, fmt.Errorf("lab: put at %s: %w", SiteID(i), err)
	}
	f.record(objectOf(i, m))
	return m, nil
}

// PutRandom puts size bytes of RandomStream(seed) under path at site i.
func (f *Federation) PutRandom(i int, path string, size int64, seed uint64) (*manifest.Manifest, error) {
	return f.Put(i, path, RandomStream(seed, size))
}

// Links returns the status of site i's links (dialed and accepted).
func (f *Federation) Links(i int) ([]forward.LinkStatus, error) {
	s, err := f.running(i)
	if err != nil {
		return nil, err
	}
	return s.Links(), nil
}

// Receipts returns the chunk payloads site i stored from its links since
// it (re)started: the sum of ReceivedChunks over its links.
func (f *Federation) Receipts(i int) int64 { return receipts(f.Links, i) }

// receipts sums ReceivedChunks over site i's links.
func receipts(links func(int) ([]forward.LinkStatus, error), i int) int64 {
	ls, err := links(i)
	if err != nil {
		return 0
	}
	var n int64
	for _, l := range ls {
		n += l.ReceivedChunks
	}
	return n
}

// WaitLinksUp waits until every link is up at both its ends.
func (f *Federation) WaitLinksUp(timeout time.Duration) error {
	return PollUntil(timeout, func() error { return linksUp(f.Edges(), f.Links) })
}

// Converged reports nil when every site holds every manifest and chunk
// and agrees on the latest version of every name, and the bytes of a
// sample of names read back at every site verify; else an error wrapping
// ErrNotConverged that describes the difference.
func (f *Federation) Converged() error {
	invs := make([]Inventory, f.N())
	for i := range invs {
		s, err := f.running(i)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotConverged, err)
		}
		if invs[i], err = SiteInventory(s); err != nil {
			return err
		}
	}
	if err := Compare(invs, f.Puts()); err != nil {
		return err
	}
	for _, name := range sampleNames(invs[0].Latest, 3) {
		for i := range invs {
			s, err := f.running(i)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrNotConverged, err)
			}
			if err := verifyRead(s.Objects(), name); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrNotConverged, SiteID(i), err)
			}
		}
	}
	return nil
}

// WaitConverged polls Converged until it reports nil or timeout passes;
// then it returns the last difference.
func (f *Federation) WaitConverged(timeout time.Duration) error {
	return PollUntil(timeout, f.Converged)
}

// close stops every site and proxy; it runs as the test's cleanup.
func (f *Federation) close() {
	var wg sync.WaitGroup
	for i := range f.N() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.StopSite(i); err != nil {
				f.t.Errorf("lab cleanup: %v", err)
			}
		}()
	}
	wg.Wait()
	f.closeProxies()
	if f.logFile == nil {
		return
	}
	if f.t.Failed() {
		f.t.Logf("lab log %s, link states, warnings and errors at the end:\n%s", f.logFile.Name(), logTail(f.logFile, 80))
	}
	f.logFile.Close()
}

// logTail returns the last n lines of a log file at level WARN or above,
// and the links' changes of state.
func logTail(f *os.File, n int) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, `msg="link `) {
			keep = append(keep, line)
		}
	}
	keep = keep[max(0, len(keep)-n):]
	return strings.Join(keep, "\n")
}

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

// linksUp reports an error unless every edge is up at both ends.
func linksUp(edges [][2]int, links func(int) ([]forward.LinkStatus, error)) error {
	for _, e := range edges {
		for end, peer := range map[int]int{e[0]: e[1], e[1]: e[0]} {
			dir := forward.DirOut
			if end == e[1] {
				dir = forward.DirIn
			}
			ls, err := links(end)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(ls, func(l forward.LinkStatus) bool { return l.Peer == SiteID(peer) && l.Direction == dir })
			if i < 0 || ls[i].State != forward.StateUp {
				return fmt.Errorf("link %s→%s is not up at %s", SiteID(e[0]), SiteID(e[1]), SiteID(end))
			}
		}
	}
	return nil
}

// verifyRead reads the latest version of name and checks its bytes
// against the manifest's SHA-256.
func verifyRead(objects *naming.Store, name string) error {
	n, err := naming.ParseName(name)
	if err != nil {
		return err
	}
	m, err := objects.Latest(n)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, objects.NewReader(m, 0, m.Size)); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, m.SHA256[:]) {
		return fmt.Errorf("%s version %s reads back as SHA-256 %x, manifest says %x", name, m.Version(), got, m.SHA256)
	}
	return nil
}
