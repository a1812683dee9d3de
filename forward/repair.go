package forward

import (
	"context"

	"github.com/skyfed/skyfed/chunk"
)

// payloadToShip returns what to ship for an object, repairing a damaged
// chunk from the other sites first.
func (n *Node) payloadToShip(ctx context.Context, k Kind, id chunk.ID) (chunk.Codec, []byte, uint32, error) {
	return n.stores.Payload(k, id)
}
