package manifest

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParsePublicKey checks the text form of site keys (skyfed.toml's
// trust store, --pin, site key): errors wrap ErrBadKey, and a key that
// parses prints back as its input with the hex in lower case.
func FuzzParsePublicKey(f *testing.F) {
	for _, s := range fuzzKeySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v does not wrap ErrBadKey", err)
			}
			return
		}
		if want := keyPrefix + strings.ToLower(s[len(keyPrefix):]); k.String() != want {
			t.Fatalf("ParsePublicKey(%q).String() = %q", s, k.String())
		}
		if back, err := ParsePublicKey(k.String()); err != nil || back != k {
			t.Fatalf("String does not parse back: %v", err)
		}
	})
}

func fuzzKeySeeds() []string {
	kp, err := KeyPairFromSeed(make([]byte, 32))
	if err != nil {
		panic(err)
	}
	pub := kp.PublicKey().String()
	return []string{pub, strings.ToUpper(pub), "ed25519:" + strings.Repeat("zz", 32), pub[:20], "ed448:" + pub[8:], ""}
}
