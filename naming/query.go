package naming

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/manifest"
)

// Latest returns the newest version of name. If that version is a
// tombstone or has expired, it returns it together with ErrDeleted.
func (s *Store) Latest(name Name) (*manifest.Manifest, error) {
	m, err := s.newest(versionPrefix(name.Hash()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if m.Deleted(s.cfg.Now()) {
		return m, fmt.Errorf("%s: %w", name, ErrDeleted)
	}
	return m, nil
}

func (s *Store) newest(prefix []byte) (*manifest.Manifest, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	id, err := manifestIDFrom(it.Value())
	if err != nil {
		return nil, err
	}
	return s.Manifest(id)
}

// Version returns the version of name with the given stamp.
func (s *Store) Version(name Name, stamp manifest.Stamp) (*manifest.Manifest, error) {
	v, ok, err := getValue(s.db, versionKey(name.Hash(), stamp))
	if err != nil {
		return nil, fmt.Errorf("%s version %s: %w", name, stamp, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s version %s: %w", name, stamp, ErrNotFound)
	}
	id, err := manifestIDFrom(v)
	if err != nil {
		return nil, err
	}
	return s.Manifest(id)
}

// History returns every version of name, tombstones included, newest first.
func (s *Store) History(name Name) ([]*manifest.Manifest, error) {
	out, err := s.HistoryByHash(name.Hash())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return out, nil
}

// List returns up to limit live objects (their latest versions) whose
// names start with prefix and sort after after, and whether more follow.
func (s *Store) List(prefix, after string, limit int) ([]*manifest.Manifest, bool, error) {
	return s.listBy(prefix, after, limit, s.Latest)
}

// listBy lists like List, with each name's version as versionOf gives
// it; names it answers ErrDeleted or ErrNotFound for are left out.
func (s *Store) listBy(prefix, after string, limit int, versionOf func(Name) (*manifest.Manifest, error)) ([]*manifest.Manifest, bool, error) {
	var out []*manifest.Manifest
	more, err := s.eachName(prefix, after, func(name Name) (bool, error) {
		m, err := versionOf(name)
		if errors.Is(err, ErrDeleted) || errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if len(out) == limit {
			return true, nil
		}
		out = append(out, m)
		return false, nil
	})
	return out, more, err
}

// eachName calls fn with the names that start with prefix and sort
// after after, in order, until fn says stop (then it reports true: more
// follow) or an error.
func (s *Store) eachName(prefix, after string, fn func(Name) (stop bool, err error)) (bool, error) {
	lower := nameKey(prefix)
	if after >= prefix {
		lower = append(nameKey(after), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(nameKey(prefix))})
	if err != nil {
		return false, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		name, err := ParseName(string(it.Key()[1:]))
		if err != nil {
			return false, fmt.Errorf("names: index holds %w", err)
		}
		if stop, err := fn(name); stop || err != nil {
			return stop, err
		}
	}
	return false, it.Error()
}

// Objects counts the names whose latest version is live.
func (s *Store) Objects() (int64, error) {
	var n int64
	after := ""
	for {
		page, more, err := s.List("", after, 1000)
		if err != nil {
			return 0, err
		}
		n += int64(len(page))
		if !more {
			return n, nil
		}
		after = page[len(page)-1].Name
	}
}

// BySHA256 returns the newest live version whose whole content has the
// given SHA-256.
func (s *Store) BySHA256(sum [32]byte) (*manifest.Manifest, error) {
	p := contentPrefix(sum)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var best *manifest.Manifest
	for it.First(); it.Valid(); it.Next() {
		id, err := manifestIDFrom(it.Key()[len(p):])
		if err != nil {
			return nil, err
		}
		m, err := s.Manifest(id)
		if err != nil {
			return nil, err
		}
		if !m.Deleted(s.cfg.Now()) && (best == nil || manifest.Newer(m, best)) {
			best = m
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if best == nil {
		return nil, fmt.Errorf("content %x: %w", sum[:], ErrNotFound)
	}
	return best, nil
}

// NewestByHash returns the newest version indexed under a name hash,
// tombstones included (lookups from other sites ask by hash).
func (s *Store) NewestByHash(h Hash) (*manifest.Manifest, error) {
	return s.newest(versionPrefix(h))
}

// HistoryByHash returns every version indexed under a name hash, newest first.
func (s *Store) HistoryByHash(h Hash) ([]*manifest.Manifest, error) {
	p := versionPrefix(h)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*manifest.Manifest
	for it.Last(); it.Valid(); it.Prev() {
		id, err := manifestIDFrom(it.Value())
		if err != nil {
			return nil, err
		}
		m, err := s.Manifest(id)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, it.Error()
}

// Names returns up to limit names (deleted ones included: they have a
// history) that start with prefix and sort after after, and whether
// more follow.
func (s *Store) Names(prefix, after string, limit int) ([]Name, bool, error) {
	var out []Name
	more, err := s.eachName(prefix, after, func(name Name) (bool, error) {
		if len(out) == limit {
			return true, nil
		}
		out = append(out, name)
		return false, nil
	})
	return out, more, err
}
