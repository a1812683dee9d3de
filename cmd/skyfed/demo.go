package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site"
	"github.com/skyfed/skyfed/testlab"
)

// DemoCmd is `skyfed demo`: a local site on embedded defaults with sample
// FITS frames put into it.
type DemoCmd struct {
	Dir    string        `help:"Data dir for the demo site (default: a new temp dir, removed at exit)." type:"path"`
	HTTP   string        `default:"127.0.0.1:7401" help:"HTTP listen address."`
	NATS   string        `default:"127.0.0.1:7402" help:"Embedded NATS listen address."`
	FITS   string        `name:"fits" env:"SKYFED_FITS" help:"Directory of real FITS files to use as sample data (e.g. from Debian's eso-midas-testdata); synthetic 16-bit frames when unset or empty."`
	Frames int           `default:"8" help:"Number of frames to put."`
	For    time.Duration `name:"for" help:"Stop after this long (default: run until Ctrl-C)."`
}

const demoDomain = "gloria.eu"

// Run starts the demo site, puts the frames and waits.
func (c *DemoCmd) Run(app *App) error {
	dir := c.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "skyfed-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "demo")
	}
	if _, err := site.LoadConfig(dir); err != nil {
		if _, err := site.Init(dir, site.Config{ID: "demo", Domain: demoDomain, HTTP: c.HTTP, NATS: c.NATS}); err != nil {
			return err
		}
	}
	s, err := site.Open(dir, site.Options{Logger: app.Log})
	if err != nil {
		return err
	}
	ctx := app.Ctx
	if c.For > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.For)
		defer cancel()
	}
	if err := s.Start(ctx); err != nil {
		s.Close()
		return err
	}
	names, source, err := c.putFrames(ctx, s.Objects())
	if err != nil {
		s.Stop()
		return err
	}
	c.printGuide(app, s, dir, names, source)
	<-ctx.Done()
	return s.Stop()
}

func (c *DemoCmd) putFrames(ctx context.Context, objects *naming.Store) ([]string, string, error) {
	var real []string
	if c.FITS != "" {
		found, err := testlab.FindFITS(c.FITS, 100<<10)
		if err != nil {
			return nil, "", err
		}
		real = found
	}
	day := time.Now().UTC().Format("2006/01/02")
	var names []string
	for i := range c.Frames {
		name := naming.MustParseName(fmt.Sprintf("%s/demo-cam/%s/img-%04d.fits", demoDomain, day, i+1))
		r, err := frameReader(real, i)
		if err != nil {
			return nil, "", err
		}
		_, err = objects.Put(ctx, name, r, naming.PutOptions{ContentType: "image/fits"})
		r.Close()
		if err != nil {
			return nil, "", err
		}
		names = append(names, name.String())
	}
	if len(real) > 0 {
		return names, "real FITS frames from " + c.FITS, nil
	}
	return names, "synthetic 16-bit FITS frames", nil
}

func (c *DemoCmd) printGuide(app *App, s *site.Site, dir string, names []string, source string) {
	url := "http://" + s.HTTPAddr()
	w := app.Stdout
	fmt.Fprintf(w, "skyfed demo: site %q is running\n", s.Config().ID)
	fmt.Fprintf(w, "  HTTP      %s   (status: %s/api/status, metrics: %s/metrics)\n", url, url, url)
	fmt.Fprintf(w, "  NATS      %s\n", s.NATSURL())
	fmt.Fprintf(w, "  data dir  %s\n", dir)
	fmt.Fprintf(w, "  put %d objects (%s), e.g. %s\n\n", len(names), source, names[0])
	fmt.Fprintf(w, "Try, in another terminal:\n")
	fmt.Fprintf(w, "  export SKYFED_SITE=%s\n", url)
	fmt.Fprintf(w, "  skyfed ls %s/\n", demoDomain)
	fmt.Fprintf(w, "  skyfed get %s -o frame.fits\n", names[0])
	fmt.Fprintf(w, "  skyfed stat\n")
	if c.For > 0 {
		fmt.Fprintf(w, "The demo stops by itself after %s.\n", c.For)
	} else {
		fmt.Fprintf(w, "Ctrl-C stops the demo.\n")
	}
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
