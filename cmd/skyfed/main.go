// Command skyfed is the one binary of a skyfed federation: it creates and
// runs sites, and talks to a site's HTTP API (put, get, versions, ls, rm,
// stat). Commands parse flags and call packages; they hold no logic of
// their own.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/skyfed/skyfed/site/client"
)

// App is what every command's Run gets.
type App struct {
	Ctx    context.Context // cancelled on SIGINT/SIGTERM
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader
	Log    *slog.Logger // to Stderr
}

// Exit codes, documented in the root --help text.
const (
	exitOK       = 0
	exitError    = 1
	exitNotFound = 2
	exitVerify   = 3
	exitTimeout  = 4
	exitDiffer   = 5
	exitUsage    = 80
)

const rootHelp = `Federated storage for observatory networks: every object at every site.

Talk to a site with put, get, versions, ls, rm and stat (--site or SKYFED_SITE picks the site).

Exit codes:

    0 ok · 1 error · 2 not found (also deleted or expired) · 3 verification failed · 4 timeout · 5 differ (diff) · 80 usage`

// cli is the kong root.
type cli struct {
	Put      PutCmd      `cmd:"" help:"Store a file (or stdin) as a new version of NAME."`
	Get      GetCmd      `cmd:"" help:"Fetch an object and verify its SHA-256."`
	Versions VersionsCmd `cmd:"" help:"List every version of an object, newest first."`
	Ls       LsCmd       `cmd:"" help:"List objects by name prefix."`
	Rm       RmCmd       `cmd:"" help:"Delete an object (writes a tombstone version)."`
	Restore  RestoreCmd  `cmd:"" help:"Make an earlier version of NAME the latest again, without moving data."`
	Find     FindCmd     `cmd:"" help:"Find objects by their FITS header values (OBJECT, DATE-OBS, FILTER, RA/DEC cone …)."`
	Watch    WatchCmd    `cmd:"" help:"Put every new or changed file under a directory, once, as it is written (a telescope's incoming dir)."`
	Version  VersionCmd  `cmd:"" help:"Print this build of skyfed (and, with --site, the site's)."`
	Stat     StatCmd     `cmd:"" help:"Show a site's status and its links."`
	Diff     DiffCmd     `cmd:"" help:"Reconcile this site with a linked peer now and say what either lacks (exit 5 when they differ)."`
	Resync   ResyncCmd   `cmd:"" help:"Reconcile with a linked peer until the two are in sync, moving what is missing, with progress."`
	Tools    ToolsCmd    `cmd:"" help:"Operator tools for a running site: scrub, gc."`
	Share    ShareCmd    `cmd:"" help:"Print a URL that opens an object (or the dashboard) to anyone until it expires."`
	Site     SiteCmd     `cmd:"" help:"Create, run and configure a site."`
	Demo     DemoCmd     `cmd:"" help:"Run a small federation on this machine and show it replicating."`
	Bench    BenchCmd    `cmd:"" help:"Measure ingest and replication against baselines."`
}

// ExitError carries an exit code through an error return. With a nil Err,
// run exits with Code and prints nothing.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// hintError attaches what to do to an error; run prints it as "hint: …".
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
func (e *hintError) Hint() string  { return e.hint }

// withHint wraps err so that run prints hint below it.
func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// exitCodeOf maps an error to the exit code scripts see.
func exitCodeOf(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if errors.Is(err, client.ErrNotSkyfed) {
		return exitError // whatever it answered (a 404 too) says nothing about the object
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case 404, 410:
			return exitNotFound
		case 504:
			return exitTimeout
		case 502:
			if ae.Message == "chunk_corrupt" {
				return exitVerify // the site's copy is damaged and could not be repaired
			}
		}
	}
	switch {
	case errors.Is(err, client.ErrVerify):
		return exitVerify
	case errors.Is(err, context.DeadlineExceeded):
		return exitTimeout
	}
	return exitError
}

// hintOf returns the first hint found in err's chain: an error with a
// Hint() method, or an *client.APIError's Hint.
func hintOf(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		return h.Hint()
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Hint
	}
	return ""
}

// kongExit is panicked by kong's Exit hook (after --help) and recovered
// in run, so that run returns instead of the process exiting.
type kongExit int

// run parses args, runs the command and returns the exit code. Errors are
// printed to app.Stderr as "skyfed: <error>" and "hint: <hint>".
func run(args []string, app *App) (code int) {
	var root cli
	parser, err := kong.New(&root,
		kong.Name("skyfed"),
		kong.Description(rootHelp),
		kong.Writers(app.Stdout, app.Stderr),
		kong.Exit(func(c int) { panic(kongExit(c)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Bind(app),
	)
	if err != nil {
		fmt.Fprintf(app.Stderr, "skyfed: internal error: %v\n", err)
		return exitError
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = int(c)
			if code != exitOK {
				code = exitUsage
			}
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		return usageError(app, err)
	}
	if root.Bench.CPUProfile != "" { // only a bench command parses the flag
		stop, err := startCPUProfile(root.Bench.CPUProfile)
		if err != nil {
			return report(app, err)
		}
		defer stop()
	}
	return report(app, kctx.Run(app))
}

// report prints err (unless it is a bare *ExitError) with its hint and
// returns its exit code.
func report(app *App, err error) int {
	if err == nil {
		return exitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		return ee.Code
	}
	fmt.Fprintf(app.Stderr, "skyfed: %v\n", err)
	if h := hintOf(err); h != "" {
		fmt.Fprintf(app.Stderr, "hint: %s\n", h)
	}
	return exitCodeOf(err)
}

// usageError reports a parse error and returns exitUsage.
func usageError(app *App, err error) int {
	fmt.Fprintf(app.Stderr, "skyfed: %v\n", err)
	help := "skyfed --help"
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		if n := pe.Context.Selected(); n != nil {
			help = n.FullPath() + " --help"
		}
	}
	fmt.Fprintf(app.Stderr, "hint: see '%s'\n", help)
	return exitUsage
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := &App{
		Ctx:    ctx,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Stdin:  os.Stdin,
		Log:    slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	code := run(os.Args[1:], app)
	stop()
	os.Exit(code)
}
