package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Reasons a site gives for a 401 or 403 (APIError.Reason).
const (
	ReasonNoToken  = "no_token"  // the request carried no credential
	ReasonBadToken = "bad_token" // malformed, or the secret is wrong
	ReasonExpired  = "expired"   // the token (or share link) expired
	ReasonRevoked  = "revoked"   // the token ID is unknown to the site: revoked or never made there
	ReasonScope    = "scope"     // valid, but its scopes do not cover the request
)

// Share is the answer of POST /api/share: a URL anyone can GET until
// Expires.
type Share struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
	// Clamped is set when the link expires earlier than asked, with
	// the token that asked for it.
	Clamped bool `json:"clamped"`
}

// Share asks the site for a link that opens name to anyone for expires
// (the site's default, 24h, when 0). The client's token needs read scope
// for name; the link dies with the token.
func (c *Client) Share(ctx context.Context, name string, expires time.Duration) (Share, error) {
	sh, err := c.share(ctx, map[string]any{"name": name, "expires": durationText(expires)})
	if err != nil {
		return Share{}, opError("share", name, err)
	}
	return sh, nil
}

// ShareDashboard asks for a link that opens the site's dashboard.
func (c *Client) ShareDashboard(ctx context.Context, expires time.Duration) (Share, error) {
	sh, err := c.share(ctx, map[string]any{"dashboard": true, "expires": durationText(expires)})
	if err != nil {
		return Share{}, fmt.Errorf("share the dashboard: %w", err)
	}
	return sh, nil
}

func durationText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func (c *Client) share(ctx context.Context, body map[string]any) (Share, error) {
	if body["expires"] == "" {
		delete(body, "expires")
	}
	b, err := json.Marshal(body)
	if err != nil {
		return Share{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/api/share", "", bytes.NewReader(b))
	if err != nil {
		return Share{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	var sh Share
	if err := c.doJSON(req, &sh); err != nil {
		return Share{}, err
	}
	return sh, nil
}
