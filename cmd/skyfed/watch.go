package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/skyfed/skyfed/tools/watch"
)

// WatchCmd is `skyfed watch`: it runs until SIGINT or SIGTERM (tools/watch).
type WatchCmd struct {
	Dir              string        `arg:"" type:"existingdir" help:"Directory to watch, with its subdirectories (a telescope's incoming dir)."`
	Prefix           string        `required:"" help:"Names are PREFIX + the path under DIR (gloria.eu/bootes-2/)." placeholder:"PREFIX"`
	DeleteAfterSites int           `name:"delete-after-sites" help:"Remove a file once this many sites (the site put to included) hold its version durably; 0 keeps every file." placeholder:"K"`
	Include          []string      `sep:"none" help:"Watch only files whose base name matches this glob (repeatable: '*.fits' --include '*.fits.fz'); default every file. Use it to leave out editors' and copy tools' temporary files." placeholder:"GLOB"`
	Settle           time.Duration `default:"10s" help:"A file no close-after-write or rename event was seen for counts as complete once nothing wrote to it for this long."`
	Rescan           time.Duration `default:"1m" help:"Walk the whole tree this often, for files events missed (an overflow, files written while skyfed was down)."`
	State            string        `type:"path" help:"Directory of what the watcher remembers across restarts (default: .<DIR's name>.skyfed-watch beside DIR)." placeholder:"DIR"`
	Metrics          string        `help:"Serve the skyfed_watch_* metrics at http://ADDR/metrics." placeholder:"ADDR"`
	Jobs             int           `default:"2" help:"Files put at once." placeholder:"N"`
	RetryMax         time.Duration `name:"retry-max" default:"1m" hidden:"" help:"Longest wait between tries of a failure, and between asks for holders."`
	HeldWait         time.Duration `name:"held-wait" default:"1s" hidden:"" help:"How long one ask for a version's holders may wait at the site."`
	Conn             siteFlags     `embed:""`
}

// Run watches until the command is stopped.
func (c *WatchCmd) Run(app *App) error {
	if c.Jobs < 1 || c.DeleteAfterSites < 0 || c.Settle <= 0 || c.Rescan <= 0 {
		return &ExitError{Code: exitUsage, Err: errors.New("--jobs must be at least 1, --delete-after-sites not negative, --settle and --rescan positive")}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	opts := watch.Options{Dir: c.Dir, Prefix: c.Prefix, Site: cl, StateDir: c.State, Include: c.Include,
		Settle: c.Settle, Rescan: c.Rescan, DeleteAfterSites: c.DeleteAfterSites, Jobs: c.Jobs, RetryMax: c.RetryMax, HeldWait: c.HeldWait,
		Out: app.Stdout, Log: app.Log, Registry: reg}
	g, ctx := errgroup.WithContext(app.Ctx)
	if c.Metrics != "" {
		ln, err := net.Listen("tcp", c.Metrics)
		if err != nil {
			return fmt.Errorf("watch: --metrics: %w", err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("watch: metrics: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	g.Go(func() error {
		err := watch.Run(ctx, opts)
		if errors.Is(err, watch.ErrBadOptions) {
			err = &ExitError{Code: exitUsage, Err: err}
		}
		return err
	})
	return g.Wait()
}
