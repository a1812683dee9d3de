package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// objectStoreBucket is the Object Store bucket the benchmark writes.
const objectStoreBucket = "skyfed-bench"

// measureObjectStore times a JetStream Object Store put of the same random
// stream, as one object, into an embedded nats-server whose file store is
// on the same disk, through a client connection over loopback TCP (as a
// skyfed client talks HTTP over loopback). The Object Store's own chunk
// size (128 KiB) is used, as its users would. With syncAlways the server
// fsyncs every message; otherwise it syncs in the background, and the
// timed file-system sync at the end makes the data durable.
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
	size := int64(b.cfg.Size)
	var info *jetstream.ObjectInfo
	d, err := b.timed(func() error {
		var err error
		info, err = obs.Put(ctx, jetstream.ObjectMeta{Name: "random/stream-0001.bin"}, NewRandom(b.cfg.Seed, size))
		return err
	})
	if err != nil {
		return Measure{}, fmt.Errorf("object store put: %w", err)
	}
	if int64(info.Size) != size {
		return Measure{}, fmt.Errorf("object store stored %d bytes of %d", info.Size, size)
	}
	return Measure{Bytes: size, Elapsed: d}, nil
}
