package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/testlab"
)

// WANSat is the satellite case: one thin, long link carrying bulk, and
// a small object put at the sender once the bulk is under way.
type WANSat struct {
	Rate uint64
	RTT  time.Duration
	Bulk ByteSize
	// From the small object's put: until the satellite indexed its
	// version (its manifest crossed), and until the satellite held the
	// whole bulk. Lookup is how long a fresh lookup at the satellite of
	// another small object put then took (over the link, both ways).
	Name, Lookup, BulkLeft time.Duration
	Timeouts               int64 // frame timeouts counted by both ends of the link
	Duplicates             int64
	Sent                   int64 // raw payload bytes the sender sent on the link, resends included
	Put                    int64 // bytes put at the sender
}

// satNameShare is the most of the bulk's remaining time the small
// object's name may take to arrive for "names first" to pass.
const satNameShare = 0.25

// NamesFirst reports whether the name arrived well ahead of the bulk.
func (s *WANSat) NamesFirst() bool {
	return s.Name > 0 && s.Name.Seconds() <= satNameShare*s.BulkLeft.Seconds()
}

// satBulkStarted is how many bytes must have crossed the satellite link
// before the small object is put: the bulk is then on the wire.
const satBulkStarted = 256 << 10

func runSatellite(ctx context.Context, cfg WANConfig, scratch string) (*WANSat, error) {
	fmt.Fprintf(cfg.Progress, "wan: satellite link %s / %s round trip, %s of bulk...\n", rateText(cfg.SatRate), cfg.SatRTT, cfg.SatSize)
	fed, err := testlab.StartProcessFederation(testlab.FedOptions{N: 2, Topology: "line", Binary: cfg.Binary,
		Dir: scratch + "/sat", Domain: benchDomain, ChunkSize: chunk.DefaultSize})
	if err != nil {
		return nil, fmt.Errorf("bench wan: satellite: %w", err)
	}
	defer fed.Close()
	p := fed.Proxy(0, 1)
	shape(p, cfg.SatRate, cfg.SatRTT)
	if err := fed.WaitLinksUp(time.Minute); err != nil {
		return nil, fmt.Errorf("bench wan: satellite link: %w", err)
	}
	sat := &WANSat{Rate: cfg.SatRate, RTT: cfg.SatRTT, Bulk: cfg.SatSize}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchLinks(wctx, cfg.Progress, fed, 1, 2*time.Second)
	base := p.Stats().BytesUp
	bulkErr := make(chan error, 1)
	go func() {
		_, err := fed.PutRandom(0, "sat/bulk", int64(cfg.SatSize), 99)
		bulkErr <- err
	}()
	err = waitFor(ctx, 5*time.Minute, func() error {
		if p.Stats().BytesUp-base < satBulkStarted {
			return errors.New("bulk not under way")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench wan: satellite: %w", err)
	}
	start := time.Now()
	small, err := fed.Put(0, "sat/name-first", bytes.NewReader(bytes.Repeat([]byte("names before bytes\n"), 200)))
	if err != nil {
		return nil, fmt.Errorf("bench wan: satellite: small put: %w", err)
	}
	hc := &http.Client{Timeout: 5 * time.Minute}
	defer hc.CloseIdleConnections()
	err = waitFor(ctx, 5*time.Minute, func() error {
		if sat.Name == 0 && listed(ctx, hc, fed.URL(1), small.Name) {
			sat.Name = time.Since(start)
			sat.Lookup = satLookup(ctx, fed, hc)
		}
		select {
		case err := <-bulkErr:
			if err != nil {
				return fmt.Errorf("%w: bulk put: %w", errStop, err)
			}
			bulkErr = nil
		default:
		}
		if bulkErr != nil {
			return errors.New("putting")
		}
		return holdsAll(fed, 1)
	})
	if err != nil {
		return nil, fmt.Errorf("bench wan: satellite: %w", err)
	}
	sat.BulkLeft = time.Since(start)
	c := readHop(fed, 0)
	sat.Timeouts, sat.Duplicates, sat.Sent = c.timeouts, c.dups, c.raw
	for _, o := range fed.Puts() {
		sat.Put += o.Size
	}
	return sat, nil
}

// satLookup puts another small object at the sender and at once asks
// the satellite for the federation's versions of its name (a lookup
// over the link, not waiting for replication); it returns how long the
// answer took, or 0 if none listed the object.
func satLookup(ctx context.Context, fed *testlab.ProcessFederation, hc *http.Client) time.Duration {
	o, err := fed.Put(0, "sat/looked-up", bytes.NewReader([]byte("looked up across the link\n")))
	if err != nil {
		return 0
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fed.URL(1)+"/o/"+(&url.URL{Path: o.Name}).EscapedPath()+"?versions&fresh=1", nil)
	if err != nil {
		return 0
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var vs struct {
		Versions []struct {
			Version string `json:"version"`
		} `json:"versions"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&vs) != nil {
		return 0
	}
	for _, v := range vs.Versions {
		if v.Version == o.Version {
			return time.Since(start)
		}
	}
	return 0
}

// listed reports whether the site at base lists name among its objects
// (its own index: no lookup across links).
func listed(ctx context.Context, hc *http.Client, base, name string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ls?limit=1000", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var page struct {
		Objects []struct {
			Name string `json:"name"`
		} `json:"objects"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&page) != nil {
		return false
	}
	for _, o := range page.Objects {
		if o.Name == name {
			return true
		}
	}
	return false
}
