package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/testlab"
)

// DemoCmd is `skyfed demo`: a local federation of sites with loops on
// embedded NATS servers, sample FITS frames put at two of them, and live
// progress until every site holds every frame.
type DemoCmd struct {
	Dir      string        `help:"Data dir for the demo sites (default: a new temp dir, removed at exit)." type:"path"`
	Sites    int           `default:"5" help:"Number of sites (2 to 9)."`
	Topology string        `default:"ring-chords" enum:"line,ring,star,mesh,ring-chords" help:"How the sites are linked (line, ring, star, mesh, ring-chords)."`
	HTTPPort int           `name:"http-port" default:"7601" help:"HTTP port of the first site; the others follow (not README's by-hand 7401/7501, so both can run)."`
	NATSPort int           `name:"nats-port" default:"7621" help:"NATS port of the first site; the others follow."`
	S3Port   int           `name:"s3-port" default:"7641" help:"S3 API port of the first site; the others follow."`
	FITS     string        `name:"fits" env:"SKYFED_FITS" help:"Directory of real FITS files to use as sample data (e.g. from Debian's eso-midas-testdata); synthetic 16-bit frames when unset."`
	Frames   int           `default:"6" help:"Frames to put at each of the two observing sites."`
	For      time.Duration `name:"for" help:"Stop after this long (default: run until Ctrl-C)."`
}

const demoDomain = "gloria.eu"

var demoSiteNames = []string{"paranal", "lapalma", "mauna-kea", "siding-spring", "sutherland", "hanle", "kitt-peak", "xinglong", "maidanak"}

// demoLocations are where those observatories are (LAT,LON), so the
// page's federation view draws the demo on the world outline.
var demoLocations = map[string]string{
	"paranal": "-24.627,-70.404", "lapalma": "28.757,-17.885", "mauna-kea": "19.826,-155.474",
	"siding-spring": "-31.273,149.061", "sutherland": "-32.379,20.811", "hanle": "32.779,78.964",
	"kitt-peak": "31.958,-111.600", "xinglong": "40.396,117.577", "maidanak": "38.673,66.896",
}

// Run builds the federation, puts the frames, shows replication converge
// and keeps the sites running.
func (c *DemoCmd) Run(app *App) error {
	if c.Sites < 2 || c.Sites > len(demoSiteNames) {
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("--sites must be 2 to %d", len(demoSiteNames))}
	}
	dir := c.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "skyfed-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	ctx := app.Ctx
	if c.For > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.For)
		defer cancel()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "demo.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("demo log: %w", err)
	}
	defer logFile.Close()
	fmt.Fprintf(app.Stdout, "skyfed demo: the sites log to %s\n", logPath)
	bin := demoBinary(dir)
	fed, err := c.startFederation(slog.New(slog.NewTextHandler(logFile, nil)), dir)
	if err != nil {
		return err
	}
	defer fed.Close()
	sites := fed.Sites()
	want, source, err := c.putFrames(ctx, sites)
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "put %d frames (%s) at %s and %s; replicating over %s links...\n",
		want, source, sites[0].Config().ID, sites[len(sites)/2].Config().ID, c.Topology)
	start := time.Now()
	if err := c.watch(ctx, app.Stdout, sites, int64(want), start); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
		return err
	}
	c.printGuide(app.Stdout, sites, bin, c.Dir == "")
	<-ctx.Done()
	return nil
}

// startFederation creates (or reuses) the site dirs, makes every site
// trust every other, links them by the topology and starts them.
func (c *DemoCmd) startFederation(log *slog.Logger, base string) (*testlab.Federation, error) {
	fed, err := testlab.StartFederation(testlab.FedOptions{
		N: c.Sites, Topology: c.Topology, Seed: 1, Dir: base, IDs: demoSiteNames[:c.Sites], Domain: demoDomain,
		ChunkSize: chunk.DefaultSize, Logger: log, Direct: true,
		HTTPAddr: func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.HTTPPort+i)) },
		NATSAddr: func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.NATSPort+i)) },
		S3Addr:   func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.S3Port+i)) },
		Edit:     func(i int, cfg *site.Config) { cfg.Location = demoLocations[demoSiteNames[i]] },
	})
	if errors.Is(err, testlab.ErrStart) {
		return nil, fmt.Errorf("%w (another demo running? use --http-port/--nats-port/--s3-port)", err)
	}
	return fed, err
}

// putFrames puts frames at two sites at once, as two telescopes would.
func (c *DemoCmd) putFrames(ctx context.Context, sites []*site.Site) (int, string, error) {
	var real []string
	source := "synthetic 16-bit FITS frames"
	if c.FITS != "" {
		found, err := testlab.FindFITS(c.FITS, 100<<10)
		if err != nil {
			return 0, "", err
		}
		real, source = found, "real FITS frames from "+c.FITS
	}
	day := time.Now().UTC().Format("2006/01/02")
	g, gctx := errgroup.WithContext(ctx)
	for n, idx := range []int{0, len(sites) / 2} {
		s := sites[idx]
		g.Go(func() error {
			for i := range c.Frames {
				name := naming.MustParseName(fmt.Sprintf("%s/%s-cam/%s/img-%04d.fits", demoDomain, s.Config().ID, day, i+1))
				r, err := frameReader(real, n*c.Frames+i)
				if err != nil {
					return err
				}
				_, err = s.Objects().Put(gctx, name, r, naming.PutOptions{ContentType: "image/fits"})
				r.Close()
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	return 2 * c.Frames, source, g.Wait()
}

// frameReader streams frame i: a real file when there are some, else a
// synthetic frame written through a pipe.
func frameReader(real []string, i int) (io.ReadCloser, error) {
	if len(real) > 0 {
		return os.Open(real[i%len(real)])
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(testlab.WriteSyntheticFrame(pw, uint64(i), 1024, 1024))
	}()
	return pr, nil
}

// watch prints one progress line a second until every site holds every
// frame and every link's backlog is empty.
func (c *DemoCmd) watch(ctx context.Context, w io.Writer, sites []*site.Site, want int64, start time.Time) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		line, done, err := progressLine(sites, want)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%5.1fs  %s\n", time.Since(start).Seconds(), line)
		if done {
			fmt.Fprintf(w, "converged: every site holds all %d frames (%.1fs)\n\n", want, time.Since(start).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func progressLine(sites []*site.Site, want int64) (string, bool, error) {
	var parts []string
	done := true
	for _, s := range sites {
		st, err := s.Status()
		if err != nil {
			return "", false, err
		}
		up, backlog := 0, uint64(0)
		for _, l := range st.Links {
			if l.State == forward.StateUp {
				up++
			}
			backlog += l.Backlog
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d (links up %d, backlog %d)", st.Site, st.Objects, want, up, backlog))
		if st.Objects < want || backlog > 0 {
			done = false
		}
	}
	return strings.Join(parts, " · "), done, nil
}

// demoBinary copies this skyfed binary into dir, so that the commands the
// demo prints work after `go run` (whose binary is in Go's build cache
// and not on PATH); when it cannot, the commands are `go run ./cmd/skyfed`
// from the source tree.
func demoBinary(dir string) string {
	self, err := os.Executable()
	if err == nil {
		bin := filepath.Join(dir, "skyfed")
		if err = copyFile(self, bin); err == nil {
			return bin
		}
	}
	return "go run ./cmd/skyfed"
}

// copyFile copies the executable src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// printGuide says how to reach each site, with commands that work as
// printed: bin is this binary's copy in the demo dir (or go run).
func (c *DemoCmd) printGuide(w io.Writer, sites []*site.Site, bin string, tempDir bool) {
	fmt.Fprintf(w, "skyfed demo: %d sites running\n", len(sites))
	for _, s := range sites {
		fmt.Fprintf(w, "  %-14s http://%s   nats %s   s3 http://%s\n", s.Config().ID, s.HTTPAddr(), s.NATSURL(), s.S3Addr())
	}
	first := "http://" + sites[0].HTTPAddr()
	fmt.Fprintf(w, "\nTry, in another terminal")
	if bin != "go run ./cmd/skyfed" {
		fmt.Fprintf(w, " (%s is this skyfed, copied there", bin)
		if tempDir {
			fmt.Fprintf(w, "; removed when the demo stops")
		}
		fmt.Fprintf(w, ")")
	} else {
		fmt.Fprintf(w, ", from the skyfed source tree")
	}
	fmt.Fprintf(w, ":\n")
	fmt.Fprintf(w, "  export SKYFED_SITE=%s\n", first)
	fmt.Fprintf(w, "  %s ls %s/\n", bin, demoDomain)
	fmt.Fprintf(w, "  %s stat\n", bin)
	fmt.Fprintf(w, "  curl -s %s/api/status\n", first)
	fmt.Fprintf(w, "  aws --endpoint-url http://%s --no-sign-request s3 ls --recursive s3://%s/   # S3 (unsigned requests are open on loopback)\n", sites[0].S3Addr(), demoDomain)
	if c.For > 0 {
		fmt.Fprintf(w, "The demo stops by itself after %s.\n", c.For)
	} else {
		fmt.Fprintf(w, "Ctrl-C stops the demo.\n")
	}
}
