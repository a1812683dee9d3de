package client

import (
	"context"
	"fmt"
	"time"
)

// FederationSite is a site as /api/federation shows it.
type FederationSite struct {
	Site               string    `json:"site"`
	State              string    `json:"state"` // "up" (heard within site_silence) or "unreachable"
	LastSeen           time.Time `json:"last_seen"`
	Location           string    `json:"location,omitempty"`
	Version            string    `json:"version"`
	Versions           *int64    `json:"versions"` // null until its body arrived
	IncompleteVersions *int64    `json:"incomplete_versions"`
	IncompleteBytes    *int64    `json:"incomplete_bytes"`
	Self               bool      `json:"self,omitempty"`
}

// FederationLink is a link as its dialing or accepting site reported it.
type FederationLink struct {
	From         string  `json:"from"`
	To           string  `json:"to"`
	Direction    string  `json:"direction"` // as From sees it: out (From dials) or in
	State        string  `json:"state"`
	Reason       string  `json:"reason"`
	Since        string  `json:"since"`
	Backlog      uint64  `json:"backlog"`
	BacklogBytes *uint64 `json:"backlog_bytes"` // null when the site could not count them
	LagSeconds   float64 `json:"lag_seconds"`
	SendRate     int64   `json:"send_rate"`
	InSync       *bool   `json:"in_sync"`
	// ClockOffsetSeconds is To's clock minus From's as From measured it,
	// to a tenth of a second; null until measured.
	ClockOffsetSeconds *float64 `json:"clock_offset_seconds"`
}

// FederationView is the answer of /api/federation: every site this site
// heard a status beacon of, and every link those beacons report.
type FederationView struct {
	Site  string           `json:"site"` // the site answering
	Now   time.Time        `json:"now"`
	Sites []FederationSite `json:"sites"`
	Links []FederationLink `json:"links"`
}

// FederationView returns the site's view of the whole federation.
func (c *Client) FederationView(ctx context.Context) (FederationView, error) {
	var f FederationView
	if err := c.getJSON(ctx, "/api/federation", "", &f); err != nil {
		return FederationView{}, fmt.Errorf("federation: %w", err)
	}
	return f, nil
}
