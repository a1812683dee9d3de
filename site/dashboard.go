package site

import (
	"fmt"
	"net/http"
)

// registerDashboard adds the dashboard page and its APIs to mux.
func (s *Site) registerDashboard(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status()
		if err != nil {
			s.fail(w, r, "index", err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>skyfed %s</title>
<h1>skyfed site %s</h1><p>domain %s · %d objects · %d links</p>
<p><a href="/api/status">/api/status</a> · <a href="/metrics">/metrics</a></p>`, st.Site, st.Site, st.Domain, st.Objects, len(st.Links))
	})
}
