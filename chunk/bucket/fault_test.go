package bucket

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
)

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(string, ...any) {}

// TestVolumeServerKilledDuringPutsAndGets: two writers commit batches
// into a Store on the bucket while one SeaweedFS volume server is
// SIGKILLed and later restarted, and a reader reads back what was
// acknowledged. Every acknowledged chunk reads back intact, from this
// Store and from a new one over the same index and bucket; a put that
// failed failed with an error (counted), nothing panicked.
func TestVolumeServerKilledDuringPutsAndGets(t *testing.T) {
	c := startCluster(t)
	p, err := New(t.Context(), clusterConfig(c, randomPrefix(t), t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	db, err := pebble.Open("/db", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := chunk.Open(db, chunk.Options{Packs: p, Logger: log})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[chunk.ID][]byte{}
	var failedPuts, failedGets, puts, gets int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := s.NewBatch()
				batch := map[chunk.ID][]byte{}
				for range 4 {
					raw := make([]byte, 64<<10)
					_, _ = rand.Read(raw)
					id := chunk.Sum(raw)
					if _, err := b.Add(id, raw); err != nil {
						t.Errorf("add: %v", err)
						b.Abort()
						return
					}
					batch[id] = raw
				}
				err := b.Commit(nil)
				mu.Lock()
				puts++
				if err != nil {
					failedPuts++
					t.Logf("put failed (allowed while a volume server is down): %v", err)
				} else {
					for id, raw := range batch {
						acked[id] = raw
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() { // a reader of what was acknowledged
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			mu.Lock()
			var id chunk.ID
			var want []byte
			for id, want = range acked {
				break
			}
			mu.Unlock()
			if want == nil {
				continue
			}
			got, err := s.Get(id, nil)
			mu.Lock()
			gets++
			if err != nil {
				failedGets++
				t.Logf("get failed (allowed while a volume server is down): %v", err)
			} else if !bytes.Equal(got, want) {
				t.Errorf("get %s: wrong bytes", id.Short())
			}
			mu.Unlock()
		}
	}()
	phase := func(d time.Duration) { time.Sleep(d) }
	phase(3 * time.Second)
	if err := c.KillVolume(1); err != nil {
		t.Fatal(err)
	}
	phase(8 * time.Second)
	if err := c.StartVolume(1); err != nil {
		t.Fatal(err)
	}
	phase(3 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d puts (%d failed), %d gets (%d failed), %d chunks acknowledged; bucket: %d requests, %d errors",
		puts, failedPuts, gets, failedGets, len(acked), p.Stats().Requests.Load(), p.Stats().Errors.Load())
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	check := func(s *chunk.Store, when string) {
		for id, want := range acked {
			got, err := s.Get(id, nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: acknowledged chunk %s: %v", when, id.Short(), err)
			}
		}
	}
	check(s, "after the volume server came back")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := chunk.Open(db, chunk.Options{Packs: p, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2, "reopened")
}
