package site

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// The namespace as it was: ls and versions with as_of (a version stamp
// or an RFC 3339 time) answer each name's version at that point, deleted
// names left out, later versions not shown.
func TestListAsOf(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	step := func(method, name string) string {
		t.Helper()
		code, answer := ts.send(t, method, "/o/gloria.eu/asof/"+name, []byte(method+name))
		if code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("%s %s: %d %v", method, name, code, answer)
		}
		return answer["version"].(string)
	}
	a1 := step(http.MethodPut, "a")
	b1 := step(http.MethodPut, "b")
	rmA := step(http.MethodDelete, "a")
	b2 := step(http.MethodPut, "b")
	c1 := step(http.MethodPut, "c")
	ls := func(asOf string) []string {
		t.Helper()
		code, answer := ts.send(t, http.MethodGet, "/ls?prefix=gloria.eu/asof/&as_of="+url.QueryEscape(asOf), nil)
		if code != http.StatusOK {
			t.Fatalf("ls as of %s: %d %v", asOf, code, answer)
		}
		var out []string
		for _, o := range answer["objects"].([]any) {
			e := o.(map[string]any)
			out = append(out, fmt.Sprintf("%s@%s", e["name"], e["version"]))
		}
		return out
	}
	for _, tc := range []struct {
		asOf string
		want []string
	}{
		{a1, []string{"gloria.eu/asof/a@" + a1}},
		{b1, []string{"gloria.eu/asof/a@" + a1, "gloria.eu/asof/b@" + b1}},
		{rmA, []string{"gloria.eu/asof/b@" + b1}},
		{b2, []string{"gloria.eu/asof/b@" + b2}},
		{c1, []string{"gloria.eu/asof/b@" + b2, "gloria.eu/asof/c@" + c1}},
		{"2001-01-01T00:00:00Z", nil},
		{"2999-01-01T00:00:00Z", []string{"gloria.eu/asof/b@" + b2, "gloria.eu/asof/c@" + c1}},
	} {
		if got := ls(tc.asOf); !slices.Equal(got, tc.want) {
			t.Errorf("ls as of %s: %v, want %v", tc.asOf, got, tc.want)
		}
	}
	code, answer := ts.send(t, http.MethodGet, "/o/gloria.eu/asof/b?versions&as_of="+b1, nil)
	if vs, _ := answer["versions"].([]any); code != http.StatusOK || len(vs) != 1 || vs[0].(map[string]any)["version"] != b1 {
		t.Errorf("versions of b as of %s: %d %v", b1, code, answer)
	}
	if code, _ := ts.send(t, http.MethodGet, "/o/gloria.eu/asof/c?versions&as_of="+b1, nil); code != http.StatusNotFound {
		t.Errorf("versions of c before it was put: %d, want 404", code)
	}
	if code, _ := ts.send(t, http.MethodGet, "/ls?as_of=yesterday", nil); code != http.StatusBadRequest {
		t.Errorf("ls as of a malformed time: %d, want 400", code)
	}
}
