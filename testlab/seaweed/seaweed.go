// Package seaweed runs a real SeaweedFS S3 cluster as OS processes on
// loopback ports, for tests and benchmarks of S3-backed storage: one
// master, three volume servers in one rack (replication 001: every
// volume has a copy on two of them), a filer and an S3 gateway, which
// enforces a generated access key and secret.
//
// The weed binary is built by scripts/build-seaweedfs; Binary finds it.
package seaweed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Version is the SeaweedFS version scripts/build-seaweedfs builds.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

// Volumes is the number of volume servers of a cluster.
const Volumes = 3

// Binary returns the path of the weed binary: $SKYFED_WEED, else the one
// scripts/build-seaweedfs caches under $SKYFED_CACHE (default
// ~/.cache/skyfed).
func Binary() (string, error) {
	if p := os.Getenv("SKYFED_WEED"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("SKYFED_WEED: %w", err)
		}
		return p, nil
	}
	cache := os.Getenv("SKYFED_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no SeaweedFS binary (no SKYFED_WEED, no home dir: %w); run scripts/build-seaweedfs", err)
		}
		cache = filepath.Join(home, ".cache", "skyfed")
	}
	p := filepath.Join(cache, "seaweedfs", Version, "weed")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no SeaweedFS binary at %s: run scripts/build-seaweedfs (or set SKYFED_WEED)", p)
	}
	return p, nil
}

// BinaryForTest returns the weed binary for a test, or skips the test
// when there is none, unless CI_REQUIRE_SEAWEED=1 (as .ci/run sets once
// it built one), where it fails.
func BinaryForTest(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI_REQUIRE_SEAWEED") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return bin
}

// Options configures Start. The zero value is usable.
type Options struct {
	Binary            string        // weed binary; "" means Binary()
	Dir               string        // data and log dir; "" means a temp dir that Close removes
	VolumeSizeLimitMB int           // master's -volumeSizeLimitMB; 0 means 64
	MaxVolumes        int           // each volume server's -max; 0 means 100
	Timeout           time.Duration // readiness wait of Start and StartVolume; 0 means 90 s
}

// Cluster is a running cluster. Its methods are safe for concurrent use.
type Cluster struct {
	Endpoint  string // S3 endpoint, http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string // "us-east-1"
	Dir       string // holds master/, volume0..2/, filer/ and a .log per process

	bin       string
	ownDir    bool
	timeout   time.Duration
	masterURL string
	volArgs   [Volumes][]string
	volURL    [Volumes]string
	transport *http.Transport

	ctl    sync.Mutex // held by KillVolume and StartVolume
	mu     sync.Mutex // guards the procs and closed
	master *proc
	vols   [Volumes]*proc
	filer  *proc
	s3     *proc
	closed bool
}

// Start runs a cluster and waits until the master has all three volume
// servers and the S3 gateway has stored an object (about 15 s: see
// waitS3). ctx bounds only
// the start; the processes run until Close (or the test binary's death).
// On failure everything started is killed and the error carries the tail
// of the logs.
func Start(ctx context.Context, opt Options) (_ *Cluster, err error) {
	if opt.Binary == "" {
		if opt.Binary, err = Binary(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Region: "us-east-1", bin: opt.Binary, Dir: opt.Dir, timeout: opt.Timeout}
	if c.timeout == 0 {
		c.timeout = 90 * time.Second
	}
	sizeMB, maxVols := orDefault(opt.VolumeSizeLimitMB, 64), orDefault(opt.MaxVolumes, 100)
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "seaweed-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("start SeaweedFS in %s: %w%s", c.Dir, err, c.logTails())
			c.Close()
		}
	}()
	if c.AccessKey, err = randomHex(10); err != nil {
		return nil, err
	}
	if c.SecretKey, err = randomHex(20); err != nil {
		return nil, err
	}
	s3conf := filepath.Join(c.Dir, "s3.json")
	if err := writeS3Config(s3conf, c.AccessKey, c.SecretKey); err != nil {
		return nil, err
	}
	// A port and its gRPC port for the master, the S3 gateway, each volume
	// server and the filer.
	ports, err := freePorts(2 * (3 + Volumes))
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	c.masterURL = "http://" + addr(0)
	master := addr(0) + "." + strconv.Itoa(ports[1]) // weed's host:port.grpcPort
	c.Endpoint = "http://" + addr(2)
	c.transport = http.DefaultTransport.(*http.Transport).Clone()
	c.transport.MaxIdleConnsPerHost = 16

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	// The master: replication 001 (a second copy on another server of
	// the same rack) for every volume, small volumes, no telemetry.
	// WEED_MASTER_VOLUME_GROWTH_ALLOCATION_DEFERRAL: else the first
	// volume is held back ~10 s after a fresh master starts.
	if c.master, err = c.run("master", []string{"WEED_MASTER_VOLUME_GROWTH_ALLOCATION_DEFERRAL=0s"}, "master", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-port="+strconv.Itoa(ports[0]), "-port.grpc="+strconv.Itoa(ports[1]),
		"-mdir="+c.sub("master"), "-peers=none", "-defaultReplication=001",
		"-volumeSizeLimitMB="+strconv.Itoa(sizeMB), "-telemetry=false"); err != nil {
		return nil, err
	}
	// Else a filer that finds no master sleeps 7 s before trying again.
	if err := c.waitMaster(ctx); err != nil {
		return nil, err
	}
	for i := range Volumes {
		p, g := ports[4+2*i], ports[5+2*i]
		c.volURL[i] = "127.0.0.1:" + strconv.Itoa(p)
		c.volArgs[i] = []string{"volume", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-port=" + strconv.Itoa(p), "-port.grpc=" + strconv.Itoa(g),
			"-dir=" + c.sub(fmt.Sprintf("volume%d", i)), "-max=" + strconv.Itoa(maxVols),
			"-master=" + master, "-dataCenter=dc1", "-rack=rack1"}
		if err := c.StartVolume(i); err != nil {
			return nil, err
		}
	}
	// The filer (its metadata in an embedded LevelDB), and the S3 gateway
	// as its own process: the one `weed filer -s3` embeds dials the filer's
	// gRPC port as HTTP port+10000 whatever -port.grpc says (this version).
	filerDir, filer := c.sub("filer"), addr(10)+"."+strconv.Itoa(ports[11])
	args := []string{"filer", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-port=" + strconv.Itoa(ports[10]), "-port.grpc=" + strconv.Itoa(ports[11]),
		"-master=" + master, "-defaultStoreDir=" + filerDir}
	s3args := []string{"s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer=" + filer,
		"-port=" + strconv.Itoa(ports[2]), "-port.grpc=" + strconv.Itoa(ports[3]),
		"-config=" + s3conf, "-autoCreateBucket=false", "-iam=false", "-port.iceberg=0", "-port.lance=0"}
	// Unix sockets in our dir rather than /tmp/seaweedfs-*-PORT.sock, where
	// the path fits (108 bytes on Linux).
	if sock := filepath.Join(filerDir, "filer.sock"); len(sock) < 100 {
		args = append(args, "-localSocket="+sock)
		s3args = append(s3args, "-localSocket="+filepath.Join(filerDir, "s3.sock"))
	}
	if c.filer, err = c.run("filer", nil, args...); err != nil {
		return nil, err
	}
	if c.s3, err = c.run("s3", nil, s3args...); err != nil {
		return nil, err
	}
	if err := c.waitVolumes(ctx, c.volURL[:]...); err != nil {
		return nil, err
	}
	if err := c.waitS3(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Client returns an S3 client of the cluster: path-style, static
// credentials, the AWS SDK's defaults otherwise.
func (c *Cluster) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(c.Endpoint),
		Region:       c.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, ""),
		HTTPClient:   &http.Client{Transport: c.transport},
	})
}

// CreateBucket creates a bucket.
func (c *Cluster) CreateBucket(ctx context.Context, name string) error {
	_, err := c.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// KillVolume kills volume server i (0, 1 or 2) with SIGKILL and waits
// for it to exit.
func (c *Cluster) KillVolume(i int) error {
	if i < 0 || i >= Volumes {
		return fmt.Errorf("no volume server %d", i)
	}
	c.ctl.Lock()
	defer c.ctl.Unlock()
	c.mu.Lock()
	p := c.vols[i]
	c.vols[i] = nil
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("volume server %d is not running", i)
	}
	p.kill()
	return nil
}

// StartVolume (re)starts volume server i on its dir and port and, once
// the cluster is up, waits until the master has it again.
func (c *Cluster) StartVolume(i int) error {
	if i < 0 || i >= Volumes {
		return fmt.Errorf("no volume server %d", i)
	}
	c.ctl.Lock()
	defer c.ctl.Unlock()
	c.mu.Lock()
	running, started := c.vols[i] != nil, c.filer != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("volume server %d is running", i)
	}
	p, err := c.run(fmt.Sprintf("volume%d", i), nil, c.volArgs[i]...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.vols[i] = p
	}
	c.mu.Unlock()
	if closed {
		p.kill()
		return errors.New("cluster closed")
	}
	if !started {
		return nil // Start waits for all three at once
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.waitVolumes(ctx, c.volURL[i]); err != nil {
		return fmt.Errorf("restart volume server %d: %w%s", i, err, c.logTails())
	}
	return nil
}

// Close kills every process, waits for their exits and removes the dir
// if Start made it.
func (c *Cluster) Close() error {
	c.mu.Lock()
	ps := append([]*proc{c.s3, c.filer, c.master}, c.vols[:]...)
	c.s3, c.filer, c.master, c.vols = nil, nil, nil, [Volumes]*proc{}
	closed := c.closed
	c.closed = true
	c.mu.Unlock()
	for _, p := range ps {
		if p != nil {
			p.kill()
		}
	}
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	if c.ownDir && !closed {
		return os.RemoveAll(c.Dir)
	}
	return nil
}

// Pids returns the process IDs of the running processes.
func (c *Cluster) Pids() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, p := range append([]*proc{c.master, c.filer, c.s3}, c.vols[:]...) {
		if p != nil {
			out = append(out, p.cmd.Process.Pid)
		}
	}
	return out
}

// proc is one running weed process, reaped as soon as it exits.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's; read after done
}

// run starts `weed ARGS` in c.Dir, with env added to the environment and
// its output appended to NAME.log.
func (c *Cluster) run(name string, env []string, args ...string) (*proc, error) {
	log, err := os.OpenFile(filepath.Join(c.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own copy
	// -logtostderr: glog's files would go to /tmp.
	cmd := exec.Command(c.bin, append([]string{"-logtostderr"}, args...)...)
	// weed reads *.toml from ., $HOME/.seaweedfs and /etc/seaweedfs: none
	// of a developer's own.
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "HOME="+c.Dir, "TMPDIR="+c.Dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a terminal's ^C goes to the test binary only.
	// Pdeathsig: the kernel kills it when the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start weed %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exited returns an error naming the first process that has exited.
func (c *Cluster) exited() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range append([]*proc{c.master, c.filer, c.s3}, c.vols[:]...) {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			return fmt.Errorf("weed %s exited: %v", p.name, p.err)
		default:
		}
	}
	return nil
}

// waitVolumes polls the master's /dir/status until it lists every volume
// server of urls.
func (c *Cluster) waitVolumes(ctx context.Context, urls ...string) error {
	hc := &http.Client{Transport: c.transport, Timeout: 2 * time.Second}
	return c.poll(ctx, "the master to list volume servers "+strings.Join(urls, ", "), func() error {
		resp, err := hc.Get(c.masterURL + "/dir/status")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st struct {
			Topology struct {
				DataCenters []struct {
					Racks []struct{ DataNodes []struct{ Url string } }
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return fmt.Errorf("/dir/status: %s: %w", resp.Status, err)
		}
		var have []string
		for _, dc := range st.Topology.DataCenters {
			for _, r := range dc.Racks {
				for _, dn := range r.DataNodes {
					have = append(have, dn.Url)
				}
			}
		}
		for _, u := range urls {
			if !slices.Contains(have, u) {
				return fmt.Errorf("master lists %v", have)
			}
		}
		return nil
	})
}

// waitS3 polls until the S3 gateway stores an object: it creates a
// bucket, puts, deletes the object and the bucket. ListBuckets answers
// ~12 s before a PUT can: a fresh filer asks the master for peers for 3 s,
// then waits 10 s for one to show up before it announces itself, and until
// then S3 writes wait for their lock (on the filers' lock ring).
func (c *Cluster) waitS3(ctx context.Context) error {
	cl, bucket, key := c.Client(), aws.String("seaweed-ready-probe"), aws.String("probe")
	once := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
	return c.poll(ctx, "the S3 gateway to store an object", func() error {
		// Long enough for a PUT waiting for its lock to get it.
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var owned *types.BucketAlreadyOwnedByYou
		if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket}, once); err != nil && !errors.As(err, &owned) {
			return err
		}
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader("ok")}, once); err != nil {
			return err
		}
		if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key}, once); err != nil {
			return err
		}
		_, err := cl.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket}, once)
		return err
	})
}

// waitMaster polls the master's /readyz until it answers 200.
func (c *Cluster) waitMaster(ctx context.Context) error {
	hc := &http.Client{Transport: c.transport, Timeout: 2 * time.Second}
	return c.poll(ctx, "the master to be ready", func() error {
		resp, err := hc.Get(c.masterURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// poll calls f every 100 ms until it succeeds, a process exits or ctx ends.
func (c *Cluster) poll(ctx context.Context, what string, f func() error) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		last := f()
		if last == nil {
			return nil
		}
		if err := c.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// logTails returns the last lines of every process's log.
func (c *Cluster) logTails() string {
	logs, _ := filepath.Glob(filepath.Join(c.Dir, "*.log"))
	var b strings.Builder
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
		lines = lines[max(0, len(lines)-15):]
		fmt.Fprintf(&b, "\n--- %s (last %d lines)\n%s", filepath.Base(l), len(lines), bytes.Join(lines, []byte("\n")))
	}
	return b.String()
}

// sub makes and returns dir c.Dir/name.
func (c *Cluster) sub(name string) string {
	d := filepath.Join(c.Dir, name)
	_ = os.MkdirAll(d, 0o755) // an error shows when weed uses it
	return d
}

// writeS3Config writes the S3 gateway's identities: one admin with every
// action, no anonymous access.
func writeS3Config(path, key, secret string) error {
	type cred struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type identity struct {
		Name        string   `json:"name"`
		Credentials []cred   `json:"credentials"`
		Actions     []string `json:"actions"`
	}
	conf := struct {
		Identities []identity `json:"identities"`
	}{[]identity{{Name: "admin", Credentials: []cred{{key, secret}},
		Actions: []string{"Admin", "Read", "Write", "List", "Tagging"}}}}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []io.Closer
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return strings.ToUpper(hex.EncodeToString(b)), nil
}

// orDefault returns v, or def if v is 0.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
