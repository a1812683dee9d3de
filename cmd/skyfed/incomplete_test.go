package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skyfed/skyfed/site/client"
)

// TestIncompleteLookupWarns: when the site's lookup across the
// federation heard from fewer sites than it asked, get and versions say
// so on stderr and keep the exit code of what was found.
func TestIncompleteLookupWarns(t *testing.T) {
	leakCheck(t)
	const data = "first light"
	var asked, answered, status int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set(client.SiteHeader, "alpha")
		h.Set(client.AskedHeader, fmt.Sprint(asked))
		h.Set(client.AnsweredHeader, fmt.Sprint(answered))
		switch {
		case status != http.StatusOK:
			writeErr(w, status, "no object", "")
		case r.URL.Query().Has("versions"):
			fmt.Fprint(w, `{"name":"gloria.eu/x","latest":"v1","versions":[{"version":"v1","origin":"alpha","size":11}]}`)
		default:
			h.Set("ETag", `"`+hexSum([]byte(data))+`"`)
			h.Set("X-Skyfed-Version", "v1")
			fmt.Fprint(w, data)
		}
	}))
	defer srv.Close()
	cases := []struct {
		args                    []string
		asked, answered, status int
		wantCode                int
		wantStdout, wantWarning string
	}{
		{[]string{"get", "--fresh", "gloria.eu/x"}, 3, 1, 200, exitOK, data,
			"skyfed: warning: only 1 of 3 sites answered; a newer version may exist\n"},
		{[]string{"get", "--fresh", "gloria.eu/x"}, 3, 3, 200, exitOK, data, ""},
		{[]string{"get", "gloria.eu/x"}, 2, 0, 404, exitNotFound, "",
			"skyfed: warning: only 0 of 2 sites answered; a site that did not answer may hold it\n"},
		{[]string{"versions", "--fresh", "gloria.eu/x"}, 2, 1, 200, exitOK, "v1",
			"skyfed: warning: only 1 of 2 sites answered; a newer version may exist\n"},
		{[]string{"versions", "--fresh", "gloria.eu/x"}, 2, 2, 200, exitOK, "v1", ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %d of %d HTTP %d", tc.args[0], tc.answered, tc.asked, tc.status), func(t *testing.T) {
			asked, answered, status = tc.asked, tc.answered, tc.status
			app, out, errb := testApp("")
			code := run(append(tc.args, "--site", srv.URL), app)
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantStdout) {
				t.Errorf("exit %d, stdout %q; want %d, %q", code, out, tc.wantCode, tc.wantStdout)
			}
			if tc.wantWarning == "" && strings.Contains(errb.String(), "warning") ||
				!strings.HasPrefix(errb.String(), tc.wantWarning) {
				t.Errorf("stderr %q; want it to start with %q", errb, tc.wantWarning)
			}
		})
	}
}
