package testlab_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyfed/skyfed/site"
)

// runCLI runs the skyfed binary with args and env; it returns the exit
// code, stdout and stderr.
func runCLI(t *testing.T, bin string, env []string, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("skyfed %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestHTTPSWithPinnedKey serves a site's HTTP API over HTTPS with its
// own certificate (tls/site.crt, bound to the site key): the CLI trusts
// it with --pin and the site key, refuses it without (no CA knows it)
// and with another site's key, each with exit 1 and a reason.
func TestHTTPSWithPinnedKey(t *testing.T) {
	procNoLeaks(t)
	s := newProcSite(t, "https")
	other := newProcSite(t, "other")
	if err := site.EditConfig(s.dir, func(c *site.Config) error {
		c.HTTPTLSCert, c.HTTPTLSKey = site.SiteCertFile, site.SiteKeyFile
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.url = "https://" + strings.TrimPrefix(s.url, "http://")
	s.start()
	if !strings.HasPrefix(s.p.URL, "https://") {
		t.Fatalf("process URL %s, want https://", s.p.URL)
	}
	key := siteKey(t, s.bin, s.dir)
	env := []string{"SKYFED_SITE=" + s.p.URL}
	name := procDomain + "/https/a.fits"
	body := []byte("over https\n")
	if code, out, errOut := runCLI(t, s.bin, env, body, "put", "--pin", key, name, "-"); code != 0 {
		t.Fatalf("put --pin: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, s.bin, append(env, "SKYFED_PIN="+key), nil, "get", name); code != 0 || out != string(body) {
		t.Fatalf("get with SKYFED_PIN: exit %d, %q\n%s", code, out, errOut)
	}
	code, _, errOut := runCLI(t, s.bin, env, nil, "stat")
	if code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("stat without --pin: exit %d, stderr %q; want 1 naming the certificate", code, errOut)
	}
	code, _, errOut = runCLI(t, s.bin, env, nil, "stat", "--pin", siteKey(t, other.bin, other.dir))
	if code != 1 || !strings.Contains(errOut, "pinned key") {
		t.Errorf("stat pinning another key: exit %d, stderr %q; want 1 saying the certificate is not bound to the pinned key", code, errOut)
	}
	code, _, errOut = runCLI(t, s.bin, env, nil, "stat", "--pin", "ed25519:nothex")
	if code != 1 || !strings.Contains(errOut, "--pin") {
		t.Errorf("stat with a malformed pin: exit %d, stderr %q", code, errOut)
	}
}

// TestHTTPSWithCA serves HTTPS with a certificate from a CA made here:
// the CLI trusts it with --ca.
func TestHTTPSWithCA(t *testing.T) {
	procNoLeaks(t)
	s := newProcSite(t, "httpsca")
	dir := t.TempDir()
	caFile, certFile, keyFile := makeCA(t, dir)
	if err := site.EditConfig(s.dir, func(c *site.Config) error {
		c.HTTPTLSCert, c.HTTPTLSKey = certFile, keyFile
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.url = "https://" + strings.TrimPrefix(s.url, "http://")
	s.start()
	env := []string{"SKYFED_SITE=" + s.p.URL}
	if code, out, errOut := runCLI(t, s.bin, env, nil, "stat", "--ca", caFile); code != 0 || !strings.Contains(out, "httpsca") {
		t.Fatalf("stat --ca: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, s.bin, env, nil, "stat"); code != 1 {
		t.Errorf("stat without --ca: exit %d, want 1\n%s", code, errOut)
	}
}

func siteKey(t *testing.T, bin, dir string) string {
	t.Helper()
	code, out, errOut := runCLI(t, bin, nil, nil, "site", "key", "--dir", dir)
	if code != 0 {
		t.Fatalf("site key: exit %d: %s", code, errOut)
	}
	return strings.TrimSpace(out)
}

// makeCA writes a CA certificate and a server certificate it signed for
// 127.0.0.1 and localhost; it returns the three PEM files.
func makeCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "site"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.crt", "CERTIFICATE", caDER), write("site.crt", "CERTIFICATE", der), write("site.key", "PRIVATE KEY", keyDER)
}
