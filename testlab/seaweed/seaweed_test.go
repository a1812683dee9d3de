package seaweed

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"
)

// wait bounds the waits of these tests; nothing is asserted about speed.
const wait = 60 * time.Second

// startCluster starts a cluster in a test dir, or skips the test if there
// is no weed binary (fails instead under CI_REQUIRE_SEAWEED=1). It checks
// at the end that no goroutine and no weed process is left.
func startCluster(t *testing.T) *Cluster {
	t.Helper()
	bin := BinaryForTest(t)
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
	start := time.Now()
	c, err := Start(t.Context(), Options{Binary: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up in %v, %s, dir %s", time.Since(start).Round(time.Millisecond), memory(c.Pids()), c.Dir)
	t.Cleanup(func() {
		pids := c.Pids()
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("weed process %d still there after Close (kill 0: %v)", pid, err)
			}
		}
	})
	return c
}

func TestCluster(t *testing.T) {
	c := startCluster(t)
	ctx := t.Context()
	const bucket = "skyfed-test"
	if err := c.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	cl := c.Client()

	// A 5 MiB object (two chunks at the filer's 4 MiB -maxMB) and small ones.
	objects := map[string][]byte{"big": randomBytes(1, 5<<20)}
	for i := range 10 {
		objects[fmt.Sprintf("small/%02d", i)] = randomBytes(uint64(10+i), 1000+i)
	}
	for key, data := range objects {
		out, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		if sum := md5.Sum(data); aws.ToString(out.ETag) != `"`+hex.EncodeToString(sum[:])+`"` {
			t.Errorf("put %s: ETag %s, not the MD5 %x", key, aws.ToString(out.ETag), sum)
		}
	}
	readAll(t, cl, bucket, objects)

	t.Run("range", func(t *testing.T) {
		big := objects["big"]
		for _, r := range []struct {
			header     string
			start, end int // end exclusive
		}{
			{"bytes=0-0", 0, 1},
			{"bytes=1000-1999", 1000, 2000},
			{"bytes=4194300-4194400", 4194300, 4194401}, // across the chunk boundary
			{"bytes=-100", len(big) - 100, len(big)},
			{"bytes=5000000-", 5000000, len(big)},
		} {
			out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("big"), Range: aws.String(r.header)})
			if err != nil {
				t.Fatalf("get %s: %v", r.header, err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatalf("get %s: %v", r.header, err)
			}
			if !bytes.Equal(got, big[r.start:r.end]) {
				t.Errorf("get %s: %d bytes, not bytes %d-%d", r.header, len(got), r.start, r.end-1)
			}
			want := fmt.Sprintf("bytes %d-%d/%d", r.start, r.end-1, len(big))
			if aws.ToString(out.ContentRange) != want {
				t.Errorf("get %s: Content-Range %q, want %q", r.header, aws.ToString(out.ContentRange), want)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		var keys []string
		pages := 0
		p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("small/"), MaxKeys: aws.Int32(3)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, o := range page.Contents {
				keys = append(keys, aws.ToString(o.Key))
				if want := int64(len(objects[aws.ToString(o.Key)])); aws.ToInt64(o.Size) != want {
					t.Errorf("list: %s has size %d, want %d", aws.ToString(o.Key), aws.ToInt64(o.Size), want)
				}
			}
		}
		want := []string{"small/00", "small/01", "small/02", "small/03", "small/04", "small/05", "small/06", "small/07", "small/08", "small/09"}
		if strings.Join(keys, " ") != strings.Join(want, " ") || pages != 4 {
			t.Errorf("list of small/ by 3: %d pages of %v, want 4 pages of %v", pages, keys, want)
		}
		out, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Delimiter: aws.String("/")})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "big" || len(out.CommonPrefixes) != 1 || aws.ToString(out.CommonPrefixes[0].Prefix) != "small/" {
			t.Errorf("list with delimiter /: %d objects, prefixes %d", len(out.Contents), len(out.CommonPrefixes))
		}
	})

	t.Run("credentials", func(t *testing.T) {
		hc := &http.Client{Transport: c.transport}
		for _, u := range []string{c.Endpoint + "/", c.Endpoint + "/" + bucket + "/small/00", c.Endpoint + "/" + bucket + "?list-type=2"} {
			resp, err := hc.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("unsigned GET %s: %s, want 403", u, resp.Status)
			}
		}
		resp, err := hc.Do(must(http.NewRequest(http.MethodPut, c.Endpoint+"/"+bucket+"/anon", strings.NewReader("x"))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("unsigned PUT: %s, want 403", resp.Status)
		}
		wrong := s3.New(s3.Options{BaseEndpoint: aws.String(c.Endpoint), Region: c.Region, UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey+"x", ""),
			HTTPClient:  &http.Client{Transport: c.transport}})
		_, err = wrong.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("small/00")})
		if code := errorCode(err); code != "SignatureDoesNotMatch" {
			t.Errorf("GET with a wrong secret: %v (code %q), want SignatureDoesNotMatch", err, code)
		}
		_, err = wrong.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("wrong"), Body: strings.NewReader("x")})
		if code := errorCode(err); code != "SignatureDoesNotMatch" {
			t.Errorf("PUT with a wrong secret: %v (code %q), want SignatureDoesNotMatch", err, code)
		}
	})

	// Conditional writes, as a lease or fencing object needs them.
	t.Run("conditional", func(t *testing.T) {
		put := func(key, body string, f func(*s3.PutObjectInput)) (string, error) {
			in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
			f(in)
			out, err := cl.PutObject(ctx, in)
			if err != nil {
				return "", err
			}
			return aws.ToString(out.ETag), nil
		}
		ifNone := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
		etag, err := put("lease", "v1", ifNone)
		if err != nil {
			t.Fatalf("If-None-Match: * on a new key: %v", err)
		}
		if _, err := put("lease", "v1 again", ifNone); errorCode(err) != "PreconditionFailed" {
			t.Errorf("If-None-Match: * on an existing key: %v, want PreconditionFailed", err)
		}
		if _, err := put("lease", "v2", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"0123456789abcdef0123456789abcdef"`) }); errorCode(err) != "PreconditionFailed" {
			t.Errorf("If-Match with a wrong ETag: %v, want PreconditionFailed", err)
		}
		etag2, err := put("lease", "v2", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) })
		if err != nil {
			t.Errorf("If-Match with the current ETag: %v", err)
		}
		if _, err := put("lease", "v3", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) }); errorCode(err) != "PreconditionFailed" {
			t.Errorf("If-Match with the ETag before: %v, want PreconditionFailed", err)
		}
		if _, err := put("absent", "x", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) }); err == nil {
			t.Error("If-Match on a missing key succeeded")
		} else {
			t.Logf("If-Match on a missing key: %s", errorCode(err))
		}
		got := readObject(t, cl, bucket, "lease")
		if string(got) != "v2" {
			t.Errorf("lease holds %q, want v2 (ETag %s)", got, etag2)
		}
	})

	// One volume server dies: every volume has a copy on another.
	if err := c.KillVolume(1); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	raw := c.Client()
	readFails, putFails := 0, 0
	for key, data := range objects {
		for {
			got, err := getOnce(ctx, raw, bucket, key)
			if err == nil {
				if !bytes.Equal(got, data) {
					t.Fatalf("with volume server 1 dead, %s reads %d wrong bytes", key, len(got))
				}
				break
			}
			readFails++
			t.Logf("with volume server 1 dead, get %s: %v", key, err)
			if time.Since(killed) > wait {
				t.Fatalf("with volume server 1 dead, %s does not read: %v", key, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("with volume server 1 dead: every object read, %d failed GETs, %v after the kill", readFails, time.Since(killed).Round(time.Millisecond))
	firstPut := time.Time{}
	for i := range 20 {
		key := fmt.Sprintf("after-kill/%02d", i)
		data := randomBytes(uint64(100+i), 64<<10+i)
		for {
			_, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)},
				func(o *s3.Options) { o.RetryMaxAttempts = 1 })
			if err == nil {
				if firstPut.IsZero() {
					firstPut = time.Now()
				}
				objects[key] = data
				break
			}
			putFails++
			t.Logf("with volume server 1 dead, put %s: %v", key, err)
			if time.Since(killed) > wait {
				t.Fatalf("with volume server 1 dead, put %s keeps failing: %v", key, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("with volume server 1 dead: 20 PUTs done, %d failed tries (no SDK retries), first success %v after the kill",
		putFails, firstPut.Sub(killed).Round(time.Millisecond))
	readAll(t, raw, bucket, objects)

	if err := c.StartVolume(1); err != nil {
		t.Fatal(err)
	}
	if err := c.StartVolume(1); err == nil {
		t.Error("StartVolume of a running volume server succeeded")
	}
	readAll(t, cl, bucket, objects)
	for i := range 5 {
		key := fmt.Sprintf("after-restart/%d", i)
		data := randomBytes(uint64(200+i), 10000)
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
			t.Fatalf("put %s after the restart: %v", key, err)
		}
		objects[key] = data
	}
	readAll(t, cl, bucket, objects)
	t.Logf("cluster at the end: %s", memory(c.Pids()))
}

// TestStartFails checks that a failed start names the cause and leaves
// no process: a -master that answers nothing makes no volume server
// register.
func TestStartFails(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Skip(err)
	}
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
	_, err = Start(t.Context(), Options{Binary: bin, Dir: t.TempDir(), Timeout: time.Nanosecond})
	if err == nil || !strings.Contains(err.Error(), "master.log") {
		t.Fatalf("start with no time to start: %v, want an error with the logs", err)
	}
}

func getOnce(ctx context.Context, cl *s3.Client, bucket, key string) ([]byte, error) {
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)},
		func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func readObject(t *testing.T, cl *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := cl.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return got
}

func readAll(t *testing.T, cl *s3.Client, bucket string, objects map[string][]byte) {
	t.Helper()
	for key, data := range objects {
		if got := readObject(t, cl, bucket, key); !bytes.Equal(got, data) {
			t.Fatalf("get %s: %d bytes, not the %d put", key, len(got), len(data))
		}
	}
}

// errorCode is the S3 error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// memory sums the processes' memory from /proc: RSS (which counts the
// pages of the weed binary once per process), anonymous RSS and PSS.
func memory(pids []int) string {
	var rss, anon, pss int
	for _, pid := range pids {
		for _, f := range []string{"status", "smaps_rollup"} {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			for line := range strings.Lines(string(data)) {
				name, v, _ := strings.Cut(line, ":")
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				switch f + " " + name {
				case "status VmRSS":
					rss += kb
				case "status RssAnon":
					anon += kb
				case "smaps_rollup Pss":
					pss += kb
				}
			}
		}
	}
	return fmt.Sprintf("%d processes: RSS %d MiB, anonymous %d MiB, PSS %d MiB", len(pids), rss>>10, anon>>10, pss>>10)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
