// Package naming owns object names, name hashing and partitions, and the
// version index kept in Pebble: name hash → versions → manifest. It answers
// latest, as-of and history queries, applies tombstones and expiry, and
// turns a byte stream into a signed version (Put) on top of the chunk store.
// It collects versions hidden by a tombstone or expiry past a grace period
// and refuses them for good afterwards (gc.go); the chunks they leave
// unreferenced are the chunk store's to sweep. It knows nothing about
// links or NATS.
package naming

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest name accepted, in bytes.
const MaxNameLen = 1024

// Partitions is the number of partitions the name-hash space is cut into.
const Partitions = 1024

// ErrBadName marks a name that cannot be parsed.
var ErrBadName = errors.New("bad name")

// nameHashDomain separates name hashes from every other SHA-256 in skyfed.
const nameHashDomain = "skyfed/name/v1\x00"

// Name is a parsed, validated object name: "domain/path".
type Name struct {
	full      string
	domainEnd int
}

// Hash is the SHA-256 of a domain-separated encoding of a name.
type Hash [32]byte

// ParseName validates s once and returns it as a Name.
func ParseName(s string) (Name, error) {
	if err := checkName(s); err != nil {
		return Name{}, fmt.Errorf("%w %q: %s", ErrBadName, truncate(s, 80), err)
	}
	return Name{full: s, domainEnd: strings.IndexByte(s, '/')}, nil
}

// MustParseName is ParseName for names known to be valid (tests, constants).
func MustParseName(s string) Name {
	n, err := ParseName(s)
	if err != nil {
		panic(err)
	}
	return n
}

func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("contains a control character")
		}
	}
	domain, path, ok := strings.Cut(s, "/")
	if !ok || path == "" {
		return errors.New("needs a path after the domain, as domain/path")
	}
	if err := CheckDomain(domain); err != nil {
		return err
	}
	for _, seg := range strings.Split(path, "/") {
		switch seg {
		case "":
			return errors.New("has an empty segment (// or a trailing /)")
		case ".", "..":
			return fmt.Errorf("has a %q segment", seg)
		}
	}
	return nil
}

// CheckDomain reports why d is not a valid domain (lowercase DNS-like
// labels of letters, digits and '-', joined by dots), or nil.
func CheckDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("domain %q must be 1 to 253 bytes", truncate(d, 80))
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("domain %q has an empty or over-long label", d)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q may hold only a-z, 0-9, '-' and '.'", d)
			}
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// String returns the full name.
func (n Name) String() string { return n.full }

// Domain returns the part before the first '/'.
func (n Name) Domain() string { return n.full[:n.domainEnd] }

// Path returns the part after the domain.
func (n Name) Path() string { return n.full[n.domainEnd+1:] }

// IsZero reports whether n is the zero Name.
func (n Name) IsZero() bool { return n.full == "" }

// Hash returns the name hash, the key of the version index.
func (n Name) Hash() Hash {
	h := sha256.New()
	h.Write([]byte(nameHashDomain))
	h.Write([]byte(n.full))
	var out Hash
	h.Sum(out[:0])
	return out
}

// Partition returns which of the Partitions the hash falls in (its first 10 bits).
func (h Hash) Partition() int { return int(h[0])<<2 | int(h[1])>>6 }

// String returns the hash in hex.
func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }
