package site

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/skyfed/skyfed/forward/wire"
	"github.com/skyfed/skyfed/manifest"
)

// natsAuth admits clients of the embedded NATS server: this site itself
// (its own key, all subjects) and trusted peers, each only as the nkey
// user of its trusted key and only on its own pair's link subjects.
// Anonymous and untrusted clients are refused, logged and counted.
type natsAuth struct {
	site    string
	self    manifest.PublicKey
	trust   *trustStore
	refused func(peer, why string)
	// tls hears the TLS state of each admitted peer's connection.
	tls func(peer string, st *tls.ConnectionState)
	// admitted maps client IDs to the peer keys they were admitted with,
	// so a revoked key's connections can be found and cut.
	admitted sync.Map // uint64 → admission
}

// admission is who a client was admitted as.
type admission struct {
	peer string
	key  manifest.PublicKey
}

func (a *natsAuth) Check(c server.ClientAuthentication) bool {
	opts := c.GetOpts()
	if opts.Nkey == "" {
		a.refused("anonymous", fmt.Sprintf("client from %s without an nkey", c.RemoteAddress()))
		return false
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(opts.Nkey))
	if err != nil || len(raw) != 32 {
		a.refused("unknown", "malformed nkey from "+c.RemoteAddress().String())
		return false
	}
	key := manifest.PublicKey(raw)
	sig, err := base64.RawURLEncoding.DecodeString(opts.Sig)
	if err != nil {
		sig, err = base64.StdEncoding.DecodeString(opts.Sig)
	}
	if err != nil || !key.Verify(c.GetNonce(), sig) {
		a.refused(a.trust.peerOf(key), "nkey signature over the nonce does not verify")
		return false
	}
	if key == a.self {
		c.RegisterUser(&server.User{Username: a.site})
		return true
	}
	peer := a.trust.peerOf(key)
	if peer == "" {
		a.refused("unknown", "key "+key.String()+" is not in the trust store (skyfed site trust)")
		return false
	}
	c.RegisterUser(&server.User{Username: peer, Permissions: linkPermissions(peer, a.site)})
	a.admitted.Store(c.GetID(), admission{peer: peer, key: key})
	if a.tls != nil {
		a.tls(peer, c.GetTLSConnectionState())
	}
	return true
}

// linkPermissions confines a dialing peer to its own link subjects.
func linkPermissions(peer, site string) *server.Permissions {
	pub, sub := wire.Pair{Dialer: peer, Acceptor: site}.Permissions()
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// natsLog passes the embedded server's warnings and errors to slog and
// counts permission violations (a peer publishing as another pair).
type natsLog struct {
	log        *slog.Logger
	violations func(line string)
	tlsRefused func(line string)
}

func (l natsLog) Noticef(string, ...any) {}

// Debugf hears only of TLS handshakes refused: the server reports a
// client that spoke plain text or hung up in the handshake at debug
// level, and those are refusals to count.
func (l natsLog) Debugf(format string, v ...any) {
	if l.tlsRefused != nil && (strings.Contains(format, "TLS handshake error") || strings.Contains(format, "TLS handshake timeout")) {
		l.tlsRefused(fmt.Sprintf(format, v...))
	}
}
func (l natsLog) Tracef(string, ...any) {}
func (l natsLog) Warnf(format string, v ...any) {
	l.log.Warn("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLog) Errorf(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if strings.Contains(line, "Violation") {
		l.violations(line)
		return
	}
	if (strings.Contains(line, "TLS handshake error") || strings.Contains(line, "TLS handshake timeout")) && l.tlsRefused != nil {
		l.tlsRefused(line)
		return
	}
	l.log.Error("nats: " + line)
}
func (l natsLog) Fatalf(format string, v ...any) {
	l.log.Error("nats fatal: " + fmt.Sprintf(format, v...))
}
