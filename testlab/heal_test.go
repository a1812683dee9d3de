package testlab_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/chunk"
	"github.com/skyfed/skyfed/testlab"
)

// Pack record header (chunk/index.go): magic "SKC1", ID at [4:36],
// stored length at [37:41], 53 bytes in all.
const recordHeader = 53

// chunkRecord finds chunk id in site dir's packs: the pack file and the
// offset of its payload, and its stored length.
func chunkRecord(t *testing.T, dir string, id chunk.ID) (string, int64, int64) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "pack-*.dat"))
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off+recordHeader <= int64(len(b)); {
			h := b[off:]
			if string(h[:4]) != "SKC1" {
				break
			}
			stored := int64(binary.LittleEndian.Uint32(h[37:41]))
			if chunk.ID(h[4:36]) == id {
				return p, off + recordHeader, stored
			}
			off += recordHeader + stored
		}
	}
	t.Fatalf("chunk %s is in no pack of %s", id.Short(), dir)
	return "", 0, 0
}

// flipChunk flips bytes in the middle of a chunk's stored payload.
func flipChunk(t *testing.T, dir string, id chunk.ID) {
	t.Helper()
	path, off, n := chunkRecord(t, dir, id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4)
	at := off + n/2
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0x5a
	}
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// getSHA reads name at site i over HTTP and returns the status and the
// SHA-256 of the body (io errors reported as such).
func getSHA(url, name string) (int, string, error) {
	resp, err := http.Get(url + "/o/" + name)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	return resp.StatusCode, hex.EncodeToString(h.Sum(nil)), err
}

// statusField reads one number from /api/status.
func statusField(t *testing.T, f *testlab.ProcessFederation, i int, field string) float64 {
	t.Helper()
	var v map[string]any
	resp, err := http.Get(f.URL(i) + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	n, _ := v[field].(float64)
	return n
}

// cli runs the skyfed binary against site i and returns its stdout and
// exit code.
func cli(t *testing.T, f *testlab.ProcessFederation, i int, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(procBin(t), append(args, "--site", f.URL(i))...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run skyfed %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func healFed(t *testing.T, n int, topology string) *testlab.ProcessFederation {
	return reconFed(t, testlab.FedOptions{N: n, Topology: topology, Dir: os.Getenv("SKYFED_HEAL_DIR")})
}

// TestFlippedBytesHealedOnReadAndByScrub flips bytes inside chunks a
// site holds: a read repairs them from the peer, a scrub repairs the
// rest, and a chunk damaged at every site is reported, named, and
// answered 502 chunk_corrupt (exit 3), never a stalled 200.
func TestFlippedBytesHealedOnReadAndByScrub(t *testing.T) {
	f := healFed(t, 2, "line")
	a, err := f.PutRandom(0, "heal/a.fits", 300<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.PutRandom(0, "heal/b.fits", 300<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.PutRandom(0, "heal/c.fits", 200<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Read repair: the damaged chunk is fetched from s0 and the read goes on.
	flipChunk(t, f.Dir(1), a.Chunks[1])
	status, sum, err := getSHA(f.URL(1), a.Name)
	if err != nil || status != 200 || sum != hex.EncodeToString(a.SHA256[:]) {
		t.Fatalf("get of a damaged object at s1: %d %s %v; want 200 with its bytes", status, sum, err)
	}
	if got := statusField(t, f, 1, "repaired_chunks"); got < 1 {
		t.Errorf("repaired_chunks = %v after a read repair, want ≥ 1", got)
	}

	// Scrub finds and repairs what nobody read.
	flipChunk(t, f.Dir(1), b.Chunks[0])
	flipChunk(t, f.Dir(1), b.Chunks[3])
	out, _, code := cli(t, f, 1, "tools", "scrub", "--json")
	var rep struct {
		Corrupt, Repaired, Unrepairable int64
		Affected                        []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("scrub --json: %v: %s", err, out)
	}
	if code != 0 || rep.Corrupt != 2 || rep.Repaired != 2 || rep.Unrepairable != 0 {
		t.Fatalf("scrub: exit %d, %+v; want exit 0, 2 corrupt, 2 repaired", code, rep)
	}
	if len(rep.Affected) != 2 || rep.Affected[0].Name != b.Name {
		t.Errorf("scrub names %+v, want %s twice", rep.Affected, b.Name)
	}
	if status, sum, err := getSHA(f.URL(1), b.Name); err != nil || status != 200 || sum != hex.EncodeToString(b.SHA256[:]) {
		t.Fatalf("get after scrub: %d %v", status, err)
	}

	// Damaged everywhere: nothing can repair it; say so, fast and plainly.
	// (s0 restarts: it keeps a cache of what it shipped, which would be
	// a good copy.)
	if err := f.Stop(0); err != nil {
		t.Fatal(err)
	}
	flipChunk(t, f.Dir(0), c.Chunks[2])
	if err := f.Start(0); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitLinksUp(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	flipChunk(t, f.Dir(1), c.Chunks[2])
	// The first chunks are good: the damage shows mid-stream the first
	// time (the transfer breaks off), and before the first byte from
	// then on.
	status, _, err = getSHA(f.URL(1), c.Name)
	if status != 200 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("first get of an object damaged everywhere: %d, %v; want a 200 broken off", status, err)
	}
	resp2, err := http.Get(f.URL(1) + "/o/" + c.Name)
	if err != nil {
		t.Fatal(err)
	}
	var ans2 map[string]string
	_ = json.NewDecoder(resp2.Body).Decode(&ans2)
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusBadGateway || ans2["error"] != "chunk_corrupt" || ans2["hint"] == "" {
		t.Fatalf("get of an unrepairable object: %d %v; want 502 chunk_corrupt with a hint", resp2.StatusCode, ans2)
	}
	rng, _ := http.NewRequest(http.MethodGet, f.URL(1)+"/o/"+c.Name, nil)
	rng.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", 2*64<<10+10, 2*64<<10+20))
	if resp, err := http.DefaultClient.Do(rng); err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("range inside the unrepairable chunk: %v %v; want 502", resp, err)
	} else {
		resp.Body.Close()
	}
	_, stderr, code := cli(t, f, 1, "get", c.Name, "-o", filepath.Join(t.TempDir(), "c.fits"))
	if code != 3 {
		t.Fatalf("skyfed get of an unrepairable object: exit %d (%s); want 3", code, stderr)
	}
	if got := statusField(t, f, 1, "unrepairable_chunks"); got != 1 {
		t.Errorf("unrepairable_chunks = %v, want 1", got)
	}
	statusBody, _ := http.Get(f.URL(1) + "/api/status")
	sb, _ := io.ReadAll(statusBody.Body)
	statusBody.Body.Close()
	if !strings.Contains(string(sb), c.Name) {
		t.Errorf("status does not name %s among the unrepairable: %s", c.Name, sb)
	}
	if out, _, code := cli(t, f, 1, "stat"); code != 0 || !strings.Contains(out, "UNREPAIRABLE chunk "+c.Chunks[2].String()) || !strings.Contains(out, c.Name) {
		t.Errorf("skyfed stat (exit %d) does not name the unrepairable chunk and its object:\n%s", code, out)
	}
	if _, _, code := cli(t, f, 1, "tools", "scrub"); code != 3 {
		t.Errorf("scrub with an unrepairable chunk: exit %d, want 3", code)
	}
}

// TestCorruptRelayDoesNotStarveSitesBehindIt is the case: a new
// site c joins by one link to a, whose copy of two chunks is damaged; b,
// one hop further, has good copies. a repairs them from b as it ships,
// and c converges.
func TestCorruptRelayDoesNotStarveSitesBehindIt(t *testing.T) {
	f := healFed(t, 3, "line") // s0 = b, s1 = a, s2 = c
	if err := f.Stop(2); err != nil {
		t.Fatal(err)
	}
	var objs []testlab.Object
	for i := range 3 {
		o, err := f.PutRandom(0, fmt.Sprintf("relay/%d.fits", i), 300<<10, uint64(10+i))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	waitUntil(t, 60*time.Second, "s1 to hold every chunk", func() bool {
		return statusField(t, f, 1, "chunks") == statusField(t, f, 0, "chunks")
	})
	flipChunk(t, f.Dir(1), objs[0].Chunks[1])
	flipChunk(t, f.Dir(1), objs[2].Chunks[4])
	if err := f.Start(2); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitConverged(90 * time.Second); err != nil {
		t.Fatalf("c never got what a holds damaged: %v", err)
	}
	for _, o := range objs {
		_, stderr, code := cli(t, f, 2, "get", o.Name, "-o", filepath.Join(t.TempDir(), "x"))
		if code != 0 {
			t.Fatalf("skyfed get %s at c: exit %d: %s", o.Name, code, stderr)
		}
	}
	if got := statusField(t, f, 1, "repaired_chunks"); got < 2 {
		t.Errorf("a repaired %v chunks, want 2", got)
	}
}

// TestTruncatedPackRepairedAtStartup cuts a pack file short while the
// site is down: at start-up the lost chunks are found and fetched back.
func TestTruncatedPackRepairedAtStartup(t *testing.T) {
	f := healFed(t, 2, "line")
	for i := range 4 {
		if _, err := f.PutRandom(0, fmt.Sprintf("trunc/%d.fits", i), 400<<10, uint64(20+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitConverged(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	chunks := statusField(t, f, 1, "chunks")
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(f.Dir(1), "packs", "pack-*.dat"))
	var biggest string
	var size int64
	for _, p := range packs {
		if st, err := os.Stat(p); err == nil && st.Size() > size {
			biggest, size = p, st.Size()
		}
	}
	if err := os.Truncate(biggest, size/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(1); err != nil {
		t.Fatal(err)
	}
	if got := statusField(t, f, 1, "chunks"); got >= chunks {
		t.Errorf("after truncation status still counts %v chunks of %v", got, chunks)
	}
	if err := f.WaitConverged(90 * time.Second); err != nil {
		t.Fatalf("the truncated pack's chunks did not come back: %v", err)
	}
	if got := statusField(t, f, 1, "chunks"); got != chunks {
		t.Errorf("chunks = %v after repair, want %v", got, chunks)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
