package site

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// s3Env is the environment of an S3 client process: its own empty home
// (no user config), the key, a region.
func s3Env(t *testing.T, id, secret string) []string {
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") { // AWS_CA_BUNDLE, say, which rclone 1.60 cannot take over plain HTTP
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "AWS_ACCESS_KEY_ID="+id, "AWS_SECRET_ACCESS_KEY="+secret,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE="+filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "aws-credentials"), "AWS_PAGER=")
}

func runClient(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// writeTree writes n files of a few hundred KiB under dir.
func writeTree(t *testing.T, dir string, n int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for i := range n {
		rel := filepath.Join("night", string(rune('a'+i))+".fits")
		if i%2 == 1 {
			rel = filepath.Join("night", "cal", string(rune('a'+i))+".fits")
		}
		data := seeded(uint64(100+i), 200<<10+i*1000)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
		files[filepath.ToSlash(rel)] = data
	}
	return files
}

func sameTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes back of %d (%v)", rel, len(got), len(want), err)
		}
	}
}

// Debian's awscli with its defaults: cp both ways, sync, ls, rm, a
// presigned URL.
func TestS3AWSCLI(t *testing.T) {
	aws := needTool(t, "aws", "awscli")
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "awscli", Write: []string{"gloria.eu/"}})
	env := s3Env(t, id, secret)
	ep := "http://" + ts.S3Addr()
	src := t.TempDir()
	files := writeTree(t, src, 4)
	runClient(t, env, aws, "--endpoint-url", ep, "s3", "sync", src, "s3://gloria.eu/aws/")
	runClient(t, env, aws, "--endpoint-url", ep, "s3", "cp", filepath.Join(src, "night", "a.fits"), "s3://gloria.eu/aws/single.fits")
	ls := runClient(t, env, aws, "--endpoint-url", ep, "s3", "ls", "--recursive", "s3://gloria.eu/aws/")
	for rel := range files {
		if !strings.Contains(ls, "aws/"+rel) {
			t.Errorf("aws s3 ls lacks %s:\n%s", rel, ls)
		}
	}
	back := t.TempDir()
	runClient(t, env, aws, "--endpoint-url", ep, "s3", "sync", "s3://gloria.eu/aws/", back)
	sameTree(t, back, files)
	one := filepath.Join(t.TempDir(), "one.fits")
	runClient(t, env, aws, "--endpoint-url", ep, "s3", "cp", "s3://gloria.eu/aws/single.fits", one)
	sameTree(t, filepath.Dir(one), map[string][]byte{"one.fits": files["night/a.fits"]})
	url := strings.TrimSpace(runClient(t, env, aws, "--endpoint-url", ep, "s3", "presign", "s3://gloria.eu/aws/single.fits"))
	curl := exec.Command("curl", "-sf", url)
	if body, err := curl.Output(); err != nil || !bytes.Equal(body, files["night/a.fits"]) {
		t.Errorf("presigned URL: %d bytes, %v", len(body), err)
	}
	// Past awscli's multipart threshold (8 MiB): three parts.
	big := filepath.Join(t.TempDir(), "big.fits")
	bigData := seeded(77, 20<<20+12345)
	if err := os.WriteFile(big, bigData, 0o644); err != nil {
		t.Fatal(err)
	}
	runClient(t, env, aws, "--endpoint-url", ep, "s3", "cp", big, "s3://gloria.eu/aws/big.fits")
	bigBack := filepath.Join(t.TempDir(), "big.fits")
	runClient(t, env, aws, "--endpoint-url", ep, "s3", "cp", "s3://gloria.eu/aws/big.fits", bigBack)
	sameTree(t, filepath.Dir(bigBack), map[string][]byte{"big.fits": bigData})
	runClient(t, env, aws, "--endpoint-url", ep, "s3", "rm", "s3://gloria.eu/aws/single.fits")
	versions := runClient(t, env, aws, "--endpoint-url", ep, "s3api", "list-object-versions", "--bucket", "gloria.eu", "--prefix", "aws/single.fits")
	if !strings.Contains(versions, `"DeleteMarkers"`) || !strings.Contains(versions, `"Versions"`) {
		t.Errorf("list-object-versions after a put and an rm:\n%s", versions)
	}
	if ls := runClient(t, env, aws, "--endpoint-url", ep, "s3", "ls", "s3://gloria.eu/aws/"); strings.Contains(ls, "single.fits") {
		t.Errorf("removed, still listed:\n%s", ls)
	}
}

// Debian's rclone with its defaults: copy, check (MD5 against the
// ETags), lsf, sync both ways, server-side copy.
func TestS3Rclone(t *testing.T) {
	rclone := needTool(t, "rclone", "rclone")
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "rclone", Write: []string{"gloria.eu/"}})
	env := append(s3Env(t, id, secret), "RCLONE_CONFIG_SKY_TYPE=s3", "RCLONE_CONFIG_SKY_PROVIDER=Other",
		"RCLONE_CONFIG_SKY_ENDPOINT=http://"+ts.S3Addr(), "RCLONE_CONFIG_SKY_ACCESS_KEY_ID="+id,
		"RCLONE_CONFIG_SKY_SECRET_ACCESS_KEY="+secret, "RCLONE_CONFIG_SKY_REGION=us-east-1")
	src := t.TempDir()
	files := writeTree(t, src, 5)
	runClient(t, env, rclone, "copy", src, "sky:gloria.eu/rc")
	runClient(t, env, rclone, "check", src, "sky:gloria.eu/rc")
	lsf := runClient(t, env, rclone, "lsf", "-R", "sky:gloria.eu/rc")
	for rel := range files {
		if !strings.Contains(lsf, rel) {
			t.Errorf("rclone lsf lacks %s:\n%s", rel, lsf)
		}
	}
	back := t.TempDir()
	runClient(t, env, rclone, "sync", "sky:gloria.eu/rc", back)
	sameTree(t, back, files)
	if err := os.Remove(filepath.Join(src, "night", "a.fits")); err != nil {
		t.Fatal(err)
	}
	runClient(t, env, rclone, "sync", src, "sky:gloria.eu/rc")
	if lsf := runClient(t, env, rclone, "lsf", "-R", "sky:gloria.eu/rc"); strings.Contains(lsf, "night/a.fits") {
		t.Errorf("sync left a removed file:\n%s", lsf)
	}
	stored := ts.chunks.Stats().StoredBytes
	runClient(t, env, rclone, "copyto", "sky:gloria.eu/rc/night/c.fits", "sky:gloria.eu/archive/c.fits")
	if after := ts.chunks.Stats().StoredBytes; after != stored {
		t.Errorf("server-side copy wrote %d bytes", after-stored)
	}
	runClient(t, env, rclone, "check", "--one-way", src, "sky:gloria.eu/rc")
	// A multipart upload (parts of 5 MiB past a 5 MiB cutoff), checked by
	// MD5 afterwards.
	big := t.TempDir()
	if err := os.WriteFile(filepath.Join(big, "big.fits"), seeded(78, 12<<20+777), 0o644); err != nil {
		t.Fatal(err)
	}
	runClient(t, env, rclone, "copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", big, "sky:gloria.eu/rc-big")
	runClient(t, env, rclone, "check", big, "sky:gloria.eu/rc-big")
}

// Debian's s3cmd with path-style addressing: put, get, ls, sync, del.
func TestS3Cmd(t *testing.T) {
	s3cmd := needTool(t, "s3cmd", "s3cmd")
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "s3cmd", Write: []string{"gloria.eu/"}})
	cfg := filepath.Join(t.TempDir(), "s3cfg")
	conf := "[default]\naccess_key = " + id + "\nsecret_key = " + secret + "\nhost_base = " + ts.S3Addr() +
		"\nhost_bucket = " + ts.S3Addr() + "\nuse_https = False\nbucket_location = us-east-1\nsignature_v2 = False\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := s3Env(t, id, secret)
	run := func(args ...string) string { return runClient(t, env, s3cmd, append([]string{"-c", cfg}, args...)...) }
	src := t.TempDir()
	files := writeTree(t, src, 3)
	run("put", filepath.Join(src, "night", "a.fits"), "s3://gloria.eu/s3cmd/a.fits")
	got := filepath.Join(t.TempDir(), "a.fits")
	run("get", "s3://gloria.eu/s3cmd/a.fits", got)
	sameTree(t, filepath.Dir(got), map[string][]byte{"a.fits": files["night/a.fits"]})
	run("sync", src+"/", "s3://gloria.eu/s3cmd/tree/")
	if ls := run("ls", "--recursive", "s3://gloria.eu/s3cmd/"); !strings.Contains(ls, "tree/night/cal/b.fits") {
		t.Errorf("s3cmd ls:\n%s", ls)
	}
	run("del", "s3://gloria.eu/s3cmd/a.fits")
	if ls := run("ls", "s3://gloria.eu/s3cmd/"); strings.Contains(ls, "s3cmd/a.fits") {
		t.Errorf("deleted, still listed:\n%s", ls)
	}
}

// Debian's boto3: put and ranged get, a list rolled up at a delimiter.
func TestS3Boto3(t *testing.T) {
	// Debian's python3 and its python3-boto3, not a python3 earlier in
	// PATH with a boto3 of its own.
	python := needTool(t, "/usr/bin/python3", "python3")
	if err := exec.Command(python, "-c", "import boto3").Run(); err != nil {
		needTool(t, "python3-boto3 (import boto3 failed)", "python3-boto3")
	}
	ts := startS3Site(t)
	id, secret := s3Token(t, ts, AccessToken{Name: "boto3", Write: []string{"gloria.eu/"}})
	script := `
import boto3, hashlib, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
data = bytes(range(256)) * 4096
r = s3.put_object(Bucket="gloria.eu", Key="py/frame.fits", Body=data, Metadata={"exptime": "30"})
assert r["ETag"].strip('"') == hashlib.md5(data).hexdigest(), r["ETag"]
for k in ("py/a/1", "py/a/2", "py/b"):
    s3.put_object(Bucket="gloria.eu", Key=k, Body=b"x")
g = s3.get_object(Bucket="gloria.eu", Key="py/frame.fits", Range="bytes=1000-5999")
assert g["Body"].read() == data[1000:6000]
h = s3.head_object(Bucket="gloria.eu", Key="py/frame.fits")
assert h["Metadata"] == {"exptime": "30"}, h["Metadata"]
l = s3.list_objects_v2(Bucket="gloria.eu", Prefix="py/", Delimiter="/")
keys = [o["Key"] for o in l.get("Contents", [])]
prefixes = [p["Prefix"] for p in l.get("CommonPrefixes", [])]
assert keys == ["py/b", "py/frame.fits"], keys
assert prefixes == ["py/a/"], prefixes
v2 = s3.put_object(Bucket="gloria.eu", Key="py/frame.fits", Body=b"second take")["VersionId"]
vs = s3.list_object_versions(Bucket="gloria.eu", Prefix="py/frame.fits")["Versions"]
assert len(vs) == 2 and vs[0]["VersionId"] == v2 and vs[0]["IsLatest"], vs
old = s3.get_object(Bucket="gloria.eu", Key="py/frame.fits", VersionId=vs[1]["VersionId"])["Body"].read()
assert old == data
print("ok")
`
	out := runClient(t, s3Env(t, id, secret), python, "-c", script, "http://"+ts.S3Addr())
	if strings.TrimSpace(out) != "ok" {
		t.Errorf("boto3: %s", out)
	}
}
