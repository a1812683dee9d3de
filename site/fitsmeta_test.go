package site

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/skyfed/skyfed/manifest"
	"github.com/skyfed/skyfed/naming"
)

// fitsFrame is a small FITS image: header cards (padded to a block),
// then 16-bit samples.
func fitsFrame(cards ...string) []byte { return fitsFrameOf(64, 32, cards...) }

// fitsFrameOf is a FITS image of w×h 16-bit samples.
func fitsFrameOf(w, h int, cards ...string) []byte {
	var hdr strings.Builder
	for _, c := range append([]string{"SIMPLE  =                    T", "BITPIX  =                   16", "NAXIS   =                    2",
		fmt.Sprintf("NAXIS1  = %20d", w), fmt.Sprintf("NAXIS2  = %20d", h)}, cards...) {
		fmt.Fprintf(&hdr, "%-80s", c)
	}
	fmt.Fprintf(&hdr, "%-80s", "END")
	b := []byte(hdr.String())
	b = append(b, bytes.Repeat([]byte(" "), 2880-len(b)%2880)...)
	b = append(b, seeded(61, w*h*2)...)
	return append(b, make([]byte, 2880-len(b)%2880)...)
}

func metaOf(m *manifest.Manifest) map[string]string {
	out := map[string]string{}
	for _, kv := range m.Meta {
		out[kv.Key] = kv.Value
	}
	return out
}

// A put of a FITS frame copies the configured header keywords into the
// signed manifest as fits.* meta, keeping what the put itself gave; a
// damaged header stores the frame without them (counted); other objects
// get none, and fits_keywords = [] turns it off.
func TestFITSHeadersInManifest(t *testing.T) {
	ts := startSite(t, "127.0.0.1")
	put := func(name string, body []byte, hdr ...string) map[string]string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, ts.base+"/o/gloria.eu/frames/"+name, bytes.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if code, answer := ts.sendReq(t, req); code != http.StatusCreated {
			t.Fatalf("put %s: %d %v", name, code, answer)
		}
		m, err := ts.objects.Latest(naming.MustParseName("gloria.eu/frames/" + name))
		if err != nil {
			t.Fatal(err)
		}
		return metaOf(m)
	}
	frame := fitsFrame("OBJECT  = 'M31     '", "TELESCOP= 'BOOTES-2'", "DATE-OBS= '2026-12-06T21:04:05'", "EXPTIME =                 30.0", "RA      =            10.684708", "FILTER  = 'R'")
	meta := put("m31.fits", frame, "X-Skyfed-Meta-Fits.filter", "V (user)")
	for k, want := range map[string]string{"fits.object": "M31", "fits.telescop": "BOOTES-2", "fits.date-obs": "2026-12-06T21:04:05",
		"fits.exptime": "30.0", "fits.ra": "10.684708", "fits.naxis1": "64", "fits.naxis2": "32", "fits.bitpix": "16", "fits.filter": "V (user)"} {
		if meta[k] != want {
			t.Errorf("meta %s = %q, want %q (all: %v)", k, meta[k], want, meta)
		}
	}
	if n := metric(t, ts, "skyfed_fits_headers_total"); n != 1 {
		t.Errorf("skyfed_fits_headers_total = %v, want 1", n)
	}
	frame = fitsFrame("OBJECT  = 'M31     '", "FILTER  = 'R'") // the user's filter above is in m31.fits only

	// By chunk list: the chunks sent, then the list; again under a new
	// name the version over the same chunks gives its header values.
	hm := hashmapOf(frame, 64<<10)
	for _, step := range []struct {
		name   string
		chunks [][]byte
	}{{"hm.fits", [][]byte{frame}}, {"hm-renamed.fits", nil}} {
		name := step.name
		for i, c := range step.chunks {
			if code, _ := ts.send(t, http.MethodPut, "/c/"+hm.Chunks[i], c); code != http.StatusCreated {
				t.Fatalf("chunk %d: %d", i, code)
			}
		}
		if code, answer := ts.send(t, http.MethodPut, "/o/gloria.eu/frames/"+name+"?hashmap", hashmapBytes(t, hm)); code != http.StatusCreated {
			t.Fatalf("hashmap put %s: %d %v", name, code, answer)
		}
		m, err := ts.objects.Latest(naming.MustParseName("gloria.eu/frames/" + name))
		if err != nil {
			t.Fatal(err)
		}
		if got := metaOf(m); got["fits.object"] != "M31" || got["fits.filter"] != "R" {
			t.Errorf("hashmap put %s: meta %v", name, got)
		}
	}

	if meta := put("cut.fits", frame[:400]); len(meta) != 0 {
		t.Errorf("a frame cut in its header got meta %v", meta)
	}
	if n := metric(t, ts, "skyfed_fits_headers_skipped_total"); n != 1 {
		t.Errorf("skyfed_fits_headers_skipped_total = %v, want 1", n)
	}
	if meta := put("notes.txt", []byte("SIMPLE? no, a text that mentions OBJECT = 'M31'")); len(meta) != 0 {
		t.Errorf("a text got meta %v", meta)
	}

	none := []string{}
	if err := EditConfig(ts.dir, func(c *Config) error { c.FITSKeywords = &none; return nil }); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(ts.dir)
	if err != nil || cfg.FITSKeywords == nil || len(*cfg.FITSKeywords) != 0 {
		t.Fatalf("fits_keywords = [] read back as %v (%v)", cfg.FITSKeywords, err)
	}
	bad := []string{"object"}
	if err := EditConfig(ts.dir, func(c *Config) error { c.FITSKeywords = &bad; return nil }); err == nil {
		t.Error("a lower-case keyword was accepted")
	}
}

// An S3 multipart upload of a FITS frame gets its header values too, read
// as its parts are hashed in order.
func TestFITSHeadersOfMultipartUpload(t *testing.T) {
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "mp", Write: []string{"gloria.eu/"}})
	c := s3Client(t, ts, id, secret)
	ctx := context.Background()
	frame := fitsFrameOf(2048, 1536, "OBJECT  = 'NGC 253 '", "FILTER  = 'V'")
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String("mp/ngc253.fits")})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for i, part := range [][]byte{frame[:5<<20], frame[5<<20:]} {
		res, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("gloria.eu"), Key: aws.String("mp/ngc253.fits"), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(part)})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{ETag: res.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String("mp/ngc253.fits"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatal(err)
	}
	m, err := ts.objects.Latest(naming.MustParseName("gloria.eu/mp/ngc253.fits"))
	if err != nil {
		t.Fatal(err)
	}
	if meta := metaOf(m); meta["fits.object"] != "NGC 253" || meta["fits.filter"] != "V" || meta["fits.naxis1"] != "2048" {
		t.Errorf("multipart FITS frame: meta %v", meta)
	}
}
