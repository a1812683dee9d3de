package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/skyfed/skyfed/testlab"
)

// logWriter sends progress lines to t.Log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writeFITSDir writes n copies of a synthetic 1 MiB frame as files, to
// stand in for a directory of real frames (the bench varies every copy).
func writeFITSDir(t *testing.T, n int) string {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := testlab.WriteSyntheticFrame(&buf, 100, 1024, 512); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.fits", i)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRunIngest(t *testing.T) {
	defer goleak.VerifyNone(t)
	bin, err := testlab.Binary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		fits      func(t *testing.T) string
		synthetic bool
	}{
		{"synthetic frames", func(*testing.T) string { return "" }, true},
		{"frames from a directory", func(t *testing.T) string { return writeFITSDir(t, 3) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scratch := t.TempDir()
			res, err := RunIngest(context.Background(), IngestConfig{
				Size: 8 << 20, Dir: scratch, FITS: tc.fits(t), Binary: bin,
				SyntheticSide: 256, Progress: logWriter{t},
			})
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res, tc.synthetic)
			var out bytes.Buffer
			if err := res.WriteTable(&out); err != nil {
				t.Fatal(err)
			}
			t.Log("\n" + out.String())
			checkTable(t, out.String(), tc.synthetic)
			if left, _ := os.ReadDir(scratch); len(left) != 0 {
				t.Errorf("scratch dir not cleaned up: %v", left)
			}
		})
	}
}

func checkResult(t *testing.T, res *IngestResult, synthetic bool) {
	t.Helper()
	for name, m := range map[string]Measure{
		"source": res.Source, "raw": res.RawWrite, "sha256": res.SHA256, "random": res.Random.Measure,
		"fits": res.FITS.Measure, "store default": res.StoreDefault, "store sync": res.StoreSyncAlways,
		"put 4 streams": res.Put4.Measure, "s3 multipart": res.S3Multipart.Measure,
	} {
		if m.Bytes <= 0 || m.Elapsed <= 0 || m.MBps() <= 0 {
			t.Errorf("%s: %+v, want positive bytes and time", name, m)
		}
	}
	for name, m := range map[string]Measure{"source": res.Source, "raw": res.RawWrite, "random": res.Random.Measure} {
		if m.Bytes != 8<<20 {
			t.Errorf("%s moved %d bytes, want %d", name, m.Bytes, 8<<20)
		}
	}
	f := res.FITS
	switch {
	case f.Synthetic != synthetic:
		t.Errorf("FITS synthetic = %v, want %v", f.Synthetic, synthetic)
	case f.Objects < 2 || f.Bytes > 8<<20:
		t.Errorf("FITS put %d objects of %d bytes, want ≥2 objects within 8 MiB", f.Objects, f.Bytes)
	case f.UniqueChunks <= 0 || f.UniqueChunks > f.TotalChunks:
		t.Errorf("FITS chunks %d unique of %d total", f.UniqueChunks, f.TotalChunks)
	case f.RawBytes != f.Bytes:
		t.Errorf("FITS raw bytes %d, want %d (every varied frame is unique)", f.RawBytes, f.Bytes)
	case f.StoredBytes <= 0:
		t.Errorf("FITS stored bytes %d", f.StoredBytes)
	}
	for _, s := range []SitePut{res.Random, f.SitePut} {
		if s.IdleRSS <= 0 || s.PeakRSS < s.IdleRSS {
			t.Errorf("site RSS idle %d, peak %d", s.IdleRSS, s.PeakRSS)
		}
	}
}

// checkTable finds every row and ratio of the table and checks that its
// first number is positive.
func checkTable(t *testing.T, table string, synthetic bool) {
	t.Helper()
	labels := []string{RowSource, RowRawWrite, RowSHA256, RowSkyfedRandom, RowSkyfedFITS, RowSkyfedPut4, RowS3Multipart, RowStoreDefault,
		RowStoreSyncAlways, RatioStoreDefault, RatioStoreSyncAlways, RatioRawWrite, RatioS3}
	rows := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(table))
	for sc.Scan() {
		for _, l := range labels {
			if rest, ok := strings.CutPrefix(sc.Text(), l+"  "); ok {
				rows[l] = rest
			}
		}
	}
	for _, l := range labels {
		rest, ok := rows[l]
		if !ok {
			t.Errorf("table has no row %q", l)
			continue
		}
		first := strings.TrimSuffix(strings.Fields(rest)[0], "×")
		if v, err := strconv.ParseFloat(first, 64); err != nil || v <= 0 {
			t.Errorf("row %q: first value %q, want a positive number", l, first)
		}
		if strings.HasPrefix(l, "skyfed random ÷") && !strings.HasSuffix(rest, "PASS") && !strings.HasSuffix(rest, "MISS") {
			t.Errorf("ratio %q has no PASS/MISS: %q", l, rest)
		}
	}
	if i := strings.Index(table, RowRSSGrowth); i < 0 {
		t.Errorf("table has no row %q", RowRSSGrowth)
	} else if line, _, _ := strings.Cut(table[i:], "\n"); !strings.HasSuffix(line, "PASS") && !strings.HasSuffix(line, "MISS") {
		t.Errorf("memory goal has no PASS/MISS: %q", line)
	}
	for _, want := range []string{"machine:", "cores", "disk dir:"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if got := strings.Contains(table, "SYNTHETIC"); got != synthetic {
		t.Errorf("table says SYNTHETIC: %v, want %v", got, synthetic)
	}
}

// One object through a site's S3 API and back in ranges: the bytes
// match (checked inside), and the result has rates and memory.
func TestRunS3Stream(t *testing.T) {
	defer goleak.VerifyNone(t)
	bin, err := testlab.Binary()
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunS3Stream(context.Background(), S3StreamConfig{Size: 70 << 20, Dir: t.TempDir(), Binary: bin, Progress: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Upload.MBps() <= 0 || res.Download.MBps() <= 0 || res.IdleRSS <= 0 || res.PeakRSS < res.IdleRSS {
		t.Errorf("result %+v", res)
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), RowRSSGrowth) {
		t.Errorf("table:\n%s", out.String())
	}
}
