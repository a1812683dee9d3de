package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

const keyPrefix = "ed25519:"

// PublicKey is an ed25519 public key; its text form is "ed25519:<64 lowercase hex>".
type PublicKey [32]byte

// ParsePublicKey parses "ed25519:" followed by 64 hex digits (either case).
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	digits, ok := strings.CutPrefix(s, keyPrefix)
	if !ok || len(digits) != 2*len(k) {
		return PublicKey{}, fmt.Errorf("%w: %q: want %q followed by 64 hex digits", ErrBadKey, clip(s), keyPrefix)
	}
	if _, err := hex.Decode(k[:], []byte(digits)); err != nil {
		return PublicKey{}, fmt.Errorf("%w: %q: %v", ErrBadKey, clip(s), err)
	}
	return k, nil
}

// String returns "ed25519:" followed by the key in lowercase hex.
func (k PublicKey) String() string { return keyPrefix + hex.EncodeToString(k[:]) }

// Verify reports whether sig is a valid ed25519 signature of msg by k.
func (k PublicKey) Verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(k[:], msg, sig)
}

// Signer signs on behalf of a key without handing out the private key bytes.
type Signer interface {
	PublicKey() PublicKey
	Sign(msg []byte) []byte
}

// KeyPair is the in-memory ed25519 signer of a site.
type KeyPair struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

var _ Signer = (*KeyPair)(nil)

// GenerateKey makes a new key pair from crypto/rand.
func GenerateKey() (*KeyPair, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return KeyPairFromSeed(seed)
}

// KeyPairFromSeed rebuilds a key pair from its 32-byte ed25519 seed.
func KeyPairFromSeed(seed []byte) (*KeyPair, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: ed25519 seed is %d bytes, want %d", ErrBadKey, len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	k := &KeyPair{priv: priv}
	copy(k.pub[:], priv.Public().(ed25519.PublicKey))
	return k, nil
}

// Seed returns a copy of the 32-byte seed, the form saved in a key file.
func (k *KeyPair) Seed() []byte { return k.priv.Seed() }

// PublicKey returns the public half of the pair.
func (k *KeyPair) PublicKey() PublicKey { return k.pub }

// Sign returns the 64-byte ed25519 signature of msg.
func (k *KeyPair) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
