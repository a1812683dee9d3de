package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward/engine"
)

// ringWithChords is n sites in a ring, each fourth also linked to the
// site four on: loops everywhere, several paths between most pairs.
func ringWithChords(n int) [][2]int {
	var edges [][2]int
	for i := range n {
		edges = append(edges, [2]int{i, (i + 1) % n})
		if i%4 == 0 {
			edges = append(edges, [2]int{i, (i + 4) % n})
		}
	}
	return edges
}

// statusBody is a site's beacon body as big as a real one with four
// links (the shell's JSON of totals and links).
func statusBody(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"site":"s%d","version":"v0.15.0","versions":123456,"chunks":654321,"bytes":987654321000,"incomplete_versions":0,"incomplete_bytes":0,"links":[`, i)
	for l := range 4 {
		if l > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"peer":"s%d","dir":"out","state":"up","since":"2026-01-01T00:00:00Z","backlog":0,"backlog_bytes":0,"lag":0,"send_rate":0,"in_sync":true}`, (i+l+1)%16)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// Beacons in a 16-site federation with loops: every site learns every
// site's status within seconds, each beacon crosses each link at most
// once each way (no storm), an idle federation's beacons stay under
// 1 KB/s per link (bodies are not repeated while unchanged), and a
// crashed site's beacons age at every other site until it is back with
// a higher sequence number.
func TestBeaconsFloodOnceAndAge(t *testing.T) {
	const n = 16
	var idleFrom, idleTo int64
	var msgsFrom, msgsTo int
	var links int
	_, err := Run(Options{Seed: 11, Sites: n, Edges: ringWithChords(n), HealAt: 5 * time.Second, Until: 600 * time.Second,
		Scenario: func(w *World) {
			links = w.Links()
			w.After(time.Second, func() { w.SendBeacons(10*time.Second, statusBody) })
			w.After(20*time.Second, func() {
				for i := range n {
					got := w.Beacons(i)
					if len(got) != n {
						t.Errorf("s%d holds %d sites' beacons after 20 s, want %d", i, len(got), n)
						continue
					}
					for _, h := range got {
						if h.Body() == nil {
							t.Errorf("s%d holds %s's beacon without its body", i, h.Latest.Origin)
						}
					}
				}
			})
			// Idle: bodies unchanged, only small beacons but one full
			// one a minute per site.
			w.After(120*time.Second, func() { _, idleFrom = w.Bytes(); msgsFrom = w.BeaconMessages() })
			w.After(420*time.Second, func() { _, idleTo = w.Bytes(); msgsTo = w.BeaconMessages() })
			w.Crash(5, 430*time.Second, 90*time.Second)
			var before uint64
			w.After(429*time.Second, func() { before = seqOf(w.Beacons(0), "s5") })
			w.After(515*time.Second, func() {
				for _, h := range w.Beacons(0) {
					if h.Latest.Origin == "s5" && w.now.Sub(h.Heard) < 60*time.Second {
						t.Errorf("s0 heard from s5 %s ago while s5 was down", w.now.Sub(h.Heard))
					}
				}
			})
			w.After(560*time.Second, func() {
				for i := range n {
					if seq := seqOf(w.Beacons(i), "s5"); seq <= before {
						t.Errorf("s%d: s5's beacon after its restart is %d, not newer than %d", i, seq, before)
					}
				}
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	perLink := float64(idleTo-idleFrom) / float64(links) / 300
	t.Logf("idle beacons: %.0f bytes/s per link (%d sites, %d links)", perLink, n, links)
	if perLink > 1024 {
		t.Errorf("idle beacons take %.0f bytes/s per link, want at most 1 KB/s", perLink)
	}
	// Each beacon crosses each link at most once each way: 16 sites
	// every 10 s for 300 s (the first at 121 s … 411 s), at most
	// 2 × links sends of each.
	made := n * 30
	if sends := msgsTo - msgsFrom; sends > made*2*links || sends < made*(n-1) {
		t.Errorf("%d beacon messages for %d beacons on %d links: want between %d (each reaches every site) and %d (each link once each way)",
			sends, made, links, made*(n-1), made*2*links)
	} else {
		t.Logf("%d beacon messages for %d beacons: %.1f sends each (%d links)", sends, made, float64(sends)/float64(made), links)
	}
}

func seqOf(hs []engine.HeardBeacon, origin string) uint64 {
	for _, h := range hs {
		if h.Latest.Origin == origin {
			return h.Latest.Seq
		}
	}
	return 0
}

// loadedStatusBody is statusBody with counters that change at every
// beacon, as a busy site's do (so every beacon carries its full body).
func loadedStatusBody(w *World) func(i int) []byte {
	return func(i int) []byte {
		return fmt.Appendf(statusBody(i)[:0:0], `{"at":%d,"s":%s}`, w.now.UnixNano(), statusBody(i))
	}
}

// Control traffic at steady state under load, in the same 16-site
// federation with loops: four sites each put a 2 MiB frame (32 chunks
// of 64 KiB, in frames of 16 KiB) every 10 s, links of 20 MB/s and
// 40 ms, beacons every 10 s
// with bodies that change each time. Everything on the wire that is not
// a data frame (offers, answers, acks, pings, beacons) must stay within
// 1 % of the payload bytes the data frames carry.
func TestControlTrafficUnderLoad(t *testing.T) {
	const n = 16
	var from, to Traffic
	_, err := Run(Options{Seed: 12, Sites: n, Edges: ringWithChords(n), Bandwidth: 20e6, Delay: 40 * time.Millisecond,
		FrameSize: 16 << 10, HealAt: time.Second, Until: 100 * time.Second,
		Scenario: func(w *World) {
			w.After(time.Second, func() { w.SendBeacons(10*time.Second, loadedStatusBody(w)) })
			var putEvery func()
			putEvery = func() {
				for _, i := range []int{0, 5, 10, 15} {
					w.PutSized(i, 32, 64<<10)
				}
				if w.now.Sub(epoch) < 80*time.Second {
					w.after(10*time.Second, putEvery)
				}
			}
			w.After(2*time.Second, putEvery)
			w.After(20*time.Second, func() { from = w.Traffic() })
			w.After(80*time.Second, func() { to = w.Traffic() })
		}})
	if err != nil {
		t.Fatal(err)
	}
	payload := to.Payload - from.Payload
	control := (to.Wire - from.Wire) - (to.Data - from.Data)
	beacons := to.Beacons - from.Beacons
	if payload == 0 {
		t.Fatal("no payload crossed the links in the measured 60 s")
	}
	share := 100 * float64(control) / float64(payload)
	t.Logf("under load (60 s): payload %.1f MB in data frames (frame headers %.2f %%), control %.1f kB = %.3f %% of it (beacons %.1f kB = %.3f %%)",
		float64(payload)/1e6, 100*float64(to.Data-from.Data-payload)/float64(payload), float64(control)/1e3, share,
		float64(beacons)/1e3, 100*float64(beacons)/float64(payload))
	if share > 1 {
		t.Errorf("control traffic is %.2f %% of payload under load, want at most 1 %%", share)
	}
}
