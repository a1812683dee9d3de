// Package site owns one running skyfed site: its config and key files,
// the embedded NATS server, the wiring of chunk store, version index and
// links, the HTTP API, the metrics registry and the dashboard page. It
// holds no storage or forwarding logic of its own.
package site

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/chunk/bucket"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// Options tune a Site beyond its config file.
type Options struct {
	// noLease: open a bucket site without its lease (a rebuild, which
	// only reads the bucket).
	noLease  bool
	Logger   *slog.Logger
	Registry *prometheus.Registry // nil → a new one
	// ReloadEvery is how often the config file is checked for edits.
	ReloadEvery time.Duration
	// HTTPListener, if set, is used instead of listening on the config's
	// HTTP address (tests pass a listener on port 0).
	HTTPListener net.Listener
	// NATSPort overrides the config's embedded NATS port (-1: random).
	NATSPort int
	// ClockOffset shifts the site's wall clock (stamps, expiry, the skew
	// check, the clock it shows peers), for tests of clock skew only:
	// `skyfed site run` reads it from SKYFED_TEST_CLOCK_OFFSET.
	ClockOffset time.Duration
}

// Site is one running federation member.
type Site struct {
	dir    string
	opts   Options
	log    *slog.Logger
	key    *manifest.KeyPair
	trust  *trustStore
	db     *pebble.DB
	chunks *chunk.Store
	bucket *bucket.Packs // the bucket the packs live in; nil for local packs
	lease  *bucket.Lease // this node's hold on the bucket (nil: local packs)
	// stopLease stops the lease's renewal.
	stopLease func()
	objects   *naming.Store
	metrics   *metrics

	heldAsked heldAsked     // when each manifest was last asked about across the federation (held.go)
	space     *space        // free space against disk_reserve (space.go)
	pebbleEv  *pebbleEvents // Pebble's errors, logged once per kind a minute

	arrivals *forward.Log
	stores   *forward.Stores
	inv      *forward.Inventory
	node     *forward.Node
	local    *nats.Conn

	mu      sync.Mutex
	cfg     Config
	cfgStat os.FileInfo

	nats      *server.Server
	auth      *natsAuth
	tls       *natsTLS // link encryption (natstls.go)
	httpSrv   *http.Server
	httpAddr  string
	httpsOn   bool         // the HTTP API is served over TLS
	s3Srv     *http.Server // the S3 API (s3.go), nil when off
	s3Addr    string
	s3TLS     bool
	started   time.Time
	origins   originTracker // the sites manifest arrivals came from (dashboard.go)
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	stopOnce  sync.Once
	stopErr   error

	countMu sync.Mutex
	count   int64
	countAt time.Time

	heal *healing // scrub, repair and garbage collection (heal.go)
}

// Open loads dir's config and key and opens its stores.
func Open(dir string, opts Options) (*Site, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.ReloadEvery <= 0 {
		opts.ReloadEvery = 2 * time.Second
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	key, err := LoadKey(dir)
	if err != nil {
		return nil, err
	}
	s := &Site{dir: dir, opts: opts, key: key, cfg: cfg, log: opts.Logger.With("site", cfg.ID)}
	s.cfgStat, _ = os.Stat(filepath.Join(dir, ConfigFile))
	s.trust = newTrustStore(key.PublicKey(), cfg)
	if s.tls, err = loadNATSTLS(dir, cfg, key); err != nil {
		return nil, err
	}
	if err := writeSiteCertFiles(dir, cfg.ID, key); err != nil {
		s.log.Warn("site certificate files not written; the site itself does not need them", "err", err)
	}
	s.space = newSpace(dir, func(total uint64) uint64 { cfg := s.Config(); return cfg.DiskReserveFor(total) }, s.log)
	s.space.roomToOpen(filepath.Join(dir, "index"))
	s.pebbleEv = newPebbleEvents(s.log, s.space.lookSoon)
	if err := s.openStores(cfg); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(opts.Registry, s)
	opts.Registry.MustRegister(spaceCollector{s.space}, s.pebbleEv.count)
	if s.bucket != nil {
		opts.Registry.MustRegister(bucketCollector{s.bucket})
	}
	timing := engine.DefaultTiming()
	timing.ReconInterval = cfg.ReconInterval()
	s.node = forward.NewNode(forward.NodeConfig{
		Site: cfg.ID, Signer: key, Stores: s.stores, PeerKey: s.trust.keyOf, Logger: s.log,
		OnReject: func(reason string) { s.metrics.rejected.WithLabelValues(reason).Inc() },
		Now:      s.now, MaxSkew: maxClockSkew, Timing: timing, Inventory: s.inv,
		OnNoSpace: s.space.lookSoon,
		DialTLS:   s.tls.dial(s.trust.keyOf), AcceptedTLS: s.tls.acceptedState,
		BeaconBody: s.beaconBody, BeaconEvery: cfg.beaconInterval(),
	})
	opts.Registry.MustRegister(s.node, newFederationCollector(s))
	s.space.onChange = s.node.SetFull
	if s.space.full.Load() {
		s.node.SetFull(true)
	}
	return s, nil
}

// IndexCacheSize is the block cache of a site's Pebble index: manifests,
// the version and find indexes and the chunk index are read through it
// (Pebble's default, 8 MiB, makes a find over a million versions read
// most blocks from the OS again).
const IndexCacheSize = 128 << 20

func (s *Site) openStores(cfg Config) error {
	packs, err := s.openPacks(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if s.db == nil && s.bucket != nil { // opening failed past the bucket
			_ = errors.Join(s.releaseLease(), s.bucket.Close())
		}
	}()
	if err := s.checkIndexOfBucket(); err != nil {
		return err
	}
	events := s.pebbleEv.listener()
	cache := pebble.NewCache(IndexCacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(filepath.Join(s.dir, "index"), &pebble.Options{Logger: quietPebble{s.pebbleEv}, EventListener: &events, Cache: cache})
	if err != nil {
		return fmt.Errorf("open index in %s: %w", s.dir, err)
	}
	var packSize int64
	var flushBytes int
	if s.bucket != nil {
		packSize, flushBytes = BucketPackSize, BucketPackSize
	}
	chunks, err := chunk.Open(db, chunk.Options{Packs: packs, PackSize: packSize, Logger: s.log})
	if err != nil {
		db.Close()
		return fmt.Errorf("open chunk store: %w", err)
	}
	arrivals, err := forward.OpenLog(db)
	if err != nil {
		chunks.Close()
		db.Close()
		return err
	}
	stores := &forward.Stores{Chunks: chunks, Log: arrivals}
	var manifests naming.ManifestSink
	if s.bucket != nil {
		manifests = s.bucket.Manifests()
	}
	objects, err := naming.Open(db, chunks, naming.Config{
		Manifests:  manifests,
		FlushBytes: flushBytes,
		Signer:     s.key,
		Clock:      manifest.NewClock(cfg.ID, s.now),
		Now:        s.now,
		MaxSkew:    maxClockSkew,
		Trust:      s.trust,
		ChunkSize:  cfg.ChunkSize,
		Journal:    stores,
		Layouts:    stores,

		FITSKeywords: cfg.fitsKeywords(),
	})
	if err != nil {
		chunks.Close()
		db.Close()
		return err
	}
	stores.Objects = objects
	inv, err := forward.OpenInventory(db, stores, s.log)
	if err != nil {
		chunks.Close()
		db.Close()
		return err
	}
	s.db, s.chunks, s.objects, s.arrivals, s.stores, s.inv = db, chunks, objects, arrivals, stores, inv
	return nil
}

// Config returns the config in force.
func (s *Site) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Objects returns the site's object layer.
func (s *Site) Objects() *naming.Store { return s.objects }

// Chunks returns the site's chunk store.
func (s *Site) Chunks() *chunk.Store { return s.chunks }

// HTTPAddr returns the address the HTTP server listens on, once started.
func (s *Site) HTTPAddr() string { return s.httpAddr }

// BaseURL returns the URL clients reach the HTTP API at (https:// when
// it is served over TLS), once started.
func (s *Site) BaseURL() string {
	if s.httpsOn {
		return "https://" + s.httpAddr
	}
	return "http://" + s.httpAddr
}

// NATSURL returns the client URL of the site's NATS server, once started.
func (s *Site) NATSURL() string {
	if s.nats != nil {
		return s.nats.ClientURL()
	}
	return s.Config().NATSURL
}

// Start starts the NATS server, the HTTP server and the config watcher.
func (s *Site) Start(ctx context.Context) error {
	cfg := s.Config()
	if cfg.NATSURL == "" {
		if err := s.startNATS(cfg); err != nil {
			return err
		}
	}
	if err := s.startLinks(cfg); err != nil {
		s.stopNATS()
		return err
	}
	s.started = time.Now()
	if err := s.startS3(cfg); err != nil {
		s.stopLinks()
		s.stopNATS()
		return err
	}
	if err := s.startHTTP(cfg); err != nil {
		if s.s3Srv != nil {
			s.s3Srv.Close()
		}
		s.stopLinks()
		s.stopNATS()
		return err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.watchConfig(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.space.watch(ctx)
	}()
	s.startHealing(ctx)
	s.startMemory(ctx)
	s.startCompressor(ctx)
	if s.opts.ClockOffset != 0 {
		s.log.Warn("this site's clock is shifted, for testing only: stamps, expiry and clock checks use the shifted clock", "offset", s.opts.ClockOffset)
	}
	s.log.Info("site running", "http", s.BaseURL(), "nats", s.NATSURL(), "nats_tls", s.tls.listen, "dir", s.dir, "key", s.key.PublicKey().String())
	return nil
}

func (s *Site) startNATS(cfg Config) error {
	s.auth = &natsAuth{site: cfg.ID, self: s.key.PublicKey(), trust: s.trust, tls: s.tls.admitted, refused: func(peer, why string) {
		s.metrics.rejected.WithLabelValues("nats_auth").Inc()
		s.node.Refused(peer, why)
	}}
	host, portText, _ := net.SplitHostPort(cfg.NATS)
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("nats address %q: %w", cfg.NATS, err)
	}
	if s.opts.NATSPort != 0 {
		port = s.opts.NATSPort
	}
	nopts := &server.Options{
		ServerName:                 "skyfed-" + cfg.ID,
		Host:                       host,
		Port:                       port,
		NoSigs:                     true,
		MaxPayload:                 1 << 20,
		AlwaysEnableNonce:          true,
		CustomClientAuthentication: s.auth,
	}
	if s.tls.listen {
		nopts.TLSConfig = s.tls.serverConfig()
		nopts.TLSTimeout = 10 // seconds: a WAN round trip or two, on a loaded host
	}
	if port > 0 { // NATS would only log a taken port, and ReadyForConnections wait its 10 s
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("embedded NATS server cannot listen on %s (is the port in use? change nats in %s): %w", addr, ConfigFile, err)
		}
		ln.Close()
	}
	limitNATS(nopts)
	ns, err := server.NewServer(nopts)
	if err != nil {
		return fmt.Errorf("embedded NATS server: %w", err)
	}
	ns.SetLoggerV2(natsLog{log: s.log, violations: func(line string) {
		s.metrics.rejected.WithLabelValues("nats_permission").Inc()
		s.log.Warn("NATS permission violation refused", "detail", line)
	}, tlsRefused: func(line string) {
		s.metrics.rejected.WithLabelValues("tls").Inc()
		s.log.Warn("NATS client refused in TLS (a plain-text dialer, or a failed handshake)", "detail", line)
	}}, true, false, false) // debug on: natsLog.Debugf keeps only TLS refusals
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("embedded NATS server did not start on %s (is the port in use? change nats in %s)", cfg.NATS, ConfigFile)
	}
	s.nats = ns
	return nil
}

// startLinks connects the site to its own NATS server, accepts links
// dialed to it and dials its configured links.
func (s *Site) startLinks(cfg Config) error {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, s.key.Seed())
	if err != nil {
		return err
	}
	pub, _ := kp.PublicKey()
	opts := []nats.Option{nats.Name("skyfed " + cfg.ID + " (local)"), nats.Nkey(pub, kp.Sign), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)}
	url := cfg.NATSURL
	if s.nats != nil {
		opts = append(opts, nats.InProcessServer(s.nats))
		url = ""
	} else {
		// An external server is this site's own: its certificate is
		// checked as a peer's would be, against this site's key (or the CA).
		self := func(string) (manifest.PublicKey, bool) { return s.key.PublicKey(), true }
		d, err := s.tls.dial(self)(cfg.ID, url)
		if err != nil {
			return err
		}
		opts = append(opts, forward.TLSOptions(d, url)...)
	}
	local, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to the site's NATS server %s: %w", s.NATSURL(), err)
	}
	if err := s.node.Serve(local); err != nil {
		local.Close()
		return err
	}
	s.local = local
	s.node.SetLinks(cfg.linkConfigs())
	return nil
}

func (s *Site) stopLinks() {
	s.node.Close()
	if s.local != nil {
		s.local.Close()
	}
}

func (s *Site) stopNATS() {
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
}

func (s *Site) startHTTP(cfg Config) error {
	ln := s.opts.HTTPListener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.HTTP)
		if err != nil {
			return fmt.Errorf("listen for HTTP on %s: %w (change http in %s)", cfg.HTTP, err, ConfigFile)
		}
	}
	s.httpAddr = ln.Addr().String()
	srv, tlsOn, err := s.serve("HTTP", ln, cfg, s.Handler())
	s.httpSrv, s.httpsOn = srv, tlsOn
	return err
}

// serve serves handler on ln, over TLS with the http_tls_* files when
// the config names them (the HTTP API and the S3 API alike), until the
// server is shut down.
func (s *Site) serve(what string, ln net.Listener, cfg Config, handler http.Handler) (*http.Server, bool, error) {
	tlsOn := cfg.HTTPTLSCert != ""
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(resolvePath(s.dir, cfg.HTTPTLSCert), resolvePath(s.dir, cfg.HTTPTLSKey))
		if err != nil {
			ln.Close()
			return nil, false, fmt.Errorf("%w: http_tls_cert/http_tls_key in %s: %w", ErrTLSConfig, ConfigFile, err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(what+" server stopped", "err", err)
		}
	}()
	return srv, tlsOn, nil
}

// Stop shuts the site down cleanly: HTTP first (letting requests in
// flight finish for a while), then NATS, then the stores. Calling it
// again returns the first call's result.
func (s *Site) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Site) stop() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	var errs []error
	for _, srv := range []struct {
		what string
		srv  *http.Server
	}{{"HTTP", s.httpSrv}, {"S3", s.s3Srv}} {
		if srv.srv == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := srv.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", srv.what, err))
			srv.srv.Close()
		}
		cancel()
	}
	s.stopHealing() // before the links: a repair's fetch ends with them, and must not be taken for a failure
	s.stopLinks()
	s.stopNATS()
	return errors.Join(append(errs, s.Close())...)
}

// Close closes the stores (Stop calls it).
func (s *Site) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stopHealing()
		s.objects.Close()
		err = errors.Join(s.chunks.Close(), s.db.Close())
		if s.bucket != nil {
			err = errors.Join(err, s.releaseLease(), s.bucket.Close())
		}
	})
	return err
}

// Run starts the site and stops it when ctx ends.
func (s *Site) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		s.Close()
		return err
	}
	<-ctx.Done()
	s.log.Info("site stopping")
	return s.Stop()
}

// watchConfig reloads the config file when it changes, so trust edits
// made while the site runs take effect.
func (s *Site) watchConfig(ctx context.Context) {
	t := time.NewTicker(s.opts.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reloadConfig()
		}
	}
}

func (s *Site) reloadConfig() {
	st, err := os.Stat(filepath.Join(s.dir, ConfigFile))
	if err != nil {
		s.log.Warn("config file unreadable; keeping the config in force", "err", err)
		return
	}
	s.mu.Lock()
	same := s.cfgStat != nil && st.ModTime().Equal(s.cfgStat.ModTime()) && st.Size() == s.cfgStat.Size() && os.SameFile(st, s.cfgStat)
	s.mu.Unlock()
	if same {
		return
	}
	cfg, err := LoadConfig(s.dir)
	if err != nil {
		s.log.Error("config edit refused; keeping the config in force", "err", err)
		s.metrics.rejected.WithLabelValues("config").Inc()
		return
	}
	s.mu.Lock()
	old := s.cfg
	s.cfg, s.cfgStat = cfg, st
	s.mu.Unlock()
	if old.NATSTLS != cfg.NATSTLS || old.NATSTLSCert != cfg.NATSTLSCert || old.NATSTLSKey != cfg.NATSTLSKey ||
		old.NATSTLSCA != cfg.NATSTLSCA || old.HTTPTLSCert != cfg.HTTPTLSCert || old.HTTPTLSKey != cfg.HTTPTLSKey {
		s.log.Warn("TLS settings changed in " + ConfigFile + "; they apply when the site restarts (skyfed site run)")
	}
	s.trust.update(s.key.PublicKey(), cfg)
	s.cutUntrusted()
	s.node.DropUntrusted()
	s.node.SetLinks(cfg.linkConfigs())
	s.log.Info("config reloaded", "peers", len(cfg.Peers), "links", len(cfg.Links))
}

// quietPebble is Pebble's logger: no info, errors once a minute
// (counted as kind "log"), fatal errors always.
type quietPebble struct{ ev *pebbleEvents }

func (q quietPebble) Infof(string, ...any) {}
func (q quietPebble) Errorf(format string, args ...any) {
	q.ev.event("log", slog.LevelError, fmt.Sprintf(format, args...), nil)
}
func (q quietPebble) Fatalf(format string, args ...any) {
	q.ev.log.Error("pebble fatal: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}

// pebbleEvents logs Pebble's background errors, write stalls and slow
// disks once per kind a minute (with how many were left out), and
// counts every one (skyfed_pebble_errors_total{kind}). Pebble retries a
// failed flush at once and without end: on a full disk that was
// ~10,000 log lines a second. An ENOSPC also makes the site look at its
// disk now and holds that retry back a little.
type pebbleEvents struct {
	log       *slog.Logger
	count     *prometheus.CounterVec
	onNoSpace func()

	mu   sync.Mutex
	last map[string]time.Time // per kind, when it was last logged
	left map[string]int64     // per kind, events not logged since
}

// pebbleLogEvery is how often one kind of Pebble event is logged.
const pebbleLogEvery = time.Minute

// pebbleNoSpaceBackoff holds back Pebble's retry of a flush or
// compaction that failed for want of space.
const pebbleNoSpaceBackoff = 250 * time.Millisecond

func newPebbleEvents(log *slog.Logger, onNoSpace func()) *pebbleEvents {
	return &pebbleEvents{log: log, onNoSpace: onNoSpace, last: map[string]time.Time{}, left: map[string]int64{},
		count: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skyfed_pebble_errors_total",
			Help: "Errors and trouble reported by Pebble (the index): no_space, background, write_stall, disk_slow, log."}, []string{"kind"})}
}

// event counts one event of kind and logs it unless one of its kind
// was logged within pebbleLogEvery.
func (p *pebbleEvents) event(kind string, level slog.Level, msg string, err error) {
	p.count.WithLabelValues(kind).Inc()
	now := time.Now()
	p.mu.Lock()
	if last, ok := p.last[kind]; ok && now.Sub(last) < pebbleLogEvery {
		p.left[kind]++
		p.mu.Unlock()
		return
	}
	left := p.left[kind]
	p.last[kind], p.left[kind] = now, 0
	p.mu.Unlock()
	attrs := []any{"kind", kind}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if left > 0 {
		attrs = append(attrs, "not_logged_since", left)
	}
	p.log.Log(context.Background(), level, "pebble: "+msg+" (logged once a minute per kind; skyfed_pebble_errors_total counts all)", attrs...)
}

func (p *pebbleEvents) listener() pebble.EventListener {
	return pebble.EventListener{
		BackgroundError: func(err error) {
			if errors.Is(err, syscall.ENOSPC) {
				p.event("no_space", slog.LevelError, "background error", err)
				p.onNoSpace()
				time.Sleep(pebbleNoSpaceBackoff)
				return
			}
			p.event("background", slog.LevelError, "background error", err)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			p.event("write_stall", slog.LevelWarn, "writes stalled: "+info.Reason, nil)
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			p.event("disk_slow", slog.LevelWarn, "slow disk: "+info.String(), nil)
		},
	}
}

// Links returns the status of the site's links.
func (s *Site) Links() []forward.LinkStatus { return s.node.Links() }

// Key returns the site's public key.
func (s *Site) Key() manifest.PublicKey { return s.key.PublicKey() }

// Dir returns the site's data dir.
func (s *Site) Dir() string { return s.dir }

// cutUntrusted disconnects NATS clients whose keys the trust store no
// longer holds, so revoking a peer takes effect at once.
func (s *Site) cutUntrusted() {
	if s.nats == nil {
		return
	}
	conns, err := s.nats.Connz(&server.ConnzOptions{Username: true, Limit: 1 << 16})
	if err != nil {
		s.log.Error("list NATS clients", "err", err)
		return
	}
	live := map[uint64]bool{}
	for _, c := range conns.Conns {
		live[c.Cid] = true
		v, ok := s.auth.admitted.Load(c.Cid)
		if !ok {
			continue // this site's own connection
		}
		adm := v.(admission)
		if key, ok := s.trust.keyOf(adm.peer); ok && key == adm.key {
			continue
		}
		s.log.Warn("peer no longer trusted; disconnecting it", "peer", adm.peer, "key", adm.key.String())
		if err := s.nats.DisconnectClientByID(c.Cid); err != nil {
			s.log.Error("disconnect untrusted client", "err", err)
		}
	}
	s.auth.admitted.Range(func(k, _ any) bool {
		if !live[k.(uint64)] {
			s.auth.admitted.Delete(k)
		}
		return true
	})
}
