package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/testlab"
)

// writeFloatFrame writes a FITS file of one float image, width×height.
func writeFloatFrame(t *testing.T, path string, width, height int) {
	t.Helper()
	var h strings.Builder
	for _, c := range []string{"SIMPLE  =                    T", "BITPIX  =                  -32", "NAXIS   =                    2",
		fmt.Sprintf("NAXIS1  = %20d", width), fmt.Sprintf("NAXIS2  = %20d", height), "END"} {
		fmt.Fprintf(&h, "%-80s", c)
	}
	b := []byte(h.String() + strings.Repeat(" ", 2880-h.Len()))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range width * height {
		v := 100 + float64(i%width)/10 + r.NormFloat64()
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(v)))
	}
	b = append(b, make([]byte, (2880-len(b)%2880)%2880)...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func codecTestDir(t *testing.T) string {
	dir := t.TempDir()
	var frame bytes.Buffer
	if err := testlab.WriteSyntheticFrame(&frame, 7, 300, 300); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"sub/int16.fits": frame.Bytes(),
		"small.fits":     frame.Bytes()[:50_000], // below the size limit
		"random.bin":     bytes.Repeat([]byte("not FITS"), 30_000),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFloatFrame(t, filepath.Join(dir, "float.fits"), 250, 200)
	return dir
}

func TestRunCodecSmall(t *testing.T) {
	for _, tool := range []string{"fpack", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install libcfitsio-bin zstd; .ci/run installs them)", tool)
		}
	}
	res, err := RunCodec(context.Background(), CodecConfig{Dir: codecTestDir(t), Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 {
		t.Fatalf("measured %d files, want the two FITS files of 100 KB+", len(res.Files))
	}
	kinds := map[string]CodecFile{}
	for _, f := range res.Files {
		kinds[f.Kind] = f
		if f.Sky <= 0 || f.Sky >= f.Raw || f.Fpack <= 0 || f.Zstd <= 0 || f.Compress <= 0 || f.Decode <= 0 {
			t.Errorf("%s: %+v: want every size and time measured, skyfed below raw", f.Path, f)
		}
	}
	if kinds[KindInteger].Mode == "" || kinds[KindFloat].Mode != "-g2 -q 0" && kinds[KindFloat].Mode != "-g1 -q 0" {
		t.Errorf("fpack modes %q (integer) and %q (float): floats must use a lossless GZIP mode", kinds[KindInteger].Mode, kinds[KindFloat].Mode)
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"int16.fits", "float.fits", "total integer (1 files)", "total float (1 files)",
		"integer images: skyfed ÷ fpack bytes", "float images: skyfed ÷ zstd -19 bytes", "compress, one core", "decompress, one core"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunCodecToolsMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := RunCodec(context.Background(), CodecConfig{Dir: t.TempDir()})
	if !errors.Is(err, ErrCodecTools) || !strings.Contains(err.Error(), "apt-get install libcfitsio-bin zstd") {
		t.Fatalf("err = %v, want ErrCodecTools naming the packages", err)
	}
}

func TestCodecGoals(t *testing.T) {
	res := &CodecResult{Files: []CodecFile{
		{Kind: KindInteger, Raw: 1000, Sky: 400, Fpack: 410, Zstd: 500, Compress: time.Microsecond, Decode: time.Microsecond},
		{Kind: KindFloat, Raw: 1000, Sky: 700, Fpack: 900, Zstd: 690, Compress: time.Second, Decode: time.Microsecond},
		// refused by fpack: left out of skyfed ÷ fpack, which would fail with it
		{Kind: KindInteger, Raw: 1000, Sky: 900, Fpack: 1000, FpackRefused: true, Zstd: 500, Compress: time.Microsecond, Decode: time.Microsecond},
	}}
	got := map[string]bool{}
	for _, g := range res.Goals() {
		got[g.Name] = g.Pass
	}
	want := map[string]bool{
		"integer images: skyfed ÷ fpack bytes":  true,  // 400 ≤ 410
		"float images: skyfed ÷ zstd -19 bytes": false, // 700 > 690
		"compress, one core":                    false, // 2000 bytes in ~1 s
		"decompress, one core":                  true,
	}
	for name, pass := range want {
		if got[name] != pass {
			t.Errorf("goal %q pass = %v, want %v", name, got[name], pass)
		}
	}
}
