package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/internal/testca"
)

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
	return serveOn(t, listenLoopback(t), cfg, "127.0.0.1", broker.Config{})
}

func withRoots(p *x509.CertPool) func(*client.Config) {
	return func(c *client.Config) { c.RootCAs = p }
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
	if n := tb.requests.Load() + misnamed.requests.Load(); n != 0 {
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
			p := (*testBroker)(nil).dialNoWait(t, newKey(t, testMesh), "alice", func(c *client.Config) {
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
	tb := serveOn(t, listenLoopback(t), nil, "localhost", broker.Config{})
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
	tb := serveOn(t, ln, nil, ip.String(), broker.Config{})

	refused := tb.dialNoWait(t, newKey(t, testMesh), "careful")
	if err := refused.failure(t); !errors.Is(err, client.ErrPlaintext) {
		t.Errorf("without AllowPlaintext: %v, want %v", err, client.ErrPlaintext)
	}
	if n := tb.requests.Load(); n != 0 {
		t.Errorf("the broker got %d WebSocket requests from a client that refuses plaintext", n)
	}

	allowed := tb.dial(t, newKey(t, testMesh), "trusting", func(c *client.Config) { c.AllowPlaintext = true })
	if s := allowed.State(); s.URL != tb.url {
		t.Errorf("connected to %s, want %s", s.URL, tb.url)
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
