package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// objectStoreBucket is the Object Store bucket the benchmark writes.
const objectStoreBucket = "skyfed-bench"

// measureObjectStore times JetStream Object Store puts of the same random
// stream, as the same objects, into an embedded nats-server whose file
// store is on the same disk, through a client connection over loopback TCP
// (as a skyfed client talks HTTP over loopback). The Object Store's own
// chunk size (128 KiB) is used, as its users would. With syncAlways the
// server fsyncs every message; otherwise it syncs in the background, and
// the timed file-system sync at the end makes the data durable.
//
// One object must stay below the server's stream ingest queue (128 MiB by
// default): Put pipelines up to 4000 unacknowledged chunks, and with sync
// always the server falls behind and answers 429 "too many requests" past
// that queue, failing the put.
func (b *ingestRun) measureObjectStore(ctx context.Context, syncAlways bool) (Measure, error) {
	name := "objstore-default"
	if syncAlways {
		name = "objstore-syncalways"
	}
	dir, err := b.subdir(name)
	if err != nil {
		return Measure{}, err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir,
		SyncAlways: syncAlways, NoLog: true, NoSigs: true,
	})
	if err != nil {
		return Measure{}, fmt.Errorf("embedded nats-server: %w", err)
	}
	ns.Start()
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if !ns.ReadyForConnections(10 * time.Second) {
		return Measure{}, errors.New("embedded nats-server not ready within 10s")
	}
	m, err := b.putObjectStore(ctx, ns.ClientURL())
	if err != nil {
		return Measure{}, err
	}
	if syncAlways {
		b.res.StoreSyncAlways = m
	} else {
		b.res.StoreDefault = m
	}
	return m, nil
}

func (b *ingestRun) putObjectStore(ctx context.Context, url string) (Measure, error) {
	nc, err := nats.Connect(url, nats.Name("skyfed-bench"))
	if err != nil {
		return Measure{}, fmt.Errorf("connect to embedded nats-server: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return Measure{}, fmt.Errorf("jetstream: %w", err)
	}
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: objectStoreBucket, Storage: jetstream.FileStorage})
	if err != nil {
		return Measure{}, fmt.Errorf("create object store: %w", err)
	}
	src := NewRandom(b.cfg.Seed, int64(b.cfg.Size))
	var total int64
	d, err := b.timed(func() error {
		for i, size := range randomObjects(int64(b.cfg.Size)) {
			name := fmt.Sprintf("random/object-%04d.bin", i)
			info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, io.LimitReader(src, size))
			if err != nil {
				return fmt.Errorf("object store put %s: %w", name, err)
			}
			if int64(info.Size) != size {
				return fmt.Errorf("object store put %s: stored %d bytes of %d", name, info.Size, size)
			}
			total += size
		}
		return nil
	})
	if err != nil {
		return Measure{}, err
	}
	return Measure{Bytes: total, Elapsed: d}, nil
}
