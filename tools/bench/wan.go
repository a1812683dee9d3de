package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/testlab"
)

// WANConfig says what `skyfed bench wan` measures: a line of site
// processes whose links the lab proxy shapes to a WAN's rate and round
// trip, and a satellite link.
type WANConfig struct {
	Size       ByteSize      // random bytes put at the line's first site; default 1 GB
	ObjectSize ByteSize      // size of each object put; default 64 MiB
	Sites      int           // sites on the line; default 3
	Rate       uint64        // bytes/s of each link; default 12.5 MB/s (100 Mbit/s)
	RTT        time.Duration // round trip of each link; default 100 ms
	// The satellite case: one link of SatRate and SatRTT carrying
	// SatSize of bulk, with a small object put once the bulk is under way.
	SatRate  uint64
	SatRTT   time.Duration
	SatSize  ByteSize
	NoSat    bool // skip the satellite case
	Binary   string
	Dir      string
	Progress io.Writer
}

func (c *WANConfig) defaults() {
	if c.Size == 0 {
		c.Size = 1e9
	}
	if c.ObjectSize == 0 {
		c.ObjectSize = 64 << 20
	}
	if c.Sites == 0 {
		c.Sites = 3
	}
	if c.Rate == 0 {
		c.Rate = 100e6 / 8
	}
	if c.RTT == 0 {
		c.RTT = 100 * time.Millisecond
	}
	if c.SatRate == 0 {
		c.SatRate = 1e6 / 8
	}
	if c.SatRTT == 0 {
		c.SatRTT = 600 * time.Millisecond
	}
	if c.SatSize == 0 {
		c.SatSize = 4 << 20
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// WANHop is one link of the line: the goodput a plain TCP stream got
// through its shaped proxy, and skyfed's, in wire bytes as the proxy
// counted them.
type WANHop struct {
	From, To   string
	TCP        Measure // plain TCP stream through the same proxy
	Skyfed     Measure // wire bytes from sender to receiver while the hop carried the data
	RawBytes   int64   // raw payload bytes the sender sent on the hop
	WireBytes  int64   // bytes the proxy carried toward the receiver during the run
	Timeouts   int64   // frame timeouts counted by both ends of the hop
	Duplicates int64   // payloads that arrived twice at the receiver
}

// Ratio is skyfed's goodput ÷ TCP's.
func (h WANHop) Ratio() float64 { return ratio(h.Skyfed.MBps(), h.TCP.MBps()) }

// WANResult is a whole run.
type WANResult struct {
	Machine    Machine
	Cfg        WANConfig
	Objects    int
	Chunks     int64
	Hops       []WANHop
	Completion time.Duration // first byte put to the last chunk and manifest at the far end
	// Bound is the pipelined bound, size/rate + (hops−1)·chunk/rate +
	// hops·RTT/2, at the rate the slowest hop's plain TCP stream got in
	// this run (what the shaped proxy delivers on this machine now);
	// NominalBound is the same at the rate the proxy was set to.
	Bound, NominalBound time.Duration
	Sat                 *WANSat
}

// RunWAN measures the line, then the satellite link.
func RunWAN(ctx context.Context, cfg WANConfig) (*WANResult, error) {
	cfg.defaults()
	if cfg.Binary == "" {
		return nil, errors.New("bench wan: no skyfed binary to run sites with")
	}
	if cfg.Sites < 2 {
		return nil, fmt.Errorf("bench wan: %d sites: need at least 2", cfg.Sites)
	}
	scratch, err := os.MkdirTemp(cfg.Dir, "skyfed-bench-wan-")
	if err != nil {
		return nil, fmt.Errorf("bench wan: %w", err)
	}
	defer os.RemoveAll(scratch)
	res := &WANResult{Machine: describeMachine(scratch), Cfg: cfg}
	res.Machine.LoadStart = loadAverage()
	if err := res.runLine(ctx, scratch); err != nil {
		return nil, err
	}
	if !cfg.NoSat {
		sat, err := runSatellite(ctx, cfg, scratch)
		if err != nil {
			return nil, err
		}
		res.Sat = sat
	}
	res.Machine.LoadEnd = loadAverage()
	return res, nil
}

// shape sets a proxy to a link of rate bytes/s and round trip rtt.
func shape(p *testlab.Proxy, rate uint64, rtt time.Duration) {
	p.SetLatency(rtt / 2)
	p.SetBandwidth(int64(rate))
}

func (r *WANResult) runLine(ctx context.Context, scratch string) error {
	cfg := r.Cfg
	fmt.Fprintf(cfg.Progress, "wan: line of %d site processes, links %s / %s round trip...\n", cfg.Sites, rateText(cfg.Rate), cfg.RTT)
	fed, err := testlab.StartProcessFederation(testlab.FedOptions{N: cfg.Sites, Topology: "line", Binary: cfg.Binary,
		Dir: scratch + "/line", Domain: benchDomain, ChunkSize: chunk.DefaultSize})
	if err != nil {
		return fmt.Errorf("bench wan: %w", err)
	}
	defer fed.Close()
	hops := cfg.Sites - 1
	proxies := make([]*testlab.Proxy, hops)
	for h := range hops {
		proxies[h] = fed.Proxy(h, h+1)
		shape(proxies[h], cfg.Rate, cfg.RTT)
	}
	if err := fed.WaitLinksUp(time.Minute); err != nil {
		return fmt.Errorf("bench wan: links: %w", err)
	}
	// The baseline: a plain TCP stream through each hop's proxy, all
	// hops at once (each proxy shapes its own traffic), about ten
	// seconds of the link's rate.
	fmt.Fprintln(cfg.Progress, "wan: plain TCP through each shaped proxy...")
	tcpSize := min(int64(cfg.Size), int64(cfg.Rate)*10)
	tcp := make([]Measure, hops)
	errs := make([]error, hops)
	var wg sync.WaitGroup
	for h := range hops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tcp[h], errs[h] = tcpThrough(ctx, proxies[h], tcpSize)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench wan: TCP baseline: %w", err)
	}
	fmt.Fprintf(cfg.Progress, "wan: putting %s as objects of %s at s0...\n", cfg.Size, cfg.ObjectSize)
	samp := startSampler(ctx, proxies, 20*time.Millisecond)
	before := make([]hopCounters, hops)
	for h := range hops {
		before[h] = readHop(fed, h)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchLinks(wctx, cfg.Progress, fed, hops, 2*time.Second)
	start := time.Now()
	putErr := make(chan error, 1)
	go func() { putErr <- putRandomObjects(fed, 0, "wan/obj", int64(cfg.Size), int64(cfg.ObjectSize)) }()
	far := cfg.Sites - 1
	var done time.Time
	err = waitFor(ctx, 30*time.Minute, func() error {
		select {
		case err := <-putErr:
			if err != nil {
				return fmt.Errorf("%w: %w", errStop, err)
			}
			putErr = nil
		default:
		}
		if putErr != nil {
			return errors.New("putting")
		}
		if err := holdsAll(fed, far); err != nil {
			return err
		}
		done = time.Now()
		return nil
	})
	series := samp.stop()
	stopWatch()
	if err != nil {
		return fmt.Errorf("bench wan: far end: %w", err)
	}
	r.Completion = done.Sub(start)
	total, _ := fed.UniqueChunks()
	r.Chunks, r.Objects = int64(total), len(fed.Puts())
	r.NominalBound = pipelinedBound(int64(cfg.Size), hops, float64(cfg.Rate), cfg.RTT)
	slowest := float64(cfg.Rate)
	for _, m := range tcp {
		slowest = min(slowest, m.MBps()*1e6)
	}
	r.Bound = pipelinedBound(int64(cfg.Size), hops, slowest, cfg.RTT)
	for h := range hops {
		after := readHop(fed, h)
		hop := WANHop{From: fed.ID(h), To: fed.ID(h + 1), TCP: tcp[h],
			RawBytes: after.raw - before[h].raw, Timeouts: after.timeouts - before[h].timeouts,
			Duplicates: after.dups - before[h].dups}
		hop.Skyfed, hop.WireBytes = series[h].goodput(start, done)
		r.Hops = append(r.Hops, hop)
	}
	return nil
}

// pipelinedBound is how soon size bytes can cross hops links of rate
// bytes/s and round trip rtt when every site relays each chunk as soon
// as it has it: the bytes at the rate, one chunk's time per hop after the
// first, half a round trip per hop.
func pipelinedBound(size int64, hops int, rate float64, rtt time.Duration) time.Duration {
	return seconds(float64(size)/rate + float64(hops-1)*float64(chunk.DefaultSize)/rate + float64(hops)*rtt.Seconds()/2)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// errStop makes waitFor's check give up at once.
var errStop = errors.New("stop")

// waitFor calls check every 50 ms until it returns nil, an error
// wrapping errStop, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || errors.Is(err, errStop) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// putRandomObjects puts size random bytes at site i as objects of
// objSize (the last one shorter), one after another.
func putRandomObjects(fed *testlab.ProcessFederation, i int, prefix string, size, objSize int64) error {
	for k := int64(0); k*objSize < size; k++ {
		n := min(objSize, size-k*objSize)
		if _, err := fed.PutRandom(i, fmt.Sprintf("%s-%05d", prefix, k), n, uint64(k+1)); err != nil {
			return err
		}
	}
	return nil
}

// holdsAll reports nil once site i holds every version and chunk put.
func holdsAll(fed *testlab.ProcessFederation, i int) error {
	st, err := fed.Status(i)
	if err != nil {
		return err
	}
	total, _ := fed.UniqueChunks()
	if st.Chunks < int64(total) || st.Versions < int64(len(fed.Puts())) || st.IncompleteVersions > 0 {
		return fmt.Errorf("%s holds %d of %d chunks, %d of %d versions", fed.ID(i), st.Chunks, total, st.Versions, len(fed.Puts()))
	}
	return nil
}

// hopCounters are the link counters of the hop from site h to h+1.
type hopCounters struct{ raw, timeouts, dups int64 }

func readHop(fed *testlab.ProcessFederation, h int) hopCounters {
	var c hopCounters
	if links, err := fed.Links(h); err == nil {
		for _, l := range links {
			if l.Peer == fed.ID(h+1) {
				c.raw += l.SentRawBytes
				c.timeouts += l.FrameTimeouts
			}
		}
	}
	if links, err := fed.Links(h + 1); err == nil {
		for _, l := range links {
			if l.Peer == fed.ID(h) {
				c.timeouts += l.FrameTimeouts
				c.dups += l.DuplicateChunks
			}
		}
	}
	return c
}

// tcpThrough streams size bytes through p to a sink of its own and
// returns the goodput from the first write to the sink's last read. The
// proxy is pointed at the sink only for the dial, then back at its
// target: the link's own connection stays as it is.
func tcpThrough(ctx context.Context, p *testlab.Proxy, size int64) (Measure, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Measure{}, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	target := p.Target()
	if err := p.SetTarget(ln.Addr().String()); err != nil {
		return Measure{}, err
	}
	conn, err := net.Dial("tcp", p.Addr())
	var sink net.Conn
	if err == nil {
		select {
		case sink = <-accepted:
		case <-time.After(5 * time.Second):
		}
	}
	p.SetTarget(target)
	if err != nil {
		return Measure{}, err
	}
	defer conn.Close()
	if sink == nil {
		return Measure{}, errors.New("the proxy did not connect to the sink")
	}
	defer sink.Close()
	type got struct {
		n    int64
		last time.Time
		err  error
	}
	read := make(chan got, 1)
	go func() {
		var g got
		buf := make([]byte, 256<<10)
		for {
			n, err := sink.Read(buf)
			if n > 0 {
				g.n += int64(n)
				g.last = time.Now()
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					g.err = err
				}
				read <- g
				return
			}
		}
	}()
	start := time.Now()
	if _, err := io.Copy(conn, testlab.RandomStream(7, size)); err != nil {
		return Measure{}, err
	}
	conn.(*net.TCPConn).CloseWrite()
	select {
	case g := <-read:
		if g.err != nil || g.n != size {
			return Measure{}, fmt.Errorf("sink got %d of %d bytes: %v", g.n, size, g.err)
		}
		return Measure{Bytes: size, Elapsed: g.last.Sub(start)}, nil
	case <-ctx.Done():
		return Measure{}, ctx.Err()
	}
}

// sampler records the bytes each proxy carried toward its target.
type sampler struct {
	stopc  chan struct{}
	done   chan struct{}
	series []series
}

type series struct {
	at    []time.Time
	bytes []int64
}

func startSampler(ctx context.Context, ps []*testlab.Proxy, every time.Duration) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{}), series: make([]series, len(ps))}
	take := func() {
		now := time.Now()
		for i, p := range ps {
			s.series[i].at = append(s.series[i].at, now)
			s.series[i].bytes = append(s.series[i].bytes, p.Stats().BytesUp)
		}
	}
	take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				take()
			case <-s.stopc:
				take()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

func (s *sampler) stop() []series {
	close(s.stopc)
	<-s.done
	return s.series
}

// goodputSlack is how many bytes below the final count (or above the
// first) still count as the hop's transfer having ended (or not begun):
// pings and offers cross the link while it is otherwise idle.
const goodputSlack = 64 << 10

// goodput returns the bytes carried between from and to and the time
// the hop took carrying them: from the last sample before they started
// flowing to the first sample that saw them all.
func (s series) goodput(from, to time.Time) (Measure, int64) {
	var base, final int64 = -1, 0
	for i, t := range s.at {
		if base < 0 && !t.Before(from) {
			base = s.bytes[i]
		}
		if !t.After(to) {
			final = s.bytes[i]
		}
	}
	if base < 0 || final <= base {
		return Measure{}, 0
	}
	var begin, end time.Time
	for i, t := range s.at {
		if t.Before(from) {
			continue
		}
		if s.bytes[i] <= base+goodputSlack {
			begin = t
		}
		if end.IsZero() && s.bytes[i] >= final-goodputSlack {
			end = t
		}
	}
	if !end.After(begin) {
		return Measure{}, final - base
	}
	return Measure{Bytes: final - base, Elapsed: end.Sub(begin)}, final - base
}

func rateText(bps uint64) string {
	return fmt.Sprintf("%g Mbit/s", float64(bps)*8/1e6)
}

// watchLinks prints, every period until ctx ends, how each sender's
// link to the next site stands: its window, rate, round trip and queue.
func watchLinks(ctx context.Context, w io.Writer, fed *testlab.ProcessFederation, hops int, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for h := range hops {
			links, err := fed.Links(h)
			if err != nil {
				continue
			}
			for _, l := range links {
				if l.Peer != fed.ID(h+1) {
					continue
				}
				win := l.Window
				fmt.Fprintf(w, "wan: %5.1fs %s→%s sent %s, manifests %d; window %s, in flight %s, rate %.2f MB/s, min RTT %.0f ms, queue %.0f ms, pacing %.2f MB/s\n",
					time.Since(start).Seconds(), fed.ID(h), l.Peer, ByteSize(l.SentRawBytes), l.SentManifests, ByteSize(win.Bytes), ByteSize(win.InFlight),
					win.DeliveryRate/1e6, win.MinRTTSeconds*1e3, win.QueueSeconds*1e3, win.PacingRate/1e6)
			}
		}
	}
}
