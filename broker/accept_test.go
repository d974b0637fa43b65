package broker_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/internal/testca"
	"github.com/claudemesh/claudemesh/wire"
)

// closedWithin is the generous bound on how long after HandshakeTimeout a
// connection may take to be closed on a loaded machine. A broker that does
// not bound the HTTP request holds such a connection forever (httptest
// sets no ReadHeaderTimeout).
const closedWithin = 5 * time.Second

// waitClosed reads from c until the broker closes it and returns how long
// after start that was. It fails the test if c is still open after
// timeout+closedWithin.
func waitClosed(t *testing.T, c net.Conn, start time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	c.SetReadDeadline(start.Add(timeout + closedWithin))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // an HTTP error answer, if any, before the close
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatalf("connection still open %v after it was opened, want it closed within %v", time.Since(start), timeout)
		}
		return time.Since(start) // io.EOF, or a reset after more writes
	}
}

func hostPort(t *testing.T, wsURL string) string {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// The handshake timeout runs from the TCP accept, not from the upgrade: a
// client gets HandshakeTimeout in all to say hello, however it spends it.
func TestHandshakeTimeoutFromAccept(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	tb := newBroker(t, broker.Config{HandshakeTimeout: timeout})
	addr := hostPort(t, tb.url)

	t.Run("clients", func(t *testing.T) {
		slowClients(t, addr, timeout, func() (net.Conn, error) { return net.Dial("tcp", addr) })
	})

	// The broker still serves: a client that says hello at once gets in.
	good := tb.dial(t, newKey(t, testMesh), "good")
	if p := good.peers(t)[good.key.ID()]; !p.Online() {
		t.Errorf("after the slow clients, a new client is listed as %+v, want online", p)
	}
}

// slowClients opens connections to addr that do not say hello, each its
// own way, and checks that each is closed timeout after it was opened:
// one that sends nothing over TCP, and one (dialled by dial, over TLS for
// a wss:// broker) that writes its HTTP request a byte at a time.
func slowClients(t *testing.T, addr string, timeout time.Duration, dial func() (net.Conn, error)) {
	t.Run("silent TCP connection", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if d := waitClosed(t, c, start, timeout); d < timeout {
			t.Errorf("closed after %v, before the handshake timeout %v", d, timeout)
		}
	})

	t.Run("HTTP request written slowly", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A byte every 20 ms: each one would renew a per-read timeout, and
		// the request never ends.
		stop := make(chan struct{})
		written := make(chan struct{})
		go func() {
			defer close(written)
			req := "GET " + wire.Path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nX-Pad: "
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				b := byte('x')
				if i < len(req) {
					b = req[i]
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		}()
		d := waitClosed(t, c, start, timeout)
		close(stop)
		<-written
		if d < timeout {
			t.Errorf("closed after %v, before the handshake timeout %v", d, timeout)
		}
	})
}

// The same holds for a wss:// broker, whose http.Server makes the TLS
// handshake itself: a client silent in it, or slow after it, is closed.
func TestHandshakeTimeoutFromAcceptTLS(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1")
	cfg, err := broker.ServerTLSConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.NewServer(broker.Config{Store: openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL"), HandshakeTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	srv.ConfigureHTTPServer(ts.Config)
	ts.TLS = cfg
	ts.StartTLS()
	t.Cleanup(ts.Close)
	t.Cleanup(func() { srv.Close() })
	addr := ts.Listener.Addr().String()

	slowClients(t, addr, timeout, func() (net.Conn, error) {
		return tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool()})
	})
}

// A client that upgrades late has only what is left of the timeout to say
// hello, and is told handshake_timeout when it does not.
func TestHandshakeTimeoutNotRenewedByUpgrade(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	tb := newBroker(t, broker.Config{HandshakeTimeout: timeout})
	start := time.Now()
	c, err := net.Dial("tcp", hostPort(t, tb.url))
	if err != nil {
		t.Fatal(err)
	}
	// Let most of the timeout pass on the open connection, then upgrade it.
	select {
	case <-time.After(6 * timeout / 10):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
	ws, resp, err := d.DialContext(waitCtx(t), tb.url, nil)
	if err != nil {
		t.Fatalf("upgrade %v after the connection was opened: %v", time.Since(start), err)
	}
	resp.Body.Close()
	upgraded := time.Since(start)
	rc := &rawConn{ws}
	defer rc.Close()
	rc.challenge(t)

	e, ok := rc.frame(t).(*wire.Error)
	if !ok || e.Code != wire.CodeHandshakeTimeout {
		t.Fatalf("silence after the upgrade answered with %+v, want %s", e, wire.CodeHandshakeTimeout)
	}
	// Timed from the upgrade it would come a whole timeout after it.
	if after := time.Since(start) - upgraded; after >= timeout {
		t.Errorf("handshake_timeout came %v after the upgrade (%v after the connect), want it %v after the connect", after, upgraded+after, timeout)
	}
	expectClosed(t, rc, websocket.ClosePolicyViolation, wire.CodeHandshakeTimeout)
}
