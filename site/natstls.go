package site

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
)

// TLS modes of the NATS listener (nats_tls).
const (
	TLSAuto = "auto" // TLS whenever the listener binds beyond loopback
	TLSOn   = "on"
	TLSOff  = "off"
)

// Files of the site's own certificate, in its data dir: a self-signed
// Ed25519 certificate over the site key, written at init (and at start
// when missing). An external nats-server, or the HTTP listener, can be
// given them; peers pin them through the key they trust for the site.
const (
	SiteCertFile = "tls/site.crt"
	SiteKeyFile  = "tls/site.key"
)

// ErrTLSConfig reports unusable TLS settings or files.
var ErrTLSConfig = errors.New("TLS")

func validTLSMode(m string) bool { return m == "" || m == TLSAuto || m == TLSOn || m == TLSOff }

// validateTLS checks the TLS settings' shape (the files are read at start).
func (c *Config) validateTLS() error {
	if !validTLSMode(c.NATSTLS) {
		return fmt.Errorf("%w: nats_tls %q must be auto, on or off", ErrBadConfig, c.NATSTLS)
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return fmt.Errorf("%w: nats_tls_cert and nats_tls_key go together", ErrBadConfig)
	}
	if c.NATSTLS == TLSOff && (c.NATSTLSCert != "" || c.NATSTLSCA != "") {
		return fmt.Errorf("%w: nats_tls = \"off\" with a certificate or CA set; remove them or set nats_tls to auto or on", ErrBadConfig)
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		return fmt.Errorf("%w: http_tls_cert and http_tls_key go together", ErrBadConfig)
	}
	return nil
}

// NATSTLSOn reports whether the site's NATS listener requires TLS.
func (c *Config) NATSTLSOn() bool {
	switch c.NATSTLS {
	case TLSOn:
		return true
	case TLSOff:
		return false
	}
	host, _, err := net.SplitHostPort(c.NATS)
	if err != nil {
		return true
	}
	return !forward.IsLoopbackHost(host)
}

// siteCertificate makes the self-signed certificate bound to the site
// key: its public key is the site key, so a peer that trusts the key
// trusts the certificate, with nothing else to distribute.
func siteCertificate(id string, key *manifest.KeyPair) (tls.Certificate, []byte, error) {
	priv := ed25519.NewKeyFromSeed(key.Seed())
	pub := priv.Public().(ed25519.PublicKey)
	serial := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial[:16]),
		Subject:               pkix.Name{CommonName: "skyfed site " + id},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost", id},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%w: make the site certificate: %w", ErrTLSConfig, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, der, nil
}

// writeSiteCertFiles writes the site certificate and its key as PEM
// files (the key at mode 0600, as site.key), unless both exist.
func writeSiteCertFiles(dir, id string, key *manifest.KeyPair) error {
	certPath, keyPath := filepath.Join(dir, SiteCertFile), filepath.Join(dir, SiteKeyFile)
	_, errC := os.Stat(certPath)
	_, errK := os.Stat(keyPath)
	if errC == nil && errK == nil {
		return nil
	}
	_, der, err := siteCertificate(id, key)
	if err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(key.Seed()))
	if err != nil {
		return fmt.Errorf("%w: encode the site key: %w", ErrTLSConfig, err)
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o750); err != nil {
		return fmt.Errorf("write site certificate: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return fmt.Errorf("write site certificate key: %w", err)
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write site certificate: %w", err)
	}
	return nil
}

// resolvePath makes a relative file name in the config relative to the
// site's data dir.
func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// natsTLS is the TLS set-up of a site's links: the certificate its NATS
// listener presents, and how its dialers check peers.
type natsTLS struct {
	listen bool            // the listener requires TLS
	cert   tls.Certificate // presented by the listener
	ca     *x509.CertPool  // nil: pin peers to their trusted keys

	mu       sync.Mutex
	accepted map[string]*tls.ConnectionState // peer → TLS state of its latest admitted connection
}

// loadNATSTLS reads the TLS settings of cfg.
func loadNATSTLS(dir string, cfg Config, key *manifest.KeyPair) (*natsTLS, error) {
	t := &natsTLS{listen: cfg.NATSTLSOn(), accepted: map[string]*tls.ConnectionState{}}
	if cfg.NATSTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(resolvePath(dir, cfg.NATSTLSCert), resolvePath(dir, cfg.NATSTLSKey))
		if err != nil {
			return nil, fmt.Errorf("%w: nats_tls_cert/nats_tls_key: %w", ErrTLSConfig, err)
		}
		t.cert = cert
	} else {
		cert, _, err := siteCertificate(cfg.ID, key)
		if err != nil {
			return nil, err
		}
		t.cert = cert
	}
	if cfg.NATSTLSCA != "" {
		pool, err := loadCAPool(resolvePath(dir, cfg.NATSTLSCA))
		if err != nil {
			return nil, fmt.Errorf("%w: nats_tls_ca: %w", ErrTLSConfig, err)
		}
		t.ca = pool
	}
	return t, nil
}

// LoadCAPool reads a PEM file of CA certificates.
func loadCAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// serverConfig is the embedded NATS server's TLS config.
func (t *natsTLS) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{t.cert}}
}

// dial says how a link dialed to peer at url is secured: always TLS
// beyond loopback (never a downgrade to plain text), and on loopback
// TLS whenever the peer's server requires it; checked against the CA
// when one is configured, else pinned to the key trusted for the peer.
func (t *natsTLS) dial(keyOf func(string) (manifest.PublicKey, bool)) func(peer, url string) (forward.DialTLS, error) {
	return func(peer, url string) (forward.DialTLS, error) {
		require := !forward.IsLoopbackURL(url)
		if t.ca != nil {
			return forward.DialTLS{Config: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: t.ca}, Require: require, Verified: forward.TLSCA}, nil
		}
		return forward.DialTLS{Config: forward.PinnedTLS(peer, keyOf), Require: require, Verified: forward.TLSPinned}, nil
	}
}

// admitted records the TLS state of a peer's admitted connection.
func (t *natsTLS) admitted(peer string, st *tls.ConnectionState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st == nil {
		delete(t.accepted, peer)
		return
	}
	t.accepted[peer] = st
}

// acceptedState returns the TLS state of peer's latest admitted connection.
func (t *natsTLS) acceptedState(peer string) *tls.ConnectionState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accepted[peer]
}
