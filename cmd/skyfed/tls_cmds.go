package main

import (
	"fmt"
	"path/filepath"

	"github.com/skyfed/skyfed/site"
)

// tlsFlags are the TLS settings `site init` and `site tls` take.
type tlsFlags struct {
	NATSTLS     string `name:"nats-tls" enum:"auto,on,off," default:"" help:"TLS on the site's NATS listener and links: auto (TLS whenever the listener binds beyond loopback; the default), on (also on loopback), off. Dialers always use TLS with peers beyond loopback." placeholder:"auto|on|off"`
	NATSTLSCert string `name:"nats-tls-cert" help:"PEM certificate for the NATS listener, from your PKI (default: a self-signed certificate bound to the site key, which peers pin)."`
	NATSTLSKey  string `name:"nats-tls-key" help:"PEM private key of --nats-tls-cert."`
	NATSTLSCA   string `name:"nats-tls-ca" help:"PEM CA certificates: dialers verify peers' certificates (and host names) against them instead of pinning peers' keys."`
	HTTPTLSCert string `name:"http-tls-cert" help:"PEM certificate: serve the HTTP API over HTTPS. The word site means the site's own certificate (tls/site.crt, bound to the site key; clients then use --pin with the key), with no --http-tls-key." placeholder:"FILE|site"`
	HTTPTLSKey  string `name:"http-tls-key" help:"PEM private key of --http-tls-cert."`
}

// apply sets the flags given in c. Files given relative to the working
// dir are kept as absolute paths (the config resolves relative ones
// against the site's dir).
func (f tlsFlags) apply(c *site.Config) error {
	var err error
	set := func(dst *string, v string) {
		if v == "" || err != nil {
			return
		}
		if !filepath.IsAbs(v) {
			v, err = filepath.Abs(v)
		}
		*dst = v
	}
	if f.HTTPTLSCert == "site" {
		if f.HTTPTLSKey != "" {
			return &ExitError{Code: exitUsage, Err: fmt.Errorf("--http-tls-cert site uses the site's own key: drop --http-tls-key")}
		}
		c.HTTPTLSCert, c.HTTPTLSKey = site.SiteCertFile, site.SiteKeyFile
		f.HTTPTLSCert = ""
	}
	if f.NATSTLS != "" {
		c.NATSTLS = f.NATSTLS
	}
	set(&c.NATSTLSCert, f.NATSTLSCert)
	set(&c.NATSTLSKey, f.NATSTLSKey)
	set(&c.NATSTLSCA, f.NATSTLSCA)
	set(&c.HTTPTLSCert, f.HTTPTLSCert)
	set(&c.HTTPTLSKey, f.HTTPTLSKey)
	return err
}

// SiteTLSCmd is `skyfed site tls`: change an existing site's TLS settings.
type SiteTLSCmd struct {
	Dir       string `required:"" type:"existingdir" help:"The site's data dir."`
	NoNATSCA  bool   `name:"no-nats-tls-ca" help:"Remove the CA: pin peers' keys again."`
	NoNATSPKI bool   `name:"no-nats-tls-cert" help:"Remove the NATS certificate and key: use the site's own again."`
	NoHTTPS   bool   `name:"no-http-tls" help:"Serve the HTTP API in plain HTTP again."`
	tlsFlags
}

// Run edits the config and prints the TLS settings now in it.
func (c *SiteTLSCmd) Run(app *App) error {
	var cfg site.Config
	err := site.EditConfig(c.Dir, func(cf *site.Config) error {
		if c.NoNATSCA {
			cf.NATSTLSCA = ""
		}
		if c.NoNATSPKI {
			cf.NATSTLSCert, cf.NATSTLSKey = "", ""
		}
		if c.NoHTTPS {
			cf.HTTPTLSCert, cf.HTTPTLSKey = "", ""
		}
		if err := c.apply(cf); err != nil {
			return err
		}
		cfg = *cf
		return nil
	})
	if err != nil {
		return err
	}
	mode := cfg.NATSTLS
	if mode == "" {
		mode = site.TLSAuto
	}
	verify := "pinned to each peer's trusted key"
	if cfg.NATSTLSCA != "" {
		verify = "checked against CA " + cfg.NATSTLSCA
	}
	fmt.Fprintf(app.Stdout, "nats_tls      %s (listener %s)\n", mode, map[bool]string{true: "requires TLS", false: "plain text"}[cfg.NATSTLSOn()])
	fmt.Fprintf(app.Stdout, "peers         %s\n", verify)
	if cfg.HTTPTLSCert != "" {
		fmt.Fprintf(app.Stdout, "http          HTTPS with %s\n", cfg.HTTPTLSCert)
	} else {
		fmt.Fprintf(app.Stdout, "http          plain HTTP\n")
	}
	app.Log.Info("TLS settings saved; restart the site to apply them (skyfed site run)", "dir", c.Dir)
	return nil
}
