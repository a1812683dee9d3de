package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
)

// SiteCmd groups the commands that create, run and configure a site.
type SiteCmd struct {
	Init     SiteInitCmd     `cmd:"" help:"Create a site: data dir, config file and signing key. Prints the public key."`
	Run      SiteRunCmd      `cmd:"" help:"Run a site until SIGINT/SIGTERM. For tests only: SKYFED_TEST_CLOCK_OFFSET (a Go duration such as 10m or -10m) shifts the site's clock for stamps, expiry and clock checks, to reproduce clock skew; never set it in production."`
	Key      SiteKeyCmd      `cmd:"" help:"Print the site's public key."`
	Trust    SiteTrustCmd    `cmd:"" help:"Trust a peer's key to write under domains (replaces an earlier entry for the peer)."`
	Untrust  SiteUntrustCmd  `cmd:"" help:"Remove a peer from the trust store."`
	Link     SiteLinkCmd     `cmd:"" help:"Dial a link to a peer's NATS server (replaces an earlier link to the peer). The peer must trust this site's key."`
	Unlink   SiteUnlinkCmd   `cmd:"" help:"Remove the link to a peer."`
	TLS      SiteTLSCmd      `cmd:"" name:"tls" help:"Change the site's TLS settings (NATS links, HTTPS); restart the site to apply."`
	Token    SiteTokenCmd    `cmd:"" help:"Create, list and revoke access tokens for the HTTP API (access.go)."`
	Public   SitePublicCmd   `cmd:"" help:"Name prefixes anyone may read without a token."`
	S3       SiteS3Cmd       `cmd:"" name:"s3" help:"Turn the S3 API on (--listen ADDR) or off (--off); restart the site to apply."`
	Location SiteLocationCmd `cmd:"" help:"Set where the site is (LAT,LON), as its status beacons tell the federation; a running site picks it up."`
	Rebuild  SiteRebuildCmd  `cmd:"" help:"Make a bucket site's index again from its bucket, key and skyfed.toml (a replaced node); the data dir must have no index."`
}

// SiteS3Cmd is `skyfed site s3`.
type SiteS3Cmd struct {
	Dir    string `required:"" type:"existingdir" help:"The site's data dir."`
	Listen string `help:"Listen address of the S3 API, e.g. 127.0.0.1:7403." xor:"s3"`
	Off    bool   `help:"Turn the S3 API off." xor:"s3"`
}

// Run edits s3 in the site's config. Listeners start with the site, so a
// running site takes the change at its next start.
func (c *SiteS3Cmd) Run(app *App) error {
	if c.Listen == "" && !c.Off {
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("give --listen ADDR or --off")}
	}
	err := site.EditConfig(c.Dir, func(cfg *site.Config) error {
		cfg.S3 = c.Listen
		return nil
	})
	if err != nil {
		return err
	}
	if c.Off {
		app.Log.Info("S3 API off at the next start", "dir", c.Dir, "next", "restart the site (skyfed site run --dir "+c.Dir+")")
		return nil
	}
	app.Log.Info("S3 API on at the next start", "dir", c.Dir, "listen", c.Listen, "next", "restart the site (skyfed site run --dir "+c.Dir+")")
	return nil
}

// SiteInitCmd is `skyfed site init`.
type SiteInitCmd struct {
	Dir            string `required:"" type:"path" help:"Data dir to create."`
	ID             string `required:"" help:"Site ID, [a-z0-9-]{1,32}."`
	Domain         string `required:"" help:"Domain this site's key writes under, e.g. gloria.eu."`
	HTTP           string `default:"127.0.0.1:7401" help:"HTTP listen address."`
	NATS           string `default:"127.0.0.1:7402" help:"Listen address of the embedded NATS server."`
	NATSURL        string `name:"nats-url" help:"Use an external NATS server at this URL instead of the embedded one."`
	ChunkSize      int    `default:"1048576" help:"Chunk size in bytes."`
	S3             string `name:"s3" help:"Listen address of the S3 API, e.g. 127.0.0.1:7403 (off unless given)."`
	Location       string `help:"Where the site is, LAT,LON in degrees (e.g. 28.7606,-17.8816), shown in the federation view." placeholder:"LAT,LON"`
	Store          string `default:"local" help:"Where the payload lives: local (pack files in the data dir) or s3://BUCKET/PREFIX?endpoint=URL&region=R (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials; or --store-access-key with the secret in SKYFED_STORE_SECRET_KEY, kept in skyfed.toml at mode 0600)."`
	StoreAccessKey string `name:"store-access-key" help:"Access key for the bucket, written to skyfed.toml (the secret from the SKYFED_STORE_SECRET_KEY environment variable, never a flag)."`
	tlsFlags
}

// Run creates the site; stdout gets exactly the public key.
func (c *SiteInitCmd) Run(app *App) error {
	cfg := site.Config{ID: c.ID, Domain: c.Domain, HTTP: c.HTTP, NATS: c.NATS, NATSURL: c.NATSURL, ChunkSize: c.ChunkSize, S3: c.S3, Location: c.Location,
		Store: c.Store, StoreAccessKey: c.StoreAccessKey}
	if c.StoreAccessKey != "" {
		cfg.StoreSecretKey = os.Getenv("SKYFED_STORE_SECRET_KEY")
		if cfg.StoreSecretKey == "" {
			return &ExitError{Code: exitUsage, Err: errors.New("--store-access-key needs the secret in SKYFED_STORE_SECRET_KEY")}
		}
	}
	if err := c.apply(&cfg); err != nil {
		return err
	}
	if c.NATSURL != "" {
		cfg.NATS = ""
	}
	key, err := site.Init(c.Dir, cfg)
	if errors.Is(err, site.ErrBadConfig) { // made from the flags alone: a bad flag
		return &ExitError{Code: exitUsage, Err: err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(app.Stdout, key.String())
	app.Log.Info("site created", "dir", c.Dir, "id", c.ID, "domain", c.Domain, "http", c.HTTP, "next", "skyfed site run --dir "+c.Dir)
	return nil
}

// SiteRunCmd is `skyfed site run`.
type SiteRunCmd struct {
	Dir        string `required:"" type:"existingdir" help:"The site's data dir."`
	CPUProfile string `name:"cpuprofile" type:"path" env:"SKYFED_SITE_CPUPROFILE" placeholder:"FILE" help:"Write a CPU profile of the site until it stops to FILE.PID, for 'go tool pprof' (the environment variable reaches sites that benchmarks start)."`
}

// testClockOffsetEnv shifts a site's clock, for tests of clock skew.
const testClockOffsetEnv = "SKYFED_TEST_CLOCK_OFFSET"

// testClockOffset reads testClockOffsetEnv: 0 when unset.
func testClockOffset() (time.Duration, error) {
	v := os.Getenv(testClockOffsetEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &ExitError{Code: exitUsage, Err: fmt.Errorf("%s=%q: want a Go duration such as 10m or -10m: %w", testClockOffsetEnv, v, err)}
	}
	return d, nil
}

// Run runs the site until the app's context ends.
func (c *SiteRunCmd) Run(app *App) error {
	offset, err := testClockOffset()
	if err != nil {
		return err
	}
	// site.Start warns in the log that the clock is shifted.
	s, err := site.Open(c.Dir, site.Options{Logger: app.Log, ClockOffset: offset})
	if err != nil {
		return err
	}
	if c.CPUProfile != "" {
		stop, err := startCPUProfile(fmt.Sprintf("%s.%d", c.CPUProfile, os.Getpid()))
		if err != nil {
			return err
		}
		defer stop()
	}
	return s.Run(app.Ctx)
}

// SiteKeyCmd is `skyfed site key`.
type SiteKeyCmd struct {
	Dir string `required:"" type:"existingdir" help:"The site's data dir."`
}

// Run prints the public key.
func (c *SiteKeyCmd) Run(app *App) error {
	k, err := site.LoadKey(c.Dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(app.Stdout, k.PublicKey().String())
	return nil
}

// checkSiteID checks a flag's site ID before anything is written: a bad
// one is a usage error (exit 80), as a bad --key is.
func checkSiteID(flag, id string) error {
	if !manifest.ValidSiteID(id) {
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("%s %q: a site ID must match [a-z0-9-]{1,32}", flag, id)}
	}
	return nil
}

// SiteTrustCmd is `skyfed site trust`.
type SiteTrustCmd struct {
	Dir    string   `required:"" type:"existingdir" help:"The site's data dir."`
	Peer   string   `required:"" help:"Peer site ID."`
	Key    string   `required:"" help:"Peer's public key, ed25519:<64 hex> (from its site init or site key)."`
	Domain []string `required:"" help:"Domain the peer may write under (repeat or comma-separate for several)."`
}

// Run adds or replaces the peer's trust entry.
func (c *SiteTrustCmd) Run(app *App) error {
	if err := checkSiteID("--peer", c.Peer); err != nil {
		return err
	}
	if _, err := manifest.ParsePublicKey(c.Key); err != nil {
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("--key: %w (want ed25519:<64 hex digits>)", err)}
	}
	var domains []string
	for _, d := range c.Domain {
		for _, part := range strings.Split(d, ",") {
			if part = strings.TrimSpace(part); part != "" {
				domains = append(domains, part)
			}
		}
	}
	for _, d := range domains {
		if err := naming.CheckDomain(d); err != nil {
			return &ExitError{Code: exitUsage, Err: fmt.Errorf("--domain: %w", err)}
		}
	}
	if err := site.Trust(c.Dir, site.Peer{ID: c.Peer, Key: c.Key, Domains: domains}); err != nil {
		return err
	}
	app.Log.Info("peer trusted; a running site picks this up within 5s", "peer", c.Peer, "domains", strings.Join(domains, ","))
	return nil
}

// SiteUntrustCmd is `skyfed site untrust`.
type SiteUntrustCmd struct {
	Dir  string `required:"" type:"existingdir" help:"The site's data dir."`
	Peer string `required:"" help:"Peer site ID to remove."`
}

// Run removes the peer.
func (c *SiteUntrustCmd) Run(app *App) error {
	if err := site.Untrust(c.Dir, c.Peer); err != nil {
		return err
	}
	app.Log.Info("peer removed", "peer", c.Peer)
	return nil
}

// SiteLinkCmd is `skyfed site link`.
type SiteLinkCmd struct {
	Dir     string `required:"" type:"existingdir" help:"The site's data dir."`
	Peer    string `required:"" help:"Peer site ID."`
	URL     string `required:"" name:"url" help:"Peer's NATS URL, nats://host:port."`
	MaxRate string `name:"max-rate" default:"0" help:"Rate limit for all traffic of the link: bytes/s with B, KB, MB, GB (x1000), KiB, MiB, GiB (x1024) or Mbit/s; 0 unlimited."`
	Mode    string `default:"offer" enum:"offer,flood" help:"offer (offer IDs, send what is wanted) or flood (push everything; the baseline)."`
}

// Run adds or replaces the link.
func (c *SiteLinkCmd) Run(app *App) error {
	if err := checkSiteID("--peer", c.Peer); err != nil {
		return err
	}
	if _, err := forward.ParseRate(c.MaxRate); err != nil {
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("--max-rate: %w", err)}
	}
	if err := site.LinkTo(c.Dir, site.Link{Peer: c.Peer, URL: c.URL, MaxRate: c.MaxRate, Mode: c.Mode}); err != nil {
		return err
	}
	app.Log.Info("link configured; a running site dials it within 5s", "peer", c.Peer, "url", c.URL, "max_rate", c.MaxRate, "mode", c.Mode)
	return nil
}

// SiteUnlinkCmd is `skyfed site unlink`.
type SiteUnlinkCmd struct {
	Dir  string `required:"" type:"existingdir" help:"The site's data dir."`
	Peer string `required:"" help:"Peer site ID."`
}

// Run removes the link.
func (c *SiteUnlinkCmd) Run(app *App) error {
	if err := site.Unlink(c.Dir, c.Peer); err != nil {
		return err
	}
	app.Log.Info("link removed", "peer", c.Peer)
	return nil
}
