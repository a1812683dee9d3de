package chunk_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/chunk/packstest"
)

// TestDirPacksContract runs the packs contract on a directory of files,
// on disk and in a MemFS.
func TestDirPacksContract(t *testing.T) {
	open := func(fs vfs.FS, dir string) chunk.Packs {
		p, err := chunk.NewDirPacks(fs, dir)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("disk", func(t *testing.T) {
		packstest.Run(t, func(t *testing.T) chunk.Packs { return open(vfs.Default, t.TempDir()) },
			func(t *testing.T, p chunk.Packs) chunk.Packs { return open(vfs.Default, p.Where()) })
	})
	t.Run("mem", func(t *testing.T) {
		fs := vfs.NewMem()
		n := 0
		packstest.Run(t, func(t *testing.T) chunk.Packs { n++; return open(fs, "/packs"+string(rune('a'+n))) },
			func(t *testing.T, p chunk.Packs) chunk.Packs { return open(fs, p.Where()) })
	})
}
