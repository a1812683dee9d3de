package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/site/client"
)

// The checker trusts nothing but what clients were told. The ledger
// keeps every acknowledgement (a put or rm answered 201/200, or a CLI
// exit 0) and every operation whose outcome is unknown (a timeout, a
// dropped connection, a 500): those may land or not. At the end every
// site is read back over HTTP and judged against the ledger.

// ackEntry is one acknowledged version.
type ackEntry struct {
	Name, Version string
	SHA           string // of the content; "" for a tombstone
	Deleted       bool   // a tombstone
	Site          int
}

// maybeEntry is an operation whose outcome the client never learned.
type maybeEntry struct {
	SHA     string
	Deleted bool
}

// ledger records what clients were told during a schedule. It is safe
// for concurrent use.
type ledger struct {
	mu         sync.Mutex
	acks       []ackEntry
	maybe      map[string][]maybeEntry // by name
	attempted  map[string]map[string]bool
	liarNames  []string
	liarChunks []string
	violations []string // wrong answers seen during the workload
	counts     map[string]int
}

func newLedger() *ledger {
	return &ledger{maybe: map[string][]maybeEntry{}, attempted: map[string]map[string]bool{}, counts: map[string]int{}}
}

func (l *ledger) count(what string) {
	l.mu.Lock()
	l.counts[what]++
	l.mu.Unlock()
}

// attempt notes the content of a put before it is sent, so that a get
// serving it is explained whatever the put's outcome.
func (l *ledger) attempt(name, sha string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.attempted[name] == nil {
		l.attempted[name] = map[string]bool{}
	}
	l.attempted[name][sha] = true
}

func (l *ledger) ack(e ackEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks = append(l.acks, e)
	l.counts["acked"]++
}

func (l *ledger) unknown(name string, e maybeEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybe[name] = append(l.maybe[name], e)
	l.counts["indeterminate"]++
}

func (l *ledger) violation(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.violations = append(l.violations, fmt.Sprintf(format, args...))
}

// served checks a get's answer: bytes that verified against the ETag
// must also be content some client put under that name.
func (l *ledger) served(site int, name, sha string) {
	l.mu.Lock()
	known := l.attempted[name][sha]
	l.mu.Unlock()
	if !known {
		l.violation("s%d served %s with sha256 %s, which no client put", site, name, short(sha))
	}
}

// names returns every name the workload touched, sorted.
func (l *ledger) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := map[string]bool{}
	for _, a := range l.acks {
		set[a.Name] = true
	}
	for n := range l.maybe {
		set[n] = true
	}
	for n := range l.attempted {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (l *ledger) snapshot() (acks []ackEntry, maybe map[string][]maybeEntry, violations []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	maybe = make(map[string][]maybeEntry, len(l.maybe))
	for k, v := range l.maybe {
		maybe[k] = slices.Clone(v)
	}
	return slices.Clone(l.acks), maybe, slices.Clone(l.violations)
}

// siteView is what one site answered at the end.
type siteView struct {
	Site       int
	Err        error // it did not answer
	Backlog    uint64
	Backlogs   []string // per link: "out s2 17"
	LinksDown  []string
	Chunks     int64
	Duplicates int64                         // chunks its links received twice (the liar's link aside)
	Names      map[string]client.VersionList // absent: the site knows no version
	Liar       []string                      // liar names or chunks the site holds
}

// verdict is the checker's judgement of the federation's state.
type verdict struct {
	Lost        int // acknowledged versions missing at some site
	Divergent   int // names whose latest differs between sites or is older than acknowledged
	Unexplained int // versions no client put (forged or phantom)
	Problems    []string
}

func (v *verdict) add(format string, args ...any) {
	v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
}

// ok reports whether the state passes.
func (v verdict) ok() bool { return len(v.Problems) == 0 }

// judge compares the sites' answers with the ledger. It does no I/O.
func judge(acks []ackEntry, maybe map[string][]maybeEntry, views []siteView) verdict {
	var v verdict
	for _, sv := range views {
		if sv.Err != nil {
			v.add("s%d does not answer: %v", sv.Site, sv.Err)
			continue
		}
		if sv.Backlog > 0 {
			v.add("s%d: backlog %d (%s)", sv.Site, sv.Backlog, strings.Join(sv.Backlogs, ", "))
		}
		if len(sv.LinksDown) > 0 {
			v.add("s%d: links not up: %s", sv.Site, strings.Join(sv.LinksDown, ", "))
		}
		for _, x := range sv.Liar {
			v.add("s%d holds %s, signed or sent by the liar", sv.Site, x)
		}
	}
	if !v.ok() {
		return v
	}
	if chunks := views[0].Chunks; slices.ContainsFunc(views, func(sv siteView) bool { return sv.Chunks != chunks }) {
		var parts []string
		for _, sv := range views {
			parts = append(parts, fmt.Sprintf("s%d:%d", sv.Site, sv.Chunks))
		}
		v.add("chunk counts differ: %s", strings.Join(parts, " "))
	}
	lost := map[string]bool{}
	for _, a := range acks {
		for _, sv := range views {
			if !slices.ContainsFunc(sv.Names[a.Name].Versions, func(x client.Version) bool { return x.Version == a.Version }) {
				if !lost[a.Version] {
					v.Lost++
					lost[a.Version] = true
				}
				v.add("lost: %s version %s (acknowledged by s%d) is not at s%d", a.Name, a.Version, a.Site, sv.Site)
			}
		}
	}
	newestAck := map[string]string{}
	ackedVersion := map[string]bool{}
	for _, a := range acks {
		ackedVersion[a.Version] = true
		if newer(a.Version, newestAck[a.Name]) {
			newestAck[a.Name] = a.Version
		}
	}
	names := map[string]bool{}
	for _, sv := range views {
		for n := range sv.Names {
			names[n] = true
		}
	}
	for n := range newestAck {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		latest := map[string][]int{}
		for _, sv := range views {
			latest[sv.Names[name].Latest] = append(latest[sv.Names[name].Latest], sv.Site)
		}
		if len(latest) > 1 {
			v.Divergent++
			var parts []string
			for ver, sites := range latest {
				parts = append(parts, fmt.Sprintf("%q at %v", ver, sites))
			}
			sort.Strings(parts)
			v.add("divergent: %s has latest %s", name, strings.Join(parts, ", "))
			continue
		}
		var l string
		for ver := range latest {
			l = ver
		}
		if want := newestAck[name]; want != "" && newer(want, l) {
			v.Divergent++
			v.add("divergent: %s latest is %q everywhere, older than the acknowledged %s", name, l, want)
		}
		for _, sv := range views {
			for _, x := range sv.Names[name].Versions {
				if ackedVersion[x.Version] || explained(maybe[name], x) {
					continue
				}
				v.Unexplained++
				v.add("unexplained: s%d holds %s version %s (sha256 %s, deleted %v) that no client put", sv.Site, name, x.Version, short(x.SHA256), x.Deleted)
			}
		}
	}
	return v
}

// explained reports whether version x may be the landing of an operation
// whose outcome is unknown.
func explained(maybe []maybeEntry, x client.Version) bool {
	return slices.ContainsFunc(maybe, func(m maybeEntry) bool {
		if m.Deleted {
			return x.SHA256 == "" || x.Deleted
		}
		return m.SHA == x.SHA256
	})
}

// newer reports whether version a sorts after b ("" sorts first).
func newer(a, b string) bool {
	if b == "" {
		return a != ""
	}
	sa, errA := manifest.ParseStamp(a)
	sb, errB := manifest.ParseStamp(b)
	if errA != nil || errB != nil {
		return a > b
	}
	return sa.Compare(sb) > 0
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// checker reads the federation back over HTTP.
type checker struct {
	urls []string
	hc   *http.Client
	lg   *ledger
}

// view reads site i: status, every name's versions, the liar's marks.
func (c *checker) view(ctx context.Context, i int) siteView {
	sv := siteView{Site: i, Names: map[string]client.VersionList{}}
	cl := client.New(c.urls[i], "")
	defer cl.CloseIdleConnections()
	st, err := cl.Status(ctx)
	if err != nil {
		sv.Err = err
		return sv
	}
	sv.Chunks = st.Chunks
	for _, l := range st.Links {
		if l["peer"] == liarID {
			continue // the liar comes and goes; its link is not the federation's
		}
		if b := numberOf(l["backlog"]); b > 0 {
			sv.Backlog += uint64(b)
			sv.Backlogs = append(sv.Backlogs, fmt.Sprintf("%v %v %d", l["direction"], l["peer"], b))
		}
		sv.Duplicates += numberOf(l["duplicate_chunks"])
		if l["state"] != "up" && numberOf(l["refused"]) == 0 {
			sv.LinksDown = append(sv.LinksDown, fmt.Sprintf("%v %v %v", l["direction"], l["peer"], l["state"]))
		}
	}
	for _, name := range c.lg.names() {
		vl, err := cl.Versions(ctx, name)
		var apiErr *client.APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
		case err != nil:
			sv.Err = err
			return sv
		default:
			sv.Names[name] = vl
		}
	}
	c.lg.mu.Lock()
	liarNames, liarChunks := slices.Clone(c.lg.liarNames), slices.Clone(c.lg.liarChunks)
	c.lg.mu.Unlock()
	for _, n := range liarNames {
		if _, err := cl.Versions(ctx, n); err == nil {
			sv.Liar = append(sv.Liar, "name "+n)
		}
	}
	for _, id := range liarChunks {
		if code, err := c.status(ctx, c.urls[i]+"/c/"+id); err == nil && code == http.StatusOK {
			sv.Liar = append(sv.Liar, "chunk "+short(id))
		}
	}
	return sv
}

func (c *checker) status(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// numberOf reads a JSON number of a status map (json.Number or float64).
func numberOf(v any) int64 {
	switch x := v.(type) {
	case interface{ Int64() (int64, error) }:
		n, _ := x.Int64()
		return n
	case float64:
		return int64(x)
	}
	return 0
}

// bytes checks what the metadata cannot: every chunk of every acknowledged
// live version is held at every site (GET /c/, which never reads through
// and re-hashes what it serves), every site serves every name's latest
// with bytes that hash to what was put, and finds acknowledged content by
// its SHA-256.
func (c *checker) bytes(ctx context.Context, views []siteView, acks []ackEntry) verdict {
	var v verdict
	live := map[string]ackEntry{} // version → its ack, for versions not deleted anywhere
	for _, a := range acks {
		if a.Deleted || deletedAnywhere(views, a) {
			continue
		}
		live[a.Version] = a
	}
	versions := make([]string, 0, len(live))
	for ver := range live {
		versions = append(versions, ver)
	}
	sort.Strings(versions)
	for _, ver := range versions {
		a := live[ver]
		ids, err := c.hashmap(ctx, a.Site, a.Name, ver)
		if err != nil {
			v.add("hashmap of %s version %s at s%d: %v", a.Name, ver, a.Site, err)
			continue
		}
		for i := range c.urls {
			for _, id := range ids {
				if code, err := c.status(ctx, c.urls[i]+"/c/"+id); err != nil || code != http.StatusOK {
					v.Lost++
					v.add("lost: s%d lacks chunk %s of %s version %s (HTTP %d, %v)", i, short(id), a.Name, ver, code, err)
					break
				}
			}
			if err := c.readVersion(ctx, i, a); err != nil {
				v.Lost++
				v.add("lost: s%d: %v", i, err)
			}
		}
	}
	for i, sv := range views {
		for _, name := range sortedKeys(sv.Names) {
			vl := sv.Names[name]
			top := vl.Versions[0]
			if err := c.readLatest(ctx, i, name, top); err != nil {
				v.Divergent++
				v.add("s%d: %v", i, err)
			}
		}
	}
	return v
}

// deletedAnywhere reports whether a site marks the version deleted
// (an expired version acts as a tombstone).
func deletedAnywhere(views []siteView, a ackEntry) bool {
	for _, sv := range views {
		for _, x := range sv.Names[a.Name].Versions {
			if x.Version == a.Version && x.Deleted {
				return true
			}
		}
	}
	return false
}

func (c *checker) hashmap(ctx context.Context, i int, name, version string) ([]string, error) {
	u := c.urls[i] + "/o/" + (&url.URL{Path: name}).EscapedPath() + "?hashmap&version=" + url.QueryEscape(version)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var hm struct {
		Chunks []string `json:"chunks"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&hm); err != nil {
		return nil, err
	}
	return hm.Chunks, nil
}

// readVersion reads an acknowledged version at site i and checks its bytes.
func (c *checker) readVersion(ctx context.Context, i int, a ackEntry) error {
	cl := client.New(c.urls[i], "")
	defer cl.CloseIdleConnections()
	obj, err := cl.Get(ctx, a.Name, client.GetOptions{Version: a.Version})
	if err != nil {
		return fmt.Errorf("get %s version %s: %w", a.Name, a.Version, err)
	}
	defer obj.Body.Close()
	sum, err := hashAll(obj.Body)
	if err != nil {
		return fmt.Errorf("read %s version %s: %w", a.Name, a.Version, err)
	}
	if sum != a.SHA {
		return fmt.Errorf("%s version %s: bytes hash to %s, the put was told %s", a.Name, a.Version, short(sum), short(a.SHA))
	}
	return nil
}

// readLatest reads name at site i and checks that it serves its newest
// version: the bytes it lists, or not found for a tombstone.
func (c *checker) readLatest(ctx context.Context, i int, name string, top client.Version) error {
	cl := client.New(c.urls[i], "")
	defer cl.CloseIdleConnections()
	obj, err := cl.Get(ctx, name, client.GetOptions{})
	var apiErr *client.APIError
	if top.Deleted {
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			return nil
		}
		if err == nil {
			obj.Body.Close()
			return fmt.Errorf("get %s served version %s, but its latest %s is deleted", name, obj.Version, top.Version)
		}
		return fmt.Errorf("get %s (latest deleted): %w", name, err)
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", name, err)
	}
	defer obj.Body.Close()
	sum, err := hashAll(obj.Body)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if obj.Version != top.Version || sum != top.SHA256 {
		return fmt.Errorf("get %s served version %s sha256 %s, its latest is %s sha256 %s", name, obj.Version, short(sum), top.Version, short(top.SHA256))
	}
	got, err := cl.Get(ctx, "", client.GetOptions{SHA256: sum})
	if err != nil {
		return fmt.Errorf("get by sha256 %s (of %s): %w", short(sum), name, err)
	}
	defer got.Body.Close()
	if bySHA, err := hashAll(got.Body); err != nil || bySHA != sum {
		return fmt.Errorf("get by sha256 %s (of %s): got %s, %v", short(sum), name, short(bySHA), err)
	}
	return nil
}

func hashAll(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
