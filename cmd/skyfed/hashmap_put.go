package main

import (
	"context"

	"github.com/skyfed/skyfed/site/client"
)

// hashmapMinChunks is the smallest file, in the site's chunks, put by its
// chunk list first (client.PutByHashmap): below it one streamed request
// is as cheap as the list's round trip.
const hashmapMinChunks = 4

// chunkSizeOf asks the site where it cuts objects (0: a site too old to
// take chunk lists, or no answer: stream).
func chunkSizeOf(ctx context.Context, cl *client.Client) int {
	st, err := cl.Status(ctx)
	if err != nil {
		return 0
	}
	return st.ChunkSize
}

// usesHashmap reports whether a regular file of size bytes goes by its
// chunk list to a site cutting at chunkSize.
func usesHashmap(size int64, chunkSize int) bool {
	return chunkSize > 0 && size >= int64(hashmapMinChunks)*int64(chunkSize)
}
