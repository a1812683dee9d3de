package naming

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk/crashpoint"
)

// TestCrashDuringPut crashes a put at every named crash point on Pebble's
// crashable in-memory FS (the clone keeps only synced data) and checks
// that the reopened store serves earlier objects intact and the
// interrupted put either not at all or completely.
func TestCrashDuringPut(t *testing.T) {
	points := []struct {
		name         string
		mustComplete bool
	}{
		{"after-pack-write", false},
		{"after-pack-sync", false},
		{"after-index-commit", true},
	}
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			e := openEnv(t, fs, "/site")
			earlier := map[string][]byte{}
			for i, n := range []string{"gloria.eu/old/1", "gloria.eu/old/2"} {
				earlier[n] = randomBytes(uint64(10+i), 3*4096+i)
				e.put(t, n, earlier[n])
			}
			var crashed *vfs.MemFS
			restore := crashpoint.Set(pt.name, func() error {
				crashed = fs.CrashClone(vfs.CrashCloneCfg{})
				return crashpoint.ErrCrashed
			})
			data := randomBytes(99, 5*4096+7)
			_, err := e.store.Put(context.Background(), MustParseName("gloria.eu/new"), bytes.NewReader(data), PutOptions{})
			restore()
			if !errors.Is(err, crashpoint.ErrCrashed) || crashed == nil {
				t.Fatalf("put err = %v; the crash point was not reached", err)
			}
			e.close(t)

			after := openEnv(t, crashed, "/site")
			defer after.close(t)
			for n, want := range earlier {
				m, err := after.store.Latest(MustParseName(n))
				if err != nil {
					t.Fatalf("earlier object %s lost: %v", n, err)
				}
				if got := after.read(t, m); !bytes.Equal(got, want) {
					t.Fatalf("earlier object %s damaged", n)
				}
			}
			m, err := after.store.Latest(MustParseName("gloria.eu/new"))
			switch {
			case errors.Is(err, ErrNotFound) && !pt.mustComplete:
			case err == nil:
				if got := after.read(t, m); !bytes.Equal(got, data) {
					t.Fatal("interrupted put is visible but torn")
				}
			default:
				t.Fatalf("interrupted put: err = %v (must complete: %v)", err, pt.mustComplete)
			}
		})
	}
}
