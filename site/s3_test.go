package site

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// startS3Site starts a site with its S3 listener on a loopback port.
func startS3Site(t *testing.T) *testSite {
	t.Helper()
	ts, _ := startSiteWith(t, func(c *Config) { c.S3 = "127.0.0.1:0" })
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
	defer http.DefaultClient.CloseIdleConnections()
	resp, err := http.Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "frame" {
		t.Errorf("presigned get: %d %s", resp.StatusCode, b)
	}
	tampered := strings.Replace(req.URL, "a.fits", "b.fits", 1)
	resp, err = http.Get(tampered)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a presigned URL for another key: %d", resp.StatusCode)
	}
}
