package testlab_test

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/testlab"
	"github.com/skyfed/skyfed/testlab/liar"
)

// Bounds of issue 12: a site flooded with garbage by an admitted peer
// stays within idle + floodPeakBound and, within floodSettle after the
// flood, returns within idle + floodAfterBound.
const (
	floodFor        = 40 * time.Second
	floodPeakBound  = 32 << 20
	floodAfterBound = 16 << 20
	floodSettle     = 60 * time.Second
)

// TestFloodBoundedMemory floods a site process for 40 s, from a peer it
// admitted (trusted key, honest handshake), with malformed, truncated and
// oversized messages and with payload frames that start assemblies never
// finished, as fast as the site takes them. The site must refuse and
// count all of it, keep the link up, store nothing, keep its RSS within
// idle + 32 MiB at its peak and come back within idle + 16 MiB within
// 60 s after the flood. The figures are logged to be quoted.
func TestFloodBoundedMemory(t *testing.T) {
	dur := floodFor
	if testing.Short() {
		dur = 8 * time.Second
	}
	procNoLeaks(t)
	bin := procBin(t)
	// The bound is about the binary operators run: never one built with -race.
	if bi, err := buildinfo.ReadFile(bin); err != nil {
		t.Fatalf("read build info of %s: %v", bin, err)
	} else {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				t.Fatalf("%s was built with -race; the memory bound is for a plain build", bin)
			}
		}
	}

	s := newProcSite(t, "fl")
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := site.Trust(s.dir, site.Peer{ID: "liar", Key: key.PublicKey().String(), Domains: []string{"liar.test"}}); err != nil {
		t.Fatal(err)
	}
	cfg, err := site.LoadConfig(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	s.start()
	st := s.status()
	siteKey, err := manifest.ParsePublicKey(fmt.Sprint(st["key"]))
	if err != nil {
		t.Fatal(err)
	}
	p, err := liar.Dial(liar.Config{URL: "nats://" + cfg.NATS, Site: "liar", Acceptor: cfg.ID, Key: key, AcceptorKey: siteKey})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Handshake(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := testlab.PollUntil(15*time.Second, func() error { return floodLinkUp(s) }); err != nil {
		t.Fatalf("the liar's link: %v", err)
	}

	idle := floodIdle(t, s.p)
	// Start-up may have peaked higher: the peak that counts is the flood's.
	if err := os.WriteFile(filepath.Join("/proc", strconv.Itoa(s.p.Pid()), "clear_refs"), []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS: %v", err)
	}
	t.Logf("site idle RSS %.1f MiB", floodMiB(idle))

	smp := &floodSampler{p: s.p}
	smpCtx, stopSampling := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); smp.run(smpCtx) }()
	defer func() { stopSampling(); wg.Wait() }()

	// The link must stay up through the flood: look every 2 s.
	var downSeen []string
	var downMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(2 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-smpCtx.Done():
				return
			case <-tk.C:
			}
			if err := floodLinkUp(s); err != nil {
				downMu.Lock()
				downSeen = append(downSeen, err.Error())
				downMu.Unlock()
			}
		}
	}()

	began := time.Now()
	fs, err := p.Flood(t.Context(), liar.FloodConfig{Duration: dur, Seed: 12})
	took := time.Since(began)
	if err != nil {
		t.Fatalf("flood: %v (after %s)", err, fs)
	}
	t.Logf("flood: %s in %.1f s (%.0f frames/s)", fs, took.Seconds(), float64(fs.Frames)/took.Seconds())
	floodPeak := smp.peak()
	t.Logf("site RSS during the flood: peak %.1f MiB (VmHWM %.1f MiB), idle + %.1f MiB (bound + %d MiB)",
		floodMiB(floodPeak.rss), floodMiB(floodPeak.hwm), floodMiB(max(floodPeak.rss, floodPeak.hwm)-idle), floodPeakBound>>20)

	// Back within idle + 16 MiB within 60 s.
	var after int64
	settled := time.Now()
	err = testlab.PollUntil(floodSettle, func() error {
		after, err = s.p.RSS()
		if err != nil {
			return err
		}
		if after > idle+floodAfterBound {
			return fmt.Errorf("RSS %.1f MiB, idle + %.1f MiB", floodMiB(after), floodMiB(after-idle))
		}
		return nil
	})
	t.Logf("site RSS after the flood: %.1f MiB, idle + %.1f MiB, %.1f s after it (bound + %d MiB within %s)",
		floodMiB(after), floodMiB(after-idle), time.Since(settled).Seconds(), floodAfterBound>>20, floodSettle)
	if err != nil {
		t.Errorf("site RSS did not return within idle + %d MiB within %s of the flood: %v", floodAfterBound>>20, floodSettle, err)
	}
	peak := smp.peak()
	if top := max(peak.rss, peak.hwm); top-idle > floodPeakBound {
		t.Errorf("site RSS peaked at %.1f MiB, idle + %.1f MiB, bound idle + %d MiB", floodMiB(top), floodMiB(top-idle), floodPeakBound>>20)
	}
	stopSampling()
	wg.Wait()

	downMu.Lock()
	if len(downSeen) > 0 {
		t.Errorf("the liar's link went down during the flood %d times: %v", len(downSeen), downSeen)
	}
	downMu.Unlock()
	if err := floodLinkUp(s); err != nil {
		t.Errorf("after the flood: %v", err)
	}

	// Everything refused and counted: the malformed messages as such,
	// or dropped unread as a slow consumer's (counted too); nothing stored.
	rej := floodRejected(t, s)
	t.Logf("skyfed_rejected_total: %v", rej)
	bad := fs.ByKind[liar.FloodGarbage] + fs.ByKind[liar.FloodTruncated] + fs.ByKind[liar.FloodOversized]
	if counted := rej["malformed_message"] + rej["slow_consumer"]; counted < bad-bad/100 {
		t.Errorf("%d malformed messages sent, %d counted as malformed or dropped (%v)", bad, counted, rej)
	}
	if rej["malformed_message"] == 0 {
		t.Errorf("no malformed message counted: %v", rej)
	}
	st = s.status()
	for _, k := range []string{"chunks", "versions", "stored_bytes"} {
		if n, _ := st[k].(float64); n != 0 {
			t.Errorf("status %s = %v after the flood, want 0", k, st[k])
		}
	}
}

func floodMiB(n int64) float64 { return float64(n) / (1 << 20) }

// floodLinkUp says whether the site's link from the liar is up.
func floodLinkUp(s *procSite) error {
	resp, err := s.hc.Get(s.url + "/api/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var st struct {
		Links []forward.LinkStatus `json:"links"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return err
	}
	for _, l := range st.Links {
		if l.Peer == "liar" {
			if l.State != forward.StateUp {
				return fmt.Errorf("link from the liar %s (%s: %s)", l.State, l.Reason, l.LastError)
			}
			return nil
		}
	}
	return fmt.Errorf("no link from the liar")
}

// floodIdle waits for the process's RSS to settle after start-up (no
// change over 2 MiB in 2 s, at most 20 s) and returns it.
func floodIdle(t *testing.T, p *testlab.Process) int64 {
	t.Helper()
	var hist []int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := p.RSS()
		if err != nil {
			t.Fatal(err)
		}
		hist = append(hist, r)
		if n := len(hist); n >= 20 {
			w := hist[n-20:]
			lo, hi := w[0], w[0]
			for _, v := range w {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo < 2<<20 || time.Now().After(deadline) {
				return hi
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// floodSampler reads a process's RSS and peak RSS every 100 ms.
type floodSampler struct {
	p  *testlab.Process
	mu sync.Mutex
	mx floodSample
}

type floodSample struct{ rss, hwm int64 }

func (s *floodSampler) run(ctx context.Context) {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		r, err1 := s.p.RSS()
		h, err2 := s.p.PeakRSS()
		if err1 == nil && err2 == nil {
			s.mu.Lock()
			s.mx.rss, s.mx.hwm = max(s.mx.rss, r), max(s.mx.hwm, h)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

func (s *floodSampler) peak() floodSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mx
}

// floodRejected returns skyfed_rejected_total by reason.
func floodRejected(t *testing.T, s *procSite) map[string]int64 {
	t.Helper()
	resp, err := s.hc.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `skyfed_rejected_total{reason="`)
		if !ok {
			continue
		}
		reason, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err == nil {
			out[reason] = int64(f)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
