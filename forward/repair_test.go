package forward

import (
	"testing"

	"github.com/skyfed/skyfed/chunk"
)

// FuzzDecodeUnrepairable feeds the decoder of the 'u' records arbitrary
// keys and values: it errors or decodes, never panics, and what it
// decodes names the chunk of its key with a bounded list of names.
func FuzzDecodeUnrepairable(f *testing.F) {
	id := chunk.Sum([]byte("x"))
	key := append([]byte{prefixUnrepairable}, id[:]...)
	f.Add(key, []byte(`{"chunk":"x","since":"2026-12-04T20:00:00Z","names":["a@1"],"attempts":2}`))
	f.Add(key, []byte(`{"names":["a","b","c","d","e","f","g","h","i","j"]}`))
	f.Add([]byte{prefixUnrepairable}, []byte(`{}`))
	f.Add(key, []byte(`not json`))
	f.Fuzz(func(t *testing.T, k, v []byte) {
		u, err := decodeUnrepairable(k, v)
		if err != nil {
			return
		}
		if string(u.ID[:]) != string(k[1:]) || u.Chunk != u.ID.String() || len(u.Names) > maxNames {
			t.Fatalf("decoded %+v from key %x", u, k)
		}
	})
}
