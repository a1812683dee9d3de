package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// As root, a fill takes all but fillLeave bytes of a tmpfs the test
// mounts, and the tmpfs is unmounted after.
func TestChaosFillTmpfs(t *testing.T) {
	if ok, why := canMount(); !ok {
		t.Skip(why)
	}
	dir := filepath.Join(t.TempDir(), "s0")
	const size = 32 << 20
	if err := mountTmpfs(dir, size); err != nil {
		t.Skipf("no tmpfs here: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unmountTmpfs(dir)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "data"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, fillerName)
	n, err := fillDisk(filler, fillLeave)
	if err != nil {
		t.Fatal(err)
	}
	free, total, err := freeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if total != size || free > fillLeave || free < fillLeave-64<<10 || n < size-4<<20 {
		t.Fatalf("filler of %d bytes left %d of %d free, want about %d", n, free, total, fillLeave)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if free, _, _ = freeBytes(dir); free < size-2<<20 {
		t.Fatalf("%d bytes free once the filler is gone", free)
	}
	mounted = false
	if err := unmountTmpfs(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatalf("the tmpfs's file is still there after unmount: %v", err)
	}
}
