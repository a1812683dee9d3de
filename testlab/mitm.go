package testlab

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TLSInterceptor is a man in the middle on a NATS connection: it passes
// the server's INFO greeting on, then terminates the client's TLS with a
// certificate of its own (for any name the client asks, as an attacker
// holding a certificate from some CA would) and opens its own TLS to the
// server, so that a client that accepted its certificate would be read
// in clear. A skyfed dialer must refuse it.
type TLSInterceptor struct {
	ln     net.Listener
	target string
	cert   tls.Certificate
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	handshakes atomic.Int64 // client TLS handshakes that completed (the client accepted the certificate)
	refused    atomic.Int64 // client TLS handshakes that failed
}

// NewTLSInterceptor starts an interceptor in front of the NATS server at
// target on a free loopback port.
func NewTLSInterceptor(target string) (*TLSInterceptor, error) {
	cert, err := interceptorCert()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &TLSInterceptor{ln: ln, target: target, cert: cert, ctx: ctx, cancel: cancel}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.acceptLoop()
	}()
	return m, nil
}

// Addr is the interceptor's listen address.
func (m *TLSInterceptor) Addr() string { return m.ln.Addr().String() }

// Handshakes returns how many clients completed TLS with the
// interceptor's certificate, and how many refused it.
func (m *TLSInterceptor) Handshakes() (accepted, refused int64) {
	return m.handshakes.Load(), m.refused.Load()
}

// Close stops the interceptor and its connections.
func (m *TLSInterceptor) Close() error {
	m.cancel()
	err := m.ln.Close()
	m.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (m *TLSInterceptor) acceptLoop() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.serve(c)
		}()
	}
}

func (m *TLSInterceptor) serve(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", m.target, proxyDialTimeout)
	if err != nil {
		return
	}
	defer server.Close()
	stop := context.AfterFunc(m.ctx, func() { client.Close(); server.Close() })
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	sr := bufio.NewReader(server)
	info, err := sr.ReadString('\n')
	if err != nil {
		return
	}
	if _, err := io.WriteString(client, info); err != nil {
		return
	}
	tc := tls.Server(client, &tls.Config{Certificates: []tls.Certificate{m.cert}})
	if err := tc.Handshake(); err != nil {
		m.refused.Add(1)
		return
	}
	m.handshakes.Add(1)
	ts := tls.Client(&bufferedConn{Conn: server, r: sr}, &tls.Config{InsecureSkipVerify: true})
	if err := ts.Handshake(); err != nil {
		return
	}
	client.SetDeadline(time.Time{})
	server.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { io.Copy(ts, tc); done <- struct{}{} }()
	go func() { io.Copy(tc, ts); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
}

// bufferedConn reads first what a bufio.Reader already took from Conn.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// interceptorCert makes a self-signed certificate for localhost and the
// loopback addresses: any key but the one a skyfed dialer pins.
func interceptorCert() (tls.Certificate, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "interceptor"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("interceptor certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}
