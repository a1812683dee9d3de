package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/skyfed/skyfed/site/client"
)

// federation prints the site's view of the federation (--federation).
func (c *StatCmd) federation(app *App, cl *client.Client) error {
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	f, err := cl.FederationView(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(app.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	}
	return printFederation(app.Stdout, f)
}

// printFederation writes `skyfed stat --federation`: every site the
// asked site heard a status beacon of, then every link they report.
func printFederation(w io.Writer, f client.FederationView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "federation as %s sees it, %d sites, %d links\n\n", f.Site, len(f.Sites), len(f.Links))
	fmt.Fprintln(tw, "SITE\tSTATE\tLAST SEEN\tVERSIONS\tLACKING\tLOCATION\tBUILD")
	for _, s := range f.Sites {
		name := s.Site
		if s.Self {
			name += " (this site)"
		}
		seen := "now"
		if age := f.Now.Sub(s.LastSeen); !s.Self && age >= time.Second {
			seen = age.Truncate(time.Second).String() + " ago"
		}
		lacking := "-"
		if s.IncompleteVersions != nil && s.IncompleteBytes != nil {
			lacking = "nothing"
			if *s.IncompleteVersions > 0 {
				lacking = fmt.Sprintf("%d versions, %s", *s.IncompleteVersions, humanBytes(*s.IncompleteBytes))
			}
		}
		versions := "-"
		if s.Versions != nil {
			versions = fmt.Sprint(*s.Versions)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, s.State, seen, versions, lacking, orDash(s.Location), orDash(s.Version))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "FROM\tTO\tSTATE\tREASON\tSINCE\tBACKLOG\tLAG\tSENDING\tIN SYNC")
	for _, l := range f.Links {
		if l.Direction == "in" {
			continue // the dialer's side says it; both would repeat each link
		}
		inSync := "-"
		if l.InSync != nil {
			inSync = map[bool]string{true: "yes", false: "no"}[*l.InSync]
		}
		sending := "idle"
		if l.SendRate > 0 {
			sending = humanBytes(l.SendRate) + "/s"
		}
		backlog := fmt.Sprint(l.Backlog)
		if l.BacklogBytes != nil && *l.BacklogBytes > 0 {
			backlog += " (" + humanBytes(int64(*l.BacklogBytes)) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.From, l.To, l.State, orDash(l.Reason), orDash(l.Since), backlog,
			time.Duration(l.LagSeconds*float64(time.Second)).Truncate(time.Second), sending, inSync)
	}
	return tw.Flush()
}
