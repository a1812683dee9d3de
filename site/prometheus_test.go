package site

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
)

// expoSample is one line of the Prometheus text exposition format.
type expoSample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeMetrics fetches s's /metrics over HTTP, as Prometheus does, and returns
// the raw text and its samples.
func scrapeMetrics(t *testing.T, s *testSite) ([]byte, []expoSample) {
	t.Helper()
	resp, body := s.do(t, "GET", "/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	samples, err := parseExposition(body)
	if err != nil {
		t.Fatalf("/metrics of %s: %v", s.Config().ID, err)
	}
	return body, samples
}

// parseExposition reads name{k="v",...} value lines; skyfed's label
// values hold no quotes, commas or braces.
func parseExposition(text []byte) ([]expoSample, error) {
	var out []expoSample
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, val, ok := strings.Cut(line, " ")
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			head, val, ok = line[:i+1], strings.TrimSpace(line[i+1:]), true
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("bad expoSample line %q", line)
		}
		smp := expoSample{name: head, labels: map[string]string{}, value: v}
		if name, rest, found := strings.Cut(head, "{"); found {
			smp.name = name
			for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					smp.labels[k] = strings.Trim(v, `"`)
				}
			}
		}
		out = append(out, smp)
	}
	return out, nil
}

// sampleValue returns the expoSample name whose labels are the given pairs.
func sampleValue(samples []expoSample, name string, labels ...string) (float64, bool) {
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && s.labels[labels[i]] == labels[i+1]
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// knownTransfer is what a set of puts must move over every link: unique
// chunks and their raw bytes, manifests and their encoded bytes.
type knownTransfer struct {
	chunks, chunkBytes, manifests, manifestBytes int64
}

func putKnown(t *testing.T, s *testSite, objs map[string][]byte) knownTransfer {
	t.Helper()
	var k knownTransfer
	size := s.Config().ChunkSize
	seen := map[chunk.ID]bool{}
	for _, name := range slices.Sorted(maps.Keys(objs)) {
		data := objs[name]
		putObject(t, s, name, data)
		for off := 0; off < len(data); off += size {
			piece := data[off:min(off+size, len(data))]
			if id := chunk.Sum(piece); !seen[id] {
				seen[id] = true
				k.chunks++
				k.chunkBytes += int64(len(piece))
			}
		}
		m, err := s.Objects().Latest(naming.MustParseName(name))
		if err != nil {
			t.Fatal(err)
		}
		k.manifests++
		k.manifestBytes += int64(len(m.Encode()))
	}
	return k
}

// linkWant is the value one link metric must have.
type linkWant struct {
	site      *testSite
	peer, dir string
	metric    string
	value     int64
}

// relayWants lists, for a transfer k put at alpha and relayed by beta to
// gamma, what every link metric on the way must read.
func relayWants(k knownTransfer, alpha, beta, gamma *testSite) []linkWant {
	var wants []linkWant
	add := func(s *testSite, peer, dir string, pairs ...any) {
		for i := 0; i+1 < len(pairs); i += 2 {
			wants = append(wants, linkWant{s, peer, dir, "skyfed_link_" + pairs[i].(string), pairs[i+1].(int64)})
		}
	}
	raw, ids, none := k.chunkBytes+k.manifestBytes, k.chunks+k.manifests, int64(0)
	add(alpha, "beta", "out", "sent_chunks_total", k.chunks, "sent_manifests_total", k.manifests, "sent_raw_bytes_total", raw,
		"offered_total", ids, "wanted_total", ids, "received_chunks_total", none,
		"duplicates_total", none, "rejected_total", none, "up", int64(1), "backlog_entries", none)
	add(beta, "alpha", "in", "received_chunks_total", k.chunks, "received_manifests_total", k.manifests, "received_raw_bytes_total", raw,
		"sent_chunks_total", none, "duplicates_total", none, "rejected_total", none, "up", int64(1))
	add(beta, "gamma", "in", "sent_chunks_total", k.chunks, "sent_manifests_total", k.manifests, "sent_raw_bytes_total", raw,
		"offered_total", ids, "wanted_total", ids, "backlog_entries", none)
	add(gamma, "beta", "out", "received_chunks_total", k.chunks, "received_manifests_total", k.manifests, "received_raw_bytes_total", raw,
		"duplicates_total", none, "rejected_total", none)
	return wants
}

// waitDrained waits until no link of the sites has unconfirmed entries.
func waitDrained(t *testing.T, sites ...*testSite) {
	t.Helper()
	waitFor(t, "backlogs drained", func() bool {
		for _, s := range sites {
			for _, l := range s.Links() {
				if l.Backlog != 0 {
					return false
				}
			}
		}
		return true
	})
}

// TestMetricsExactAfterRelay moves a known set of objects down a line of
// three sites (alpha → beta → gamma, gamma dialing beta) and reads every
// link counter from /metrics as a scraper sees it: each equals the chunks,
// manifests and bytes that had to move, on both ends of both links.
func TestMetricsExactAfterRelay(t *testing.T) {
	alpha, beta, gamma := startPeerSite(t, "alpha"), startPeerSite(t, "beta"), startPeerSite(t, "gamma")
	trustEachOther(t, alpha, beta)
	trustEachOther(t, beta, gamma)
	trustEachOther(t, alpha, gamma)
	linkSites(t, alpha, beta, "", "")
	linkSites(t, gamma, beta, "", "")
	frame := skyFrame(21, 700<<10)
	objs := map[string][]byte{
		"gloria.eu/relay/frame.fits":       frame,
		"gloria.eu/relay/frame-copy.fits":  frame[:300<<10], // every chunk already sent
		"gloria.eu/relay/noise.fits":       seeded(22, 200<<10+17),
		"gloria.eu/relay/empty.fits":       {},
		"gloria.eu/relay/flat-field.fits":  make([]byte, 256<<10), // 4 chunks, 1 unique
		"gloria.eu/relay/small-note.txt":   []byte("seeing 0.8 arcsec"),
		"gloria.eu/relay/frame-tail.fits":  frame[len(frame)-(64<<10):],
		"gloria.eu/relay/frame-other.fits": skyFrame(23, 130<<10),
	}
	waitFor(t, "links up", func() bool {
		a, g := dashLink(alpha, "beta", forward.DirOut), dashLink(gamma, "beta", forward.DirOut)
		return a != nil && g != nil && a.State == forward.StateUp && g.State == forward.StateUp
	})
	k := putKnown(t, alpha, objs)
	for name, data := range objs {
		waitObject(t, gamma, name, data)
	}
	waitDrained(t, alpha, beta, gamma)

	scraped := map[*testSite][]expoSample{}
	for _, s := range []*testSite{alpha, beta, gamma} {
		_, scraped[s] = scrapeMetrics(t, s)
	}
	for _, w := range relayWants(k, alpha, beta, gamma) {
		t.Run(fmt.Sprintf("%s %s{peer=%s,direction=%s}", w.site.Config().ID, w.metric, w.peer, w.dir), func(t *testing.T) {
			got, ok := sampleValue(scraped[w.site], w.metric, "peer", w.peer, "direction", w.dir)
			if !ok || got != float64(w.value) {
				t.Errorf("= %v (present %v), want %d", got, ok, w.value)
			}
		})
	}
	for _, s := range []*testSite{beta, gamma} {
		st := s.Chunks().Stats()
		for name, v := range map[string]int64{"skyfed_stored_chunks": k.chunks, "skyfed_raw_bytes": k.chunkBytes, "skyfed_versions": k.manifests} {
			if got, ok := sampleValue(scraped[s], name); !ok || got != float64(v) {
				t.Errorf("%s %s = %v, want %d", s.Config().ID, name, got, v)
			}
		}
		if got, _ := sampleValue(scraped[s], "skyfed_stored_bytes"); got != float64(st.StoredBytes) || st.StoredBytes >= st.RawBytes {
			t.Errorf("%s skyfed_stored_bytes = %v; store says %d stored for %d raw", s.Config().ID, got, st.StoredBytes, st.RawBytes)
		}
	}
}

// TestPrometheusScrapesSite runs Debian's prometheus against a running
// site, asks its HTTP API for per-link metrics until they show a known
// transfer, and lints a scrape with promtool.
func TestPrometheusScrapesSite(t *testing.T) {
	t.Parallel()
	prom := needTool(t, "prometheus", "prometheus")
	promtool := needTool(t, "promtool", "prometheus")
	a, b := startPeerSite(t, "alpha"), startPeerSite(t, "beta")
	// Prometheus takes a few seconds to first scrape new targets: start it
	// before the transfer.
	api := startPrometheus(t, prom, b.HTTPAddr())
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	frame := skyFrame(31, 300<<10)
	k := putKnown(t, a, map[string][]byte{"gloria.eu/prom/frame.fits": frame})
	waitObject(t, b, "gloria.eu/prom/frame.fits", frame)

	t.Run("promtool check metrics", func(t *testing.T) {
		for _, s := range []*testSite{a, b} {
			text, _ := scrapeMetrics(t, s)
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) != 0 {
				t.Errorf("promtool check metrics on %s: %v\n%s", s.Config().ID, err, out)
			}
		}
	})

	t.Run("prometheus scrapes per-link metrics", func(t *testing.T) {
		q := `skyfed_link_received_chunks_total{job="skyfed",peer="alpha",direction="in"}`
		want := strconv.FormatInt(k.chunks, 10)
		var got promResult
		var err error
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			got, err = promQuery(api, q)
			if err == nil && len(got) == 1 && got[0].Value[1] == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("prometheus never had %s = %s: %v %+v", q, want, err, got)
			}
		}
		up, err := promQuery(api, `skyfed_link_up{peer="alpha"}`)
		if err != nil || len(up) != 1 || up[0].Value[1] != "1" || up[0].Metric["direction"] != "in" {
			t.Errorf("skyfed_link_up: %v %+v", err, up)
		}
	})

	t.Run("grafana dashboard queries run", func(t *testing.T) {
		// One refused request, so that the per-reason rejects counter has
		// a series to show.
		if resp, _ := b.do(t, "GET", "/ls?limit=0", nil); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("bad request answered %d", resp.StatusCode)
		}
		_, samples := scrapeMetrics(t, b)
		for _, expr := range grafanaQueries(t) {
			for _, name := range regexp.MustCompile(`skyfed_[a-z_]+`).FindAllString(expr, -1) {
				if !slices.ContainsFunc(samples, func(s expoSample) bool { return s.name == name }) {
					t.Errorf("dashboard query %q uses %s, which /metrics lacks", expr, name)
				}
			}
			q := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*", "$peer", ".*").Replace(expr)
			if _, err := promQuery(api, q); err != nil {
				t.Errorf("dashboard query: %v", err)
			}
		}
	})
}

// grafanaQueries returns the PromQL of every panel of the shipped Grafana
// dashboard.
func grafanaQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	var out []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	if dash.UID == "" || len(out) < 10 {
		t.Fatalf("dashboard uid %q with %d queries", dash.UID, len(out))
	}
	return out
}

type promResult []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant query against Prometheus's HTTP API.
func promQuery(api, query string) (promResult, error) {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get(api + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", query, out.Error)
	}
	for i := range out.Data.Result {
		out.Data.Result[i].Value[1] = fmt.Sprint(out.Data.Result[i].Value[1])
	}
	return out.Data.Result, nil
}

// startPrometheus runs prometheus scraping target every second with its
// storage in a temp dir and returns its base URL.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: skyfed\n    static_configs:\n      - targets: ['%s']\n", target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", lastLines(logs.String(), 30))
		}
	})
	return "http://" + listen
}
