package naming

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/manifest"
)

// ManifestByPrefix returns an indexed manifest whose ID starts with
// prefix (reconciliation names items by their first ID bytes), or
// ErrNotFound. Of several, it returns the lowest ID.
func (s *Store) ManifestByPrefix(prefix []byte) (*manifest.Manifest, error) {
	p := append([]byte{prefixManifest}, prefix...)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.First() {
		if err := it.Error(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("manifest %x…: %w", prefix, ErrNotFound)
	}
	if !bytes.HasPrefix(it.Key(), p) {
		return nil, fmt.Errorf("manifest %x…: %w", prefix, ErrNotFound)
	}
	m, err := manifest.Decode(it.Value())
	if err != nil {
		return nil, fmt.Errorf("load manifest %x: %w", it.Key()[1:], err)
	}
	return m, nil
}

// Refusal says why this site refuses a manifest it refused for good
// before, re-evaluated against the trust store as it is now:
// ErrUntrusted (not revoked) or ErrForbidden, or nil when its signer may
// write its domain today (or is refused only for now). Its signature
// was checked when it was refused and is not checked again.
func (s *Store) Refusal(m *manifest.Manifest) error {
	name, err := ParseName(m.Name)
	if err != nil {
		return nil
	}
	if err := s.checkWriter(m.Signer, name.Domain()); err != nil && !errors.Is(err, ErrRevoked) {
		return err
	}
	return nil
}
