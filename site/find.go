package site

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// findHint is what a bad find query is answered with.
const findHint = "conditions are ANDed: q=FILTER=R&q=EXPTIME>=30&q=DATE-OBS>=2026-11-01&q=OBJECT=NGC*&q=FILTER in (R,V), cone=RA,DEC,RADIUS in degrees"

// serveFind answers GET /find?q=…&q=…&cone=RA,DEC,R&all_versions=1
// &limit=N&after=TOKEN: the versions whose header values match every
// condition, as far as the credential may read them.
func (s *Site) serveFind(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var fq naming.FindQuery
	for _, text := range q["q"] {
		p, err := naming.ParsePredicate(text)
		if err != nil {
			s.fail(w, r, "find", badRequest(err, findHint))
			return
		}
		fq.Predicates = append(fq.Predicates, p)
	}
	for _, text := range q["cone"] {
		p, err := naming.ParseCone(text)
		if err != nil {
			s.fail(w, r, "find", badRequest(err, findHint))
			return
		}
		fq.Predicates = append(fq.Predicates, p)
	}
	if len(fq.Predicates) == 0 {
		s.fail(w, r, "find", badRequest(fmt.Errorf("%w: no condition", naming.ErrBadQuery), findHint))
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > naming.MaxFindLimit {
			s.fail(w, r, "find", badRequest(fmt.Errorf("limit %q must be 1..%d", l, naming.MaxFindLimit), ""))
			return
		}
		fq.Limit = n
	}
	switch v := q.Get("all_versions"); v {
	case "", "0", "false":
	case "1", "true":
		fq.AllVersions = true
	default:
		s.fail(w, r, "find", badRequest(fmt.Errorf("all_versions %q must be true or false", v), ""))
		return
	}
	fq.After = q.Get("after")
	p, authErr := principalOf(r)
	keep, d := s.access().find(p, authErr)
	if d != nil {
		s.deny(w, r, "find", d)
		return
	}
	fq.Keep = keep
	start := time.Now()
	page, err := s.objects.Find(r.Context(), fq)
	s.metrics.findSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.fail(w, r, "find", err)
		return
	}
	out := client.FindPage{Results: []client.Found{}, Next: page.Next}
	for _, m := range page.Versions {
		meta := make(map[string]string, len(m.Meta))
		for _, kv := range m.Meta {
			meta[kv.Key] = kv.Value
		}
		out.Results = append(out.Results, client.Found{Name: m.Name, Version: m.Version(), Size: m.Size,
			SHA256: hex.EncodeToString(m.SHA256[:]), Meta: meta})
	}
	s.ok(w, "find", http.StatusOK, out)
}
