package testlab_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// writeTree writes files (path relative to dir → bytes) under dir.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// treeLines returns stdout's lines that start with verb, sorted (files
// go a few at a time, so in any order).
func treeLines(out, verb string) []string {
	var lines []string
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, verb+" ") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	slices.Sort(lines)
	return lines
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// put -r, get -r and rm -r against a site process: every file once,
// one line naming each, unchanged files skipped both ways, a changed
// one sent again, nothing written outside the target, rm -r asking.
func TestTreePutGetRm(t *testing.T) {
	s := newProcSite(t, "alpha")
	s.start()
	bin := procBin(t)
	env := []string{"SKYFED_SITE=" + s.url}
	src := filepath.Join(t.TempDir(), "night")
	files := map[string][]byte{
		"img-0001.fits":          bytes.Repeat([]byte("frame one "), 30000),
		"img-0002.fits":          bytes.Repeat([]byte("frame two "), 100),
		"calib/bias-01.fits":     []byte("bias"),
		"calib/flats/flat-R.fit": bytes.Repeat([]byte{0, 1, 2, 3}, 70000),
		"empty.txt":              {},
	}
	writeTree(t, src, files)
	if err := os.Symlink(filepath.Join(src, "img-0001.fits"), filepath.Join(src, "link.fits")); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI(t, bin, env, nil, "put", "-r", "gloria.eu/bootes-2/2026-12-06", src, "--jobs", "3")
	if code != 0 {
		t.Fatalf("put -r: exit %d\n%s%s", code, out, errOut)
	}
	putLine := regexp.MustCompile(`^put (gloria\.eu/bootes-2/2026-12-06/\S+) (\S+) ([0-9a-f]{64}) (\d+)$`)
	puts := treeLines(out, "put")
	if len(puts) != len(files) {
		t.Fatalf("put -r printed %d put lines, want %d (links are not followed):\n%s", len(puts), len(files), out)
	}
	for _, l := range puts {
		m := putLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("put line %q, want put NAME VERSION SHA256 SIZE", l)
		}
		rel := strings.TrimPrefix(m[1], "gloria.eu/bootes-2/2026-12-06/")
		if b, ok := files[rel]; !ok || m[3] != hexSHA(b) {
			t.Errorf("put line %q: not one of the files, or the wrong SHA-256", l)
		}
	}
	if !strings.Contains(errOut, "put -r: 5 done") || !strings.Contains(errOut, "0 failed") {
		t.Errorf("put -r summary: %q", errOut)
	}

	// Again, one file changed: only that one is sent.
	files["img-0002.fits"] = []byte("frame two, reduced")
	writeTree(t, src, map[string][]byte{"img-0002.fits": files["img-0002.fits"]})
	code, out, errOut = runCLI(t, bin, env, nil, "put", "-r", "gloria.eu/bootes-2/2026-12-06/", src)
	if code != 0 {
		t.Fatalf("second put -r: exit %d\n%s%s", code, out, errOut)
	}
	if puts, sames := treeLines(out, "put"), treeLines(out, "same"); len(puts) != 1 || !strings.Contains(puts[0], "/img-0002.fits ") || len(sames) != len(files)-1 {
		t.Errorf("second put -r sent %q, skipped %d; want only img-0002.fits sent", puts, len(sames))
	}

	// get -r into an empty directory, then again: nothing to fetch.
	dst := filepath.Join(t.TempDir(), "copy")
	code, out, errOut = runCLI(t, bin, env, nil, "get", "-r", "gloria.eu/bootes-2/2026-12-06", dst)
	if code != 0 {
		t.Fatalf("get -r: exit %d\n%s%s", code, out, errOut)
	}
	if gets := treeLines(out, "get"); len(gets) != len(files) {
		t.Errorf("get -r printed %d get lines, want %d:\n%s", len(gets), len(files), out)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after get -r: %d bytes, %v", rel, len(got), err)
		}
	}
	os.WriteFile(filepath.Join(dst, "calib", "bias-01.fits"), []byte("BIAS"), 0o644) // same size, other bytes
	code, out, _ = runCLI(t, bin, env, nil, "get", "-r", "gloria.eu/bootes-2/2026-12-06/", dst)
	if gets := treeLines(out, "get"); code != 0 || len(gets) != 1 || !strings.Contains(gets[0], "/calib/bias-01.fits ") {
		t.Errorf("second get -r: exit %d, fetched %q; want only the changed calib/bias-01.fits", code, gets)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "calib", "bias-01.fits")); string(got) != "bias" {
		t.Errorf("calib/bias-01.fits after the second get -r: %q", got)
	}

	// A prefix is a directory: night-1 does not take in night-10.
	runCLI(t, bin, env, nil, "put", "gloria.eu/bootes-2/2026-12-060/other.fits", filepath.Join(src, "empty.txt"))

	// rm -r asks; "n" removes nothing, --yes removes the tree only.
	code, _, errOut = runCLI(t, bin, env, []byte("n\n"), "rm", "-r", "gloria.eu/bootes-2/2026-12-06")
	if code == 0 || !strings.Contains(errOut, "remove 5 names under gloria.eu/bootes-2/2026-12-06/") {
		t.Errorf("rm -r answered n: exit %d, %q", code, errOut)
	}
	code, out, errOut = runCLI(t, bin, env, nil, "rm", "-r", "--yes", "gloria.eu/bootes-2/2026-12-06")
	if rms := treeLines(out, "rm"); code != 0 || len(rms) != len(files) {
		t.Errorf("rm -r --yes: exit %d, %d rm lines\n%s%s", code, len(rms), out, errOut)
	}
	code, out, _ = runCLI(t, bin, env, nil, "ls", "gloria.eu/bootes-2/")
	if code != 0 || strings.TrimSpace(out) == "" || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "2026-12-060/other.fits") {
		t.Errorf("ls after rm -r: exit %d\n%s; want only the name outside the tree", code, out)
	}
}

// The CLI puts a file of 4 chunks or more by its chunk list first: a
// new file streams (most chunks missing), the same bytes under another
// name move only the list, and a file with one chunk changed sends that
// chunk alone. Each put prints README's line and reads back whole.
func TestPutByHashmap(t *testing.T) {
	s := newProcSite(t, "alpha")
	s.start()
	bin := procBin(t)
	env := []string{"SKYFED_SITE=" + s.url}
	const mib = 1 << 20 // the site's chunk size (site init's default)
	dir := t.TempDir()
	data := make([]byte, 5*mib+4321)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	copy(data[mib:], bytes.Repeat([]byte("not a repeating chunk "), mib/20))
	file := filepath.Join(dir, "frame.fits")
	os.WriteFile(file, data, 0o644)
	line := regexp.MustCompile(`^\S+ ([0-9a-f]{64}) (\d+)\n$`)
	put := func(name string) {
		t.Helper()
		code, out, errOut := runCLI(t, bin, env, nil, "put", name, file)
		if m := line.FindStringSubmatch(out); code != 0 || m == nil || m[1] != hexSHA(data) {
			t.Fatalf("put %s: exit %d, %q %s", name, code, out, errOut)
		}
		code, out, errOut = runCLI(t, bin, env, nil, "get", name, "-o", filepath.Join(dir, "back"))
		if got, _ := os.ReadFile(filepath.Join(dir, "back")); code != 0 || !bytes.Equal(got, data) {
			t.Fatalf("get %s: exit %d %s%s", name, code, out, errOut)
		}
	}
	put("gloria.eu/hm/frame.fits")
	ingest := metric(t, s.url, "skyfed_ingest_bytes_total", "")
	put("gloria.eu/hm/renamed.fits")
	if got := metric(t, s.url, "skyfed_ingest_bytes_total", ""); got != ingest {
		t.Errorf("the same bytes under another name moved %v bytes, want only the chunk list", got-ingest)
	}
	if n := metric(t, s.url, "skyfed_hashmap_puts_total", ""); n != 1 {
		t.Errorf("skyfed_hashmap_puts_total = %v, want 1", n)
	}
	data[3*mib+5] ^= 0xff
	os.WriteFile(file, data, 0o644)
	put("gloria.eu/hm/edited.fits")
	if n := metric(t, s.url, "skyfed_hashmap_chunks_total", ""); n != 1 {
		t.Errorf("an edit of one chunk sent %v chunks, want 1", n)
	}
	if got := metric(t, s.url, "skyfed_ingest_bytes_total", ""); got != ingest+mib {
		t.Errorf("an edit of one chunk ingested %v bytes, want %d", got-ingest, mib)
	}
}

// skyfed restore makes an earlier version the latest again and prints
// it as put does; ls and versions --as-of show the namespace as it was;
// skyfed version prints this build and the site's.
func TestRestoreAsOfAndVersion(t *testing.T) {
	s := newProcSite(t, "alpha")
	s.start()
	bin := procBin(t)
	env := []string{"SKYFED_SITE=" + s.url}
	dir := t.TempDir()
	v1, v2 := []byte("first light"), []byte("second light")
	var first string
	for i, b := range [][]byte{v1, v2} {
		os.WriteFile(filepath.Join(dir, "f"), b, 0o644)
		code, out, errOut := runCLI(t, bin, env, nil, "put", "gloria.eu/r/m31.fits", filepath.Join(dir, "f"))
		if code != 0 {
			t.Fatalf("put: %d %s", code, errOut)
		}
		if i == 0 {
			first = strings.Fields(out)[0]
		}
	}
	code, out, errOut := runCLI(t, bin, env, nil, "restore", "gloria.eu/r/m31.fits", "--version", first)
	if f := strings.Fields(out); code != 0 || len(f) != 3 || f[0] == first || f[1] != hexSHA(v1) || f[2] != "11" {
		t.Fatalf("restore: exit %d, %q %s; want VERSION SHA256 SIZE of the first bytes", code, out, errOut)
	}
	code, _, _ = runCLI(t, bin, env, nil, "get", "gloria.eu/r/m31.fits", "-o", filepath.Join(dir, "back"))
	if got, _ := os.ReadFile(filepath.Join(dir, "back")); code != 0 || !bytes.Equal(got, v1) {
		t.Errorf("latest after restore: %q", got)
	}
	// As of the first version, the namespace held only the first bytes.
	code, out, errOut = runCLI(t, bin, env, nil, "ls", "--as-of", first, "gloria.eu/r/")
	if f := strings.Fields(out); code != 0 || len(f) != 3 || f[0] != "gloria.eu/r/m31.fits" || f[2] != first {
		t.Errorf("ls --as-of %s: exit %d, %q %s; want the name at its first version", first, code, out, errOut)
	}
	code, out, errOut = runCLI(t, bin, env, nil, "versions", "--as-of", first, "gloria.eu/r/m31.fits")
	if code != 0 || !strings.Contains(out, first) || strings.Count(out, hexSHA(v2)) != 0 {
		t.Errorf("versions --as-of %s: exit %d, %q %s; want the first version only", first, code, out, errOut)
	}
	if code, out, _ := runCLI(t, bin, env, nil, "ls", "--as-of", "2020-01-01T00:00:00Z", "gloria.eu/r/"); code != 0 || out != "" {
		t.Errorf("ls --as-of before any put: exit %d, %q; want nothing", code, out)
	}
	if code, _, errOut := runCLI(t, bin, env, nil, "restore", "gloria.eu/r/m31.fits", "--version", "1763765000000.0000.alpha"); code != 2 {
		t.Errorf("restore of an unknown version: exit %d %s, want 2 (not found)", code, errOut)
	}
	code, out, errOut = runCLI(t, bin, nil, nil, "version", "--site", s.url)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "skyfed ") || !strings.HasPrefix(lines[1], "site alpha: skyfed ") {
		t.Errorf("version --site: exit %d, %q %s", code, out, errOut)
	}
}
