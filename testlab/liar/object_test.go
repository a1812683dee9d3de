package liar

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/manifest"
)

func TestNewObjectIsSignedAndBadSignatureIsNot(t *testing.T) {
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 1000)
	o, err := NewObject("liar.net/a.fits", data, 4096, StampAt(time.UnixMilli(1795219200000), "liar"), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Manifest.Verify(); err != nil {
		t.Fatalf("honest object: %v", err)
	}
	if len(o.Chunks) != 3 || !bytes.Equal(bytes.Join(o.Chunks, nil), data) || o.Manifest.Chunks[2] != chunk.Sum(data[8192:]) {
		t.Fatalf("chunks %d, manifest %+v", len(o.Chunks), o.Manifest)
	}
	bad := BadSignature(o.Manifest)
	if err := bad.Verify(); !errors.Is(err, manifest.ErrBadSignature) {
		t.Fatalf("bad signature verifies: %v", err)
	}
	if bad.ID() == o.Manifest.ID() || o.Manifest.Verify() != nil {
		t.Fatal("BadSignature changed the original or kept its ID")
	}
	if _, err := NewObject("liar.net/b", data, 0, StampAt(time.Now(), "liar"), key); err == nil {
		t.Fatal("chunk size 0 accepted")
	}
}

func TestPayloadsAreHonest(t *testing.T) {
	raw := []byte("chunk bytes")
	if p := Chunk(raw); p.ID != chunk.Sum(raw) || p.RawLen != uint32(len(raw)) || p.Codec != chunk.CodecRaw {
		t.Fatalf("Chunk: %+v", p)
	}
	key, _ := manifest.GenerateKey()
	o, err := NewObject("liar.net/c", raw, 64, StampAt(time.UnixMilli(1), "liar"), key)
	if err != nil {
		t.Fatal(err)
	}
	p := ManifestPayload(o.Manifest)
	m, err := manifest.Decode(p.Bytes)
	if err != nil || m.ID() != p.ID || p.RawLen != uint32(len(p.Bytes)) {
		t.Fatalf("ManifestPayload: %+v, decode err %v", p, err)
	}
}
