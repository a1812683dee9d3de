package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/site/client"
)

// Duration is a duration flag: a Go duration (36h, 90m) or days (90d,
// 1d12h). Every duration flag a person types an expiry into uses it.
type Duration time.Duration

// UnmarshalText parses with site.ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := site.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// SiteTokenCmd is `skyfed site token`.
type SiteTokenCmd struct {
	Create SiteTokenCreateCmd `cmd:"" help:"Create an access token with read/write prefixes (and admin); prints it once, it is not stored."`
	List   SiteTokenListCmd   `cmd:"" help:"List the site's access tokens and their scopes (never their secrets)."`
	Revoke SiteTokenRevokeCmd `cmd:"" help:"Revoke an access token (and every share link it made); a running site refuses it within 2s."`
}

// SiteTokenCreateCmd is `skyfed site token create`.
type SiteTokenCreateCmd struct {
	Dir     string   `required:"" type:"existingdir" help:"The site's data dir."`
	Name    string   `required:"" help:"Name of the token, [a-z0-9._-], unique at the site (e.g. pipeline)."`
	Read    []string `help:"Name prefix it may read, e.g. gloria.eu/ (repeat or comma-separate)." placeholder:"PREFIX"`
	Write   []string `help:"Name prefix it may write (put, rm) and read, e.g. gloria.eu/bootes-2/ (repeat or comma-separate)." placeholder:"PREFIX"`
	Admin   bool     `help:"It may also run diff, resync, scrub and gc."`
	Expires Duration `help:"It expires this long from now (e.g. 90d, 36h); 0: never." default:"0s" placeholder:"DURATION"`
}

// Run adds the token and prints "ID.SECRET" on stdout.
func (c *SiteTokenCreateCmd) Run(app *App) error {
	if c.Expires < 0 {
		return &ExitError{Code: exitUsage, Err: errors.New("--expires must not be negative")}
	}
	if len(c.Read)+len(c.Write) == 0 && !c.Admin {
		return &ExitError{Code: exitUsage, Err: withHint(errors.New("the token would grant nothing"), "give --read PREFIX, --write PREFIX or --admin")}
	}
	now := time.Now()
	t := site.AccessToken{Name: c.Name, Read: c.Read, Write: c.Write, Admin: c.Admin}
	if c.Expires > 0 {
		t.Expires = now.Add(time.Duration(c.Expires))
	}
	t, secret, err := site.CreateToken(c.Dir, t, now)
	if err != nil {
		if errors.Is(err, site.ErrBadConfig) {
			return &ExitError{Code: exitUsage, Err: err}
		}
		return err
	}
	fmt.Fprintln(app.Stdout, secret)
	fmt.Fprintf(app.Stderr, "token %s (%s): %s\n", t.Name, t.ID, scopeText(t))
	fmt.Fprintln(app.Stderr, "It is shown only now: the site does not store it (skyfed.toml holds only its ID). Pass it with --token or SKYFED_TOKEN; a running site accepts it within 2s.")
	return nil
}

func scopeText(t site.AccessToken) string {
	var parts []string
	if len(t.Read) > 0 {
		parts = append(parts, "read "+strings.Join(t.Read, ","))
	}
	if len(t.Write) > 0 {
		parts = append(parts, "write "+strings.Join(t.Write, ","))
	}
	if t.Admin {
		parts = append(parts, "admin")
	}
	exp := "never expires"
	if !t.Expires.IsZero() {
		exp = "expires " + t.Expires.UTC().Format(time.RFC3339)
	}
	return strings.Join(append(parts, exp), "; ")
}

// SiteTokenListCmd is `skyfed site token list`.
type SiteTokenListCmd struct {
	Dir  string `required:"" type:"existingdir" help:"The site's data dir."`
	JSON bool   `name:"json" help:"Print the entries as JSON."`
}

// Run prints one line per token.
func (c *SiteTokenListCmd) Run(app *App) error {
	cfg, err := site.LoadConfig(c.Dir)
	if err != nil {
		return err
	}
	if c.JSON {
		if cfg.Tokens == nil {
			cfg.Tokens = []site.AccessToken{}
		}
		return printJSON(app.Stdout, cfg.Tokens)
	}
	tw := tabwriter.NewWriter(app.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tREAD\tWRITE\tADMIN\tEXPIRES\tCREATED")
	now := time.Now()
	for _, t := range cfg.Tokens {
		exp := "never"
		if !t.Expires.IsZero() {
			exp = t.Expires.UTC().Format(time.RFC3339)
			if t.Expired(now) {
				exp += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", t.Name, t.ID, listText(t.Read), listText(t.Write), t.Admin, exp, t.Created.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func listText(ps []string) string {
	if len(ps) == 0 {
		return "-"
	}
	return strings.Join(ps, ",")
}

// SiteTokenRevokeCmd is `skyfed site token revoke`.
type SiteTokenRevokeCmd struct {
	Dir  string `required:"" type:"existingdir" help:"The site's data dir."`
	Name string `required:"" help:"Name (or ID) of the token to revoke."`
}

// Run removes the token.
func (c *SiteTokenRevokeCmd) Run(app *App) error {
	t, err := site.RevokeToken(c.Dir, c.Name)
	if errors.Is(err, site.ErrNoSuchToken) {
		return withHint(err, "skyfed site token list --dir "+c.Dir+" shows the tokens")
	}
	if err != nil {
		return err
	}
	app.Log.Info("token revoked; a running site refuses it and its share links within 2s", "name", t.Name, "id", t.ID)
	return nil
}

// SitePublicCmd is `skyfed site public`.
type SitePublicCmd struct {
	Add    SitePublicAddCmd    `cmd:"" help:"Let anyone read (get, ls) the names under PREFIX without a token."`
	Remove SitePublicRemoveCmd `cmd:"" help:"Take PREFIX out of the public prefixes."`
	List   SitePublicListCmd   `cmd:"" help:"List the public prefixes."`
}

// SitePublicAddCmd is `skyfed site public add`.
type SitePublicAddCmd struct {
	Dir    string `required:"" type:"existingdir" help:"The site's data dir."`
	Prefix string `arg:"" help:"Name prefix, e.g. gloria.eu/public/ (a bare domain means all of it)."`
}

// Run adds the prefix.
func (c *SitePublicAddCmd) Run(app *App) error {
	p, err := site.AddPublic(c.Dir, c.Prefix)
	if errors.Is(err, site.ErrBadConfig) {
		return &ExitError{Code: exitUsage, Err: err}
	}
	if err != nil {
		return err
	}
	app.Log.Info("public prefix added; a running site serves it without a token within 2s", "prefix", p)
	return nil
}

// SitePublicRemoveCmd is `skyfed site public remove`.
type SitePublicRemoveCmd struct {
	Dir    string `required:"" type:"existingdir" help:"The site's data dir."`
	Prefix string `arg:"" help:"A prefix skyfed site public list shows."`
}

// Run removes the prefix.
func (c *SitePublicRemoveCmd) Run(app *App) error {
	p, err := site.RemovePublic(c.Dir, c.Prefix)
	if errors.Is(err, site.ErrNoSuchPublic) {
		return withHint(err, "skyfed site public list --dir "+c.Dir+" shows them")
	}
	if err != nil {
		return err
	}
	app.Log.Info("public prefix removed", "prefix", p)
	return nil
}

// SitePublicListCmd is `skyfed site public list`.
type SitePublicListCmd struct {
	Dir string `required:"" type:"existingdir" help:"The site's data dir."`
}

// Run prints one prefix a line.
func (c *SitePublicListCmd) Run(app *App) error {
	cfg, err := site.LoadConfig(c.Dir)
	if err != nil {
		return err
	}
	for _, p := range cfg.Public {
		fmt.Fprintln(app.Stdout, p)
	}
	return nil
}

// ShareCmd is `skyfed share`.
type ShareCmd struct {
	Name      string        `arg:"" optional:"" help:"Object name to share."`
	Dashboard bool          `help:"Share the site's dashboard instead of an object."`
	Expires   Duration      `default:"24h" help:"The link works this long (e.g. 24h, 7d); never beyond the expiry of the token that asks." placeholder:"DURATION"`
	JSON      bool          `name:"json" help:"Print the site's JSON answer."`
	Timeout   time.Duration `help:"Give up after this long (0: no limit)." default:"30s"`
	Conn      siteFlags     `embed:""`
}

// Run asks the site for the link and prints its URL.
func (c *ShareCmd) Run(app *App) error {
	if (c.Name == "") == !c.Dashboard {
		return &ExitError{Code: exitUsage, Err: withHint(errors.New("give either NAME or --dashboard"), "see 'skyfed share --help'")}
	}
	if c.Expires <= 0 {
		return &ExitError{Code: exitUsage, Err: errors.New("--expires must be positive")}
	}
	if c.Name != "" {
		if err := checkName(c.Name); err != nil {
			return err
		}
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	var sh client.Share
	var err error
	if c.Dashboard {
		sh, err = cl.ShareDashboard(ctx, time.Duration(c.Expires))
	} else {
		sh, err = cl.Share(ctx, c.Name, time.Duration(c.Expires))
	}
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(app.Stdout, sh)
	}
	fmt.Fprintln(app.Stdout, sh.URL)
	note := "anyone with the link can open it until " + sh.Expires.UTC().Format(time.RFC3339)
	if sh.Clamped {
		note += " (cut to the expiry of your token)"
	}
	fmt.Fprintln(app.Stderr, note)
	return nil
}
