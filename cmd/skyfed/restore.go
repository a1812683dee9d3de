package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/skyfed/skyfed/site"
)

// RestoreCmd is `skyfed restore`.
type RestoreCmd struct {
	Name    string        `arg:"" help:"Object name."`
	Version string        `required:"" help:"The version to make the latest again, as skyfed versions NAME lists it." placeholder:"V"`
	JSON    bool          `name:"json" help:"Print the site's JSON answer instead of 'VERSION SHA256 SIZE'."`
	Timeout time.Duration `help:"Give up after this long (0: no limit)." default:"30s"`
	Conn    siteFlags     `embed:""`
}

// Run makes a new version over the bytes of the one named and prints it
// as put does.
func (c *RestoreCmd) Run(app *App) error {
	if err := checkName(c.Name); err != nil {
		return err
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	res, err := cl.Restore(ctx, c.Name, c.Version)
	if err != nil {
		return err
	}
	return printPut(app, res, c.JSON)
}

// VersionCmd is `skyfed version` (a subcommand: --version is taken by
// get and restore).
type VersionCmd struct {
	Site    string        `help:"Also print the build of the site at this URL (its /api/status)." placeholder:"URL"`
	Token   string        `help:"Token for a site beyond loopback." env:"SKYFED_TOKEN" placeholder:"TOKEN"`
	Timeout time.Duration `help:"Give up on the site after this long." default:"10s"`
}

// Run prints the build.
func (c *VersionCmd) Run(app *App) error {
	fmt.Fprintf(app.Stdout, "skyfed %s\n", site.Build())
	if c.Site == "" {
		return nil
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := siteFlags{Site: c.Site, Token: c.Token}.client()
	defer cl.CloseIdleConnections()
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if st.Build == "" {
		return errors.New("the site does not say its build (it predates skyfed version)")
	}
	_, err = fmt.Fprintf(app.Stdout, "site %s: skyfed %s\n", st.Site, st.Build)
	return err
}
