package testlab_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/skyfed/skyfed/site/client"
	"github.com/skyfed/skyfed/testlab"
)

// TestLookupSaysHowManySitesAnswered: an answer for which a site asked
// the federation says how many sites the query was sent towards and how
// many answered (X-Skyfed-Asked, X-Skyfed-Answered), so that a client can
// tell that a newer version may exist when a site stayed silent.
func TestLookupSaysHowManySitesAnswered(t *testing.T) {
	f := lkLab(t, testlab.FedOptions{N: 3, Topology: "line"}) // s0–s1–s2
	old := lkPut(t, f, 0, "asked/frame.fits", 100<<10, 4801)
	if err := f.WaitConverged(lkWait); err != nil {
		t.Fatal(err)
	}
	headers := func(resp *http.Response) (string, string) {
		return resp.Header.Get(client.AskedHeader), resp.Header.Get(client.AnsweredHeader)
	}
	resp, _ := lkDo(t, f, 0, http.MethodGet, "/o/"+old.Name, nil)
	if asked, answered := headers(resp); asked != "" || answered != "" {
		t.Errorf("a get served locally says asked %q, answered %q; want no lookup headers", asked, answered)
	}
	resp, _ = lkDo(t, f, 0, http.MethodGet, "/o/"+old.Name+"?fresh=1", nil)
	if asked, answered := headers(resp); resp.StatusCode != http.StatusOK || asked != "2" || answered != "2" {
		t.Errorf("fresh get, every site reachable: HTTP %d, asked %q, answered %q; want 200, 2, 2", resp.StatusCode, asked, answered)
	}

	// s2 falls silent, its link still up: what s1 passes on to it is never
	// answered, and s0's lookups end at their deadline.
	f.Proxy(1, 2).Blackhole(true)
	if _, err := f.PutRandom(2, old.Name, 120<<10, 4802); err != nil {
		t.Fatal(err)
	}
	only := lkPut(t, f, 2, "asked/only-at-s2.fits", 10<<10, 4803)
	before := lkMetric(t, f, 0, "skyfed_federation_lookups_incomplete_total")
	c := lkClient(t, f, 0)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // served: the newest version heard of, with the warning's numbers
		defer wg.Done()
		obj, err := c.Get(ctx, old.Name, client.GetOptions{Fresh: true})
		if err != nil {
			t.Errorf("fresh get with s2 silent: %v", err)
			return
		}
		defer obj.Body.Close()
		io.Copy(io.Discard, obj.Body)
		if obj.Version != old.Version() || obj.Federation == nil || *obj.Federation != (client.Federation{Asked: 2, Answered: 1}) {
			t.Errorf("fresh get with s2 silent: version %s, federation %+v; want %s, asked 2, answered 1", obj.Version, obj.Federation, old.Version())
		}
	}()
	go func() {
		defer wg.Done()
		vl, err := c.VersionsFresh(ctx, old.Name, true)
		if err != nil || len(vl.Versions) != 1 || vl.Federation == nil || *vl.Federation != (client.Federation{Asked: 2, Answered: 1}) {
			t.Errorf("fresh versions with s2 silent: %+v, federation %+v, %v; want one version, asked 2, answered 1", vl.Versions, vl.Federation, err)
		}
	}()
	go func() { // not found here, but perhaps only for want of s2's answer
		defer wg.Done()
		_, err := c.Get(ctx, only.Name, client.GetOptions{})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Federation == nil || !ae.Federation.Incomplete() {
			t.Errorf("get of a name only s2 holds: %v; want a 404 saying the lookup was incomplete", err)
		}
	}()
	wg.Wait()
	if n := lkMetric(t, f, 0, "skyfed_federation_lookups_incomplete_total"); n != before+3 {
		t.Errorf("s0 counted %v incomplete lookups, want %v", n, before+3)
	}
}
