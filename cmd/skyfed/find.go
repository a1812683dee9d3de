package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// FindCmd is `skyfed find`.
type FindCmd struct {
	Conditions  []string      `arg:"" optional:"" help:"Conditions on FITS header values, all of which must hold: KEY=VALUE, KEY=PREFIX*, KEY<V, KEY<=V, KEY>V, KEY>=V, 'KEY in (A,B)'. Numbers and dates compare as such (DATE-OBS>=2026-11-01); strings ignore case." placeholder:"COND"`
	Cone        string        `help:"Only frames whose RA/DEC lie within RADIUS degrees of RA,DEC (degrees, or sexagesimal with RA in hours)." placeholder:"RA,DEC,RADIUS"`
	AllVersions bool          `name:"all-versions" help:"Every live version that matches, not only each name's latest."`
	Limit       int           `help:"Stop after N results (0: all)." placeholder:"N" default:"0"`
	JSON        bool          `name:"json" help:"Print one JSON object per line (name, version, size, sha256, meta)."`
	Timeout     time.Duration `help:"Give up on a page after this long (0: no limit)." default:"30s"`
	Conn        siteFlags     `embed:""`
}

// Run prints "name<TAB>size<TAB>version<TAB>KEY=VALUE …" for each
// version found, page by page.
func (c *FindCmd) Run(app *App) error {
	if err := c.check(); err != nil {
		return &ExitError{Code: exitUsage, Err: err}
	}
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	return printPages(app, "find", c.Limit, func(after string, want int) ([]client.Found, string, error) {
		page, err := c.page(app.Ctx, cl, after, min(want, naming.MaxFindLimit))
		return page.Results, page.Next, err
	}, c.print)
}

// check parses the conditions as the site will, so that a typo is a
// usage error here.
func (c *FindCmd) check() error {
	if c.Limit < 0 {
		return fmt.Errorf("--limit must be >= 0, got %d", c.Limit)
	}
	if len(c.Conditions) == 0 && c.Cone == "" {
		return fmt.Errorf("find needs a condition (FILTER=R, DATE-OBS>=2026-11-01, …) or --cone RA,DEC,RADIUS")
	}
	for _, cond := range c.Conditions {
		if _, err := naming.ParsePredicate(cond); err != nil {
			return err
		}
	}
	if c.Cone != "" {
		if _, err := naming.ParseCone(c.Cone); err != nil {
			return err
		}
	}
	return nil
}

func (c *FindCmd) page(ctx context.Context, cl *client.Client, after string, limit int) (client.FindPage, error) {
	ctx, cancel := withTimeout(ctx, c.Timeout)
	defer cancel()
	return cl.Find(ctx, c.Conditions, client.FindOptions{Cone: c.Cone, AllVersions: c.AllVersions, Limit: limit, After: after})
}

func (c *FindCmd) print(w io.Writer, f client.Found) error {
	if c.JSON {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var kv []string
	for k, v := range f.Meta {
		if kw, ok := strings.CutPrefix(k, naming.FITSMetaPrefix); ok {
			kv = append(kv, strings.ToUpper(kw)+"="+quoteValue(v))
		}
	}
	slices.Sort(kv)
	_, err := fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", f.Name, f.Size, f.Version, strings.Join(kv, " "))
	return err
}

// quoteValue quotes a header value holding blanks, as find takes it.
func quoteValue(v string) string {
	if v == "" || strings.ContainsAny(v, " '\t") {
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return v
}
