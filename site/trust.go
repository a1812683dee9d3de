package site

import (
	"sync/atomic"
	"time"

	"github.com/skyfed/skyfed/manifest"
)

// trustStore answers which keys may write which domains; the config
// watcher swaps its contents while the site runs.
type trustStore struct {
	v       atomic.Pointer[map[manifest.PublicKey][]string]
	peers   atomic.Pointer[map[manifest.PublicKey]string]
	revoked atomic.Pointer[map[manifest.PublicKey]time.Time] // key → when site untrust took it out
}

func newTrustStore(self manifest.PublicKey, cfg Config) *trustStore {
	t := &trustStore{}
	t.update(self, cfg)
	return t
}

func (t *trustStore) update(self manifest.PublicKey, cfg Config) {
	m := map[manifest.PublicKey][]string{self: {cfg.Domain}}
	peers := map[manifest.PublicKey]string{}
	for _, p := range cfg.Peers {
		k, err := manifest.ParsePublicKey(p.Key)
		if err != nil {
			continue // Validate refused such configs already
		}
		m[k] = append(m[k], p.Domains...)
		peers[k] = p.ID
	}
	revoked := map[manifest.PublicKey]time.Time{}
	for _, r := range cfg.Revoked {
		if k, err := manifest.ParsePublicKey(r.Key); err == nil {
			if _, trusted := m[k]; !trusted {
				revoked[k] = r.At
			}
		}
	}
	t.v.Store(&m)
	t.peers.Store(&peers)
	t.revoked.Store(&revoked)
}

// Revoked implements naming.Revocations: key was taken out of the trust
// store within RevocationGrace.
func (t *trustStore) Revoked(key manifest.PublicKey) bool {
	at, ok := (*t.revoked.Load())[key]
	return ok && time.Since(at) < RevocationGrace
}

// MayWrite implements naming.Trust.
func (t *trustStore) MayWrite(key manifest.PublicKey, domain string) (known, allowed bool) {
	domains, known := (*t.v.Load())[key]
	for _, d := range domains {
		if d == domain {
			return true, true
		}
	}
	return known, false
}

// peerOf returns the peer ID whose trusted key is key, or "".
func (t *trustStore) peerOf(key manifest.PublicKey) string {
	return (*t.peers.Load())[key]
}

// keyOf returns the trusted key of peer.
func (t *trustStore) keyOf(peer string) (manifest.PublicKey, bool) {
	for k, p := range *t.peers.Load() {
		if p == peer {
			return k, true
		}
	}
	return manifest.PublicKey{}, false
}
