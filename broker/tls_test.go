package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

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
