package testlab

import (
	"fmt"
	"path/filepath"

	"github.com/skyfed/skyfed/site"
)

// Spec describes a federation to create on disk: its sites, who trusts
// whom (everyone everyone, for Domain) and who dials whom.
type Spec struct {
	Base      string   // parent dir; site i lives in Base/IDs[i]
	IDs       []string // site IDs
	Domain    string   // the domain every site may write
	Edges     [][2]int // links: Edges[k][0] dials Edges[k][1]
	HTTP      func(i int) string
	NATS      func(i int) string
	LinkURL   func(from, to int) string // nil: nats://NATS(to)
	Mode      string                    // offer (default) or flood
	MaxRate   string                    // every link's rate; "" unlimited
	ChunkSize int                       // 0: default
}

// Dir returns site i's data dir.
func (s Spec) Dir(i int) string { return filepath.Join(s.Base, s.IDs[i]) }

// InitFederation creates (or reuses) every site's data dir, makes every
// site trust every other for the domain, and configures the links. It
// returns the sites' public keys.
func InitFederation(s Spec) ([]string, error) {
	keys := make([]string, len(s.IDs))
	for i, id := range s.IDs {
		if _, err := site.LoadConfig(s.Dir(i)); err == nil {
			k, err := site.LoadKey(s.Dir(i))
			if err != nil {
				return nil, err
			}
			keys[i] = k.PublicKey().String()
			continue
		}
		k, err := site.Init(s.Dir(i), site.Config{ID: id, Domain: s.Domain, HTTP: s.HTTP(i), NATS: s.NATS(i), ChunkSize: s.ChunkSize})
		if err != nil {
			return nil, fmt.Errorf("init site %s: %w", id, err)
		}
		keys[i] = k.String()
	}
	for i := range s.IDs {
		for j, id := range s.IDs {
			if i == j {
				continue
			}
			if err := site.Trust(s.Dir(i), site.Peer{ID: id, Key: keys[j], Domains: []string{s.Domain}}); err != nil {
				return nil, err
			}
		}
	}
	for _, e := range s.Edges {
		url := "nats://" + s.NATS(e[1])
		if s.LinkURL != nil {
			url = s.LinkURL(e[0], e[1])
		}
		if err := site.LinkTo(s.Dir(e[0]), site.Link{Peer: s.IDs[e[1]], URL: url, MaxRate: s.MaxRate, Mode: s.Mode}); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
