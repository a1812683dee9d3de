package forward

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/manifest"
)

// How a dialed link checked its peer's TLS certificate (TLSStatus.Verified).
const (
	// TLSPinned: the certificate's key is the ed25519 key this site
	// trusts for the peer (site trust), no certificate authority involved.
	TLSPinned = "pinned"
	// TLSCA: the certificate chains to the configured CA and names the
	// host dialed.
	TLSCA = "ca"
	// TLSKey: an accepted link; the dialer proved its key by the nkey
	// signature the NATS server checked, over TLS.
	TLSKey = "key"
)

// DialTLS is how a dialed link secures its connection.
type DialTLS struct {
	// Config is the TLS config to dial with; nil dials in plain text
	// (only to a peer on loopback, and only if its server allows it).
	Config *tls.Config
	// Require refuses a peer whose server does not offer TLS (no
	// downgrade); when false the link still uses TLS if the server
	// requires it.
	Require bool
	// Verified is TLSPinned or TLSCA, shown in status.
	Verified string
}

// TLSStatus is the TLS state of a link's connection, shown in status;
// nil (null) when the link runs in plain text or is not connected.
type TLSStatus struct {
	Version  string `json:"version"`
	Cipher   string `json:"cipher"`
	Verified string `json:"verified"` // pinned, ca or key
}

// NewTLSStatus describes a TLS connection's state.
func NewTLSStatus(st *tls.ConnectionState, verified string) *TLSStatus {
	if st == nil || !st.HandshakeComplete {
		return nil
	}
	return &TLSStatus{Version: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite), Verified: verified}
}

// ErrTLSPin reports a peer certificate that is not bound to the key
// this site trusts for the peer.
var ErrTLSPin = errors.New("peer's TLS certificate is not bound to its trusted key")

// PinnedTLS returns a client TLS config that accepts a server only if
// its certificate's public key is the ed25519 key keyOf returns for
// peer at the time of the handshake: the site key pinned through the
// trust store, with no certificate authority. A peer with no trusted
// key is refused.
func PinnedTLS(peer string, keyOf func(peer string) (manifest.PublicKey, bool)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard verification (chains, host names) does not apply
		// to a self-signed certificate; VerifyPeerCertificate does the
		// check that matters, and it runs on every handshake.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyPinned(peer, keyOf, raw)
		},
	}
}

func verifyPinned(peer string, keyOf func(string) (manifest.PublicKey, bool), raw [][]byte) error {
	key, ok := keyOf(peer)
	if !ok {
		return fmt.Errorf("%w: no key is trusted for site %q here (skyfed site trust)", ErrTLSPin, peer)
	}
	if len(raw) == 0 {
		return fmt.Errorf("%w: the peer sent no certificate", ErrTLSPin)
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTLSPin, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != len(key) || manifest.PublicKey(pub) != key {
		return fmt.Errorf("%w: site %q answered with a certificate for another key", ErrTLSPin, peer)
	}
	return nil
}

// IsLoopbackURL reports whether rawURL's host is a loopback address
// (or "localhost"): the only peers a dialer may talk to in plain text.
func IsLoopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	return IsLoopbackHost(u.Hostname())
}

// IsLoopbackHost reports whether host is a loopback IP or "localhost".
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsOptions returns the nats.go options that secure a dialed link.
func (l *Link) tlsOptions() ([]nats.Option, string, error) {
	if l.node.cfg.DialTLS == nil {
		return nil, "", nil
	}
	d, err := l.node.cfg.DialTLS(l.id.Peer, l.url)
	if err != nil {
		return nil, "", err
	}
	if d.Config != nil {
		d.Config = l.hearTLSFailures(d.Config)
	}
	return TLSOptions(d, l.url), d.Verified, nil
}

// tlsRefusal is a peer certificate the link refused, as the link's
// verification hook saw it.
type tlsRefusal struct{ err error }

func (e *tlsRefusal) Error() string { return e.err.Error() }
func (e *tlsRefusal) Unwrap() error { return e.err }

// hearTLSFailures returns cfg with its certificate check reporting each
// refusal to the link: nats.go redials a lost connection by itself and
// tells nobody why a redial failed in TLS, so the check itself records
// it (reason "tls", counted). A CA-verified config gets the standard
// verification done here, the same way, so that it is heard too.
func (l *Link) hearTLSFailures(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	refused := func(err error) error {
		if err == nil {
			return nil
		}
		l.tlsFailed(err)
		return &tlsRefusal{err: err}
	}
	if cfg.InsecureSkipVerify {
		inner := cfg.VerifyPeerCertificate
		if inner == nil {
			return cfg
		}
		cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
			return refused(inner(raw, chains))
		}
		return cfg
	}
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return refused(errors.New("the peer sent no certificate"))
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName})
		return refused(err)
	}
	return cfg
}

// TLSOptions turns d into nats.go options for a connection to url.
func TLSOptions(d DialTLS, url string) []nats.Option {
	if d.Config == nil {
		return nil
	}
	if d.Require || strings.HasPrefix(url, "tls://") {
		return []nats.Option{nats.Secure(d.Config)}
	}
	// Not required: TLS only if the server asks for it, and then with
	// the same checks. nats.go upgrades to TLS when the server requires
	// it, using whatever TLSConfig the options hold.
	cfg := d.Config
	return []nats.Option{func(o *nats.Options) error { o.TLSConfig = cfg; return nil }}
}

// tlsFailed records a peer certificate the link refused: counted as a
// refusal with reason "tls", logged when the link was not already down
// for it (nats.go redials every second).
func (l *Link) tlsFailed(err error) {
	if l.node.cfg.OnReject != nil {
		l.node.cfg.OnReject("tls")
	}
	_, h := l.healthNow()
	l.setStateWhy(linkDown, ReasonTLS, fmt.Errorf("TLS with %s: %w", l.url, err))
	if h.reason != ReasonTLS {
		l.log.Warn("TLS with the peer failed: its certificate must be bound to the key trusted for it (skyfed site trust), or signed by nats_tls_ca", "url", l.url, "err", err)
	}
}

// tlsStatus is the TLS state of the link's connection.
func (l *Link) tlsStatus() *TLSStatus {
	if l.id.Dir == engine.DirIn {
		if l.node.cfg.AcceptedTLS == nil {
			return nil
		}
		return NewTLSStatus(l.node.cfg.AcceptedTLS(l.id.Peer), TLSKey)
	}
	conn := l.connP.Load()
	if conn == nil || !conn.IsConnected() {
		return nil
	}
	st, err := conn.TLSConnectionState()
	if err != nil {
		return nil
	}
	verified, _ := l.tlsVerified.Load().(string)
	return NewTLSStatus(&st, verified)
}
