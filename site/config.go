package site

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// Files in a site's data dir.
const (
	ConfigFile = "skyfed.toml"
	KeyFile    = "site.key"
	lockFile   = ".config.lock"
)

// Sentinel errors for config commands.
var (
	ErrSiteExists = errors.New("directory already holds a site")
	ErrNoSite     = errors.New("no site in directory")
	ErrBadConfig  = errors.New("bad config")
)

// Config is a site's config file.
type Config struct {
	ID      string `toml:"id"`
	Domain  string `toml:"domain"`       // the domain this site's own key writes under
	HTTP    string `toml:"http"`         // HTTP listen address
	S3      string `toml:"s3,omitempty"` // S3 API listen address (s3.go); empty: off
	NATS    string `toml:"nats"`         // listen address of the embedded NATS server
	NATSURL string `toml:"nats_url"`     // external NATS server instead of the embedded one
	// Link encryption (natstls.go): nats_tls is auto (TLS whenever the
	// NATS listener binds beyond loopback; the default), on or off. With
	// no cert and key the site's certificate is the self-signed one
	// bound to its site key, and dialers pin each peer's certificate to
	// the key they trust for it; with a CA, dialers verify peers by it.
	NATSTLS     string `toml:"nats_tls,omitempty"`
	NATSTLSCert string `toml:"nats_tls_cert,omitempty"`
	NATSTLSKey  string `toml:"nats_tls_key,omitempty"`
	NATSTLSCA   string `toml:"nats_tls_ca,omitempty"`
	// HTTPS for the HTTP API (and the S3 listener): PEM files.
	HTTPTLSCert string `toml:"http_tls_cert,omitempty"`
	HTTPTLSKey  string `toml:"http_tls_key,omitempty"`
	ChunkSize   int    `toml:"chunk_size"` // bytes
	// FITSKeywords are the header keywords a put of a FITS object copies
	// into its manifest (as meta "fits.<keyword>"): the defaults
	// (naming.DefaultFITSKeywords) when absent, none when empty.
	FITSKeywords *[]string `toml:"fits_keywords,omitempty"`
	// Token is the bearer token writes need when HTTP listens on a
	// non-loopback address.
	Token string `toml:"token"`
	// HTTPBodyIdleTimeout bounds how long a request body (a put's upload)
	// may stall between two reads before the site answers 408 and drops
	// it: a Go duration, "60s" when absent.
	HTTPBodyIdleTimeout string `toml:"http_body_idle_timeout,omitempty"`
	// ReconcileInterval is how often each link this site dials
	// reconciles the two sites' inventories: a Go duration, "10m" when
	// absent. Links also reconcile when they come up.
	ReconcileInterval string `toml:"reconcile_interval,omitempty"`
	// Self-healing and space (healconfig.go has their defaults and
	// checks): how often the background scrub makes a full pass and how
	// fast it may read, how long hidden versions and unreferenced chunks
	// are kept before garbage collection reclaims them and how often it
	// runs, and the free space puts leave on the disk.
	ScrubInterval string    `toml:"scrub_interval,omitempty"`
	ScrubRate     string    `toml:"scrub_rate,omitempty"`
	GCGrace       string    `toml:"gc_grace,omitempty"`
	GCInterval    string    `toml:"gc_interval,omitempty"`
	DiskReserve   string    `toml:"disk_reserve,omitempty"`
	Peers         []Peer    `toml:"peer"`
	Links         []Link    `toml:"link"`
	Revoked       []Revoked `toml:"revoked,omitempty"`
	// Scoped access for people on the HTTP API (access.go).
	Tokens          []AccessToken `toml:"access_token,omitempty"`
	Public          []string      `toml:"public,omitempty"`
	DashboardPublic bool          `toml:"dashboard_public,omitempty"`
	// The federation view (federation.go): where this site is ("LAT,LON"
	// in degrees), how often it floods its status beacon, and how long
	// a site may be silent before it is shown unreachable.
	Location       string `toml:"location,omitempty"`
	BeaconInterval string `toml:"beacon_interval,omitempty"`
	SiteSilence    string `toml:"site_silence,omitempty"`
	// Store is where the site's payload lives (store.go): "local" (pack
	// files in the data dir; the default) or a bucket,
	// s3://BUCKET/PREFIX?endpoint=URL&region=R. The bucket's credentials
	// are these when set (this file is mode 0600), else the AWS SDK's
	// usual chain (AWS_ACCESS_KEY_ID…, ~/.aws/credentials).
	Store          string `toml:"store,omitempty"`
	StoreAccessKey string `toml:"store_access_key,omitempty"`
	StoreSecretKey string `toml:"store_secret_key,omitempty"`
	// StoreLease is how long the bucket's lease holds without renewal
	// ("3m" when absent): a node presumed dead stops writing before it
	// runs out, and a replacement may start once it has.
	StoreLease string `toml:"store_lease,omitempty"`
}

// Revoked is a peer key `site untrust` took out of the trust store. For
// RevocationGrace after that, versions it signed are refused for now,
// not for good: left unacknowledged, so the peers that relay them offer
// them again, and trusting the key again brings what it wrote meanwhile.
// A key never trusted here is refused for good, so a federation where
// some sites deliberately do not trust some writers does not retry
// their versions forever.
type Revoked struct {
	ID  string    `toml:"id"`
	Key string    `toml:"key"`
	At  time.Time `toml:"at"`
}

// fitsKeyword is what a FITS header keyword may be.
var fitsKeyword = regexp.MustCompile(`^[A-Z0-9_-]{1,8}$`)

// fitsKeywords returns the header keywords puts copy into manifests.
func (c *Config) fitsKeywords() []string {
	if c.FITSKeywords == nil {
		return naming.DefaultFITSKeywords
	}
	return *c.FITSKeywords
}

// RevocationGrace is how long a revoked key's versions are refused only
// for now.
const RevocationGrace = 24 * time.Hour

// DefaultBodyIdleTimeout is the body idle timeout of a config that sets none.
const DefaultBodyIdleTimeout = 60 * time.Second

// BodyIdleTimeout is the longest a request body may stall between two
// reads (http_body_idle_timeout; validated).
func (c *Config) BodyIdleTimeout() time.Duration {
	d, err := time.ParseDuration(c.HTTPBodyIdleTimeout)
	if c.HTTPBodyIdleTimeout == "" || err != nil {
		return DefaultBodyIdleTimeout
	}
	return d
}

// DefaultReconcileInterval is the reconcile interval of a config that sets none.
const DefaultReconcileInterval = 10 * time.Minute

// ReconInterval is how often dialed links reconcile (reconcile_interval; validated).
func (c *Config) ReconInterval() time.Duration {
	d, err := time.ParseDuration(c.ReconcileInterval)
	if c.ReconcileInterval == "" || err != nil {
		return DefaultReconcileInterval
	}
	return d
}

// Link is a link this site dials to a peer's NATS server.
type Link struct {
	Peer    string `toml:"peer"`
	URL     string `toml:"url"`      // nats://host:port
	MaxRate string `toml:"max_rate"` // e.g. 50MB/s; empty or 0: unlimited
	Mode    string `toml:"mode"`     // offer (default) or flood
}

func (l Link) validate() error {
	if !manifest.ValidSiteID(l.Peer) {
		return fmt.Errorf("%w: link peer %q must match [a-z0-9-]{1,32}", ErrBadConfig, l.Peer)
	}
	u, err := url.Parse(l.URL)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
		return fmt.Errorf("%w: link %s url %q must look like nats://host:port", ErrBadConfig, l.Peer, l.URL)
	}
	if l.MaxRate != "" {
		if _, err := forward.ParseRate(l.MaxRate); err != nil {
			return fmt.Errorf("%w: link %s: %w", ErrBadConfig, l.Peer, err)
		}
	}
	if _, err := engine.ParseMode(l.Mode); err != nil {
		return fmt.Errorf("%w: link %s: %w", ErrBadConfig, l.Peer, err)
	}
	return nil
}

// linkConfigs turns the config's links into what the forwarding node dials.
func (c *Config) linkConfigs() []forward.LinkConfig {
	out := make([]forward.LinkConfig, 0, len(c.Links))
	for _, l := range c.Links {
		rate, _ := forward.ParseRate(l.MaxRate) // validated
		mode, _ := engine.ParseMode(l.Mode)     // validated
		out = append(out, forward.LinkConfig{Peer: l.Peer, URL: l.URL, MaxRate: rate, Mode: mode})
	}
	return out
}

// Peer is a trusted site: its key may write under its domains.
type Peer struct {
	ID      string   `toml:"id"`
	Key     string   `toml:"key"` // ed25519:<hex>
	Domains []string `toml:"domains"`
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if err := c.validateStore(); err != nil {
		return err
	}
	if !manifest.ValidSiteID(c.ID) {
		return fmt.Errorf("%w: site id %q must match [a-z0-9-]{1,32}", ErrBadConfig, c.ID)
	}
	if err := naming.CheckDomain(c.Domain); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	for _, a := range []struct{ what, addr string }{{"http", c.HTTP}, {"nats", c.NATS}} {
		if a.addr == "" && a.what == "nats" && c.NATSURL != "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%w: %s address %q: %w", ErrBadConfig, a.what, a.addr, err)
		}
	}
	if c.S3 != "" {
		if _, _, err := net.SplitHostPort(c.S3); err != nil {
			return fmt.Errorf("%w: s3 address %q: %w", ErrBadConfig, c.S3, err)
		}
	}
	if v := c.HTTPBodyIdleTimeout; v != "" {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			return fmt.Errorf("%w: http_body_idle_timeout %q must be a positive duration such as \"60s\"", ErrBadConfig, v)
		}
	}
	if v := c.ReconcileInterval; v != "" {
		if d, err := time.ParseDuration(v); err != nil || d < time.Second {
			return fmt.Errorf("%w: reconcile_interval %q must be a duration of at least 1s such as \"10m\"", ErrBadConfig, v)
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.validateFederation(); err != nil {
		return err
	}
	if err := c.validateHealing(); err != nil {
		return err
	}
	if err := c.validateAccess(); err != nil {
		return err
	}
	if c.ChunkSize <= 0 || c.ChunkSize > chunk.MaxSize {
		return fmt.Errorf("%w: chunk_size %d must be 1..%d", ErrBadConfig, c.ChunkSize, chunk.MaxSize)
	}
	for _, k := range c.fitsKeywords() {
		if !fitsKeyword.MatchString(k) {
			return fmt.Errorf("%w: fits_keywords: %q is not a FITS keyword (1-8 of A-Z, 0-9, '-', '_')", ErrBadConfig, k)
		}
	}
	links := map[string]bool{}
	for _, l := range c.Links {
		if err := l.validate(); err != nil {
			return err
		}
		if links[l.Peer] {
			return fmt.Errorf("%w: link to %q listed twice", ErrBadConfig, l.Peer)
		}
		if l.Peer == c.ID {
			return fmt.Errorf("%w: a site cannot link to itself", ErrBadConfig)
		}
		links[l.Peer] = true
	}
	seen := map[string]bool{}
	for _, p := range c.Peers {
		if err := p.validate(); err != nil {
			return err
		}
		if seen[p.ID] {
			return fmt.Errorf("%w: peer %q listed twice", ErrBadConfig, p.ID)
		}
		seen[p.ID] = true
	}
	return nil
}

func (p Peer) validate() error {
	if !manifest.ValidSiteID(p.ID) {
		return fmt.Errorf("%w: peer id %q must match [a-z0-9-]{1,32}", ErrBadConfig, p.ID)
	}
	if _, err := manifest.ParsePublicKey(p.Key); err != nil {
		return fmt.Errorf("%w: peer %s key: %w", ErrBadConfig, p.ID, err)
	}
	for _, d := range p.Domains {
		if err := naming.CheckDomain(d); err != nil {
			return fmt.Errorf("%w: peer %s: %w", ErrBadConfig, p.ID, err)
		}
	}
	return nil
}

// Init creates a site in dir: the dir, a config file and a new key. It
// returns the site's public key and refuses a dir that holds a site.
func Init(dir string, cfg Config) (manifest.PublicKey, error) {
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = chunk.DefaultSize
	}
	if err := cfg.Validate(); err != nil {
		return manifest.PublicKey{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return manifest.PublicKey{}, fmt.Errorf("%w: %s (pick another --dir)", ErrSiteExists, dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return manifest.PublicKey{}, fmt.Errorf("create site dir: %w", err)
	}
	if cfg.HTTPBodyIdleTimeout == "" {
		cfg.HTTPBodyIdleTimeout = fmt.Sprintf("%ds", DefaultBodyIdleTimeout/time.Second) // "60s", not "1m0s"
	}
	if cfg.NATSTLS == "" {
		cfg.NATSTLS = TLSAuto
	}
	if cfg.Token == "" {
		var t [24]byte
		rand.Read(t[:])
		cfg.Token = hex.EncodeToString(t[:])
	}
	key, err := manifest.GenerateKey()
	if err != nil {
		return manifest.PublicKey{}, err
	}
	keyText := hex.EncodeToString(key.Seed()) + "\n"
	if err := writeFileAtomic(filepath.Join(dir, KeyFile), []byte(keyText), 0o600); err != nil {
		return manifest.PublicKey{}, fmt.Errorf("write key: %w", err)
	}
	if err := writeSiteCertFiles(dir, cfg.ID, key); err != nil {
		return manifest.PublicKey{}, err
	}
	if err := SaveConfig(dir, cfg); err != nil {
		return manifest.PublicKey{}, err
	}
	return key.PublicKey(), nil
}

// LoadKey reads the site's signing key.
func LoadKey(dir string) (*manifest.KeyPair, error) {
	b, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (create one with skyfed site init)", ErrNoSite, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: key file %s is not hex", ErrBadConfig, KeyFile)
	}
	return manifest.KeyPairFromSeed(seed)
}

// LoadConfig reads and validates dir's config file.
func LoadConfig(dir string) (Config, error) {
	var c Config
	path := filepath.Join(dir, ConfigFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%w: %s (create one with skyfed site init)", ErrNoSite, dir)
	}
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return c, fmt.Errorf("%w: %s: %w", ErrBadConfig, path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("%w: %s: unknown key %q", ErrBadConfig, path, und[0].String())
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SaveConfig writes c to dir atomically.
func SaveConfig(dir string, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# skyfed site config; edit with skyfed site trust/untrust, or by hand.\n" +
		"# http_body_idle_timeout: how long a request body (an upload) may stall between\n" +
		"# two reads before the site answers 408 and drops it (default \"60s\").\n")
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ConfigFile), []byte(b.String()), 0o600)
}

// EditConfig applies edit to dir's config under a lock, so concurrent
// edits do not lose each other's changes.
func EditConfig(dir string, edit func(*Config) error) error {
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNoSite, dir)
		}
		return fmt.Errorf("lock config: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock config: %w", err)
	}
	c, err := LoadConfig(dir)
	if err != nil {
		return err
	}
	if err := edit(&c); err != nil {
		return err
	}
	return SaveConfig(dir, c)
}

// Trust adds or replaces peer p in dir's trust store.
func Trust(dir string, p Peer) error {
	if err := p.validate(); err != nil {
		return err
	}
	return EditConfig(dir, func(c *Config) error {
		c.Revoked = slices.DeleteFunc(c.Revoked, func(r Revoked) bool { return r.Key == p.Key })
		for i := range c.Peers {
			if c.Peers[i].ID == p.ID {
				c.Peers[i] = p
				return nil
			}
		}
		c.Peers = append(c.Peers, p)
		return nil
	})
}

// Untrust removes peer id from dir's trust store.
func Untrust(dir, id string) error {
	now := time.Now()
	return EditConfig(dir, func(c *Config) error {
		for i, p := range c.Peers {
			if p.ID != id {
				continue
			}
			c.Peers = append(c.Peers[:i], c.Peers[i+1:]...)
			c.Revoked = slices.DeleteFunc(c.Revoked, func(r Revoked) bool {
				return r.Key == p.Key || now.Sub(r.At) > RevocationGrace
			})
			c.Revoked = append(c.Revoked, Revoked{ID: p.ID, Key: p.Key, At: now.UTC().Truncate(time.Second)})
			return nil
		}
		return fmt.Errorf("peer %q is not trusted: %w", id, ErrNoSuchPeer)
	})
}

// LinkTo adds or replaces the link to l.Peer in dir's config.
func LinkTo(dir string, l Link) error {
	if err := l.validate(); err != nil {
		return err
	}
	return EditConfig(dir, func(c *Config) error {
		for i := range c.Links {
			if c.Links[i].Peer == l.Peer {
				c.Links[i] = l
				return nil
			}
		}
		c.Links = append(c.Links, l)
		return nil
	})
}

// Unlink removes the link to peer from dir's config.
func Unlink(dir, peer string) error {
	return EditConfig(dir, func(c *Config) error {
		for i := range c.Links {
			if c.Links[i].Peer == peer {
				c.Links = append(c.Links[:i], c.Links[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("no link to %q: %w", peer, ErrNoSuchPeer)
	})
}

// ErrNoSuchPeer is returned when a peer named on the command line is unknown.
var ErrNoSuchPeer = errors.New("no such peer")

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
