package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// ErrTLSSetup reports unusable --ca or --pin values.
var ErrTLSSetup = errors.New("TLS set-up")

// ErrNotPinned reports a site whose HTTPS certificate is not bound to
// the key the client pins.
var ErrNotPinned = errors.New("the site's certificate is not bound to the pinned key")

// Option tunes a Client.
type Option func(*Client)

// WithTLS makes the client trust HTTPS sites by a CA file (PEM), or by
// the site key it pins ("ed25519:<hex>", as skyfed site key prints): a
// site serving the self-signed certificate bound to that key (its
// tls/site.crt) is accepted, any other refused. With neither, the
// system's CAs apply. An unusable value fails every request with
// ErrTLSSetup.
func WithTLS(caFile, pin string) Option {
	return func(c *Client) {
		if caFile == "" && pin == "" {
			return
		}
		cfg, err := tlsConfig(caFile, pin)
		if err != nil {
			c.setupErr = err
			return
		}
		c.hc.Transport.(*http.Transport).TLSClientConfig = cfg
	}
}

func tlsConfig(caFile, pin string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --ca: %w", ErrTLSSetup, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%w: --ca %s holds no PEM certificate", ErrTLSSetup, caFile)
		}
		cfg.RootCAs = pool
	}
	if pin != "" {
		key, err := parsePin(pin)
		if err != nil {
			return nil, err
		}
		// A self-signed certificate has no chain and names no host the
		// standard check knows: the pinned key is the check.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return ErrNotPinned
			}
			cert, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("%w: %w", ErrNotPinned, err)
			}
			pub, ok := cert.PublicKey.(ed25519.PublicKey)
			if !ok || !bytes.Equal(pub, key) {
				return fmt.Errorf("%w (%s)", ErrNotPinned, "check --pin against skyfed site key on the site")
			}
			return nil
		}
	}
	return cfg, nil
}

// parsePin reads "ed25519:<64 hex digits>".
func parsePin(pin string) (ed25519.PublicKey, error) {
	h, ok := strings.CutPrefix(strings.TrimSpace(pin), "ed25519:")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: --pin %q must be a site key as skyfed site key prints it (ed25519:<64 hex digits>)", ErrTLSSetup, pin)
	}
	return ed25519.PublicKey(b), nil
}
