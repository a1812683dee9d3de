package main

// Trees: put -r, get -r and rm -r move every file under a directory or
// every name under a prefix, a few at a time (--jobs), skipping what is
// already there with the same SHA-256. Every file gets one line naming
// it ("put NAME VERSION SHA256 SIZE", "same ...", "get ...", "rm NAME
// VERSION"); failures go to stderr as they happen and the summary at
// the end says how many, with exit code 1 if any (3 if any failed
// verification: a damaged object).

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skyfed/skyfed/site/client"
)

// treePrefix checks a tree command's arguments and returns prefix as the
// parent of the tree's names: it ends in "/", so that gloria.eu/night-1
// does not take in gloria.eu/night-10/....
func treePrefix(prefix string, jobs int) (string, error) {
	if prefix == "" || prefix == "/" || strings.HasPrefix(prefix, "/") {
		return "", &ExitError{Code: exitUsage, Err: fmt.Errorf("-r needs a name prefix, domain first (gloria.eu/bootes-2/), got %q", prefix)}
	}
	if jobs < 1 {
		return "", &ExitError{Code: exitUsage, Err: fmt.Errorf("--jobs must be at least 1, got %d", jobs)}
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix, nil
}

// listTree returns the latest version of every name under prefix.
func listTree(ctx context.Context, cl *client.Client, prefix string) ([]client.ListEntry, error) {
	var out []client.ListEntry
	after := ""
	for {
		page, err := cl.List(ctx, prefix, after, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Objects...)
		if page.Next == "" {
			return out, nil
		}
		if page.Next == after {
			return nil, fmt.Errorf("list %q: the site sent the same page cursor twice", prefix)
		}
		after = page.Next
	}
}

// treeRun counts a tree command's files and prints their lines.
type treeRun struct {
	app   *App
	verb  string // put, get, rm
	start time.Time

	mu                  sync.Mutex // one line at a time
	done, same, failed  atomic.Int64
	verifyFailed        atomic.Int64 // failures that exit 3 alone (a damaged object)
	doneBytes, sameSize atomic.Int64
}

func newTreeRun(app *App, verb string) *treeRun {
	return &treeRun{app: app, verb: verb, start: time.Now()}
}

func (t *treeRun) line(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.app.Stdout, format+"\n", args...)
}

func (t *treeRun) fail(what string, err error) {
	t.failed.Add(1)
	if exitCodeOf(err) == exitVerify {
		t.verifyFailed.Add(1)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, t.verb+" "+what+":") { // the client's errors say it already
		msg = t.verb + " " + what + ": " + msg
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.app.Stderr, "skyfed: %s\n", msg)
}

// finish prints the summary on stderr and returns an error if any file
// failed.
func (t *treeRun) finish(err error) error {
	same := ""
	if t.verb != "rm" {
		same = fmt.Sprintf(", %d already there (%s)", t.same.Load(), humanBytes(t.sameSize.Load()))
	}
	fmt.Fprintf(t.app.Stderr, "%s -r: %d done (%s)%s, %d failed, in %.1fs\n", t.verb,
		t.done.Load(), humanBytes(t.doneBytes.Load()), same, t.failed.Load(), time.Since(t.start).Seconds())
	if err != nil {
		return err
	}
	n := t.failed.Load()
	if n == 0 {
		return nil
	}
	err = fmt.Errorf("%s -r: %d of %d failed (see above)", t.verb, n, n+t.done.Load()+t.same.Load())
	if v := t.verifyFailed.Load(); v > 0 {
		return &ExitError{Code: exitVerify, Err: fmt.Errorf("%w; %d failed verification", err, v)}
	}
	return err
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// putTree puts every regular file under dir as prefix + its path
// relative to dir, --jobs at once; a file whose name already holds its
// bytes (same SHA-256) is not sent again.
func (c *PutCmd) putTree(app *App) error {
	prefix, err := treePrefix(c.Name, c.Jobs)
	if err != nil {
		return err
	}
	if c.File == "-" || c.JSON {
		return &ExitError{Code: exitUsage, Err: errors.New("put -r takes a directory (not stdin) and prints a line per file (no --json)")}
	}
	if st, err := os.Stat(c.File); err != nil {
		return fmt.Errorf("put -r: %w", err)
	} else if !st.IsDir() {
		return &ExitError{Code: exitUsage, Err: withHint(fmt.Errorf("put -r: %s is not a directory", c.File), "put a single file without -r")}
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	there, err := listTree(ctx, cl, prefix)
	if err != nil {
		return err
	}
	held := make(map[string]client.ListEntry, len(there))
	for _, e := range there {
		held[e.Name] = e
	}
	run := newTreeRun(app, "put")
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.Jobs)
	walkErr := filepath.WalkDir(c.File, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			run.fail(path, err)
			return nil
		}
		if gctx.Err() != nil {
			return gctx.Err()
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil // directories are walked; links, devices and pipes are not files to put
		}
		rel, err := filepath.Rel(c.File, path)
		if err != nil {
			run.fail(path, err)
			return nil
		}
		name := prefix + filepath.ToSlash(rel)
		g.Go(func() error {
			c.putOne(gctx, cl, run, name, path, held[name])
			return nil
		})
		return nil
	})
	if werr := g.Wait(); walkErr == nil {
		walkErr = werr
	}
	return run.finish(walkErr)
}

// putOne puts one file of a tree, unless old (the name's latest
// version, if any) already has its bytes; by its chunk list first when
// that pays (client.PutFile) unless --no-hashmap.
func (c *PutCmd) putOne(ctx context.Context, cl *client.Client, run *treeRun, name, path string, old client.ListEntry) {
	if old.SHA256 != "" {
		sum, err := fileSHA256(path)
		if err != nil {
			run.fail(name, err)
			return
		}
		if sum == old.SHA256 {
			run.same.Add(1)
			run.sameSize.Add(old.Size)
			run.line("same %s %s %s %d", name, old.Version, old.SHA256, old.Size)
			return
		}
	}
	f, err := os.Open(path)
	if err != nil {
		run.fail(name, err)
		return
	}
	defer f.Close()
	ct := c.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(filepath.Ext(path))
	}
	opts := client.PutOptions{ContentType: ct, Meta: c.Meta,
		Expires: time.Duration(c.Expires), WaitSites: c.WaitSites, WaitTimeout: c.WaitTimeout}
	var res client.PutResult
	if size := regularSize(f); !c.NoHashmap && size > 0 {
		res, err = cl.PutFile(ctx, name, f, size, opts)
	} else {
		res, err = cl.Put(ctx, name, f, size, opts)
	}
	if err != nil {
		run.fail(name, err)
		return
	}
	run.done.Add(1)
	run.doneBytes.Add(res.Size)
	run.line("put %s %s %s %d", name, res.Version, res.SHA256, res.Size)
}

// getTree writes every name under the prefix into dir, at its path
// after the prefix: only files missing or different there, each
// verified and renamed into place whole.
func (c *GetCmd) getTree(app *App) error {
	prefix, err := treePrefix(c.Name, c.Jobs)
	if err != nil {
		return err
	}
	if c.Dir == "" || c.Output != "" || c.Version != "" || c.SHA256 != "" {
		return &ExitError{Code: exitUsage, Err: withHint(errors.New("get -r takes PREFIX DIR (and not -o, --version or --sha256)"), "skyfed get -r gloria.eu/bootes-2/ ./night")}
	}
	ctx, cancel := withTimeout(app.Ctx, c.Timeout)
	defer cancel()
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	entries, err := listTree(ctx, cl, prefix)
	if err != nil {
		return err
	}
	run := newTreeRun(app, "get")
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.Jobs)
	for _, e := range entries {
		rel := filepath.FromSlash(strings.TrimPrefix(e.Name, prefix))
		if !filepath.IsLocal(rel) {
			run.fail(e.Name, fmt.Errorf("its path %q would leave %s", rel, c.Dir))
			continue
		}
		g.Go(func() error {
			getOne(gctx, cl, run, e, filepath.Join(c.Dir, rel))
			return nil
		})
	}
	return run.finish(g.Wait())
}

// getOne writes version e of a name to path, unless path holds its bytes.
func getOne(ctx context.Context, cl *client.Client, run *treeRun, e client.ListEntry, path string) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() == e.Size {
		if sum, err := fileSHA256(path); err == nil && sum == e.SHA256 {
			run.same.Add(1)
			run.sameSize.Add(e.Size)
			run.line("same %s %s %s %d", e.Name, e.Version, e.SHA256, e.Size)
			return
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		run.fail(e.Name, err)
		return
	}
	obj, err := cl.Get(ctx, e.Name, client.GetOptions{Version: e.Version})
	if err != nil {
		run.fail(e.Name, err)
		return
	}
	defer obj.Body.Close()
	if !obj.Verified {
		run.fail(e.Name, errors.New("the site sent no SHA-256 (ETag) to verify the bytes by"))
		return
	}
	if err := writeFileAtomic(path, obj.Body); err != nil {
		run.fail(e.Name, err)
		return
	}
	run.done.Add(1)
	run.doneBytes.Add(e.Size)
	run.line("get %s %s %s %d", e.Name, e.Version, e.SHA256, e.Size)
}

// rmTree deletes every name under the prefix, after asking unless --yes.
func (c *RmCmd) rmTree(app *App) error {
	prefix, err := treePrefix(c.Name, c.Jobs)
	if err != nil {
		return err
	}
	cl := c.Conn.client()
	defer cl.CloseIdleConnections()
	entries, err := listTree(app.Ctx, cl, prefix)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintf(app.Stderr, "rm -r: no names under %s\n", prefix)
		return nil
	}
	if !c.Yes {
		var size int64
		for _, e := range entries {
			size += e.Size
		}
		fmt.Fprintf(app.Stderr, "remove %d names under %s (%s)? [y/N] ", len(entries), prefix, humanBytes(size))
		answer, _ := bufio.NewReader(app.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return &ExitError{Code: exitUsage, Err: withHint(errors.New("rm -r: not confirmed; nothing removed"), "answer y, or pass --yes")}
		}
	}
	run := newTreeRun(app, "rm")
	g, gctx := errgroup.WithContext(app.Ctx)
	g.SetLimit(c.Jobs)
	for _, e := range entries {
		g.Go(func() error {
			ctx, cancel := withTimeout(gctx, c.Timeout) // per name: a tree takes as long as it takes
			defer cancel()
			res, err := cl.Delete(ctx, e.Name)
			if err != nil {
				run.fail(e.Name, err)
				return nil
			}
			run.done.Add(1)
			run.doneBytes.Add(e.Size)
			run.line("rm %s %s", e.Name, res.Version)
			return nil
		})
	}
	return run.finish(g.Wait())
}
