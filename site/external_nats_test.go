package site

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/skyfed/skyfed/forward"
	"github.com/skyfed/skyfed/manifest"
)

// natsServerBinary finds a stock nats-server (Debian's package installs
// it in /usr/sbin). Missing, it skips the test, or fails it when CI=true.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("nats-server"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nats-server is not installed (apt-get install -y nats-server); CI must run this test")
	}
	t.Skip("nats-server is not installed (apt-get install -y nats-server); skipping the external NATS server test")
	return ""
}

// nkeyUser returns the nkey user name of a site key.
func nkeyUser(t *testing.T, key manifest.PublicKey) string {
	t.Helper()
	pub, err := nkeys.Encode(nkeys.PrefixByteUser, key[:])
	if err != nil {
		t.Fatal(err)
	}
	return string(pub)
}

// externalNATSConfig grants the site itself every subject and each
// dialing peer exactly the permissions the embedded server gives it
// (linkPermissions).
func externalNATSConfig(t *testing.T, addr, site string, self manifest.PublicKey, peers map[string]manifest.PublicKey) string {
	t.Helper()
	list := func(subjects []string) string {
		quoted := make([]string, len(subjects))
		for i, s := range subjects {
			quoted[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(quoted, ", ") + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nauthorization {\n  users: [\n    {nkey: %q}\n", addr, nkeyUser(t, self))
	for peer, key := range peers {
		p := linkPermissions(peer, site)
		fmt.Fprintf(&b, "    {nkey: %q, permissions: {publish: {allow: %s}, subscribe: {allow: %s}}}\n",
			nkeyUser(t, key), list(p.Publish.Allow), list(p.Subscribe.Allow))
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// startNATSServer runs nats-server with conf until the test ends.
func startNATSServer(t *testing.T, bin, addr, conf string) {
	t.Helper()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "nats.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("nats-server config:\n%s\nnats-server log:\n%s", conf, out)
		}
	})
	eventually(t, 10*time.Second, "nats-server listening on "+addr, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// 4: a site can run on an external, stock nats-server instead of the
// embedded one, and replicate both ways over a link dialed to it.
func TestSiteOnExternalNATSServer(t *testing.T) {
	bin := natsServerBinary(t)
	a := startPeerSite(t, "alpha")
	addr := freeAddr(t)
	url := "nats://" + addr
	bDir := t.TempDir()
	bKey, err := Init(bDir, Config{ID: "beta", Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATSURL: url, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	startNATSServer(t, bin, addr, externalNATSConfig(t, addr, "beta", bKey, map[string]manifest.PublicKey{"alpha": a.Key()}))
	if err := Trust(bDir, Peer{ID: "alpha", Key: a.Key().String(), Domains: []string{"gloria.eu"}}); err != nil {
		t.Fatal(err)
	}
	trustKey(t, a, "beta", bKey, "gloria.eu")
	logs := &logBuffer{}
	b := openSite(t, bDir, logs)
	if b.nats != nil || b.NATSURL() != url {
		t.Fatalf("beta runs an embedded server (%v) or reports NATS URL %q, want only %s", b.nats != nil, b.NATSURL(), url)
	}
	if err := LinkTo(a.dir, Link{Peer: "beta", URL: url}); err != nil {
		t.Fatal(err)
	}
	waitLinkUp(t, a, "beta", forward.DirOut)
	waitLinkUp(t, b, "alpha", forward.DirIn)

	fromA, fromB := seeded(81, 300<<10), seeded(82, 200<<10)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/ext/from-alpha.fits", bytes.NewReader(fromA)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	if resp, body := b.do(t, "PUT", "/o/gloria.eu/ext/from-beta.fits", bytes.NewReader(fromB)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/ext/from-alpha.fits", fromA)
	waitObject(t, a, "gloria.eu/ext/from-beta.fits", fromB)
	waitBacklogs(t, a, b)
	st := apiStatus(t, b)
	if r := linkRow(st.Links, "alpha", forward.DirIn); r == nil || r.ReceivedChunks != 5 || r.Rejected != 0 {
		t.Errorf("beta's link from alpha: %+v, want 5 chunks received and nothing rejected", r)
	}
	if lines := logs.lines("level=ERROR"); len(lines) > 0 {
		t.Errorf("beta logged errors: %q", lines)
	}
}

// A site on an external, stock nats-server configured for TLS with the
// site's own certificate (tls/site.crt and tls/site.key, bound to its
// key): the site's own connection and a peer's dialed link both pin the
// key, and the link shows its TLS state.
func TestSiteOnExternalNATSServerTLS(t *testing.T) {
	bin := natsServerBinary(t)
	a := startPeerSite(t, "alpha")
	addr := freeAddr(t)
	url := "tls://" + addr
	bDir := t.TempDir()
	bKey, err := Init(bDir, Config{ID: "beta", Domain: "gloria.eu", HTTP: "127.0.0.1:0", NATSURL: url, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	conf := externalNATSConfig(t, addr, "beta", bKey, map[string]manifest.PublicKey{"alpha": a.Key()}) +
		fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n}\n", filepath.Join(bDir, SiteCertFile), filepath.Join(bDir, SiteKeyFile))
	startNATSServer(t, bin, addr, conf)
	if err := Trust(bDir, Peer{ID: "alpha", Key: a.Key().String(), Domains: []string{"gloria.eu"}}); err != nil {
		t.Fatal(err)
	}
	trustKey(t, a, "beta", bKey, "gloria.eu")
	b := openSite(t, bDir, &logBuffer{})
	if err := LinkTo(a.dir, Link{Peer: "beta", URL: url}); err != nil {
		t.Fatal(err)
	}
	waitLinkUp(t, a, "beta", forward.DirOut)
	waitLinkUp(t, b, "alpha", forward.DirIn)
	data := seeded(83, 150<<10)
	if resp, body := a.do(t, "PUT", "/o/gloria.eu/ext/tls.fits", bytes.NewReader(data)); resp.StatusCode != 201 {
		t.Fatal(string(body))
	}
	waitObject(t, b, "gloria.eu/ext/tls.fits", data)
	r := linkRow(apiStatus(t, a).Links, "beta", forward.DirOut)
	if r == nil || r.TLS == nil || r.TLS.Verified != forward.TLSPinned {
		t.Errorf("alpha's link to beta: TLS %+v, want pinned", r)
	}
}
