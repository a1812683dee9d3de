package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/chunk/bucket"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// ErrNotBucketSite: rebuild needs a site whose store is a bucket.
var ErrNotBucketSite = errors.New("the site's store is not a bucket")

// ErrIndexExists: rebuild makes a new index and will not touch one.
var ErrIndexExists = errors.New("the data dir already has an index")

// RebuildReport says what a rebuild found in the bucket.
type RebuildReport struct {
	Packs     int   `json:"packs"`
	Chunks    int   `json:"chunks"`
	RawBytes  int64 `json:"raw_bytes"`
	Manifests int   `json:"manifests"` // versions indexed again
	Collected int   `json:"collected"` // manifests garbage collection had removed: left out
	Refused   int   `json:"refused"`   // manifests the trust store refuses now
	// Unacknowledged counts this site's own versions whose chunks the
	// bucket lacks: their put failed after the manifest was put (every
	// acknowledged put of this site had its chunks durable first).
	Unacknowledged int `json:"unacknowledged"`
}

// Rebuild makes the index of the bucket site in dir again from its
// bucket, its key and skyfed.toml (all a replaced node has): every
// pack's records from its trailer, then every manifest of the manifest
// log that garbage collection did not remove, checked against the trust
// store as if it arrived. The arrival log starts empty, so the site
// offers its peers nothing again: what they lacked from it when the old
// node died is found by reconciliation. progress, if set, hears the
// counts after each pack and manifest log object.
func Rebuild(ctx context.Context, dir string, log *slog.Logger, progress func(RebuildReport)) (RebuildReport, error) {
	var rep RebuildReport
	cfg, err := LoadConfig(dir)
	if err != nil {
		return rep, err
	}
	key, err := LoadKey(dir)
	if err != nil {
		return rep, err
	}
	if !cfg.inBucket() {
		return rep, fmt.Errorf("%w: %s keeps local packs (store = %q)", ErrNotBucketSite, dir, cfg.Store)
	}
	indexDir := filepath.Join(dir, "index")
	if _, err := os.Stat(indexDir); err == nil {
		return rep, fmt.Errorf("%w: %s (move it away to rebuild from the bucket)", ErrIndexExists, indexDir)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Site{dir: dir, log: log, key: key, cfg: cfg, opts: Options{noLease: true}}
	packs, err := s.openPacks(cfg)
	if err != nil {
		return rep, err
	}
	defer s.bucket.Close()
	db, err := pebble.Open(indexDir, &pebble.Options{Logger: slogPebble{log}})
	if err != nil {
		return rep, fmt.Errorf("create index in %s: %w", dir, err)
	}
	defer db.Close()
	chunks, err := chunk.Open(db, chunk.Options{Packs: packs, Logger: log})
	if err != nil {
		return rep, err
	}
	defer chunks.Close()
	if err := adoptPacks(ctx, s.bucket, chunks, &rep, progress); err != nil {
		return rep, err
	}
	objects, err := naming.Open(db, chunks, naming.Config{
		Signer: key, Clock: manifest.NewClock(cfg.ID, time.Now), Now: time.Now, MaxSkew: maxClockSkew,
		Trust: newTrustStore(key.PublicKey(), cfg), ChunkSize: cfg.ChunkSize, FITSKeywords: cfg.fitsKeywords(),
	})
	if err != nil {
		return rep, err
	}
	if err := replayManifests(ctx, s.bucket, objects, chunks, key.PublicKey(), &rep, progress); err != nil {
		return rep, err
	}
	return rep, nil
}

func adoptPacks(ctx context.Context, b *bucket.Packs, chunks *chunk.Store, rep *RebuildReport, progress func(RebuildReport)) error {
	sizes, err := b.List()
	if err != nil {
		return err
	}
	for num, size := range sizes {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, err := b.Records(num, size)
		if err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		n, raw, err := chunks.Adopt(num, size, recs)
		if err != nil {
			return err
		}
		rep.Packs++
		rep.Chunks += n
		rep.RawBytes += raw
		if progress != nil {
			progress(*rep)
		}
	}
	return nil
}

func replayManifests(ctx context.Context, b *bucket.Packs, objects *naming.Store, chunks *chunk.Store, self manifest.PublicKey, rep *RebuildReport, progress func(RebuildReport)) error {
	// Collections come after the manifests they remove: a first pass
	// gathers them (IDs only), a second indexes the rest as it reads, so
	// memory grows with the collections, not with every manifest.
	collected := map[chunk.ID]bool{} // true once counted
	err := b.ReadManifests(ctx, func(e bucket.ManifestEntry) error {
		if e.Collected {
			collected[e.ID] = false
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	err = b.ReadManifests(ctx, func(e bucket.ManifestEntry) error {
		if e.Collected {
			return nil
		}
		if counted, ok := collected[e.ID]; ok {
			if !counted {
				collected[e.ID] = true
				rep.Collected++
			}
			return nil
		}
		return replayManifest(objects, chunks, self, e, rep, progress)
	})
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if progress != nil {
		progress(*rep)
	}
	return nil
}

// replayManifest indexes one manifest of the log, unless it is this
// site's own with chunks the bucket lacks or the trust store refuses it.
func replayManifest(objects *naming.Store, chunks *chunk.Store, self manifest.PublicKey, e bucket.ManifestEntry, rep *RebuildReport, progress func(RebuildReport)) error {
	m, err := manifest.Decode(e.Encoding)
	if err != nil || m.ID() != e.ID {
		return fmt.Errorf("manifest %s in the bucket does not decode to itself: %v", e.ID.Short(), err)
	}
	if m.Signer == self {
		if complete, err := allStored(chunks, m.Chunks); err != nil {
			return err
		} else if !complete {
			rep.Unacknowledged++
			return nil
		}
	}
	isNew, err := objects.Accept(m, naming.FromLocal)
	if errors.Is(err, naming.ErrUntrusted) || errors.Is(err, naming.ErrForbidden) || errors.Is(err, naming.ErrCollected) {
		rep.Refused++
		return nil
	}
	if err != nil {
		return fmt.Errorf("index %s: %w", e.ID.Short(), err)
	}
	if isNew { // a manifest put twice is in the log twice
		rep.Manifests++
		if progress != nil && rep.Manifests%1000 == 0 {
			progress(*rep)
		}
	}
	return nil
}

// slogPebble passes Pebble's errors to the rebuild's log.
type slogPebble struct{ log *slog.Logger }

func (slogPebble) Infof(string, ...any) {}
func (l slogPebble) Errorf(format string, args ...any) {
	l.log.Error("index: " + fmt.Sprintf(format, args...))
}
func (l slogPebble) Fatalf(format string, args ...any) {
	l.log.Error("index fatal: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}

// allStored reports whether every chunk is in the store.
func allStored(chunks *chunk.Store, ids []chunk.ID) (bool, error) {
	for _, id := range ids {
		if ok, err := chunks.Has(id); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
