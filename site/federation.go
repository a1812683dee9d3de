package site

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/forward/engine"
	"github.com/skyfed/skyfed/site/client"
)

// The federation view: every site floods a signed status beacon
// (forward/engine/beacon.go) whose body is beaconStatus, so any site
// can show every site it can reach and every link between them.

// Defaults of the federation view's settings.
const (
	DefaultBeaconInterval = forward.DefaultBeaconEvery
	DefaultSiteSilence    = 60 * time.Second
)

// maxBeaconLinks bounds the links one beacon lists.
const maxBeaconLinks = 64

// beaconStatus is the body of this site's beacon: its totals and links.
type beaconStatus struct {
	Site               string       `json:"site"`
	Location           string       `json:"location,omitempty"`
	Version            string       `json:"version"`
	Versions           int64        `json:"versions"`
	Chunks             int64        `json:"chunks"`
	StoredBytes        int64        `json:"stored_bytes"`
	IncompleteVersions int64        `json:"incomplete_versions"`
	IncompleteBytes    int64        `json:"incomplete_bytes"`
	Links              []beaconLink `json:"links"`
}

// beaconLink is a link as a beacon reports it. Rates and lag are
// rounded so that an idle site's body does not change (and is then
// not repeated) for noise.
type beaconLink struct {
	Peer      string `json:"peer"`
	Direction string `json:"direction"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	Since     string `json:"since"`
	Backlog   uint64 `json:"backlog"`
	// BacklogBytes is null (left out) when the site could not count them.
	BacklogBytes *uint64 `json:"backlog_bytes,omitempty"`
	LagSeconds   float64 `json:"lag_seconds"`
	SendRate     int64   `json:"send_rate"`
	InSync       *bool   `json:"in_sync"`
	// ClockOffset is the peer's clock minus this site's, to a tenth of a
	// second (null until measured).
	ClockOffset *float64 `json:"clock_offset_seconds,omitempty"`
}

func (c *Config) validateFederation() error {
	if c.Location != "" {
		if _, _, err := ParseLocation(c.Location); err != nil {
			return fmt.Errorf("%w: location: %w", ErrBadConfig, err)
		}
	}
	for _, d := range []struct{ key, v string }{{"beacon_interval", c.BeaconInterval}, {"site_silence", c.SiteSilence}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v < time.Second {
			return fmt.Errorf("%w: %s %q must be a duration of at least 1s such as \"10s\"", ErrBadConfig, d.key, d.v)
		}
	}
	return nil
}

// ParseLocation reads "LAT,LON" in degrees.
func ParseLocation(s string) (lat, lon float64, err error) {
	a, b, ok := strings.Cut(s, ",")
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if !ok || err1 != nil || err2 != nil || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return 0, 0, fmt.Errorf("%q is not LAT,LON in degrees (e.g. 28.7606,-17.8816)", s)
	}
	return lat, lon, nil
}

func (c *Config) beaconInterval() time.Duration {
	return durationOr(c.BeaconInterval, DefaultBeaconInterval)
}

func (c *Config) siteSilence() time.Duration { return durationOr(c.SiteSilence, DefaultSiteSilence) }

// beaconBody is this site's status as its beacon carries it.
func (s *Site) beaconBody() []byte {
	cfg := s.Config()
	st := s.chunks.Stats()
	iv, ib := s.objects.Incomplete()
	b := beaconStatus{Site: cfg.ID, Location: cfg.Location, Version: Build(), Versions: s.objects.Versions(),
		Chunks: st.Chunks, StoredBytes: st.StoredBytes, IncompleteVersions: iv, IncompleteBytes: ib, Links: []beaconLink{}}
	for _, l := range s.node.Links() {
		if len(b.Links) == maxBeaconLinks {
			break
		}
		bl := beaconLink{Peer: l.Peer, Direction: l.Direction, State: l.State, Reason: l.Reason, Backlog: l.Backlog,
			BacklogBytes: l.BacklogBytes, LagSeconds: math.Round(l.LagSeconds), SendRate: roundRate(l.SendRate), InSync: l.InSync}
		if !l.Since.IsZero() {
			bl.Since = l.Since.UTC().Format(time.RFC3339)
		}
		if l.ClockOffsetSeconds != nil {
			off := math.Round(*l.ClockOffsetSeconds*10) / 10
			bl.ClockOffset = &off
		}
		b.Links = append(b.Links, bl)
	}
	body, _ := json.Marshal(b) // plain data: cannot fail
	return body
}

// roundRate keeps two significant digits of a rate, and calls under
// 1 kB/s idle (0).
func roundRate(r int64) int64 {
	if r < 1000 {
		return 0
	}
	p := int64(math.Pow(10, math.Floor(math.Log10(float64(r)))-1))
	return r / p * p
}

// federation builds the view from the beacons this site holds.
func (s *Site) federation(now time.Time) client.FederationView {
	cfg := s.Config()
	silence := cfg.siteSilence()
	out := client.FederationView{Site: cfg.ID, Now: now, Sites: []client.FederationSite{}, Links: []client.FederationLink{}}
	for _, h := range s.node.Beacons() {
		fs := client.FederationSite{Site: h.Latest.Origin, LastSeen: h.Heard.UTC(), Self: h.From == engine.Local, State: "up"}
		if !fs.Self && now.Sub(h.Heard) > silence {
			fs.State = "unreachable"
		}
		body := h.Body()
		if fs.Self {
			body = s.beaconBody() // this site's own status as it is now, not as last sent
		}
		var st beaconStatus
		if body != nil && json.Unmarshal(body, &st) == nil {
			fs.Location, fs.Version = st.Location, st.Version
			fs.Versions, fs.IncompleteVersions, fs.IncompleteBytes = &st.Versions, &st.IncompleteVersions, &st.IncompleteBytes
			for _, l := range st.Links {
				out.Links = append(out.Links, client.FederationLink{From: fs.Site, To: l.Peer, Direction: l.Direction, State: l.State,
					Reason: l.Reason, Since: l.Since, Backlog: l.Backlog, BacklogBytes: l.BacklogBytes, LagSeconds: l.LagSeconds, SendRate: l.SendRate, InSync: l.InSync,
					ClockOffsetSeconds: l.ClockOffset})
			}
		}
		out.Sites = append(out.Sites, fs)
	}
	return out
}

func (s *Site) serveFederation(w http.ResponseWriter, r *http.Request) {
	s.ok(w, "federation", http.StatusOK, s.federation(time.Now()))
}

// federationCollector exports, at each scrape, every known site's state
// and the bytes it still lacks, so one scrape of any site alerts on all.
type federationCollector struct {
	s           *Site
	up, lacking *prometheus.Desc
}

func newFederationCollector(s *Site) *federationCollector {
	return &federationCollector{s: s,
		up: prometheus.NewDesc("skyfed_federation_site_up", "1 if the site's status beacon was heard within site_silence, else 0; every site this site heard of.",
			[]string{"site"}, nil),
		lacking: prometheus.NewDesc("skyfed_federation_site_incomplete_bytes", "Bytes of versions the site indexed but lacks chunks of, as its latest beacon said.",
			[]string{"site"}, nil)}
}

func (c *federationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.up; ch <- c.lacking }

func (c *federationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, fs := range c.s.federation(time.Now()).Sites {
		up := 0.0
		if fs.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, fs.Site)
		if fs.IncompleteBytes != nil {
			ch <- prometheus.MustNewConstMetric(c.lacking, prometheus.GaugeValue, float64(*fs.IncompleteBytes), fs.Site)
		}
	}
}
