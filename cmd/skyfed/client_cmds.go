package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/skyfed/skyfed/naming"
	"github.com/skyfed/skyfed/site/client"
)

// progressMin is the smallest known size that gets a progress bar.
const progressMin = 8 << 20

// siteFlags are the flags every client command shares.
type siteFlags struct {
	Site  string `help:"Base URL of the site's HTTP API." env:"SKYFED_SITE" default:"http://127.0.0.1:7401" placeholder:"URL"`
	Token string `help:"Bearer token for a site that listens beyond loopback: ID.SECRET from skyfed site token create, or the site token of its skyfed.toml." env:"SKYFED_TOKEN" placeholder:"TOKEN"`
	CA    string `name:"ca" type:"path" help:"PEM CA certificates to trust for an https:// site (instead of the system's)." env:"SKYFED_CA" placeholder:"FILE"`
	Pin   string `help:"Trust an https:// site whose certificate is bound to this site key (ed25519:<hex>, as skyfed site key prints it): the site's own tls/site.crt." env:"SKYFED_PIN" placeholder:"KEY"`
}

func (f siteFlags) client() *client.Client {
	return client.New(f.Site, f.Token, client.WithTLS(f.CA, f.Pin))
}

// withTimeout bounds ctx by d; d <= 0 means no bound.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// checkName checks an object name before anything is sent: a bad name is
// a usage error (exit 80), as a bad flag is.
func checkName(name string) error {
	if _, err := naming.ParseName(name); err != nil {
		return &ExitError{Code: exitUsage, Err: withHint(err, nameRules)}
	}
	return nil
}

// nameRules is the hint for a bad name.
const nameRules = "names are domain/path: UTF-8, at most 1024 bytes, no empty, . or .. segments (gloria.eu/bootes-2/img-0001.fits)"

// PutCmd is `skyfed put`.
type PutCmd struct {
	Name        string            `arg:"" help:"Object name, domain first (gloria.eu/bootes-2/2026/11/21/img-0001.fits); with -r the prefix of the names."`
	File        string            `arg:"" help:"File to store; - reads stdin; with -r a directory."`
	Recursive   bool              `short:"r" help:"Put every file under the directory FILE as NAME/ + its path there; files whose name already holds the same bytes are skipped. One line per file: put NAME VERSION SHA256 SIZE (same ... when skipped)."`
	Jobs        int               `help:"With -r: files put at once." default:"4" placeholder:"N"`
	NoHashmap   bool              `name:"no-hashmap" help:"Always stream the bytes. By default a file of 4 chunks or more is sent as its chunk list first, and only the chunks the site lacks follow (a renamed or copied file moves only its list)."`
	ContentType string            `help:"Content type (default: guessed from FILE's extension, else application/octet-stream)." placeholder:"TYPE"`
	Meta        map[string]string `help:"User metadata, KEY=VALUE (repeatable)." mapsep:"none" placeholder:"KEY=VALUE"`
	JSON        bool              `name:"json" help:"Print the site's JSON answer instead of 'VERSION SHA256 SIZE'."`
	Expires     Duration          `help:"The version expires this long after the put (e.g. 720h, 30d); replicated; an expired version acts as a tombstone." placeholder:"DURATION"`
	WaitSites   int               `name:"wait-sites" help:"Return once this many sites (this one included) hold the version durably; exit 4 if they do not within --wait-timeout." placeholder:"K"`
	WaitTimeout time.Duration     `name:"wait-timeout" default:"60s" help:"How long --wait-sites waits."`
	Timeout     time.Duration     `help:"Give up after this long (0: no limit)." default:"0s"`
	Conn        siteFlags         `embed:""`
}

// Run stores the file and prints its version, SHA-256 and size.
func (c *PutCmd) Run(app *App) error {
	if c.Expires < 0 || c.WaitSites < 0 {
		return &ExitError{Code: exitUsage, Err: errors.New("--expires and --wait-sites must not be negative")}
	}
	if c.Recursive {
		return c.putTree(app)
	}
	if err := checkName(c.Name); err != nil {
		return err
	}
	r, size, closeIn, err := openInput(app, c.File)
	if err != nil {
		return err
	}
	defer closeIn()
	ct := c.ContentType
	if ct == "" && c.File != "-" {
		ct = mime.TypeByExtension(filepath.Ext(c.File))
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()

	opts := client.PutOptions{ContentType: ct, Meta: c.Meta,
		Expires: time.Duration(c.Expires), WaitSites: c.WaitSites, WaitTimeout: c.WaitTimeout}
	var res client.PutResult
	if f, isFile := r.(*os.File); isFile && c.File != "-" && !c.NoHashmap && size > 0 {
		res, err = cl.PutFile(ctx, c.Name, f, size, opts)
	} else {
		bar := newProgress(app.Stderr, size, "put")
		if bar != nil {
			r = io.TeeReader(r, bar)
		}
		res, err = cl.Put(ctx, c.Name, r, size, opts)
		finishProgress(bar, err)
	}
	if err != nil {
		return err
	}
	return printPut(app, res, c.JSON)
}

// printPut prints a new version as put and restore do: the site's JSON
// answer, or README's "<version> <sha256> <size>".
func printPut(app *App, res client.PutResult, asJSON bool) error {
	if asJSON {
		return printJSON(app.Stdout, res)
	}
	_, err := fmt.Fprintf(app.Stdout, "%s %s %d\n", res.Version, res.SHA256, res.Size)
	return err
}

// openInput opens file ("-" is stdin) and returns its size, or -1 when it
// is not a regular file.
func openInput(app *App, file string) (io.Reader, int64, func(), error) {
	if file == "-" {
		size := int64(-1)
		if f, ok := app.Stdin.(*os.File); ok {
			size = regularSize(f)
		}
		return app.Stdin, size, func() {}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("put: %w", err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, 0, nil, withHint(fmt.Errorf("put: %s is a directory", file), "skyfed put -r PREFIX DIR puts every file under it")
	}
	return f, regularSize(f), func() { f.Close() }, nil
}

// regularSize is the number of bytes left to read in f, or -1 if f is not
// a regular file (a pipe, a terminal).
func regularSize(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return -1
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil || off > st.Size() {
		return -1
	}
	return st.Size() - off
}

// newProgress returns a progress bar on w when w is a terminal and the
// transfer is large or of unknown size; nil otherwise.
func newProgress(w io.Writer, size int64, desc string) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || (size >= 0 && size < progressMin) {
		return nil
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		width = 80
	}
	return progressBar(w, size, desc, width)
}

// progressStatsWidth is room for the rest of a bar's line: "get 100% ",
// "(1023.9/1023.9 MiB, 1023.9 MiB/s) [1m0s:1m0s]" and a margin.
const progressStatsWidth = 64

// progressBar draws a transfer's progress on a terminal cols wide in
// IEC units (MiB and MiB/s, as the rest of the CLI counts bytes): a bar
// when there is room for 10 cells or more, else the numbers alone (never
// an empty "||"); a spinner when the size is unknown.
func progressBar(w io.Writer, size int64, desc string, cols int) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionThrottle(65 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0), // no ticker goroutine
		progressbar.OptionSetRenderBlankState(true),
	}
	switch cells := min(cols-progressStatsWidth-len(desc), 40); {
	case size < 0: // a spinner and the numbers: no bar to draw
	case cells >= 10:
		opts = append(opts, progressbar.OptionSetWidth(cells))
	default:
		opts = append(opts, progressbar.OptionSetWidth(0), progressbar.OptionSetTheme(progressbar.Theme{}))
	}
	return progressbar.NewOptions64(size, opts...)
}

func finishProgress(bar *progressbar.ProgressBar, err error) {
	switch {
	case bar == nil:
	case err == nil:
		_ = bar.Finish()
	default:
		_ = bar.Exit()
	}
}

// GetCmd is `skyfed get`.
type GetCmd struct {
	Name      string        `arg:"" optional:"" help:"Object name (or use --sha256); with -r the prefix of the names."`
	Dir       string        `arg:"" optional:"" help:"With -r: the directory to write the names into, at their paths after the prefix."`
	Recursive bool          `short:"r" help:"Get every name under the prefix NAME into DIR: only files missing or different there, each verified and renamed into place whole. One line per file: get NAME VERSION SHA256 SIZE (same ... when already there)."`
	Jobs      int           `help:"With -r: files fetched at once." default:"4" placeholder:"N"`
	Output    string        `short:"o" help:"Write to FILE instead of stdout: via a temp file that is verified, synced and renamed, so FILE is whole or untouched." placeholder:"FILE"`
	Version   string        `help:"Fetch this version instead of the latest." placeholder:"V"`
	Fresh     bool          `help:"Ask the federation for the newest version, not only this site."`
	SHA256    string        `name:"sha256" help:"Get the object whose whole content has this SHA-256, from wherever it is." placeholder:"HEX"`
	Timeout   time.Duration `help:"Give up after this long (0: no limit)." default:"0s"`
	Conn      siteFlags     `embed:""`
}

// Run streams the object to stdout or FILE, checking its SHA-256.
func (c *GetCmd) Run(app *App) error {
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	if c.Recursive {
		return c.getTree(app)
	}
	if c.Dir != "" {
		return &ExitError{Code: exitUsage, Err: withHint(fmt.Errorf("get takes one NAME; %q is a second one", c.Dir), "-o FILE writes to a file; -r PREFIX DIR gets a tree")}
	}
	if (c.Name == "") == (c.SHA256 == "") {
		return &ExitError{Code: exitUsage, Err: withHint(errors.New("give either NAME or --sha256 HEX"), "see 'skyfed get --help'")}
	}
	if c.Name != "" {
		if err := checkName(c.Name); err != nil {
			return err
		}
	}
	obj, err := cl.Get(ctx, c.Name, client.GetOptions{Version: c.Version, Fresh: c.Fresh, SHA256: c.SHA256})
	if err != nil {
		warnIncomplete(app, nil, err)
		if c.Version == "" && c.Name != "" {
			err = notFoundHint(ctx, cl, c.Name, err)
		}
		return err
	}
	defer obj.Body.Close()
	warnIncomplete(app, obj.Federation, nil)
	if !obj.Verified {
		fmt.Fprintf(app.Stderr, "skyfed: warning: the site sent no SHA-256 (ETag) for %s; not verified\n", c.Name)
	}
	bar := newProgress(app.Stderr, obj.Size, "get")
	var body io.Reader = obj.Body
	if bar != nil {
		body = io.TeeReader(body, bar)
	}
	if c.Output == "" || c.Output == "-" {
		_, err = io.Copy(app.Stdout, body)
		finishProgress(bar, err)
		if errors.Is(err, client.ErrVerify) {
			return withHint(fmt.Errorf("get %s: %w", c.Name, err),
				"the bytes already written to stdout are not the object: discard them")
		}
	} else {
		err = writeFileAtomic(c.Output, body)
		finishProgress(bar, err)
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", c.Name, err)
	}
	return nil
}

// writeFileAtomic writes r to a temp file next to path, syncs it and
// renames it to path. On any error the temp file is removed and path is
// left as it was.
func writeFileAtomic(path string, r io.Reader) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".part-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}

// VersionsCmd is `skyfed versions`.
type VersionsCmd struct {
	Name    string        `arg:"" help:"Object name."`
	AsOf    string        `name:"as-of" help:"Only the versions stamped at or before TIME (RFC 3339, e.g. 2026-12-06T21:00:00Z, or a version stamp): the history as it was then." placeholder:"TIME"`
	Fresh   bool          `help:"Also list the versions any reachable site of the federation knows."`
	JSON    bool          `name:"json" help:"Print the site's JSON answer."`
	Timeout time.Duration `help:"Give up after this long (0: no limit)." default:"30s"`
	Conn    siteFlags     `embed:""`
}

// Run prints the versions of an object, newest first.
func (c *VersionsCmd) Run(app *App) error {
	if err := checkName(c.Name); err != nil {
		return err
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	vl, err := cl.VersionsAsOf(ctx, c.Name, c.Fresh, c.AsOf)
	if err != nil {
		warnIncomplete(app, nil, err)
		return notFoundHint(ctx, cl, c.Name, err)
	}
	warnIncomplete(app, vl.Federation, nil)
	if c.JSON {
		return printJSON(app.Stdout, vl)
	}
	tw := tabwriter.NewWriter(app.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tORIGIN\tSIZE\tSHA256\tDELETED\tEXPIRES")
	for _, v := range vl.Versions {
		deleted := "-"
		if v.Deleted {
			deleted = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", v.Version, v.Origin, v.Size, orDash(v.SHA256), deleted, orDash(v.Expires))
	}
	return tw.Flush()
}

// notFoundHint gives a "not found" about name the hint a CLI user
// needs: how to reach the versions of a name whose latest version is
// deleted or expired, or, when name is no object but names start with it
// (a "directory"), how to list them. Other errors are returned as they are.
func notFoundHint(ctx context.Context, cl *client.Client, name string, err error) error {
	if exitCodeOf(err) != exitNotFound {
		return err
	}
	if errors.Is(err, client.ErrDeleted) {
		return withHint(err, fmt.Sprintf("its latest version is deleted or expired: skyfed versions %s lists its versions, "+
			"skyfed get --version V %s fetches one, skyfed restore --version V %s makes it the latest again", name, name, name))
	}
	page, lerr := cl.List(ctx, name, "", 2)
	if lerr != nil {
		return err
	}
	for _, o := range page.Objects {
		if o.Name != name {
			return withHint(err, fmt.Sprintf("%s is no object, but names start with it: skyfed ls %s lists them", name, name))
		}
	}
	return err
}

// warnIncomplete says on stderr when the site's lookup across the
// federation heard from fewer sites than it asked, so that what it served
// (f) or found missing (err) may not be the newest. The exit code stays
// that of what was found.
func warnIncomplete(app *App, f *client.Federation, err error) {
	var ae *client.APIError
	if errors.As(err, &ae) {
		f = ae.Federation
	}
	if !f.Incomplete() {
		return
	}
	what := "a newer version may exist"
	if exitCodeOf(err) == exitNotFound {
		what = "a site that did not answer may hold it"
	}
	fmt.Fprintf(app.Stderr, "skyfed: warning: only %d of %d sites answered; %s\n", f.Answered, f.Asked, what)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// LsCmd is `skyfed ls`.
type LsCmd struct {
	Prefix  string        `arg:"" optional:"" help:"Only names that start with PREFIX (default: all)."`
	AsOf    string        `name:"as-of" help:"The names as they were at TIME (RFC 3339, e.g. 2026-12-06T21:00:00Z, or a version stamp): each with its version then, deleted ones left out." placeholder:"TIME"`
	Limit   int           `help:"Stop after N objects (0: all)." placeholder:"N" default:"0"`
	JSON    bool          `name:"json" help:"Print one JSON object per line."`
	Timeout time.Duration `help:"Give up on a page after this long (0: no limit)." default:"30s"`
	Conn    siteFlags     `embed:""`
}

// Run prints "name<TAB>size<TAB>version" for each object, page by page.
func (c *LsCmd) Run(app *App) error {
	if c.Limit < 0 {
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("--limit must be >= 0, got %d", c.Limit)}
	}
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	return printPages(app, "ls", c.Limit, func(after string, want int) ([]client.ListEntry, string, error) {
		page, err := c.page(app.Ctx, cl, after, want)
		return page.Objects, page.Next, err
	}, c.print)
}

// printPages prints the items of fetch's pages in turn (fetch is asked
// for at most want, 0 for the site's default) until the last page or
// limit items (0: all), flushing after each page.
func printPages[T any](app *App, op string, limit int, fetch func(after string, want int) ([]T, string, error), print func(io.Writer, T) error) error {
	out := bufio.NewWriter(app.Stdout)
	after, n := "", 0
	for {
		want := 0
		if limit > 0 {
			want = limit - n
		}
		items, next, err := fetch(after, want)
		if err != nil {
			return err
		}
		for _, it := range items {
			if limit > 0 && n >= limit {
				break
			}
			if err := print(out, it); err != nil {
				return err
			}
			n++
		}
		if err := out.Flush(); err != nil {
			return err
		}
		if next == "" || (limit > 0 && n >= limit) {
			return nil
		}
		if next == after {
			return fmt.Errorf("%s: the site sent the same page cursor %q twice", op, after)
		}
		after = next
	}
}

func (c *LsCmd) page(ctx context.Context, cl *client.Client, after string, limit int) (client.ListPage, error) {
	ctx, cancel := withTimeout(ctx, c.Timeout)
	defer cancel()
	return cl.ListAsOf(ctx, c.Prefix, after, limit, c.AsOf)
}

func (c *LsCmd) print(w io.Writer, o client.ListEntry) error {
	if c.JSON {
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\t%d\t%s\n", o.Name, o.Size, o.Version)
	return err
}

// RmCmd is `skyfed rm`.
type RmCmd struct {
	Name      string        `arg:"" help:"Object name; with -r the prefix of the names."`
	Recursive bool          `short:"r" help:"Delete every name under the prefix NAME (asks first unless --yes). One line per name: rm NAME VERSION."`
	Yes       bool          `help:"With -r: do not ask."`
	Jobs      int           `help:"With -r: names deleted at once." default:"4" placeholder:"N"`
	Timeout   time.Duration `help:"Give up after this long (0: no limit); with -r, per name." default:"30s"`
	Conn      siteFlags     `embed:""`
}

// Run deletes the object and prints the tombstone's version.
func (c *RmCmd) Run(app *App) error {
	if c.Recursive {
		return c.rmTree(app)
	}
	if err := checkName(c.Name); err != nil {
		return err
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	res, err := cl.Delete(ctx, c.Name)
	if err != nil {
		return notFoundHint(ctx, cl, c.Name, err)
	}
	_, err = fmt.Fprintln(app.Stdout, res.Version)
	return err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
