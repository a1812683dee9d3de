package site

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	dto "github.com/prometheus/client_model/go"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
)

// connz returns the open client connections of the site's embedded NATS
// server, with their users.
func connz(t *testing.T, s *testSite) []*server.ConnInfo {
	t.Helper()
	if s.nats == nil {
		t.Fatalf("%s runs no embedded NATS server", s.Config().ID)
	}
	cz, err := s.nats.Connz(&server.ConnzOptions{Username: true, Limit: 1 << 16})
	if err != nil {
		t.Fatalf("connz: %v", err)
	}
	return cz.Conns
}

// connNamed returns the one open connection called name.
func connNamed(t *testing.T, s *testSite, name string) (*server.ConnInfo, error) {
	t.Helper()
	var found []*server.ConnInfo
	var names []string
	for _, c := range connz(t, s) {
		names = append(names, c.Name)
		if c.Name == name {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%d connections named %q on %s's server (names %q)", len(found), name, s.Config().ID, names)
	}
	return found[0], nil
}

// counterObject is one object of the byte-counter test.
type counterObject struct {
	name string
	data []byte
}

// lowEntropy returns n seeded bytes that zstd compresses to about a third.
func lowEntropy(seed uint64, n int) []byte {
	b := seeded(seed, n)
	for i := range b {
		b[i] &= 0x07
	}
	return b
}

// uniqueChunks returns the distinct chunks the objects split into at
// chunkSize, and their raw bytes.
func uniqueChunks(objs []counterObject, chunkSize int) (map[chunk.ID]int, int64) {
	ids := map[chunk.ID]int{}
	var raw int64
	for _, o := range objs {
		for off := 0; off < len(o.data); off += chunkSize {
			c := o.data[off:min(off+chunkSize, len(o.data))]
			id := chunk.Sum(c)
			if _, ok := ids[id]; !ok {
				ids[id] = len(c)
				raw += int64(len(c))
			}
		}
	}
	return ids, raw
}

// 3: what a link's counters say crossed the wire is what the peer's NATS
// server counted for the link's connection, and what the receiver says
// it stored is exactly what was put.
func TestLinkByteCountersMatchServer(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	waitLinkUp(t, a, "beta", forward.DirOut)
	objs := []counterObject{
		{"gloria.eu/counters/noise.fits", seeded(41, 2<<20)},               // incompressible
		{"gloria.eu/counters/low.fits", lowEntropy(42, 1<<20+12345)},       // compressible, unique chunks
		{"gloria.eu/counters/flat.fits", make([]byte, 1<<20+100)},          // 17 chunks, 2 unique
		{"gloria.eu/counters/noise-again.fits", seeded(41, 2<<20)[:1<<20]}, // all chunks already put
	}
	for _, o := range objs {
		if resp, body := a.do(t, "PUT", "/o/"+o.name, bytes.NewReader(o.data)); resp.StatusCode != 201 {
			t.Fatalf("PUT %s: %d %s", o.name, resp.StatusCode, body)
		}
	}
	for _, o := range objs {
		waitReplicated(t, b, o.name, o.data)
	}
	waitBacklogs(t, a, b)
	ids, rawChunkBytes := uniqueChunks(objs, a.Config().ChunkSize)
	var manifestBytes int64
	for _, o := range objs {
		m, err := a.Objects().Latest(naming.MustParseName(o.name))
		if err != nil {
			t.Fatal(err)
		}
		manifestBytes += int64(len(m.Encode()))
	}

	t.Run("stored exactly what was put", func(t *testing.T) {
		out := linkRow(a.Links(), "beta", forward.DirOut)
		in := linkRow(b.Links(), "alpha", forward.DirIn)
		if out == nil || in == nil {
			t.Fatalf("links: alpha %+v, beta %+v", a.Links(), b.Links())
		}
		want := []struct {
			what      string
			got, want int64
		}{
			{"beta received_chunks", in.ReceivedChunks, int64(len(ids))},
			{"beta received_manifests", in.ReceivedManifests, int64(len(objs))},
			{"beta received_raw_bytes (chunks + manifests)", in.ReceivedRawBytes, rawChunkBytes + manifestBytes},
			{"beta duplicates", in.Duplicates, 0},
			{"beta rejected", in.Rejected, 0},
			{"alpha sent_chunks", out.SentChunks, int64(len(ids))},
			{"alpha sent_manifests", out.SentManifests, int64(len(objs))},
			{"alpha sent_raw_bytes (chunks + manifests)", out.SentRawBytes, rawChunkBytes + manifestBytes},
			{"alpha offered", out.Offered, int64(len(ids) + len(objs))},
			{"alpha wanted", out.Wanted, int64(len(ids) + len(objs))},
			{"beta chunks stored", b.Chunks().Stats().Chunks, int64(len(ids))},
			{"beta raw bytes stored", b.Chunks().Stats().RawBytes, rawChunkBytes},
		}
		for _, w := range want {
			if w.got != w.want {
				t.Errorf("%s = %d, want %d", w.what, w.got, w.want)
			}
		}
		for name, v := range map[string]int64{
			"skyfed_link_received_chunks_total":    in.ReceivedChunks,
			"skyfed_link_received_raw_bytes_total": in.ReceivedRawBytes,
			"skyfed_link_received_manifests_total": in.ReceivedManifests,
		} {
			if m := metric(t, b, name, "peer", "alpha", "direction", "in"); m != float64(v) {
				t.Errorf("beta's %s = %v, status says %d", name, m, v)
			}
		}
		if out.SentWireBytes >= out.SentRawBytes {
			t.Errorf("alpha sent %d wire bytes for %d raw: the compressible objects were not shipped compressed", out.SentWireBytes, out.SentRawBytes)
		}
	})

	t.Run("wire counters equal the server's", func(t *testing.T) {
		eventually(t, 10*time.Second, "link counters equal to beta's NATS server's Connz of alpha's connection", func() error {
			return wireCountersAgree(t, a, b)
		})
	})
}

// waitReplicated waits for name to read as want at s, allowing for the
// race detector's slowness on a loaded machine.
func waitReplicated(t *testing.T, s *testSite, name string, want []byte) {
	t.Helper()
	eventually(t, 20*time.Second, name+" at "+s.Config().ID, func() error {
		m, err := s.Objects().Latest(naming.MustParseName(name))
		if err != nil {
			return err
		}
		got, err := io.ReadAll(s.Objects().NewReader(m, 0, m.Size))
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("read %d bytes (err %v), want %d", len(got), err, len(want))
		}
		return nil
	})
}

// waitBacklogs waits until every link of the sites has nothing unconfirmed.
func waitBacklogs(t *testing.T, sites ...*testSite) {
	t.Helper()
	eventually(t, 10*time.Second, "backlogs drained", func() error {
		for _, s := range sites {
			for _, l := range s.Links() {
				if l.Backlog != 0 {
					return fmt.Errorf("%s link %s:%s backlog %d", s.Config().ID, l.Direction, l.Peer, l.Backlog)
				}
			}
		}
		return nil
	})
}

// wireCountersAgree compares, at a quiet instant, alpha's out-link and
// beta's in-link counters with beta's server's statistics of alpha's
// connection. nats-server counts payload bytes (headers included, none
// here; protocol lines and PING/PONG excluded) and messages, inbound as
// parsed (before permission checks) and outbound as delivered.
func wireCountersAgree(t *testing.T, a, b *testSite) error {
	t.Helper()
	type snap struct {
		out, in             *forward.LinkStatus
		sentMsgs, recvMsgs  float64
		bSentMsgs, bRecvMsg float64
	}
	take := func() (snap, error) {
		s := snap{out: linkRow(a.Links(), "beta", forward.DirOut), in: linkRow(b.Links(), "alpha", forward.DirIn)}
		if s.out == nil || s.in == nil {
			return s, fmt.Errorf("links missing: alpha %+v beta %+v", a.Links(), b.Links())
		}
		s.sentMsgs = metric(t, a, "skyfed_link_sent_messages_total", "peer", "beta", "direction", "out")
		s.recvMsgs = metric(t, a, "skyfed_link_received_messages_total", "peer", "beta", "direction", "out")
		s.bSentMsgs = metric(t, b, "skyfed_link_sent_messages_total", "peer", "alpha", "direction", "in")
		s.bRecvMsg = metric(t, b, "skyfed_link_received_messages_total", "peer", "alpha", "direction", "in")
		return s, nil
	}
	s1, err := take()
	if err != nil {
		return err
	}
	c, err := connNamed(t, b, "skyfed alpha → beta")
	if err != nil {
		return err
	}
	s2, err := take()
	if err != nil {
		return err
	}
	wire := func(l *forward.LinkStatus) [4]int64 {
		return [4]int64{l.SentWireBytes, l.ReceivedWireBytes, l.SentRawBytes, l.ReceivedRawBytes}
	}
	if wire(s1.out) != wire(s2.out) || wire(s1.in) != wire(s2.in) || s1.sentMsgs != s2.sentMsgs || s1.recvMsgs != s2.recvMsgs ||
		s1.bSentMsgs != s2.bSentMsgs || s1.bRecvMsg != s2.bRecvMsg {
		return fmt.Errorf("counters moved while reading (pings in flight)")
	}
	var problems []string
	check := func(what string, got, want int64) {
		if got != want {
			problems = append(problems, fmt.Sprintf("%s = %d, server counted %d (diff %d)", what, got, want, got-want))
		}
	}
	check("alpha sent_wire_bytes", s1.out.SentWireBytes, c.InBytes)
	check("alpha received_wire_bytes", s1.out.ReceivedWireBytes, c.OutBytes)
	check("beta's in-link received_wire_bytes", s1.in.ReceivedWireBytes, c.InBytes)
	check("beta's in-link sent_wire_bytes", s1.in.SentWireBytes, c.OutBytes)
	check("alpha skyfed_link_sent_messages_total", int64(s1.sentMsgs), c.InMsgs)
	check("alpha skyfed_link_received_messages_total", int64(s1.recvMsgs), c.OutMsgs)
	check("beta skyfed_link_received_messages_total", int64(s1.bRecvMsg), c.InMsgs)
	check("beta skyfed_link_sent_messages_total", int64(s1.bSentMsgs), c.OutMsgs)
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// metricValue returns the value of the metric name whose labels include
// the given name/value pairs, from the site's registry (what /metrics serves).
func metricValue(t *testing.T, s *testSite, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := s.opts.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
		}
		if !found {
			return false
		}
	}
	return true
}

func metric(t *testing.T, s *testSite, name string, labels ...string) float64 {
	t.Helper()
	v, _ := metricValue(t, s, name, labels...)
	return v
}

// A reconnect starts a new NATS connection and a new handshake, but the
// link's counters carry on: they count the link, not the connection.
func TestLinkCountersSurviveReconnect(t *testing.T) {
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	first, second := seeded(43, 200<<10), seeded(44, 100<<10)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/reconnect/1.fits", bytes.NewReader(first)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/reconnect/1.fits", first)
	waitBacklogs(t, a, b)
	in := *linkRow(b.Links(), "alpha", forward.DirIn)
	c, err := connNamed(t, b, "skyfed alpha → beta")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.nats.DisconnectClientByID(c.Cid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alpha reconnected and the link up again", func() error {
		now, err := connNamed(t, b, "skyfed alpha → beta")
		if err != nil || now.Cid == c.Cid {
			return fmt.Errorf("connection %v (err %v), want a new one", now, err)
		}
		if r := linkRow(b.Links(), "alpha", forward.DirIn); r == nil || r.State != forward.StateUp {
			return fmt.Errorf("beta's link from alpha: %+v", r)
		}
		return nil
	})
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/reconnect/2.fits", bytes.NewReader(second)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/reconnect/2.fits", second)
	waitBacklogs(t, a, b)
	after := linkRow(b.Links(), "alpha", forward.DirIn)
	if after.ReceivedChunks != in.ReceivedChunks+2 || after.ReceivedManifests != in.ReceivedManifests+1 ||
		after.ReceivedRawBytes <= in.ReceivedRawBytes || after.ReceivedWireBytes <= in.ReceivedWireBytes {
		t.Errorf("beta's link from alpha before the reconnect %+v, after %+v: want the counters carried on (+2 chunks, +1 manifest)", in, *after)
	}
}
