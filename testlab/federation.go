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
	"slices"
	"sync"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
)

func objectOf(i int, m *manifest.Manifest) Object {
	return Object{Site: i, Name: m.Name, Version: m.Version(), SHA256: m.SHA256, Size: m.Size,
		Chunks: slices.Clone(m.Chunks), Manifest: m.ID()}
}

// RandomStream returns size bytes of a ChaCha8 stream picked by seed.
func RandomStream(seed uint64, size int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), size)
}

// Federation is a lab federation of in-process sites, each with its own
// embedded NATS server and data dir, linked through one Proxy per link
// (or directly). Create it with StartFederation and end it with Close.
type Federation struct {
	lab
	logger *slog.Logger
	sites  []*site.Site // nil while stopped
}

// StartFederation starts opts.N sites linked by opts.Topology: it creates
// (or reuses) their data dirs, makes every site trust every other for the
// domain, links them and starts them. On error it closes what it started.
func StartFederation(opts FedOptions) (*Federation, error) {
	f := &Federation{logger: opts.Logger}
	if f.logger == nil {
		f.logger = slog.New(slog.DiscardHandler)
	}
	if err := f.setUp(opts); err != nil {
		return nil, err
	}
	if err := f.build(f.initMember, f.RestartSite); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// initMember creates site i's dir and config (not yet running), or takes
// the site already in that dir. Unless NATSAddr fixes it, its NATS server
// takes a random port each time it starts (a port picked ahead could be
// taken meanwhile, by a listener or an outgoing connection), and the
// proxies of the links to it follow (see RestartSite).
func (f *Federation) initMember(i int) error {
	id, dir := f.id(i), f.memberDir(i)
	cfg := site.Config{ID: id, Domain: f.opts.Domain, HTTP: "127.0.0.1:0", NATS: "127.0.0.1:0", ChunkSize: f.opts.ChunkSize,
		ReconcileInterval: f.opts.ReconcileInterval, NATSTLS: f.opts.NATSTLS}
	if f.opts.HTTPAddr != nil {
		cfg.HTTP = f.opts.HTTPAddr(i)
	}
	if f.opts.NATSAddr != nil {
		cfg.NATS = f.opts.NATSAddr(i)
	}
	if f.opts.S3Addr != nil {
		cfg.S3 = f.opts.S3Addr(i)
	}
	if f.opts.Edit != nil {
		f.opts.Edit(i, &cfg)
	}
	cfg, key, err := initOrReuse(dir, cfg)
	if err != nil {
		return fmt.Errorf("lab: init %s: %w", id, err)
	}
	f.mu.Lock()
	f.members = append(f.members, member{id: id, dir: dir, key: key, cfg: cfg})
	f.sites = append(f.sites, nil)
	f.mu.Unlock()
	return nil
}

// initOrReuse creates a site in dir with cfg, or, if dir already holds a
// site, takes it as it is; it returns the site's config and public key.
func initOrReuse(dir string, cfg site.Config) (site.Config, string, error) {
	if found, err := site.LoadConfig(dir); err == nil {
		k, err := site.LoadKey(dir)
		if err != nil {
			return found, "", err
		}
		return found, k.PublicKey().String(), nil
	}
	if cfg.NATSTLS == "" && cfg.NATSURL == "" {
		cfg.NATSTLS = site.TLSOn // the lab's links run as WAN links do, in TLS
	}
	key, err := site.Init(dir, cfg)
	if err != nil {
		return cfg, "", err
	}
	cfg, err = site.LoadConfig(dir)
	return cfg, key.String(), err
}

// Site returns site i, or nil while it is stopped.
func (f *Federation) Site(i int) *site.Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sites[i]
}

// Sites returns every site, nil for those stopped.
func (f *Federation) Sites() []*site.Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sites)
}

func (f *Federation) running(i int) (*site.Site, error) {
	s := f.Site(i)
	if s == nil {
		return nil, fmt.Errorf("lab: %s: %w", f.ID(i), ErrStopped)
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
		return fmt.Errorf("lab: stop %s: %w", f.ID(i), err)
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
		if lk.to == i && lk.proxy != nil {
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
	id := f.ID(i)
	opts := site.Options{Logger: f.logger, ReloadEvery: reloadEvery}
	if f.opts.NATSAddr == nil {
		opts.NATSPort = -1
	}
	s, err := site.Open(f.Dir(i), opts)
	if err != nil {
		return fmt.Errorf("lab: open %s: %w", id, err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		return fmt.Errorf("lab: %s: %w: %w", id, ErrStart, err)
	}
	u, err := url.Parse(s.NATSURL())
	if err != nil || u.Host == "" {
		s.Stop()
		return fmt.Errorf("lab: %s's NATS URL %q: %v", id, s.NATSURL(), err)
	}
	f.setNATS(i, u.Host)
	f.mu.Lock()
	f.sites[i] = s
	f.mu.Unlock()
	return nil
}

// AddSite creates a new site that every site trusts (and that trusts
// every site), links it to the given sites (it dials them), starts it and
// returns its index.
func (f *Federation) AddSite(linkTo ...int) (int, error) {
	k := f.N()
	if err := f.initMember(k); err != nil {
		return k, err
	}
	if err := f.trustAll(); err != nil {
		return k, err
	}
	if err := f.waitTrusted(f.ID(k), 10*time.Second); err != nil {
		return k, err
	}
	for _, j := range linkTo {
		if err := f.link(k, j); err != nil {
			return k, err
		}
	}
	return k, f.RestartSite(k)
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
				return fmt.Errorf("lab: %s did not reload its trust of %s within %s", f.ID(i), peer, timeout)
			}
			time.Sleep(reloadEvery / 2)
		}
	}
	return nil
}

// Put stores data under path (in the federation's domain) at site i and
// records it.
func (f *Federation) Put(i int, path string, data io.Reader) (*manifest.Manifest, error) {
	s, err := f.running(i)
	if err != nil {
		return nil, err
	}
	name, err := naming.ParseName(fullName(f.opts.Domain, path))
	if err != nil {
		return nil, fmt.Errorf("lab: put at %s: %w", f.ID(i), err)
	}
	m, err := s.Objects().Put(context.Background(), name, data, naming.PutOptions{})
	if err != nil {
		return nil, fmt.Errorf("lab: put at %s: %w", f.ID(i), err)
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
	return PollUntil(timeout, func() error { return f.linksUp(f.Links) })
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
				return fmt.Errorf("%w: %s: %w", ErrNotConverged, f.ID(i), err)
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

// Close stops every site and proxy, and removes the data dirs unless
// they are in FedOptions.Dir.
func (f *Federation) Close() error {
	var wg sync.WaitGroup
	errs := make([]error, f.N())
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.StopSite(i)
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, f.close())...)
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
