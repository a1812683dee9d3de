package naming

import (
	"fmt"
	"time"

	"github.com/skyfed/skyfed/manifest"
)

// The namespace as it was (Pithos+ history): the version of a name at a
// point is its newest version stamped at or before it, as far as the
// history is kept (garbage collection drops what is deleted and old).

// ParseAsOf reads a point in the history: a version stamp (every version
// up to and including it), or an RFC 3339 time (every version stamped
// at or before it).
func ParseAsOf(s string) (manifest.Stamp, error) {
	if st, err := manifest.ParseStamp(s); err == nil {
		return st, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return manifest.Stamp{}, fmt.Errorf("as of %q: want an RFC 3339 time (2026-12-06T21:00:00Z) or a version stamp", s)
	}
	// After every stamp of that millisecond: the largest counter, and an
	// origin that sorts after every site ID.
	return manifest.Stamp{WallMS: t.UnixMilli(), Counter: 9999, Origin: "~"}, nil
}

// VersionAsOf returns name's version at point at: ErrNotFound if it had
// none yet, ErrDeleted if that one is a delete or had expired then.
func (s *Store) VersionAsOf(name Name, at manifest.Stamp) (*manifest.Manifest, error) {
	hist, err := s.History(name) // newest first
	if err != nil {
		return nil, err
	}
	for _, m := range hist {
		if m.Stamp.Compare(at) > 0 {
			continue
		}
		if m.Deleted(at.Time()) {
			return m, fmt.Errorf("%s as of %s: %w", name, at, ErrDeleted)
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s as of %s: %w", name, at, ErrNotFound)
}

// ListAsOf is List as of point at: the names under prefix that had a
// live version then, each with that version.
func (s *Store) ListAsOf(prefix, after string, limit int, at manifest.Stamp) ([]*manifest.Manifest, bool, error) {
	return s.listBy(prefix, after, limit, func(name Name) (*manifest.Manifest, error) { return s.VersionAsOf(name, at) })
}
