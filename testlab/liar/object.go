package liar

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

// Object is a version the liar made up: its signed manifest and the raw
// bytes of its chunks, in order.
type Object struct {
	Manifest *manifest.Manifest
	Chunks   [][]byte
}

// NewObject splits data into chunks of chunkSize and returns the version
// of name stamped with stamp and signed by signer. Nothing checks that
// signer may write name: that is the receiver's job.
func NewObject(name string, data []byte, chunkSize int, stamp manifest.Stamp, signer manifest.Signer) (*Object, error) {
	if chunkSize <= 0 {
		return nil, fmt.Errorf("liar object %s: chunk size %d", name, chunkSize)
	}
	o := &Object{Manifest: &manifest.Manifest{
		Name: name, Stamp: stamp, Size: int64(len(data)), ChunkSize: uint32(chunkSize),
		SHA256: sha256.Sum256(data), ContentType: "application/octet-stream",
	}}
	for off := 0; off < len(data); off += chunkSize {
		c := data[off:min(off+chunkSize, len(data))]
		o.Chunks = append(o.Chunks, c)
		o.Manifest.Chunks = append(o.Manifest.Chunks, chunk.Sum(c))
	}
	if err := o.Manifest.Validate(); err != nil {
		return nil, fmt.Errorf("liar object %s: %w", name, err)
	}
	o.Manifest.Sign(signer)
	return o, nil
}

// StampAt returns a version stamp of origin at t.
func StampAt(t time.Time, origin string) manifest.Stamp {
	return manifest.Stamp{WallMS: t.UnixMilli(), Origin: origin}
}

// BadSignature returns a copy of m whose signature has one bit flipped;
// its encoding, and so its ID, is that of the copy.
func BadSignature(m *manifest.Manifest) *manifest.Manifest {
	c := *m
	c.Signature = append([]byte(nil), m.Signature...)
	c.Signature[len(c.Signature)/2] ^= 0x10
	return &c
}
