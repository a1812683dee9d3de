package site

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// ErrRestoreDeleted: the version asked to be restored is a tombstone.
var ErrRestoreDeleted = errors.New("the version is a delete")

// serveRestore answers POST /o/{name}?restore=V: a new version of name
// over the bytes of version V (its chunks, content type and meta), made
// without moving data, as Pithos+ restores; ?wait_sites as for a put.
func (s *Site) serveRestore(w http.ResponseWriter, r *http.Request, name naming.Name) {
	v := r.URL.Query().Get("restore")
	stamp, err := manifest.ParseStamp(v)
	if err != nil {
		s.fail(w, r, "restore", badRequest(fmt.Errorf("restore %q: %w", v, err), "give a version as skyfed versions NAME lists it"))
		return
	}
	_, want, timeout, ok := s.putRequest(w, r, "restore") // the version's options are the restored one's
	if !ok {
		return
	}
	src, err := s.version(r, name, stamp)
	if err != nil {
		s.fail(w, r, "restore", err)
		return
	}
	if src.Tombstone {
		s.fail(w, r, "restore", badRequest(fmt.Errorf("restore %s of %s: %w", v, name, ErrRestoreDeleted), "restore a version that holds bytes; skyfed versions NAME lists them"))
		return
	}
	m, err := s.objects.Copy(r.Context(), src, name, naming.PutOptions{ContentType: src.ContentType, Meta: src.Meta})
	if err != nil {
		s.fail(w, r, "restore", err)
		return
	}
	s.metrics.ingestObjs.Inc()
	s.answerPut(w, r, m, want, timeout)
}

// Build says which build of skyfed this is: the module version, the
// commit and its time when the binary was built from a checkout (with
// "+dirty" for uncommitted changes), and the Go toolchain.
func Build() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (" + runtime.Version() + ")"
	}
	parts := []string{info.Main.Version}
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		parts = append(parts, "commit "+rev[:min(12, len(rev))]+dirty)
	}
	if at != "" {
		parts = append(parts, at)
	}
	parts = append(parts, info.GoVersion, runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, " ")
}
