package chunk

import (
	"testing"
)

// BenchmarkStorePut measures committing 1 MiB chunks (one per batch, fsync
// included) on disk.
func BenchmarkStorePut(b *testing.B) {
	ts := newTestStore(b, nil, Options{})
	raw := randomBytes(90, DefaultSize)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := range b.N {
		raw[0], raw[1], raw[2], raw[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		batch := ts.NewBatch()
		if _, err := batch.Add(Sum(raw), raw); err != nil {
			b.Fatal(err)
		}
		if err := batch.Commit(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreGet measures verified reads of 1 MiB chunks.
func BenchmarkStoreGet(b *testing.B) {
	ts := newTestStore(b, nil, Options{})
	raw := randomBytes(91, DefaultSize)
	put(b, ts.Store, raw)
	id := Sum(raw)
	buf := make([]byte, 0, DefaultSize)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		var err error
		if buf, err = ts.Get(id, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompress measures Compress on 16-bit image-like data.
func BenchmarkCompress(b *testing.B) {
	raw := imageLike(92, DefaultSize)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	var stored int
	for range b.N {
		_, payload, err := Compress(raw)
		if err != nil {
			b.Fatal(err)
		}
		stored = len(payload)
	}
	b.ReportMetric(float64(len(raw))/float64(stored), "ratio")
}

// BenchmarkDecode measures decoding 16-bit image-like data.
func BenchmarkDecode(b *testing.B) {
	raw := imageLike(93, DefaultSize)
	c, payload, err := Compress(raw)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, len(raw))
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		if dst, err = Decode(c, payload, dst, len(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
