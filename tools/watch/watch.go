// Package watch owns `skyfed watch`: it puts every new or changed file
// under a directory into a site, once, as a telescope writes it, and
// with --delete-after-sites frees the local copy once enough sites hold
// that exact version. It finds files by inotify (closed after writing,
// renamed in; new subdirectories are watched in turn) and by a periodic
// rescan that finds what an overflow or a stop lost, remembers every
// file in a Pebble state dir so that a restart neither puts a file twice
// nor misses one, and decides what to do for a file in one pure function
// (Decide) apart from the I/O. It talks to the site only through its
// HTTP client (package site/client); it holds no storage, naming or
// forwarding logic.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skyfed/skyfed/site/client"
)

// Site is what the watcher asks of a site; *client.Client is one.
type Site interface {
	PutFile(ctx context.Context, name string, f io.ReaderAt, size int64, opts client.PutOptions) (client.PutResult, error)
	Versions(ctx context.Context, name string) (client.VersionList, error)
	List(ctx context.Context, prefix, after string, limit int) (client.ListPage, error)
	Held(ctx context.Context, manifest string, want int, timeout time.Duration) (client.Held, error)
}

var _ Site = (*client.Client)(nil)

// ErrBadOptions is wrapped by the error Run returns for options it
// cannot run with.
var ErrBadOptions = errors.New("bad watch options")

// Defaults of Options.
const (
	DefaultSettle   = 10 * time.Second
	DefaultRescan   = time.Minute
	DefaultJobs     = 2
	DefaultRetryMin = time.Second
	DefaultRetryMax = time.Minute
	DefaultHeldWait = time.Second
)

// Options of a watcher.
type Options struct {
	Dir    string // the directory watched, with its subdirectories
	Prefix string // names are Prefix + the path under Dir, with slashes; "/" is added if missing
	Site   Site
	// StateDir holds what the watcher remembers; "" is DefaultStateDir(Dir).
	StateDir string
	// Include keeps only files whose base name matches one of these
	// globs (path.Match); none keeps every file.
	Include []string
	// Settle: a file no event said was complete counts as complete once
	// nothing wrote to it for this long (DefaultSettle).
	Settle time.Duration
	// Rescan is how often the whole tree is walked (DefaultRescan).
	Rescan time.Duration
	// DeleteAfterSites > 0 removes a file once that many sites (the
	// site put to included) hold its version durably.
	DeleteAfterSites int
	Jobs             int           // files put at once (DefaultJobs)
	RetryMin         time.Duration // first wait after a failure (DefaultRetryMin), doubling
	RetryMax         time.Duration // longest wait between tries (DefaultRetryMax)
	HeldWait         time.Duration // how long one ask for holders may wait at the site (DefaultHeldWait)
	// Out gets one line per file: put NAME VERSION SHA256 SIZE, same
	// NAME VERSION SHA256 SIZE, deleted PATH NAME VERSION SITES.
	Out io.Writer
	Log *slog.Logger // failures (each retried) and notes
	// Registry gets the skyfed_watch_* metrics; nil keeps them unregistered.
	Registry prometheus.Registerer
}

// DefaultStateDir is where the state of a watch of dir goes by default:
// beside it, in its parent, so that it is never watched itself.
func DefaultStateDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	return filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".skyfed-watch")
}

func (o *Options) check() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: no directory", ErrBadOptions)
	case o.Prefix == "" || strings.HasPrefix(o.Prefix, "/"):
		return fmt.Errorf("%w: --prefix must be a name prefix, domain first (gloria.eu/bootes-2/), got %q", ErrBadOptions, o.Prefix)
	case o.Site == nil:
		return fmt.Errorf("%w: no site", ErrBadOptions)
	case o.DeleteAfterSites < 0 || o.Jobs < 0:
		return fmt.Errorf("%w: --delete-after-sites and --jobs must not be negative", ErrBadOptions)
	}
	for _, g := range o.Include {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("%w: --include %q: %v", ErrBadOptions, g, err)
		}
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir(o.Dir)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Settle, DefaultSettle)
	def(&o.Rescan, DefaultRescan)
	def(&o.RetryMin, DefaultRetryMin)
	def(&o.RetryMax, DefaultRetryMax)
	def(&o.HeldWait, DefaultHeldWait)
	if o.Jobs == 0 {
		o.Jobs = DefaultJobs
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	return nil
}

// included reports whether a file of this base name is watched.
func (o *Options) included(base string) bool {
	if len(o.Include) == 0 {
		return true
	}
	for _, g := range o.Include {
		if ok, _ := path.Match(g, base); ok {
			return true
		}
	}
	return false
}

// Run watches until ctx ends, then returns nil once every goroutine it
// started has stopped. It returns an error only for what retrying cannot
// mend: bad options, a state dir it cannot open, a directory that is not
// there at the start. Everything else (a site down, a file unreadable)
// is logged, counted, and tried again with backoff.
func Run(ctx context.Context, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	w, err := newWatcher(o)
	if err != nil {
		return err
	}
	defer w.st.Close()
	return w.run(ctx)
}
