package testlab_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/testlab"
)

// findFrame is a small FITS frame with the given header cards.
func findFrame(seed int, cards ...string) []byte {
	var hdr strings.Builder
	for _, c := range append([]string{"SIMPLE  =                    T", "BITPIX  =                   16", "NAXIS   =                    2",
		"NAXIS1  =                   32", "NAXIS2  =                   16"}, cards...) {
		fmt.Fprintf(&hdr, "%-80s", c)
	}
	fmt.Fprintf(&hdr, "%-80s", "END")
	b := []byte(hdr.String())
	b = append(b, bytes.Repeat([]byte(" "), 2880-len(b)%2880)...)
	data := make([]byte, 2880)
	for i := range 32 * 16 * 2 {
		data[i] = byte(seed*31 + i)
	}
	return append(b, data...)
}

// Frames put as a tree at one site are found by their header values at
// the other: every site indexes what replicates to it. find's lines and
// --json, paging past --limit, and a bad condition's exit code (80).
func TestFindAtEverySite(t *testing.T) {
	bin := procBin(t)
	fed, err := testlab.StartProcessFederation(testlab.FedOptions{N: 2, Topology: "line", Binary: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fed.Close(); err != nil {
			t.Error(err)
		}
	})
	src := filepath.Join(t.TempDir(), "night")
	files := map[string][]byte{}
	for i := range 12 {
		filter := []string{"R", "V", "B"}[i%3]
		object := "M31"
		ra, dec := "'00:42:44.3'", "'+41:16:09'"
		if i >= 8 {
			object, ra, dec = "NGC 7331", "339.2670", "34.4156"
		}
		files[fmt.Sprintf("img-%04d.fits", i)] = findFrame(i, "OBJECT  = '"+object+"'", "FILTER  = '"+filter+"'",
			fmt.Sprintf("DATE-OBS= '2026-12-%02dT21:00:00'", 1+i), fmt.Sprintf("EXPTIME = %20d", 10*(i+1)),
			"RA      = "+ra, "DEC     = "+dec, "TELESCOP= 'BOOTES-2'")
	}
	writeTree(t, src, files)
	if code, out, errOut := runCLI(t, bin, []string{"SKYFED_SITE=" + fed.URL(0)}, nil, "put", "-r", testlab.Domain+"/bootes-2/2026-12", src); code != 0 {
		t.Fatalf("put -r: exit %d\n%s%s", code, out, errOut)
	}
	if err := fed.WaitConverged(time.Minute); err != nil {
		t.Fatal(err)
	}
	env := []string{"SKYFED_SITE=" + fed.URL(1)}
	find := func(args ...string) []string {
		t.Helper()
		code, out, errOut := runCLI(t, bin, env, nil, append([]string{"find"}, args...)...)
		if code != 0 {
			t.Fatalf("find %v: exit %d\n%s%s", args, code, out, errOut)
		}
		var names []string
		for l := range strings.Lines(out) {
			names = append(names, strings.TrimPrefix(strings.Fields(l)[0], testlab.Domain+"/bootes-2/2026-12/"))
		}
		slices.Sort(names)
		return names
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"OBJECT=m31", "FILTER in (R,V)", "DATE-OBS>=2026-12-03"}, []string{"img-0003.fits", "img-0004.fits", "img-0006.fits", "img-0007.fits"}},
		{[]string{"EXPTIME>100"}, []string{"img-0010.fits", "img-0011.fits"}},
		{[]string{"--cone", "339.27,34.42,0.1"}, []string{"img-0008.fits", "img-0009.fits", "img-0010.fits", "img-0011.fits"}},
		{[]string{"--cone", "10.684,41.269,0.01", "DATE-OBS=2026-12-02"}, []string{"img-0001.fits"}},
		{[]string{"TELESCOP=BOOTES-3"}, nil},
	} {
		if got := find(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("find %v at the other site: %v, want %v", tc.args, got, tc.want)
		}
	}
	ngc := []string{"img-0008.fits", "img-0009.fits", "img-0010.fits", "img-0011.fits"}
	if got := find("OBJECT=NGC*", "--limit", "3"); len(got) != 3 || slices.ContainsFunc(got, func(n string) bool { return !slices.Contains(ngc, n) }) {
		t.Errorf("find OBJECT=NGC* --limit 3: %v, want 3 of %v", got, ngc)
	}
	code, out, _ := runCLI(t, bin, env, nil, "find", "OBJECT='NGC 7331'", "FILTER=B", "EXPTIME=120", "--json")
	var hit struct {
		Name, Version, SHA256 string
		Size                  int64
		Meta                  map[string]string
	}
	if err := json.Unmarshal([]byte(out), &hit); code != 0 || err != nil || hit.Meta["fits.object"] != "NGC 7331" || hit.SHA256 != hexSHA(files["img-0011.fits"]) {
		t.Errorf("find --json: exit %d, %v: %s", code, err, out)
	}
	if code, _, errOut := runCLI(t, bin, env, nil, "find", "FILTER!=R"); code != 80 || !strings.Contains(errOut, "not supported") {
		t.Errorf("find FILTER!=R: exit %d, %s; want 80 and why", code, errOut)
	}
}
