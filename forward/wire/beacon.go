package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/skyfed/skyfed/manifest"
)

// MaxBeaconBody bounds a status beacon's body (its site's totals and
// links, compressed by the sender).
const MaxBeaconBody = 16 << 10

// Beacon is a site's signed status, flooded over the links on the
// control lane: each site keeps the highest Seq of each origin and
// passes on only what is newer, so it crosses every link at most once
// each way. The body is opaque here (forward's status encoding).
type Beacon struct {
	Origin string
	Seq    uint64 // strictly increasing per origin, across its restarts
	At     int64  // when the origin made it: unix ms by its clock
	// Same, when not 0, says the body is that of the origin's beacon
	// with this Seq and is not repeated (Body is empty): an idle site's
	// beacons are a few dozen bytes.
	Same uint64
	Body []byte
	Sig  []byte // Origin's signature over BeaconMessage
}

// BeaconMessage is what the origin of b signs.
func BeaconMessage(b *Beacon) []byte {
	msg := make([]byte, 0, 32+len(b.Origin)+len(b.Body))
	msg = append(msg, "skyfed-beacon-v1\x00"...)
	msg = append(msg, b.Origin...)
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint64(msg, b.Seq)
	msg = binary.BigEndian.AppendUint64(msg, uint64(b.At))
	msg = binary.BigEndian.AppendUint64(msg, b.Same)
	return append(msg, b.Body...)
}

func (b *Beacon) appendTo(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b.Origin)))
	dst = append(dst, b.Origin...)
	dst = binary.BigEndian.AppendUint64(dst, b.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(b.At))
	dst = binary.AppendUvarint(dst, b.Same)
	dst = binary.AppendUvarint(dst, uint64(len(b.Body)))
	dst = append(dst, b.Body...)
	return append(dst, b.Sig...)
}

func (r *wireReader) beacon() *Beacon {
	b := &Beacon{}
	b.Origin = string(r.take(r.length(wireSiteIDMax)))
	b.Seq = r.uint64()
	b.At = int64(r.uint64())
	b.Same = r.uvarint()
	b.Body = r.copyBytes(r.length(MaxBeaconBody))
	b.Sig = r.copyBytes(wireSigLen)
	return b
}

func (b *Beacon) validate() error {
	switch {
	case !manifest.ValidSiteID(b.Origin):
		return fmt.Errorf("origin %q is not a site ID", wireClip(b.Origin))
	case len(b.Body) > MaxBeaconBody:
		return fmt.Errorf("beacon body of %d bytes, want at most %d", len(b.Body), MaxBeaconBody)
	case len(b.Sig) != wireSigLen:
		return errors.New("a beacon must be signed")
	case b.Seq == 0:
		return errors.New("beacon sequence 0")
	case b.Same >= b.Seq:
		return fmt.Errorf("beacon %d repeats the body of %d, not an earlier one", b.Seq, b.Same)
	case b.Same != 0 && len(b.Body) != 0:
		return errors.New("a beacon that repeats a body carries none")
	}
	return nil
}
