package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/skyfed/skyfed/site/client"
)

// maxSteps bounds the actions of one look at a path (a new file to be
// removed takes seven).
const maxSteps = 12

// process looks at one path and carries out what Decide says until it
// says to wait or that nothing is left to do. It returns when to look
// again (zero: not until something happens), whether it waits for
// holders, or the failure to retry after.
func (w *watcher) process(ctx context.Context, rel string) (next time.Time, held bool, err error) {
	abs := filepath.Join(w.abs, filepath.FromSlash(rel))
	name := w.o.Prefix + rel
	rec, err := w.st.Get(rel)
	if err != nil {
		return time.Time{}, false, err
	}
	var k Known
	for range maxSteps {
		f, settleAt := w.look(abs, rel)
		act := Decide(rec, f, k, name, w.o.DeleteAfterSites)
		switch act {
		case Idle:
			return time.Time{}, false, nil
		case Wait:
			if !f.Complete {
				return settleAt, false, nil
			}
			return time.Now(), true, nil // done() backs off
		case Forget:
			return time.Time{}, false, w.st.Delete(rel)
		case Hash:
			sum, err := hashFile(abs)
			if err != nil {
				return time.Time{}, false, fmt.Errorf("read %s: %w", abs, err)
			}
			if g, _ := w.look(abs, rel); g.Size != f.Size || g.MTime != f.MTime {
				return time.Now().Add(w.o.Settle), false, nil // written to while read: wait for it
			}
			k.HaveSum, k.Sum = true, sum
			w.m.seen.Inc()
		case Touch:
			rec.Size, rec.MTime = f.Size, f.MTime
			if err := w.st.Put(rel, rec); err != nil {
				return time.Time{}, false, err
			}
		case AskLatest:
			if k.Latest, err = w.latest(ctx, rec, name); err != nil {
				return time.Time{}, false, err
			}
			k.HaveLatest = true
		case Same:
			if rec, err = w.same(rel, name, f, k); err != nil {
				return time.Time{}, false, err
			}
		case Put:
			if rec, err = w.put(ctx, rel, abs, name, f, k.Sum); err != nil {
				return time.Time{}, false, err
			}
		case AskHeld:
			if k.Held, err = w.holders(ctx, rel, rec); err != nil {
				return time.Time{}, false, err
			}
			k.HaveHeld = true
		case Remove:
			return time.Time{}, false, w.remove(rel, abs, rec)
		}
	}
	return time.Time{}, false, fmt.Errorf("%s: no decision after %d steps (last record %+v)", rel, maxSteps, rec)
}

// look stats a path: whether it is a regular file there, its size and
// mtime, whether it is complete, and if not when it will be.
func (w *watcher) look(abs, rel string) (File, time.Time) {
	st, err := os.Lstat(abs)
	if err != nil || !st.Mode().IsRegular() {
		return File{}, time.Time{}
	}
	f := File{Exists: true, Size: st.Size(), MTime: st.ModTime().UnixNano()}
	w.mu.Lock()
	closed := w.closed[rel] == [2]int64{f.Size, f.MTime}
	w.mu.Unlock()
	var at time.Time
	f.Complete, at = Complete(f, closed, time.Now(), w.o.Settle)
	return f, at
}

func hashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// latest finds the name's latest version: at the site when a put of it
// may have gone through before a crash (a putting record), else from
// the listing read at the start (asking the site for the manifest ID
// when files are to be removed).
func (w *watcher) latest(ctx context.Context, rec *Record, name string) (Latest, error) {
	e, listed := w.listed[name]
	switch {
	case rec != nil && rec.Status == StatusPutting && rec.Name == name,
		listed && w.o.DeleteAfterSites > 0:
		return w.versions(ctx, name)
	case listed:
		l := Latest{Found: true, Version: e.Version}
		_, err := hex.Decode(l.SHA256[:], []byte(e.SHA256))
		return l, err
	}
	return Latest{}, nil
}

// versions asks the site for the name's latest version.
func (w *watcher) versions(ctx context.Context, name string) (Latest, error) {
	vl, err := w.o.Site.Versions(ctx, name)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return Latest{}, nil
	}
	if err != nil {
		return Latest{}, err
	}
	for _, v := range vl.Versions {
		if v.Version != vl.Latest || v.Deleted {
			continue
		}
		l := Latest{Found: true, Version: v.Version, Manifest: v.Manifest}
		if _, err := hex.Decode(l.SHA256[:], []byte(v.SHA256)); err != nil {
			return Latest{}, fmt.Errorf("versions %s: sha256 %q: %w", name, v.SHA256, err)
		}
		return l, nil
	}
	return Latest{}, nil
}

// same records that the name's latest version holds the file's bytes.
func (w *watcher) same(rel, name string, f File, k Known) (*Record, error) {
	l := k.Latest
	rec := &Record{Size: f.Size, MTime: f.MTime, SHA256: k.Sum, Name: name, Version: l.Version, Manifest: l.Manifest, Status: StatusPut}
	w.line("same %s %s %x %d", name, l.Version, k.Sum, f.Size)
	if err := w.st.Put(rel, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// put records that the put is about to go, puts the file, and records
// the version the site made.
func (w *watcher) put(ctx context.Context, rel, abs, name string, f File, sum [32]byte) (*Record, error) {
	rec := &Record{Size: f.Size, MTime: f.MTime, SHA256: sum, Name: name, Status: StatusPutting}
	if err := w.st.Put(rel, rec); err != nil {
		return nil, err
	}
	file, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", name, err)
	}
	defer file.Close()
	res, err := w.o.Site.PutFile(ctx, name, file, f.Size, client.PutOptions{ContentType: mime.TypeByExtension(filepath.Ext(abs))})
	if err != nil {
		return nil, err
	}
	if _, err := hex.Decode(rec.SHA256[:], []byte(res.SHA256)); err != nil {
		return nil, fmt.Errorf("put %s: the site answered sha256 %q: %w", name, res.SHA256, err)
	}
	if res.Manifest == "" && w.o.DeleteAfterSites > 0 {
		return nil, fmt.Errorf("put %s: the site does not say its versions' manifests; --delete-after-sites needs a newer skyfed there", name)
	}
	// The line goes first: a crash before the record is written has the
	// next start find the version and say "same" (at least one line per
	// file, never a second put).
	w.m.put.Inc()
	w.m.bytes.Add(float64(res.Size))
	w.line("put %s %s %s %d", name, res.Version, res.SHA256, res.Size)
	rec.Version, rec.Manifest, rec.Status = res.Version, res.Manifest, StatusPut
	if err := w.st.Put(rel, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// holders asks how many sites hold the recorded version, and records it
// as confirmed once enough do.
func (w *watcher) holders(ctx context.Context, rel string, rec *Record) (int, error) {
	if rec.Manifest == "" {
		return 0, fmt.Errorf("%s: no manifest ID recorded for version %s; put it again to remove it", rel, rec.Version)
	}
	h, err := w.o.Site.Held(ctx, rec.Manifest, w.o.DeleteAfterSites, w.o.HeldWait)
	if err != nil {
		return 0, err
	}
	if h.Sites >= w.o.DeleteAfterSites {
		rec.Status, rec.Sites = StatusConfirmed, h.Sites
		if err := w.st.Put(rel, rec); err != nil {
			return 0, err
		}
	}
	return h.Sites, nil
}

// remove removes a confirmed file, unless it changed since it was put.
func (w *watcher) remove(rel, abs string, rec *Record) error {
	st, err := os.Lstat(abs)
	if err != nil {
		return nil // gone already: the next look forgets it
	}
	if st.Size() != rec.Size || st.ModTime().UnixNano() != rec.MTime {
		return nil // written again: the next look puts the new bytes
	}
	if err := os.Remove(abs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", abs, err)
	}
	w.m.deleted.Inc()
	w.line("deleted %s %s %s %d", filepath.Join(w.o.Dir, filepath.FromSlash(rel)), rec.Name, rec.Version, rec.Sites)
	rec.Status = StatusDeleted
	return w.st.Put(rel, rec)
}
