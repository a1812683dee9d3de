package chunk

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Flush makes the chunks staged since the last Flush visible in the
// index now, before the batch commits, and leaves the batch open for
// more. A put flushes as it goes so that links can ship its chunks while
// the rest is still being written: the version stays invisible until
// its manifest commits with Commit, and chunks without a manifest are
// ordinary unreferenced chunks to everyone else.
//
// The pack files are fsynced first, so an index entry never points at
// bytes a crash could lose; the index commit itself is not synced (a
// crash may forget flushed chunks, which leaves their pack bytes as
// garbage, never a dangling entry), and Commit's synced commit makes
// it durable with the rest. Flushed chunks stay pinned until the batch
// ends, so a garbage collection cannot sweep them from under the put.
// extra is called as in Commit, with the IDs this flush made new.
func (b *Batch) Flush(extra func(pb *pebble.Batch, added []ID) error) error {
	if b.done {
		return fmt.Errorf("flush chunk batch: %w", errBatchDone)
	}
	if len(b.order) == 0 {
		return nil
	}
	if err := b.syncPacks(); err != nil {
		return fmt.Errorf("flush chunk batch: %w", err)
	}
	for _, id := range b.order {
		b.s.pin(id)
	}
	b.reused = append(b.reused, b.order...)
	if err := b.commitIndex(extra, pebble.NoSync); err != nil {
		// Not visible: they go again with the next Flush or Commit.
		return fmt.Errorf("flush chunk batch: %w", err)
	}
	b.order = b.order[:0]
	return nil
}
