// Package chunk owns chunks: their IDs (SHA-256 of the raw bytes), cutting
// a stream into fixed-size chunks, the compression codecs a chunk may be
// stored and shipped in, and the local chunk store.
//
// The store keeps payloads in append-only pack files (pack-000001.dat, …)
// and indexes them in a Pebble DB shared with other packages, under keys
// that start with the byte 'c'. Chunks become visible only through
// Batch.Commit, which fsyncs the pack files before it commits the index
// entries (and the caller's own keys) in one synced Pebble batch, so a crash
// at any instant never leaves a chunk indexed but unreadable. Every Get
// re-hashes what it read: the store never returns wrong bytes.
//
// The package knows nothing about names, manifests, links or NATS.
package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sizes of chunks.
const (
	DefaultSize = 1 << 20  // default chunk size: 1 MiB
	MaxSize     = 64 << 20 // largest chunk the package accepts anywhere
)

// Errors callers branch on. They are returned wrapped with context.
var (
	ErrNotFound = errors.New("chunk not found")
	ErrCorrupt  = errors.New("chunk corrupt") // stored bytes do not hash to the ID
	ErrBadID    = errors.New("malformed chunk ID")
	ErrTooLarge = errors.New("chunk too large")
)

// ID names a chunk: the SHA-256 of its raw (uncompressed) bytes.
type ID [32]byte

// Sum returns the ID of raw.
func Sum(raw []byte) ID {
	return ID(sha256.Sum256(raw))
}

// ParseID parses the 64-hex-digit form written by ID.String (either case).
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("parse chunk ID %q: want %d hex digits, got %d: %w", truncate(s), 2*len(id), len(s), ErrBadID)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("parse chunk ID %q: %v: %w", truncate(s), err, ErrBadID)
	}
	return id, nil
}

// String returns the ID as 64 lowercase hex digits.
func (id ID) String() string {
	return hex.EncodeToString(id[:])
}

// Short returns the first 12 hex digits, for logs and displays.
func (id ID) Short() string {
	return hex.EncodeToString(id[:6])
}

// IsZero reports whether id is the zero value (no chunk hashes to it in practice).
func (id ID) IsZero() bool {
	return id == ID{}
}

// MarshalText encodes the ID as 64 lowercase hex digits (for JSON, TOML, logs).
func (id ID) MarshalText() ([]byte, error) {
	return []byte(id.String()), nil
}

// UnmarshalText parses the form written by MarshalText.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// truncate keeps error messages short when a caller passes a huge string.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
