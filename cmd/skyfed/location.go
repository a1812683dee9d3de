package main

import (
	"fmt"

	"github.com/skyfed/skyfed/site"
)

// SiteLocationCmd is `skyfed site location`.
type SiteLocationCmd struct {
	Dir      string `required:"" type:"existingdir" help:"The site's data dir."`
	Location string `arg:"" help:"LAT,LON in degrees, e.g. 28.7606,-17.8816 (a negative latitude after --: site location --dir D -- -33.93,18.42); \"\" clears it." placeholder:"LAT,LON"`
}

// Run sets the location the site's status beacons carry; a running
// site picks it up with its config.
func (c *SiteLocationCmd) Run(app *App) error {
	if c.Location != "" {
		if _, _, err := site.ParseLocation(c.Location); err != nil {
			return &ExitError{Code: exitUsage, Err: err}
		}
	}
	if err := site.EditConfig(c.Dir, func(cfg *site.Config) error { cfg.Location = c.Location; return nil }); err != nil {
		return err
	}
	fmt.Fprintf(app.Stderr, "location of the site in %s: %s\n", c.Dir, orDash(c.Location))
	return nil
}
