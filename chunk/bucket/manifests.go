package bucket

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/skyfed/skyfed/chunk"
)

// The manifest log keeps a bucket site's signed manifests in the bucket
// beside its packs, so that the bucket, the key and skyfed.toml are all a
// rebuild needs. Objects PREFIX/manifests/<unix ns, 16 hex>-<random, 8
// hex>.mlog hold the manifests (and the collections by garbage
// collection) of the commits that overlapped: a commit waits for the PUT
// that holds its manifest, and commits that arrive while one PUT runs go
// together in the next (group commit). Names sort in commit order.
//
// An object: entries, each kind(1) | ID(32) | length(4, big endian) |
// bytes (the manifest's encoding; none for a collection), then
// sha256(entries)(32) | magic(8).
const (
	mlogMagic = "SKYFMLG1"
	// Entry kinds.
	mlogManifest  = 1
	mlogCollected = 2
	// maxMlogEntry bounds one entry a reader accepts (a manifest of
	// 10^6 chunks is ~32 MB; none is near that in practice).
	maxMlogEntry = 64 << 20
)

// ErrBadManifestLog says a manifest log object is damaged.
var ErrBadManifestLog = errors.New("bad manifest log object")

// ManifestLog appends to the bucket's manifest log.
type ManifestLog struct {
	p *Packs

	mu      sync.Mutex
	pending []byte       // entries not yet put
	waiters []chan error // their commits
	leader  bool         // a caller is putting a group now
	last    time.Time    // the last object's time, so names keep rising
}

// Manifests returns the bucket's manifest log.
func (p *Packs) Manifests() *ManifestLog { return &ManifestLog{p: p} }

// Put adds a manifest (its ID and encoding) and returns once it is in
// the bucket.
func (l *ManifestLog) Put(id chunk.ID, enc []byte) error {
	return l.append(appendMlogEntry(nil, mlogManifest, id, enc))
}

// Collected records that garbage collection removed these manifests, so
// a rebuild does not bring them back.
func (l *ManifestLog) Collected(ids []chunk.ID) error {
	var b []byte
	for _, id := range ids {
		b = appendMlogEntry(b, mlogCollected, id, nil)
	}
	return l.append(b)
}

func appendMlogEntry(b []byte, kind byte, id chunk.ID, enc []byte) []byte {
	b = append(b, kind)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(enc)))
	return append(b, enc...)
}

// append queues entries and waits for the PUT that holds them. The
// first caller to find no PUT running puts everything queued, then
// whatever queued meanwhile, until nothing is left; the others wait.
func (l *ManifestLog) append(entries []byte) error {
	done := make(chan error, 1)
	l.mu.Lock()
	l.pending = append(l.pending, entries...)
	l.waiters = append(l.waiters, done)
	if l.leader {
		l.mu.Unlock()
		return <-done
	}
	l.leader = true
	for len(l.waiters) > 0 {
		group, waiters := l.pending, l.waiters
		l.pending, l.waiters = nil, nil
		now := time.Now()
		if !now.After(l.last) {
			now = l.last.Add(time.Nanosecond)
		}
		l.last = now
		l.mu.Unlock()
		err := l.put(now, group)
		for _, w := range waiters {
			w <- err
		}
		l.mu.Lock()
	}
	l.leader = false
	l.mu.Unlock()
	return <-done
}

func (l *ManifestLog) put(at time.Time, entries []byte) error {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	key := l.p.Key(fmt.Sprintf("manifests/%016x-%s.mlog", at.UnixNano(), hex.EncodeToString(rnd[:])))
	body := mlogObject(entries)
	p := l.p
	ctx, cancel, err := p.fenced(context.Background())
	if err != nil {
		return fmt.Errorf("put manifests in %s: %w", p.Where(), err)
	}
	defer cancel()
	err = p.do(ctx, &p.stats.Puts, func(ctx context.Context) error {
		_, err := p.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
		return err
	})
	if err != nil {
		return fmt.Errorf("put manifests in %s: %w", p.Where(), err)
	}
	p.stats.BytesUp.Add(int64(len(body)))
	return nil
}

// mlogObject returns the object holding entries: them, their hash, the magic.
func mlogObject(entries []byte) []byte {
	sum := sha256.Sum256(entries)
	return append(append(entries, sum[:]...), mlogMagic...)
}

// ManifestEntry is one entry of the manifest log as a rebuild reads it.
type ManifestEntry struct {
	ID        chunk.ID
	Encoding  []byte // nil for a collection
	Collected bool
}

// parseMlog checks and decodes one manifest log object.
func parseMlog(b []byte) ([]ManifestEntry, error) {
	if len(b) < sha256.Size+len(mlogMagic) || string(b[len(b)-len(mlogMagic):]) != mlogMagic {
		return nil, fmt.Errorf("%w: no magic", ErrBadManifestLog)
	}
	entries := b[:len(b)-len(mlogMagic)-sha256.Size]
	if sha256.Sum256(entries) != [sha256.Size]byte(b[len(entries):len(entries)+sha256.Size]) {
		return nil, fmt.Errorf("%w: hash mismatch", ErrBadManifestLog)
	}
	var out []ManifestEntry
	for len(entries) > 0 {
		if len(entries) < 37 {
			return nil, fmt.Errorf("%w: short entry", ErrBadManifestLog)
		}
		kind, n := entries[0], binary.BigEndian.Uint32(entries[33:37])
		if (kind != mlogManifest && kind != mlogCollected) || n > maxMlogEntry || int(n) > len(entries)-37 || (kind == mlogCollected) != (n == 0) {
			return nil, fmt.Errorf("%w: entry of kind %d and %d bytes", ErrBadManifestLog, kind, n)
		}
		e := ManifestEntry{ID: chunk.ID(entries[1:33]), Collected: kind == mlogCollected}
		if n > 0 {
			e.Encoding = bytes.Clone(entries[37 : 37+n])
		}
		out = append(out, e)
		entries = entries[37+n:]
	}
	return out, nil
}

// ReadManifests calls fn with every entry of the manifest log, oldest
// object first, entries in the order they were committed.
func (p *Packs) ReadManifests(ctx context.Context, fn func(ManifestEntry) error) error {
	var keys []string
	err := p.list(ctx, p.Key("manifests/"), func(key string, _ int64) {
		if strings.HasSuffix(key, ".mlog") {
			keys = append(keys, key)
		}
	})
	if err != nil {
		return fmt.Errorf("list manifests in %s: %w", p.Where(), err)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var body []byte
		err := p.do(ctx, &p.stats.Gets, func(ctx context.Context) error {
			out, err := p.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(k)})
			if err != nil {
				return err
			}
			defer out.Body.Close()
			body, err = io.ReadAll(io.LimitReader(out.Body, 1<<30))
			return err
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", k, err)
		}
		p.stats.BytesDown.Add(int64(len(body)))
		entries, err := parseMlog(body)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}
