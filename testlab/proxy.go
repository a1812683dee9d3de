package testlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP proxy in front of one link, so the lab can fault the link
// without touching either site: cut it, drop its traffic, slow it, delay
// it. It listens on 127.0.0.1 and forwards each accepted connection to its
// target. All methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	up, down  *shaper      // client→target, target→client
	latency   atomic.Int64 // one-way delay in nanoseconds
	blackhole atomic.Bool

	mu     sync.Mutex
	target string // "" refuses every connection
	cut    bool
	conns  map[*proxyConn]struct{}

	accepted, refused, bytesUp, bytesDown, dropped atomic.Int64

	rec atomic.Pointer[Recording] // non-nil while recording
}

// Recording holds the bytes a proxy carried while it recorded, one
// stream per connection and direction, so a test can look for what must
// not cross the wire in clear.
type Recording struct {
	mu      sync.Mutex
	streams map[recordKey]*bytes.Buffer
}

type recordKey struct {
	conn *proxyConn
	up   bool
}

func (r *Recording) add(k recordKey, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	buf := r.streams[k]
	if buf == nil {
		buf = &bytes.Buffer{}
		r.streams[k] = buf
	}
	buf.Write(b)
}

// Streams returns a copy of every stream recorded.
func (r *Recording) Streams() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]byte, 0, len(r.streams))
	for _, b := range r.streams {
		out = append(out, bytes.Clone(b.Bytes()))
	}
	return out
}

// Record starts recording what the proxy carries (replacing an earlier
// recording) and returns the recording; StopRecording ends it.
func (p *Proxy) Record() *Recording {
	r := &Recording{streams: map[recordKey]*bytes.Buffer{}}
	p.rec.Store(r)
	return r
}

// StopRecording ends the recording.
func (p *Proxy) StopRecording() { p.rec.Store(nil) }

// ProxyStats counts what a proxy did.
type ProxyStats struct {
	Accepted  int64 // connections accepted and forwarded
	Refused   int64 // connections closed at once (cut, target down, closing)
	BytesUp   int64 // bytes forwarded client → target (counted as they are written)
	BytesDown int64 // bytes forwarded target → client (counted as they are written)
	Dropped   int64 // bytes dropped by the blackhole, both ways
}

// proxyDialTimeout bounds the dial to the target.
const proxyDialTimeout = 5 * time.Second

// proxyReadSize is the most one read takes: the unit of latency.
const proxyReadSize = 32 << 10

// proxyQueue bounds the segments in flight in one direction of one
// connection (read, not yet written): what a delayed link holds.
const proxyQueue = 256

// NewProxy starts a proxy to target (host:port) on a free 127.0.0.1 port.
// An empty target refuses connections until SetTarget.
func NewProxy(target string) (*Proxy, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: listen: %w", target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target, ln: ln, ctx: ctx, cancel: cancel,
		up: &shaper{}, down: &shaper{},
		conns: map[*proxyConn]struct{}{},
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.acceptLoop()
	}()
	return p, nil
}

// Addr returns the proxy's listen address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func checkTarget(target string) error {
	if target == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return fmt.Errorf("proxy target %q: %w", target, err)
	}
	return nil
}

// Target returns the address the proxy forwards to ("" while it has none).
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// SetTarget points new connections at target ("" refuses them, as while
// the target site is stopped and its port may go to someone else);
// connections already open stay as they are.
func (p *Proxy) SetTarget(target string) error {
	if err := checkTarget(target); err != nil {
		return err
	}
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	return nil
}

// Cut closes every connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.takeConns()
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// Heal lets new connections through again after Cut.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// IsCut reports whether the proxy refuses connections.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Blackhole, while on, keeps connections open but drops every byte both
// ways, as a route that loses all traffic. Turning it off forwards again
// from there: the streams have lost bytes, so the peers usually see a
// protocol error and reconnect.
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

// SetLatency adds a one-way delay d to every chunk of bytes read, in both
// directions; 0 removes it. Bytes read before the change keep their delay.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(0, d))) }

// SetBandwidth throttles each direction to bytesPerSec (0: unlimited),
// shared by all connections of the proxy: bytes leave one after another
// at that rate, as on a link of that rate, with no burst after a pause.
func (p *Proxy) SetBandwidth(bytesPerSec int64) {
	p.up.setRate(bytesPerSec)
	p.down.setRate(bytesPerSec)
}

// shaper is one direction of a link of a fixed rate: each segment takes
// its time on the wire after the ones before it. A token bucket would
// let a rested link carry its burst at once (an eighth of a second's
// worth, or two frames: two seconds of a 1 Mbit/s link), which no real
// link does and which fools a sender measuring the link's rate.
type shaper struct {
	mu   sync.Mutex
	bps  float64   // 0: unlimited
	free time.Time // when the link has sent everything given so far
}

// shaperSlack is how far behind the wall clock the link may be when a
// segment comes: a writer woken late by the scheduler catches up by this
// much instead of leaving the link idle for the delay.
const shaperSlack = 10 * time.Millisecond

func (s *shaper) setRate(bps int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bps = float64(max(0, bps))
}

// wait returns once n bytes given now have crossed the link, or ctx ended.
func (s *shaper) wait(ctx context.Context, n int) error {
	s.mu.Lock()
	if s.bps == 0 {
		s.mu.Unlock()
		return ctx.Err()
	}
	now := time.Now()
	start := s.free
	if early := now.Add(-shaperSlack); start.Before(early) {
		start = early
	}
	s.free = start.Add(time.Duration(float64(n) / s.bps * float64(time.Second)))
	d := s.free.Sub(now)
	s.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	return ProxyStats{
		Accepted: p.accepted.Load(), Refused: p.refused.Load(),
		BytesUp: p.bytesUp.Load(), BytesDown: p.bytesDown.Load(), Dropped: p.dropped.Load(),
	}
}

// Conns returns how many connections are open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops the proxy: it closes the listener and every connection and
// waits for its goroutines.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.mu.Lock()
	conns := p.takeConns()
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// takeConns empties the connection set; p.mu must be held.
func (p *Proxy) takeConns() []*proxyConn {
	out := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	clear(p.conns)
	return out
}

func (p *Proxy) acceptLoop() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(client)
		}()
	}
}

// serve forwards one accepted connection until either side closes or the
// proxy cuts it.
func (p *Proxy) serve(client net.Conn) {
	target := p.Target()
	if p.IsCut() || p.ctx.Err() != nil || target == "" {
		p.refused.Add(1)
		client.Close()
		return
	}
	d := net.Dialer{Timeout: proxyDialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", target)
	if err != nil {
		p.refused.Add(1)
		client.Close()
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	c := &proxyConn{client: client, server: server, cancel: cancel}
	p.mu.Lock()
	if p.cut || p.ctx.Err() != nil {
		p.mu.Unlock()
		p.refused.Add(1)
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	p.accepted.Add(1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(ctx, c, true, p.up, &p.bytesUp) }()
	go func() { defer wg.Done(); p.pipe(ctx, c, false, p.down, &p.bytesDown) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// proxyConn is one forwarded connection.
type proxyConn struct {
	client, server net.Conn
	cancel         context.CancelFunc
	once           sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.cancel()
		c.client.Close()
		c.server.Close()
	})
}

// segment is bytes read from one side, stamped with when they were read.
// segmentBufs recycles the proxy's read buffers: a bench moves GiBs
// through its proxies, and a fresh buffer per read cost both systems
// under test garbage collection the proxy had caused.
var segmentBufs = sync.Pool{New: func() any { b := make([]byte, proxyReadSize); return &b }}

func putSegmentBuf(b []byte) {
	b = b[:proxyReadSize]
	segmentBufs.Put(&b)
}

type segment struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst through a queue: a reader stamps what it reads
// (or drops it into the blackhole), a writer delivers it after the latency
// and within the bandwidth. Either side ending closes the connection.
func (p *Proxy) pipe(ctx context.Context, c *proxyConn, up bool, lim *shaper, count *atomic.Int64) {
	src, dst := c.server, c.client
	if up {
		src, dst = c.client, c.server
	}
	key := recordKey{conn: c, up: up}
	q := make(chan segment, proxyQueue)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(q)
		p.readSegments(ctx, src, key, q)
	}()
	p.writeSegments(ctx, dst, q, lim, count)
	c.close()
	wg.Wait()
}

func (p *Proxy) readSegments(ctx context.Context, src net.Conn, key recordKey, q chan<- segment) {
	for {
		buf := *segmentBufs.Get().(*[]byte)
		n, err := src.Read(buf)
		if n > 0 {
			if r := p.rec.Load(); r != nil {
				r.add(key, buf[:n])
			}
			if p.blackhole.Load() {
				p.dropped.Add(int64(n))
				putSegmentBuf(buf)
			} else {
				select {
				case q <- segment{b: buf[:n], at: time.Now()}:
				case <-ctx.Done():
					putSegmentBuf(buf)
					return
				}
			}
		} else {
			putSegmentBuf(buf)
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) writeSegments(ctx context.Context, dst net.Conn, q <-chan segment, lim *shaper, count *atomic.Int64) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var s segment
		select {
		case seg, ok := <-q:
			if !ok {
				return
			}
			s = seg
		case <-ctx.Done():
			return
		}
		if wait := time.Until(s.at.Add(time.Duration(p.latency.Load()))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		if err := lim.wait(ctx, len(s.b)); err != nil {
			return
		}
		if p.blackhole.Load() {
			p.dropped.Add(int64(len(s.b)))
			putSegmentBuf(s.b)
			continue
		}
		// Counted before the write, so that whoever got the bytes (or an
		// answer to them) sees them counted; what the write did not
		// deliver is taken back.
		count.Add(int64(len(s.b)))
		n, err := dst.Write(s.b)
		putSegmentBuf(s.b)
		if err != nil {
			count.Add(int64(n - len(s.b)))
			return
		}
	}
}
