package site

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/naming"
)

// startS3Site starts a site with its S3 listener on a loopback port.
func startS3Site(t *testing.T) *testSite {
	t.Helper()
	ts, logs := startSiteWith(t, func(c *Config) { c.S3 = "127.0.0.1:0" })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("site log:\n%s", logs.String())
		}
	})
	if ts.S3Addr() == "" {
		t.Fatal("no S3 listener")
	}
	return ts
}

// s3Token creates an access token on ts and waits for the site to know it.
func s3Token(t *testing.T, ts *testSite, tok AccessToken) (id, secret string) {
	t.Helper()
	made, full, err := CreateToken(ts.dir, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ = strings.Cut(full, ".")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, ok := ts.TokenSecret(made.ID); ok {
			return id, secret
		}
		if time.Now().After(deadline) {
			t.Fatal("the site never took up the new token")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// s3Client is the AWS SDK for Go v2 with its defaults (checksums
// included), path style, against ts.
func s3Client(t *testing.T, ts *testSite, id, secret string) *s3.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return s3.New(s3.Options{
		HTTPClient:   &http.Client{Transport: tr},
		BaseEndpoint: aws.String("http://" + ts.S3Addr()),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
	})
}

// fetch sends a hand-made request and returns the answer's status and
// body.
func fetch(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func s3Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// Objects put, read, listed, copied and deleted through S3 with the AWS
// SDK's defaults: ETags are the MD5 of the bytes, metadata comes back,
// ranges read the right bytes, the delimiter rolls keys up, a copy
// moves no bytes.
func TestS3ObjectsWithTheAWSSDK(t *testing.T) {
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "pipeline", Write: []string{"gloria.eu/"}})
	c := s3Client(t, ts, id, secret)
	ctx := context.Background()
	data := seeded(7, 300<<10)
	sum := md5.Sum(data)
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/img-0001.fits"),
		Body: bytes.NewReader(data), ContentType: aws.String("image/fits"), Metadata: map[string]string{"filter": "R"}})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; aws.ToString(put.ETag) != want {
		t.Errorf("put ETag %s, want %s", aws.ToString(put.ETag), want)
	}
	for _, k := range []string{"bootes-2/img-0002.fits", "bootes-2/night/a.fits", "bootes-2/night/b.fits", "other/x"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}

	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/img-0001.fits")})
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(data)) || aws.ToString(head.ContentType) != "image/fits" || head.Metadata["filter"] != "R" ||
		aws.ToString(head.ETag) != aws.ToString(put.ETag) {
		t.Errorf("head: length %d, type %q, meta %v, ETag %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType), head.Metadata, aws.ToString(head.ETag))
	}

	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/img-0001.fits"), Range: aws.String("bytes=70000-200099")})
	if err != nil {
		t.Fatalf("ranged get: %v", err)
	}
	part, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil || !bytes.Equal(part, data[70000:200100]) {
		t.Fatalf("ranged get: %d bytes, %v", len(part), err)
	}

	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("gloria.eu"), Prefix: aws.String("bootes-2/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var keys, prefixes []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	for _, p := range list.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(p.Prefix))
	}
	if strings.Join(keys, ",") != "bootes-2/img-0001.fits,bootes-2/img-0002.fits" || strings.Join(prefixes, ",") != "bootes-2/night/" {
		t.Errorf("list: keys %v, prefixes %v", keys, prefixes)
	}
	// Pages of one key: the continuation token walks all five names.
	var all []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("gloria.eu"), MaxKeys: aws.Int32(1)})
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page: %v", err)
		}
		for _, o := range pg.Contents {
			all = append(all, aws.ToString(o.Key))
		}
	}
	if len(all) != 5 {
		t.Errorf("paged list: %v", all)
	}

	buckets, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(buckets.Buckets) != 1 || aws.ToString(buckets.Buckets[0].Name) != "gloria.eu" {
		t.Fatalf("buckets: %+v %v", buckets, err)
	}

	stored := ts.chunks.Stats()
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("archive/img-0001.fits"),
		CopySource: aws.String("gloria.eu/bootes-2/img-0001.fits")}); err != nil {
		t.Fatalf("copy: %v", err)
	}
	if after := ts.chunks.Stats(); after.StoredBytes != stored.StoredBytes {
		t.Errorf("the copy wrote %d bytes", after.StoredBytes-stored.StoredBytes)
	}
	cp, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("archive/img-0001.fits")})
	if err != nil {
		t.Fatalf("get the copy: %v", err)
	}
	cb, _ := io.ReadAll(cp.Body)
	cp.Body.Close()
	if !bytes.Equal(cb, data) || aws.ToString(cp.ETag) != aws.ToString(put.ETag) || cp.Metadata["filter"] != "R" {
		t.Errorf("copy: %d bytes, ETag %s, meta %v", len(cb), aws.ToString(cp.ETag), cp.Metadata)
	}

	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("other/x")}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("gloria.eu"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("bootes-2/night/a.fits")}, {Key: aws.String("bootes-2/night/b.fits")}}}})
	if err != nil || len(del.Deleted) != 2 || len(del.Errors) != 0 {
		t.Fatalf("delete objects: %+v %v", del, err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("other/x")}); err == nil {
		t.Error("a deleted object is still there")
	}
	if st, err := ts.Status(); err != nil || st.S3 != "http://"+ts.S3Addr() {
		t.Errorf("status s3 %q, %v", st.S3, err)
	}
	// The REST API sees what S3 wrote.
	resp, body := ts.do(t, "GET", "/o/gloria.eu/bootes-2/img-0001.fits", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("REST get of an S3 put: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// A wrong secret and an unknown key are answered alike; a token without
// write scope cannot put; a token cannot read outside its scope.
func TestS3SignaturesAndScopes(t *testing.T) {
	ts := startS3Site(t)
	ctx := context.Background()
	rwID, rwSecret := s3Token(t, ts, AccessToken{Name: "writer", Write: []string{"gloria.eu/bootes-2/"}})
	roID, roSecret := s3Token(t, ts, AccessToken{Name: "reader", Read: []string{"gloria.eu/bootes-2/"}})
	put := func(c *s3.Client, key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key), Body: strings.NewReader("frame")})
		return err
	}
	if err := put(s3Client(t, ts, rwID, rwSecret), "bootes-2/a.fits"); err != nil {
		t.Fatalf("put with write scope: %v", err)
	}
	wrong := put(s3Client(t, ts, rwID, strings.Repeat("x", len(rwSecret))), "bootes-2/b.fits")
	unknown := put(s3Client(t, ts, "SFAAAAAAAAAAAAAAAAAA", rwSecret), "bootes-2/b.fits")
	if s3Code(wrong) != "SignatureDoesNotMatch" || s3Code(unknown) != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret: %v; unknown key: %v", wrong, unknown)
	}
	if err := put(s3Client(t, ts, roID, roSecret), "bootes-2/c.fits"); s3Code(err) != "AccessDenied" {
		t.Errorf("put with read scope only: %v", err)
	}
	if err := put(s3Client(t, ts, rwID, rwSecret), "archive/c.fits"); s3Code(err) != "AccessDenied" {
		t.Errorf("put outside the write scope: %v", err)
	}
	ro := s3Client(t, ts, roID, roSecret)
	if _, err := ro.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/copy.fits"),
		CopySource: aws.String("gloria.eu/bootes-2/a.fits")}); s3Code(err) != "AccessDenied" {
		t.Errorf("copy with read scope only: %v", err)
	}
	if _, err := ro.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/mp.fits")}); s3Code(err) != "AccessDenied" {
		t.Errorf("multipart with read scope only: %v", err)
	}
	del, err := ro.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("gloria.eu"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("bootes-2/a.fits")}}}})
	if err != nil || len(del.Errors) != 1 || len(del.Deleted) != 0 {
		t.Errorf("delete objects with read scope only: %+v %v", del, err)
	}
	// A browser form upload names its key in the body, out of the gate's
	// sight: refused whatever the form says.
	form := "--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nbootes-2/form.fits\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n--b--\r\n"
	freq, _ := http.NewRequest(http.MethodPost, "http://"+ts.S3Addr()+"/gloria.eu", strings.NewReader(form))
	freq.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	if code, _ := fetch(t, freq); code != http.StatusNotImplemented {
		t.Errorf("browser form POST: %d", code)
	}
	if _, err := ts.objects.Latest(naming.MustParseName("gloria.eu/bootes-2/form.fits")); err == nil {
		t.Error("a browser form upload was stored")
	}
	if got, err := ro.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/a.fits")}); err != nil {
		t.Errorf("get with read scope: %v", err)
	} else {
		got.Body.Close()
	}
	if _, err := ro.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("other/a.fits")}); s3Code(err) != "AccessDenied" {
		t.Errorf("get outside the read scope: %v", err)
	}
	// A presigned GET works for its holder without credentials.
	ps := s3.NewPresignClient(ro)
	req, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/a.fits")})
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, []byte) {
		r, _ := http.NewRequest(http.MethodGet, url, nil)
		return fetch(t, r)
	}
	if code, b := get(req.URL); code != http.StatusOK || string(b) != "frame" {
		t.Errorf("presigned get: %d %s", code, b)
	}
	if code, _ := get(strings.Replace(req.URL, "a.fits", "b.fits", 1)); code != http.StatusForbidden {
		t.Errorf("a presigned URL for another key: %d", code)
	}
}

// A write through S3 at one site is readable through S3 and the REST API
// at the other, and a REST write the other way is readable through S3.
func TestS3AcrossTheFederation(t *testing.T) {
	sites := make([]*testSite, 2)
	for i, id := range []string{"alpha", "beta"} {
		dir := t.TempDir()
		if _, err := Init(dir, Config{ID: id, Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATS: freeAddr(t), NATSTLS: TLSOn,
			ChunkSize: 64 << 10, S3: "127.0.0.1:0"}); err != nil {
			t.Fatal(err)
		}
		sites[i] = runSite(t, dir)
	}
	a, b := sites[0], sites[1]
	trustEachOther(t, a, b)
	linkSites(t, a, b, "", "")
	waitFor(t, "link up", func() bool {
		ls := a.node.Links()
		return len(ls) == 1 && ls[0].State == forward.StateUp
	})
	ctx := context.Background()
	aID, aSecret := s3Token(t, a, AccessToken{Name: "at-alpha", Write: []string{"gloria.eu/"}})
	bID, bSecret := s3Token(t, b, AccessToken{Name: "at-beta", Write: []string{"gloria.eu/"}})
	ca, cb := s3Client(t, a, aID, aSecret), s3Client(t, b, bID, bSecret)
	data := seeded(11, 500<<10)
	if _, err := ca.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/x.fits"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	// At once at beta, through S3: read-through if it has not arrived.
	got, err := cb.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/x.fits")})
	if err != nil {
		t.Fatalf("S3 get at the other site: %v", err)
	}
	body, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("S3 get at the other site: %d bytes, %v", len(body), err)
	}
	waitObject(t, b, "gloria.eu/bootes-2/x.fits", data)
	if resp, rb := b.do(t, "GET", "/o/gloria.eu/bootes-2/x.fits", nil); resp.StatusCode != http.StatusOK || !bytes.Equal(rb, data) {
		t.Errorf("REST get at the other site: %d, %d bytes", resp.StatusCode, len(rb))
	}
	back := seeded(12, 100<<10)
	if resp, rb := b.do(t, "PUT", "/o/gloria.eu/bootes-2/y.fits", bytes.NewReader(back)); resp.StatusCode != http.StatusCreated {
		t.Fatal(string(rb))
	}
	waitObject(t, a, "gloria.eu/bootes-2/y.fits", back)
	got, err = ca.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("bootes-2/y.fits")})
	if err != nil {
		t.Fatalf("S3 get of a REST put: %v", err)
	}
	body, _ = io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(body, back) {
		t.Errorf("S3 get of a REST put: %d bytes", len(body))
	}
	list, err := ca.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("gloria.eu"), Prefix: aws.String("bootes-2/")})
	if err != nil || len(list.Contents) != 2 {
		t.Errorf("list at alpha: %+v %v", list, err)
	}
}

// A multipart upload streams its parts into chunks; completing it makes
// one version of the parts in order and answers the multipart ETag,
// which GET, HEAD, listings and conditions use too, as on AWS. Parts cut
// on chunk boundaries are not written again; other sizes are re-cut. An
// aborted upload is gone.
func TestS3Multipart(t *testing.T) {
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "mp", Write: []string{"gloria.eu/"}})
	c := s3Client(t, ts, id, secret)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		sizes []int
		// whether completing writes chunks again (parts not on the
		// 64 KiB chunk boundaries of the test site)
		rewrites bool
	}{
		{"aligned", []int{5 << 20, 5 << 20, 300 << 10}, false},
		{"unaligned", []int{5<<20 + 1000, 5<<20 + 7, 12345}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "mp/" + tc.name + ".fits"
			up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key),
				ContentType: aws.String("image/fits"), Metadata: map[string]string{"telescope": "bootes-2"}})
			if err != nil {
				t.Fatal(err)
			}
			var whole []byte
			var done []types.CompletedPart
			etags := md5.New()
			for i, n := range tc.sizes {
				part := seeded(uint64(200+i), n)
				whole = append(whole, part...)
				res, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key), UploadId: up.UploadId,
					PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(part)})
				if err != nil {
					t.Fatalf("part %d: %v", i+1, err)
				}
				sum := md5.Sum(part)
				etags.Write(sum[:])
				done = append(done, types.CompletedPart{ETag: res.ETag, PartNumber: aws.Int32(int32(i + 1))})
			}
			before := ts.chunks.Stats().StoredBytes
			res, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key),
				UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
			if err != nil {
				t.Fatalf("complete: %v", err)
			}
			want := fmt.Sprintf(`"%x-%d"`, etags.Sum(nil), len(tc.sizes))
			if aws.ToString(res.ETag) != want {
				t.Errorf("complete ETag %s, want %s", aws.ToString(res.ETag), want)
			}
			if wrote := ts.chunks.Stats().StoredBytes - before; (wrote > 0) != tc.rewrites {
				t.Errorf("completing wrote %d bytes", wrote)
			}
			got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key), IfMatch: aws.String(want)})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(got.Body)
			got.Body.Close()
			if !bytes.Equal(body, whole) || aws.ToString(got.ETag) != want ||
				got.Metadata["telescope"] != "bootes-2" || aws.ToString(got.ContentType) != "image/fits" {
				t.Errorf("get: %d bytes of %d, ETag %s, meta %v, type %s", len(body), len(whole), aws.ToString(got.ETag), got.Metadata, aws.ToString(got.ContentType))
			}
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key), VersionId: got.VersionId})
			if err != nil || aws.ToString(head.ETag) != want {
				t.Errorf("head of the version: ETag %s, %v; want %s", aws.ToString(head.ETag), err, want)
			}
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key), IfNoneMatch: aws.String(want)})
			if code := s3Code(err); code != "NotModified" && code != "304" {
				t.Errorf("get if none match its ETag: %v, want not modified", err)
			}
			list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("gloria.eu"), Prefix: aws.String(key)})
			if err != nil || len(list.Contents) != 1 || aws.ToString(list.Contents[0].ETag) != want {
				t.Errorf("listing: %+v, %v; want one ETag %s", list, err, want)
			}
		})
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String("mp/aborted")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("gloria.eu"), Key: aws.String("mp/aborted"), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(seeded(300, 1<<20))}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String("mp/aborted"), UploadId: up.UploadId}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.objects.GetUpload(aws.ToString(up.UploadId)); !errors.Is(err, naming.ErrNoSuchUpload) {
		t.Errorf("aborted upload: %v", err)
	}
}

// UploadPartCopy takes a range of a stored object as a part; ListParts
// and ListMultipartUploads show an upload in progress; response header
// overrides and a wrong Content-MD5 are answered as S3 does.
func TestS3PartCopyListsAndOverrides(t *testing.T) {
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "mp", Write: []string{"gloria.eu/"}})
	c := s3Client(t, ts, id, secret)
	ctx := context.Background()
	src := seeded(400, 6<<20)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("src.fits"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String("joined.fits")})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String("gloria.eu"), Key: aws.String("joined.fits"), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), CopySource: aws.String("gloria.eu/src.fits"), CopySourceRange: aws.String("bytes=0-5242879")})
	if err != nil {
		t.Fatalf("upload part copy: %v", err)
	}
	tail := seeded(401, 1000)
	p2, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("gloria.eu"), Key: aws.String("joined.fits"), UploadId: up.UploadId,
		PartNumber: aws.Int32(2), Body: bytes.NewReader(tail)})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("gloria.eu"), Key: aws.String("joined.fits"), UploadId: up.UploadId})
	if err != nil || len(parts.Parts) != 2 || aws.ToInt64(parts.Parts[0].Size) != 5<<20 {
		t.Fatalf("list parts: %+v %v", parts, err)
	}
	uploads, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("gloria.eu")})
	if err != nil || len(uploads.Uploads) != 1 || aws.ToString(uploads.Uploads[0].Key) != "joined.fits" {
		t.Fatalf("list uploads: %+v %v", uploads, err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("gloria.eu"), Key: aws.String("joined.fits"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
			{ETag: cp.CopyPartResult.ETag, PartNumber: aws.Int32(1)}, {ETag: p2.ETag, PartNumber: aws.Int32(2)}}}}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("joined.fits"),
		ResponseContentType: aws.String("application/fits"), ResponseContentDisposition: aws.String("attachment")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(body, append(src[:5<<20:5<<20], tail...)) || aws.ToString(got.ContentType) != "application/fits" || aws.ToString(got.ContentDisposition) != "attachment" {
		t.Errorf("joined: %d bytes, type %q, disposition %q", len(body), aws.ToString(got.ContentType), aws.ToString(got.ContentDisposition))
	}
	// A Content-MD5 that does not match the body: refused, nothing stored.
	req, _ := http.NewRequest(http.MethodPut, "http://"+ts.S3Addr()+"/gloria.eu/bad-md5.fits", strings.NewReader("frame"))
	req.Header.Set("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA==")
	if code, rb := fetch(t, req); code != http.StatusBadRequest || !strings.Contains(string(rb), "BadDigest") { // unsigned: the listener is on loopback
		t.Errorf("wrong Content-MD5: %d %s", code, rb)
	}
	if _, err := ts.objects.Latest(naming.MustParseName("gloria.eu/bad-md5.fits")); err == nil {
		t.Error("a put with a wrong Content-MD5 was stored")
	}
}

// Versions through S3: every put and delete is a version, a delete a
// delete marker, any version can be read by its ID, versions cannot be
// deleted one by one, and versioning is always on.
func TestS3Versions(t *testing.T) {
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "v", Write: []string{"gloria.eu/"}})
	c := s3Client(t, ts, id, secret)
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		res, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("v/frame.fits"), Body: strings.NewReader(fmt.Sprint("take ", i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(res.VersionId))
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("v/other.fits"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("v/frame.fits")})
	if err != nil || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("delete: %+v %v", del, err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("v/frame.fits"), VersionId: aws.String(ids[1])})
	if err != nil {
		t.Fatalf("get version %s: %v", ids[1], err)
	}
	b, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if string(b) != "take 1" || aws.ToString(got.VersionId) != ids[1] {
		t.Errorf("version %s: %q (version %s)", ids[1], b, aws.ToString(got.VersionId))
	}
	// All five versions, a page of two at a time.
	var seen []string
	markers := 0
	in := &s3.ListObjectVersionsInput{Bucket: aws.String("gloria.eu"), Prefix: aws.String("v/"), MaxKeys: aws.Int32(2)}
	for range 10 {
		page, err := c.ListObjectVersions(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			seen = append(seen, aws.ToString(v.Key)+"@"+aws.ToString(v.VersionId))
		}
		for _, m := range page.DeleteMarkers {
			markers++
			seen = append(seen, aws.ToString(m.Key)+"@"+aws.ToString(m.VersionId))
			if !aws.ToBool(m.IsLatest) {
				t.Errorf("the delete marker is not the latest version")
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		in.KeyMarker, in.VersionIdMarker = page.NextKeyMarker, page.NextVersionIdMarker
	}
	if len(seen) != 5 || markers != 1 {
		t.Errorf("versions listed: %v (%d delete markers)", seen, markers)
	}
	uniq := map[string]bool{}
	for _, s := range seen {
		uniq[s] = true
	}
	if len(uniq) != len(seen) {
		t.Errorf("a version listed twice: %v", seen)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("v/frame.fits"), VersionId: aws.String(ids[0])}); s3Code(err) != "NotImplemented" {
		t.Errorf("deleting a version: %v", err)
	}
	vc, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("gloria.eu")})
	if err != nil || vc.Status != types.BucketVersioningStatusEnabled {
		t.Errorf("versioning: %+v %v", vc, err)
	}
}

// Over HTTPS the current AWS SDK for Go v2 streams a body it cannot
// seek as aws-chunked with a trailing checksum: each algorithm it
// offers is accepted, checked and kept, and given back on request.
func TestS3TrailingChecksumsOverHTTPS(t *testing.T) {
	ts, _ := startSiteWith(t, func(c *Config) {
		c.S3 = "127.0.0.1:0"
		c.HTTPTLSCert, c.HTTPTLSKey = SiteCertFile, SiteKeyFile
	})
	id, secret := s3Token(t, ts, AccessToken{Name: "tls", Write: []string{"gloria.eu/"}})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the site's own certificate; what is tested is the body's framing
	t.Cleanup(tr.CloseIdleConnections)
	c := s3.New(s3.Options{BaseEndpoint: aws.String("https://" + ts.S3Addr()), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), HTTPClient: &http.Client{Transport: tr}})
	ctx := context.Background()
	for i, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c,
		types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha256} {
		data := seeded(uint64(500+i), 700<<10)
		key := "trailer/" + string(alg)
		// A reader that cannot seek: the SDK streams it, checksum last.
		body := struct{ io.Reader }{bytes.NewReader(data)}
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key), Body: body,
			ContentLength: aws.Int64(int64(len(data))), ChecksumAlgorithm: alg}); err != nil {
			t.Errorf("%s: put: %v", alg, err)
			continue
		}
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Errorf("%s: get: %v", alg, err)
			continue
		}
		b, err := io.ReadAll(got.Body) // the SDK checks the checksum it gets back as it reads
		got.Body.Close()
		if err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s: read back %d bytes of %d: %v", alg, len(b), len(data), err)
		}
	}
}

// An aws-chunked body whose trailing checksum does not match is refused
// and nothing is stored; the right one is taken.
func TestS3TrailingChecksumMismatch(t *testing.T) {
	ts := startS3Site(t)
	data := []byte("a frame sent in aws-chunked framing")
	good := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
	put := func(key, sum string) (int, string) {
		body := fmt.Sprintf("%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n", len(data), data, sum)
		req, _ := http.NewRequest(http.MethodPut, "http://"+ts.S3Addr()+"/gloria.eu/"+key, strings.NewReader(body))
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		req.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(len(data)))
		code, b := fetch(t, req) // unsigned: the listener is on loopback
		return code, string(b)
	}
	if code, body := put("bad.fits", "AAAAAA=="); code != http.StatusBadRequest {
		t.Errorf("wrong trailing checksum: %d %s", code, body)
	}
	if _, err := ts.objects.Latest(naming.MustParseName("gloria.eu/bad.fits")); err == nil {
		t.Error("a body with a wrong trailing checksum was stored")
	}
	if code, body := put("good.fits", good); code != http.StatusOK {
		t.Fatalf("right trailing checksum: %d %s", code, body)
	}
	resp, body := ts.do(t, "GET", "/o/gloria.eu/good.fits", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("stored: %d %q", resp.StatusCode, body)
	}
}

// A signed payload whose body does not hash to the signed
// x-amz-content-sha256 is refused (the body was swapped under a valid
// signature); nothing is stored.
func TestS3SwappedBodyUnderSignature(t *testing.T) {
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "sig", Write: []string{"gloria.eu/"}})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	swap := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			b[0] ^= 1 // the signature was made over the original bytes
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		return tr.RoundTrip(r)
	})
	c := s3.New(s3.Options{BaseEndpoint: aws.String("http://" + ts.S3Addr()), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), HTTPClient: &http.Client{Transport: swap},
		RetryMaxAttempts: 1, RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired}) // no CRC32 header: only the signed SHA-256 guards the body
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("gloria.eu"), Key: aws.String("swapped.fits"),
		Body: bytes.NewReader(seeded(600, 100<<10))})
	if s3Code(err) != "BadDigest" {
		t.Errorf("swapped body: %v", err)
	}
	if _, err := ts.objects.Latest(naming.MustParseName("gloria.eu/swapped.fits")); err == nil {
		t.Error("a swapped body was stored")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A signed aws-chunked body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): the
// request signed by the AWS SDK's own SigV4 signer, each chunk signed in
// the chain from it, is stored; the same body with one byte changed is
// refused and nothing is stored.
func TestS3SignedChunks(t *testing.T) {
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "chunks", Write: []string{"gloria.eu/"}})
	data := seeded(700, 150<<10)
	put := func(key string, corrupt bool) int {
		now := time.Now().UTC()
		body := func(seed string) []byte {
			c := &chunkSigner{key: signingKey(secret, now.Format("20060102"), "us-east-1", "s3"), timestamp: now.Format("20060102T150405Z"),
				scope: now.Format("20060102") + "/us-east-1/s3/aws4_request", prev: seed}
			var b bytes.Buffer
			for off := 0; off <= len(data); off += 64 << 10 {
				chunk := data[off:min(off+64<<10, len(data))]
				sum := sha256.Sum256(chunk)
				c.next(signExpected(c, sum[:]), sum[:])
				fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n%s\r\n", len(chunk), c.prev, chunk)
				if len(chunk) == 0 {
					break
				}
			}
			if len(data)%(64<<10) != 0 {
				sum := sha256.Sum256(nil)
				c.next(signExpected(c, sum[:]), sum[:])
				fmt.Fprintf(&b, "0;chunk-signature=%s\r\n\r\n", c.prev)
			}
			out := b.Bytes()
			if corrupt {
				out[100] ^= 1
			}
			return out
		}
		framedLen := len(body(strings.Repeat("0", 64)))
		req, _ := http.NewRequest(http.MethodPut, "http://"+ts.S3Addr()+"/gloria.eu/"+key, nil)
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(len(data)))
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
		req.ContentLength = int64(framedLen)
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, req,
			"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "s3", "us-east-1", now); err != nil {
			t.Fatal(err)
		}
		auth := req.Header.Get("Authorization")
		seed := auth[strings.Index(auth, "Signature=")+len("Signature="):]
		req.Body = io.NopCloser(bytes.NewReader(body(seed)))
		code, _ := fetch(t, req)
		return code
	}
	if code := put("signed-chunks.fits", false); code != http.StatusOK {
		t.Fatalf("signed chunks: %d", code)
	}
	resp, got := ts.do(t, "GET", "/o/gloria.eu/signed-chunks.fits", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("stored: %d, %d bytes", resp.StatusCode, len(got))
	}
	if code := put("tampered-chunks.fits", true); code != http.StatusBadRequest {
		t.Errorf("a chunk changed under its signature: %d", code)
	}
	if _, err := ts.objects.Latest(naming.MustParseName("gloria.eu/tampered-chunks.fits")); err == nil {
		t.Error("a chunk changed under its signature was stored")
	}
}

// signExpected is the signature c would take next for data hashing to sum.
func signExpected(c *chunkSigner, sum []byte) string {
	toSign := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.timestamp + "\n" + c.scope + "\n" + c.prev + "\n" + emptySHA256 + "\n" + hex.EncodeToString(sum)
	return hex.EncodeToString(hmacSHA256(c.key, []byte(toSign)))
}
