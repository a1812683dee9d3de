package site

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS server limits. The server buffers, per client, what waits to be
// written to it (max_pending): beyond that it cuts the client as a slow
// consumer. Everything a peer publishes goes to this site's own
// connection, whose reader never blocks (its subscriptions drop what
// their callbacks fall behind on, forward's pendingLimits), so a flood
// from a peer does not build up here; what builds up is what this site
// sends a peer that reads slowly or not at all. A link keeps at most 32
// chunk payloads in flight (1 MiB each at the default chunk size) plus
// manifests and control, so an honest peer stays below natsMaxPending,
// while one that stops reading costs at most that before it is cut, not
// the server's default 64 MiB.
const (
	natsMaxPending = 40 << 20
	// natsWriteDeadline cuts a client whose socket takes a write longer
	// than this (a peer that stopped reading, with its window full).
	natsWriteDeadline = 10 * time.Second
)

// limitNATS bounds what the embedded NATS server buffers per client, so
// a peer that floods the site cannot grow its memory without bound.
func limitNATS(o *server.Options) {
	o.MaxPending = natsMaxPending
	o.WriteDeadline = natsWriteDeadline
}
