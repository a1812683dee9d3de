package bucket

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// A node writes to the bucket only while it holds the lease, the object
// PREFIX/lease naming the node and until when it holds it, so a node
// presumed dead but still running cannot write beside its replacement.
// The lease is taken and renewed with conditional PUTs (If-None-Match: *
// for a new one, If-Match: the ETag read for one that expired or is
// ours), so two nodes racing for it cannot both win. The holder stops
// writing LeaseTTL/3 before the lease's expiry by its own clock and
// bounds each write to that margin, so its last write lands before a
// replacement may take over.

// LeaseTTL is how long a lease holds without renewal; it is renewed
// every LeaseTTL/6.
const LeaseTTL = 3 * time.Minute

var (
	// ErrLeased: another node holds the bucket's lease.
	ErrLeased = errors.New("the bucket is leased by another node")
	// ErrFenced: this node lost the lease (or could not renew it in
	// time) and writes no more.
	ErrFenced = errors.New("this node no longer holds the bucket's lease")
)

// leaseBody is the lease object.
type leaseBody struct {
	Node    string    `json:"node"`
	Site    string    `json:"site"`
	Host    string    `json:"host"`
	Dir     string    `json:"dir"` // the holder's data dir
	PID     int       `json:"pid"`
	Expires time.Time `json:"expires"`
}

// deadHere reports whether the lease's holder was a process on this host
// with this data dir that is gone (a crash, kill -9): its lease need
// not run out before the site starts again here.
func (b *leaseBody) deadHere(host, dir string) bool {
	if b.Host != host || b.Dir != dir || dir == "" || b.PID <= 0 {
		return false
	}
	p, err := os.FindProcess(b.PID)
	return err != nil || p.Signal(syscall.Signal(0)) != nil
}

// Lease is this node's hold on the bucket.
type Lease struct {
	p    *Packs
	ttl  time.Duration
	body leaseBody

	mu         sync.Mutex
	etag       string
	validUntil time.Time // writes stop here (local clock)
	lost       error     // set when another node took the lease
}

// AcquireLease takes the bucket's lease for site, whose data dir is dir,
// with the given TTL (0: LeaseTTL), or fails with ErrLeased naming the
// holder. A lease held by a process of this host and data dir that is
// gone is taken at once. The Packs then write only while it holds
// (Lease.Check).
func (p *Packs) AcquireLease(ctx context.Context, site, dir string, ttl time.Duration) (*Lease, error) {
	if ttl <= 0 {
		ttl = LeaseTTL
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	host, _ := os.Hostname()
	l := &Lease{p: p, ttl: ttl, body: leaseBody{Node: hex.EncodeToString(id[:]), Site: site, Host: host, Dir: dir, PID: os.Getpid()}}
	cur, etag, err := l.read(ctx)
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.Node != l.body.Node && time.Now().Before(cur.Expires) && !cur.deadHere(host, dir) {
		return nil, fmt.Errorf("%w: node %s of site %s on %s (pid %d) until %s; if that node is gone, start this one after then",
			ErrLeased, cur.Node, cur.Site, cur.Host, cur.PID, cur.Expires.UTC().Format(time.RFC3339))
	}
	if err := l.write(ctx, etag, cur == nil); err != nil {
		if isPreconditionFailed(err) {
			return nil, fmt.Errorf("%w: another node took it at the same moment", ErrLeased)
		}
		return nil, err
	}
	p.lease.Store(l)
	return l, nil
}

func (p *Packs) leaseKey() string { return p.Key("lease") }

// read returns the lease object and its ETag (nil if there is none).
func (l *Lease) read(ctx context.Context) (*leaseBody, string, error) {
	p := l.p
	var body []byte
	var etag string
	err := p.do(ctx, &p.stats.Gets, func(ctx context.Context) error {
		out, err := p.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(p.leaseKey())})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		etag = aws.ToString(out.ETag)
		body, err = io.ReadAll(io.LimitReader(out.Body, 64<<10))
		return err
	})
	if isNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the lease in %s: %w", p.Where(), err)
	}
	var b leaseBody
	if err := json.Unmarshal(body, &b); err != nil {
		// A damaged lease is nobody's: taken over like an expired one.
		return &leaseBody{Node: "(unreadable)"}, etag, nil
	}
	return &b, etag, nil
}

// write puts the lease with a fresh expiry, conditionally on the object
// being absent (fresh) or unchanged since it was read (etag).
func (l *Lease) write(ctx context.Context, etag string, fresh bool) error {
	start := time.Now()
	b := l.body
	b.Expires = start.Add(l.ttl)
	enc, _ := json.Marshal(b) // plain data: cannot fail
	p := l.p
	var newTag string
	err := p.do(ctx, &p.stats.Puts, func(ctx context.Context) error {
		in := &s3.PutObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(p.leaseKey()),
			Body: bytes.NewReader(enc), ContentLength: aws.Int64(int64(len(enc))), ContentType: aws.String("application/json")}
		if fresh {
			in.IfNoneMatch = aws.String("*")
		} else {
			in.IfMatch = aws.String(etag)
		}
		out, err := p.client.PutObject(ctx, in)
		if err == nil {
			newTag = aws.ToString(out.ETag)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("write the lease in %s: %w", p.Where(), err)
	}
	l.mu.Lock()
	l.etag, l.validUntil = newTag, start.Add(l.ttl-l.ttl/3)
	l.mu.Unlock()
	return nil
}

// isPreconditionFailed reports a conditional write that lost.
func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && (re.HTTPStatusCode() == 412 || re.HTTPStatusCode() == 409)
}

// Renew extends the lease. If another node took it meanwhile, the lease
// is lost for good (ErrFenced).
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	etag, lost := l.etag, l.lost
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	err := l.write(ctx, etag, false)
	if isPreconditionFailed(err) || isNotFound(err) {
		cur, _, _ := l.read(ctx)
		holder := "unknown"
		if cur != nil {
			holder = fmt.Sprintf("node %s of site %s on %s", cur.Node, cur.Site, cur.Host)
		}
		l.mu.Lock()
		l.lost = fmt.Errorf("%w: %s holds it now", ErrFenced, holder)
		lost = l.lost
		l.mu.Unlock()
		return lost
	}
	return err
}

// Run renews the lease every TTL/6 until ctx ends; a failed renewal is
// retried at the next tick (writes stop by themselves once the lease is
// no longer valid).
func (l *Lease) Run(ctx context.Context, onError func(error)) {
	t := time.NewTicker(l.ttl / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Renew(ctx); err != nil && ctx.Err() == nil && onError != nil {
				onError(err)
			}
		}
	}
}

// Check returns nil while this node may write: it holds the lease and
// its validity has not run out.
func (l *Lease) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if !time.Now().Before(l.validUntil) {
		return fmt.Errorf("%w: not renewed since %s", ErrFenced, l.validUntil.Add(-(l.ttl - l.ttl/3)).UTC().Format(time.RFC3339))
	}
	return nil
}

// margin is how long a write may still take once it began: it ends
// before the lease can expire.
func (l *Lease) margin() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Until(l.validUntil) + l.ttl/3
}

// Release gives the lease up (a clean stop), so a replacement need not
// wait for it to expire.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	etag, lost := l.etag, l.lost
	l.lost = fmt.Errorf("%w: released", ErrFenced)
	l.mu.Unlock()
	if lost != nil {
		return nil
	}
	p := l.p
	err := p.do(ctx, &p.stats.Deletes, func(ctx context.Context) error {
		_, err := p.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(p.leaseKey()), IfMatch: aws.String(etag)})
		return err
	})
	if err != nil && !isNotFound(err) && !isPreconditionFailed(err) {
		return fmt.Errorf("release the lease in %s: %w", p.Where(), err)
	}
	return nil
}
