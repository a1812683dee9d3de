package bench

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
)

// IndexSizeConfig configures RunIndexSize.
type IndexSizeConfig struct {
	Chunks           int // chunks indexed (default 1,000,000)
	ChunksPerVersion int // chunks per version (default 8: 8 MiB frames of 1 MiB chunks)
	Dir              string
	Progress         io.Writer
}

// IndexSizeResult is what a site keeps locally for that many chunks.
type IndexSizeResult struct {
	Chunks, Versions int
	Bytes            int64 // the index dir after a full compaction
	TableBytes       int64 // of which its tables (the rest: log, manifest, options, fixed)
	// ByPrefix is the key and value bytes (before compression) per key
	// prefix: 'c' chunk index, 'a' arrival log, 'm' manifests, 'v'
	// versions, 'n' names, 's' content, 'q'/'Q' find, 'r' reconciliation…
	ByPrefix map[byte]int64
	Elapsed  time.Duration
}

// RunIndexSize measures the local index of a site whose payload is
// elsewhere (a bucket site keeps only this on its node): the chunk index
// entries, the arrival-log entries of the chunks and manifests, and the
// manifests with FITS header values and their version, name, content
// and find index entries, for Chunks chunks in versions of
// ChunksPerVersion chunks, as Pebble stores them after a full
// compaction. The chunks' records are indexed as a rebuild indexes them
// (chunk.Store.Adopt); no payload is written.
func RunIndexSize(ctx context.Context, cfg IndexSizeConfig) (*IndexSizeResult, error) {
	if cfg.Chunks <= 0 {
		cfg.Chunks = 1_000_000
	}
	if cfg.ChunksPerVersion <= 0 {
		cfg.ChunksPerVersion = 8
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	dir, err := os.MkdirTemp(cfg.Dir, "skyfed-bench-index-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	cache := pebble.NewCache(site.IndexCacheSize)
	defer cache.Unref()
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{Logger: quietPebbleLog{}, FS: noSyncFS{vfs.Default}, Cache: cache})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	chunks, err := chunk.Open(db, chunk.Options{Dir: filepath.Join(dir, "packs")})
	if err != nil {
		return nil, err
	}
	defer chunks.Close()
	arrivals, err := forward.OpenLog(db)
	if err != nil {
		return nil, err
	}
	stores := &forward.Stores{Chunks: chunks, Log: arrivals}
	key, err := manifest.KeyPairFromSeed(make([]byte, 32))
	if err != nil {
		return nil, err
	}
	clock := manifest.NewClock("bench", time.Now)
	objects, err := naming.Open(db, chunks, naming.Config{Signer: key, Clock: clock, Trust: ownDomain{key.PublicKey()}, Journal: stores})
	if err != nil {
		return nil, err
	}
	defer objects.Close()
	res := &IndexSizeResult{Chunks: cfg.Chunks}
	const perPack = 32 // 32 MiB packs of 1 MiB chunks
	for v := 0; v*cfg.ChunksPerVersion < cfg.Chunks; v++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(cfg.ChunksPerVersion, cfg.Chunks-v*cfg.ChunksPerVersion)
		ids := make([]chunk.ID, n)
		recs := make([]chunk.Record, n)
		for i := range ids {
			c := v*cfg.ChunksPerVersion + i
			ids[i] = sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(c)))
			recs[i] = chunk.Record{Offset: int64(c%perPack) * (1<<20 + chunk.RecordHeaderSize), ID: ids[i], Codec: chunk.CodecRaw, StoredLen: 1 << 20, RawLen: 1 << 20}
		}
		pack := uint32(v * cfg.ChunksPerVersion / perPack)
		if _, _, err := chunks.Adopt(pack, perPack*(1<<20+chunk.RecordHeaderSize), recs); err != nil {
			return nil, err
		}
		pb := db.NewBatch()
		if err := stores.Stage(pb, naming.Arrived{Chunks: ids, ChunkSize: func(chunk.ID) uint64 { return 1 << 20 }, From: "in:peer"}); err != nil {
			pb.Close()
			return nil, err
		}
		if err := pb.Commit(pebble.NoSync); err != nil {
			return nil, err
		}
		m := &manifest.Manifest{Name: fmt.Sprintf("%s/frames/%03d/%07d.fits", findDomain, v%1000, v), Stamp: clock.Now(),
			Size: int64(n) << 20, ChunkSize: 1 << 20, Chunks: ids, SHA256: sha256.Sum256(ids[0][:]), Meta: frameHeader(v)}
		m.Sign(key)
		if _, err := objects.Accept(m, "in:peer"); err != nil {
			return nil, err
		}
		res.Versions++
		if res.Versions%20_000 == 0 {
			fmt.Fprintf(cfg.Progress, "  %d versions, %d chunks\n", res.Versions, res.Versions*cfg.ChunksPerVersion)
		}
	}
	if res.ByPrefix, err = keyBytesByPrefix(db); err != nil {
		return nil, err
	}
	if err := db.Flush(); err != nil {
		return nil, err
	}
	if err := db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		return nil, err
	}
	res.TableBytes = db.Metrics().Total().TablesSize // live tables only
	res.Bytes, err = dirBytes(filepath.Join(dir, "index"))
	res.Elapsed = time.Since(start)
	return res, err
}

// keyBytesByPrefix sums key and value bytes by the key's first byte.
func keyBytesByPrefix(db *pebble.DB) (map[byte]int64, error) {
	out := map[byte]int64{}
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) > 0 {
			out[k[0]] += int64(len(k) + len(it.Value()))
		}
	}
	return out, it.Close()
}

// dirBytes returns the bytes of the files under dir.
func dirBytes(dir string) (n int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

// WriteTable prints the size.
func (r *IndexSizeResult) WriteTable(w io.Writer) error {
	per := float64(r.TableBytes) / float64(r.Chunks)
	_, err := fmt.Fprintf(w, "local index of a bucket site: %d chunks in %d versions (FITS header values, one peer link): tables %s after compaction (dir %s with Pebble's log and manifest), %.0f bytes per chunk = %s per million chunks (built in %s)\n",
		r.Chunks, r.Versions, ByteSize(r.TableBytes), ByteSize(r.Bytes), per, ByteSize(int64(per*1e6)), r.Elapsed.Round(time.Second))
	if err != nil {
		return err
	}
	names := map[byte]string{'c': "chunk index", 'a': "arrival log", 'm': "manifests", 'v': "versions", 'n': "names", 's': "content",
		'q': "find", 'Q': "find (cone)", 'r': "reconciliation", 'i': "incomplete", 'w': "waiting"}
	prefixes := slices.Sorted(maps.Keys(r.ByPrefix))
	slices.SortFunc(prefixes, func(a, b byte) int { return cmp.Compare(r.ByPrefix[b], r.ByPrefix[a]) })
	fmt.Fprint(w, "  per chunk, before compression:")
	for _, p := range prefixes {
		name := names[p]
		if name == "" {
			name = fmt.Sprintf("%q", p)
		}
		fmt.Fprintf(w, " %s %.0f B;", name, float64(r.ByPrefix[p])/float64(r.Chunks))
	}
	_, err = fmt.Fprintln(w)
	return err
}
