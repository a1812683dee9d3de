package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/skyfed/skyfed/testlab"
)

// JetStreamVariant is one way its users run a JetStream mirror chain.
type JetStreamVariant struct {
	Compression string // leafnode compression: server.CompressionOff or server.CompressionS2Fast
	SyncAlways  bool   // sync_interval: always (else the default, a sync every 2 minutes)
}

func (v JetStreamVariant) String() string {
	sync := "default sync"
	if v.SyncAlways {
		sync = "sync always"
	}
	return "JetStream " + v.Compression + ", " + sync
}

// jetStreamVariants are the four the comparison runs; the goal is
// measured against the second (what JetStream's users run).
var jetStreamVariants = []JetStreamVariant{
	{Compression: server.CompressionOff},
	{Compression: server.CompressionS2Fast},
	{Compression: server.CompressionOff, SyncAlways: true},
	{Compression: server.CompressionS2Fast, SyncAlways: true},
}

// goalVariant is the JetStream the goals compare with.
var goalVariant = JetStreamVariant{Compression: server.CompressionS2Fast}

// mirrorStream is the Object Store's stream, and the name of every
// mirror of it (each site is its own JetStream domain).
const mirrorStream = "OBJ_" + objectStoreBucket

// jsFed is a chain of JetStream servers, one per site, each its own
// domain, joined by leafnodes through byte-counting proxies (the edge
// [a, b] is a's remote to b's leafnode port), with an Object Store at
// site 0 and every other site mirroring its parent's stream.
type jsFed struct {
	servers []*server.Server
	opts    []*server.Options
	conns   []*nats.Conn
	proxies []*testlab.Proxy
	parent  []int // in the mirror tree; -1 for site 0
	order   []int // sites in mirror order (parents first)
}

// startJetStreamFed starts n servers in dir linked by edges, which must
// form a tree (leafnodes refuse cycles), and sets up the mirrors.
func startJetStreamFed(ctx context.Context, dir string, n int, edges [][2]int, v JetStreamVariant) (_ *jsFed, err error) {
	f := &jsFed{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	f.parent, f.order, err = mirrorTree(n, edges)
	if err != nil {
		return nil, err
	}
	remotes := make([][]*server.RemoteLeafOpts, n)
	for _, e := range edges {
		// The proxy learns its target once the acceptor listens.
		p, err := testlab.NewProxy("")
		if err != nil {
			return nil, err
		}
		f.proxies = append(f.proxies, p)
		u, _ := url.Parse("nats-leaf://" + p.Addr())
		remotes[e[0]] = append(remotes[e[0]], &server.RemoteLeafOpts{URLs: []*url.URL{u},
			Compression: server.CompressionOpts{Mode: v.Compression}})
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("js%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, JetStreamDomain: testlab.SiteID(i), StoreDir: filepath.Join(dir, testlab.SiteID(i)),
			SyncAlways: v.SyncAlways, NoLog: true, NoSigs: true,
			LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: server.RANDOM_PORT, ReconnectInterval: 50 * time.Millisecond,
				Compression: server.CompressionOpts{Mode: v.Compression}, Remotes: remotes[i]},
		}
		ns, err := server.NewServer(o)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server %d: %w", i, err)
		}
		ns.Start()
		f.servers, f.opts = append(f.servers, ns), append(f.opts, o)
		if !ns.ReadyForConnections(10 * time.Second) {
			return nil, fmt.Errorf("embedded nats-server %d not ready within 10s", i)
		}
	}
	for k, e := range edges {
		if err := f.proxies[k].SetTarget(fmt.Sprintf("127.0.0.1:%d", f.opts[e[1]].LeafNode.Port)); err != nil {
			return nil, err
		}
	}
	if err := poll(ctx, "leafnodes up", func() bool {
		deg := make([]int, n)
		for _, e := range edges {
			deg[e[0]]++
			deg[e[1]]++
		}
		for i, ns := range f.servers {
			if ns.NumLeafNodes() != deg[i] {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	for i, ns := range f.servers {
		nc, err := nats.Connect(ns.ClientURL(), nats.Name(fmt.Sprintf("skyfed-bench-%d", i)))
		if err != nil {
			return nil, fmt.Errorf("connect to embedded nats-server %d: %w", i, err)
		}
		f.conns = append(f.conns, nc)
	}
	js, err := jetstream.New(f.conns[0])
	if err != nil {
		return nil, err
	}
	if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: objectStoreBucket, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("create object store: %w", err)
	}
	for _, i := range f.order[1:] {
		js, err := jetstream.New(f.conns[i])
		if err != nil {
			return nil, err
		}
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: mirrorStream, Storage: jetstream.FileStorage,
			Mirror: &jetstream.StreamSource{Name: mirrorStream, Domain: testlab.SiteID(f.parent[i])}})
		if err != nil {
			return nil, fmt.Errorf("mirror at site %d of site %d: %w", i, f.parent[i], err)
		}
	}
	return f, nil
}

// mirrorTree returns each site's parent in the tree edges form rooted at
// site 0, and the sites parents first; edges with a cycle or that leave a
// site out are refused.
func mirrorTree(n int, edges [][2]int) (parent, order []int, err error) {
	if len(edges) != n-1 {
		return nil, nil, fmt.Errorf("JetStream mirrors need a tree over leafnodes (they refuse cycles): %d links for %d sites", len(edges), n)
	}
	adj := make([][]int, n)
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	parent = make([]int, n)
	for i := range parent {
		parent[i] = -2
	}
	parent[0] = -1
	order = []int{0}
	for k := 0; k < len(order); k++ {
		for _, j := range adj[order[k]] {
			if parent[j] == -2 {
				parent[j] = order[k]
				order = append(order, j)
			}
		}
	}
	if len(order) != n {
		return nil, nil, errors.New("JetStream mirrors: the links do not reach every site")
	}
	return parent, order, nil
}

// wireBytes is what the leafnode proxies carried so far, both ways.
func (f *jsFed) wireBytes() int64 {
	var n int64
	for _, p := range f.proxies {
		s := p.Stats()
		n += s.BytesUp + s.BytesDown
	}
	return n
}

func (f *jsFed) close() {
	for _, nc := range f.conns {
		nc.Close()
	}
	for _, ns := range f.servers {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	for _, p := range f.proxies {
		p.Close()
	}
}

// jetStreamOnce puts the data set into the Object Store at site 0 and
// times it until every mirror holds every message of its stream.
func jetStreamOnce(ctx context.Context, scratch, topo string, n int, v JetStreamVariant, data dataSet) (convergeRun, error) {
	dir, err := os.MkdirTemp(scratch, "js-"+topo+"-")
	if err != nil {
		return convergeRun{}, err
	}
	defer os.RemoveAll(dir)
	edges, err := testlab.Topology(topo, n, 1)
	if err != nil {
		return convergeRun{}, err
	}
	f, err := startJetStreamFed(ctx, dir, n, edges, v)
	if err != nil {
		return convergeRun{}, err
	}
	defer f.close()
	js, err := jetstream.New(f.conns[0])
	if err != nil {
		return convergeRun{}, err
	}
	obs, err := js.ObjectStore(ctx, objectStoreBucket)
	if err != nil {
		return convergeRun{}, err
	}
	wire0, cpu0 := f.wireBytes(), processCPU()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(putParallel)
	for i := range data.count() {
		g.Go(func() error {
			name, r, size := data.object(i)
			info, err := obs.Put(gctx, jetstream.ObjectMeta{Name: name}, r)
			if err != nil {
				return fmt.Errorf("object store put %s: %w", name, err)
			}
			if int64(info.Size) != size {
				return fmt.Errorf("object store put %s: stored %d bytes of %d", name, info.Size, size)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return convergeRun{}, err
	}
	ingest := time.Since(start)
	origin, err := js.Stream(ctx, mirrorStream)
	if err != nil {
		return convergeRun{}, err
	}
	info, err := origin.Info(ctx)
	if err != nil {
		return convergeRun{}, err
	}
	last := info.State.LastSeq
	mirrors := make([]jetstream.Stream, 0, n-1)
	for _, i := range f.order[1:] {
		mjs, err := jetstream.New(f.conns[i])
		if err != nil {
			return convergeRun{}, err
		}
		s, err := mjs.Stream(ctx, mirrorStream)
		if err != nil {
			return convergeRun{}, err
		}
		mirrors = append(mirrors, s)
	}
	var pollErr error
	err = pollFine(ctx, "JetStream mirrors", func() bool {
		for len(mirrors) > 0 {
			info, err := mirrors[0].Info(ctx)
			if err != nil {
				pollErr = err
				return true
			}
			if info.State.LastSeq < last {
				return false
			}
			mirrors = mirrors[1:] // done: a mirror only grows
		}
		return true
	})
	if err == nil {
		err = pollErr
	}
	if err != nil {
		return convergeRun{}, err
	}
	return convergeRun{Converge: time.Since(start), Ingest: ingest, Wire: f.wireBytes() - wire0, CPU: processCPU() - cpu0}, nil
}
