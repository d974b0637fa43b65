package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/internal/testca"
	"github.com/claudemesh/claudemesh/wire"
)

// serveOn starts a broker on ln, serving wss:// when tlsConfig is set.
// The URL names the host host and ln's port.
func serveOn(t testing.TB, ln net.Listener, tlsConfig *tls.Config, host string) *testBroker {
	t.Helper()
	tb := &testBroker{st: openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL"), logs: new(logs), token: testToken, accepted: make(chan struct{}, 1024)}
	srv, err := broker.NewServer(broker.Config{Store: tb.st, Token: testToken, Logger: tb.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	tb.srv = srv
	mux := http.NewServeMux()
	mux.Handle(wire.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case tb.accepted <- struct{}{}:
		default:
		}
		srv.ServeHTTP(w, r)
	}))
	ts := httptest.NewUnstartedServer(mux)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Config.ErrorLog = slog.NewLogLogger(tb.logs.logger().Handler(), slog.LevelDebug)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if tlsConfig != nil {
		ts.TLS = tlsConfig
		ts.StartTLS()
		tb.url = "wss://" + net.JoinHostPort(host, port) + wire.Path
	} else {
		ts.Start()
		tb.url = "ws://" + net.JoinHostPort(host, port) + wire.Path
	}
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", tb.logs)
		}
	})
	return tb
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newTLSBroker starts a broker serving wss:// on a loopback port, the way
// `claudemesh broker --tls-cert --tls-key` does, with a certificate for
// hosts signed by ca.
func newTLSBroker(t testing.TB, ca *testca.CA, hosts ...string) *testBroker {
	t.Helper()
	certFile, keyFile := ca.Issue(t, hosts...)
	cfg, err := broker.ServerTLSConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, listenLoopback(t), cfg, "127.0.0.1")
}

func withRoots(p *x509.CertPool) func(*client.Config) {
	return func(c *client.Config) { c.RootCAs = p }
}

// failure waits until p's connection attempts fail and returns why.
func (p *peer) failure(t testing.TB) error {
	t.Helper()
	var err error
	eventually(t, "a connection attempt fails", func() bool {
		s := p.State()
		err = s.LastError
		return err != nil && s.Attempts > 0
	})
	if s := p.State(); s.Connected {
		t.Fatalf("connected (state %+v), want a failure", s)
	}
	return err
}

func TestTLSDM(t *testing.T) {
	t.Parallel()
	ca := testca.New(t)
	tb := newTLSBroker(t, ca, "127.0.0.1", "::1", "localhost")
	roots, err := client.LoadRootCAs(ca.File(t)) // the system's roots and the CA, as CLAUDEMESH_CA gives them
	if err != nil {
		t.Fatal(err)
	}
	alice := tb.dial(t, newKey(t, testMesh), "alice", withRoots(roots))
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob", withRoots(roots))

	id, status := sendText(t, alice, bobKey, "over TLS")
	if status != wire.StatusDelivered {
		t.Errorf("status %q, want %q", status, wire.StatusDelivered)
	}
	bob.in.wait(t, id)
	if s := bob.State(); !strings.HasPrefix(s.URL, "wss://") || !s.Connected {
		t.Errorf("bob's state %+v, want connected to a wss:// URL", s)
	}
}

func TestTLSCertificateRefused(t *testing.T) {
	t.Parallel()
	ca := testca.New(t)
	tb := newTLSBroker(t, ca, "127.0.0.1", "localhost")
	misnamed := newTLSBroker(t, ca, "broker.example.invalid")

	tests := []struct {
		name  string
		tb    *testBroker
		roots *x509.CertPool
		want  []string // in the error
	}{
		{"system roots only", tb, nil, []string{"certificate", "CLAUDEMESH_CA"}},
		{"another CA", tb, testca.New(t).Pool(), []string{"certificate", "CLAUDEMESH_CA"}},
		{"certificate for another name", misnamed, ca.Pool(), []string{"certificate", "does not name 127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.tb.dialNoWait(t, newKey(t, testMesh), "mallory", withRoots(tt.roots))
			err := p.failure(t)
			if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
				t.Errorf("error %v (%T), want a certificate verification error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// No WebSocket request, and so no hello with the credential, ever
	// reached a broker.
	if n := len(tb.accepted) + len(misnamed.accepted); n != 0 {
		t.Errorf("brokers got %d WebSocket requests over connections the clients refused", n)
	}
}

func TestPlaintextRefusedBeyondLoopback(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"ws://192.0.2.1:7733/v1/ws",
		"ws://[2001:db8::1]:7733/v1/ws",
		"ws://0.0.0.0:7733/v1/ws",
		"ws://broker.example.invalid/v1/ws",
		"ws://localhost.example.invalid/v1/ws",
		"ws://127.0.0.1.example.invalid/v1/ws",
	} {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			endpoint := func() (client.Endpoint, error) {
				calls.Add(1)
				return client.Endpoint{URL: u, Token: testToken}, nil
			}
			p := (&testBroker{}).dialNoWait(t, newKey(t, testMesh), "alice", func(c *client.Config) {
				c.Endpoint = endpoint
				c.DialTimeout = time.Hour // a dial would hang, not fail
			})
			err := p.failure(t)
			if !errors.Is(err, client.ErrPlaintext) {
				t.Fatalf("error %v, want %v", err, client.ErrPlaintext)
			}
			for _, w := range []string{"wss://", "--tls-cert", "CLAUDEMESH_ALLOW_PLAINTEXT=1"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// The client keeps asking for the endpoint (a broker may move to
			// wss://) without ever hanging in a dial.
			eventually(t, "a second attempt", func() bool { return calls.Load() >= 2 })
		})
	}
}

func TestPlaintextLoopback(t *testing.T) {
	t.Parallel()
	tb := serveOn(t, listenLoopback(t), nil, "localhost")
	for _, host := range []string{"127.0.0.1", "localhost", "LocalHost"} {
		t.Run(host, func(t *testing.T) {
			u := strings.Replace(tb.url, "localhost", host, 1)
			p := tb.dial(t, newKey(t, testMesh), "alice", func(c *client.Config) {
				c.Endpoint = func() (client.Endpoint, error) { return client.Endpoint{URL: u, Token: testToken}, nil }
			})
			if s := p.State(); s.URL != u {
				t.Errorf("connected to %s, want %s", s.URL, u)
			}
		})
	}
}

// nonLoopbackIP returns an address of this machine that is not loopback,
// or skips the test.
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("list interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return nil
}

func TestAllowPlaintext(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("listen on %s: %v", ip, err)
	}
	tb := serveOn(t, ln, nil, ip.String())

	refused := tb.dialNoWait(t, newKey(t, testMesh), "careful")
	if err := refused.failure(t); !errors.Is(err, client.ErrPlaintext) {
		t.Errorf("without AllowPlaintext: %v, want %v", err, client.ErrPlaintext)
	}
	if n := len(tb.accepted); n != 0 {
		t.Errorf("the broker got %d WebSocket requests from a client that refuses plaintext", n)
	}

	allowed := tb.dial(t, newKey(t, testMesh), "trusting", func(c *client.Config) { c.AllowPlaintext = true })
	if s := allowed.State(); s.URL != tb.url {
		t.Errorf("connected to %s, want %s", s.URL, tb.url)
	}
}

func TestServerTLSConfig(t *testing.T) {
	t.Parallel()
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1")
	cfg, err := broker.ServerTLSConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if leaf := cfg.Certificates[0].Leaf; leaf == nil || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("leaf %+v, want the parsed certificate for 127.0.0.1", leaf)
	}
	ln := tls.NewListener(listenLoopback(t), cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })

	tests := []struct {
		name    string
		client  *tls.Config
		wantErr bool
		alpn    string
	}{
		{"TLS 1.2", &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}, false, ""},
		{"TLS 1.3 offering h2", &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}}, false, "http/1.1"},
		{"TLS 1.1", &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", ln.Addr().String(), tt.client)
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded, want it refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol; got != tt.alpn {
				t.Errorf("negotiated protocol %q, want %q (WebSockets need HTTP/1.1)", got, tt.alpn)
			}
		})
	}

	otherCert, _ := ca.Issue(t, "127.0.0.1")
	for name, files := range map[string][2]string{
		"missing certificate":          {filepath.Join(t.TempDir(), "none.pem"), keyFile},
		"key of another certificate":   {otherCert, keyFile},
		"certificate given as the key": {certFile, certFile},
	} {
		if _, err := broker.ServerTLSConfig(files[0], files[1]); err == nil {
			t.Errorf("%s: loaded without error", name)
		}
	}
}

func TestTLSHost(t *testing.T) {
	t.Parallel()
	ca := testca.New(t)
	leaf := func(hosts ...string) *x509.Certificate {
		certFile, keyFile := ca.Issue(t, hosts...)
		cfg, err := broker.ServerTLSConfig(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Certificates[0].Leaf
	}
	addr := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	loopback := leaf("127.0.0.1", "::1", "localhost")
	public := leaf("broker.example.invalid", "*.example.invalid")
	tests := []struct {
		name   string
		listen string
		leaf   *x509.Certificate
		want   string
		wantOK bool
	}{
		{"loopback certificate, loopback listener", "127.0.0.1:7733", loopback, "127.0.0.1", true},
		{"loopback certificate, all interfaces", "0.0.0.0:7733", loopback, "127.0.0.1", true},
		{"localhost only, all interfaces", "[::]:7733", leaf("localhost"), "localhost", true},
		{"IPv6 loopback only", "[::1]:7733", leaf("::1"), "::1", true},
		{"public name, all interfaces", "0.0.0.0:7733", public, "broker.example.invalid", true},
		{"public name, one interface", "192.0.2.7:7733", public, "broker.example.invalid", true},
		{"the interface's address", "192.0.2.7:7733", leaf("192.0.2.7", "broker.example.invalid"), "192.0.2.7", true},
		{"public name, loopback listener", "127.0.0.1:7733", public, "127.0.0.1", false},
		{"another address", "192.0.2.7:7733", leaf("192.0.2.8"), "192.0.2.7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := broker.TLSHost(addr(tt.listen), tt.leaf)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("TLSHost(%s) = %q, %v; want %q, %v", tt.listen, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestLoadRootCAs(t *testing.T) {
	t.Parallel()
	ca := testca.New(t)
	pool, err := client.LoadRootCAs(ca.File(t))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ca.Issue(t, "localhost")
	cfg, err := broker.ServerTLSConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Certificates[0].Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("a certificate the CA signed does not verify against the loaded roots: %v", err)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{notPEM, keyFile, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := client.LoadRootCAs(f); err == nil {
			t.Errorf("LoadRootCAs(%s) succeeded, want an error", filepath.Base(f))
		}
	}
}
