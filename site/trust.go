package site

import (
	"sync/atomic"

	"github.com/skyfed/skyfed/manifest"
)

// trustStore answers which keys may write which domains; the config
// watcher swaps its contents while the site runs.
type trustStore struct {
	v atomic.Pointer[map[manifest.PublicKey][]string]
}

func newTrustStore(self manifest.PublicKey, cfg Config) *trustStore {
	t := &trustStore{}
	t.update(self, cfg)
	return t
}

func (t *trustStore) update(self manifest.PublicKey, cfg Config) {
	m := map[manifest.PublicKey][]string{self: {cfg.Domain}}
	for _, p := range cfg.Peers {
		k, err := manifest.ParsePublicKey(p.Key)
		if err != nil {
			continue // Validate refused such configs already
		}
		m[k] = append(m[k], p.Domains...)
	}
	t.v.Store(&m)
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
