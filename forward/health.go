package forward

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Why a link is not up (LinkStatus.Reason). The strings are shown to
// operators and matched by scripts: never change one, only add.
const (
	// ReasonRefused: the peer's NATS server or site refused this site
	// (its key is not trusted there, or a subject was denied).
	ReasonRefused = "refused by peer"
	// ReasonAuth: the handshake failed: a key or proof did not match,
	// or the peer claimed another site ID; also an in-link this site
	// refused.
	ReasonAuth = "authentication"
	// ReasonTLS: the connection failed in TLS (certificates, TLS required).
	ReasonTLS = "tls"
	// ReasonDial: the peer's NATS server could not be reached, or the
	// connection to it was lost.
	ReasonDial = "dial error"
	// ReasonSilent: the connection stands but the peer has not answered
	// for deadAfter (hellos unanswered, or an up link that went quiet).
	ReasonSilent = "peer silent"
	// ReasonClockSkew: the peer's clock and this site's differ by more
	// than the allowed skew, so one side refuses the other's manifests
	// as stamped in the future. Shown on an up link too, while it lasts.
	ReasonClockSkew = "clock skew"
)

// Dial backoff of a dialed link: from dialBackoffMin, doubling at each
// failed attempt up to dialBackoffMax, each wait jittered to half to
// whole, so sites that lost the same peer do not redial in step.
const (
	dialBackoffMin = 500 * time.Millisecond
	dialBackoffMax = 30 * time.Second
)

// backoff is the delay before a link's next dial attempt.
type backoff struct{ next time.Duration }

// wait returns the delay before the next attempt and doubles the
// following one, up to dialBackoffMax.
func (b *backoff) wait() time.Duration {
	if b.next < dialBackoffMin {
		b.next = dialBackoffMin
	}
	d := b.next
	b.next = min(2*b.next, dialBackoffMax)
	return d/2 + rand.N(d/2+1)
}

// reset starts the delays again from the minimum (after a connection
// that held).
func (b *backoff) reset() { b.next = 0 }

// linkHealth is what status says of a link besides its counters: why
// it is not up, since when, the last error, and the peer's clock. It is
// guarded by Link.mu.
type linkHealth struct {
	reason  string
	since   time.Time
	lastErr string

	peerCaps  uint32        // capability bits the peer announced in its hello or hello-ack
	offset    time.Duration // peer's clock minus this site's, latest measurement
	measured  bool          // offset holds a measurement
	rtt       time.Duration // round trip of the handshake that measured it (dialer only)
	skewUntil time.Time     // until when a manifest refused as stamped in the future keeps the link in ReasonClockSkew
}

// classifyDialError names the reason of a failed connection to a peer.
func classifyDialError(err error) string {
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	switch {
	case err == nil:
		return ""
	case isAuthError(err) || strings.Contains(err.Error(), "Permissions Violation"):
		return ReasonRefused
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &recErr),
		strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return ReasonTLS
	}
	return ReasonDial
}

// redactURL removes a password from text wherever the link's URL (or its
// user info) appears in it, so status never shows a secret.
func redactURL(text, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return text
	}
	text = strings.ReplaceAll(text, rawURL, u.Redacted())
	if pw, ok := u.User.Password(); ok && pw != "" {
		text = strings.ReplaceAll(text, pw, "xxxxx")
	}
	return text
}
