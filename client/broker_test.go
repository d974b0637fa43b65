package client_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/testproc"
	"github.com/claudemesh/claudemesh/store/sqlite"
	"github.com/claudemesh/claudemesh/wire"
)

// The client's tests talk to a real broker: broker.NewServer on the SQLite
// store in a temporary directory, served on a loopback port.

// waitTimeout bounds every wait for a condition. It is generous: the tests
// run under -race on small shared machines, and a passing run never waits
// for it.
const waitTimeout = 20 * time.Second

const (
	testMesh  = "team"
	testToken = "0123456789abcdef0123456789abcdef-test"
)

// eventually fails the test unless cond becomes true within waitTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testproc.Poll(t, waitTimeout, 5*time.Millisecond, what, cond)
}

// waitCtx returns a context that ends with the test or after waitTimeout.
func waitCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// closeWithin closes c and fails the test if that takes longer than
// waitTimeout.
func closeWithin(t testing.TB, what string, c interface{ Close() error }) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("close %s: %v", what, err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("close %s: still blocked after %v", what, waitTimeout)
	}
}

func newKey(t testing.TB, mesh string) *identity.Key {
	t.Helper()
	k, err := identity.NewEphemeral(mesh)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testBroker is a real broker on a loopback port.
type testBroker struct {
	srv   *broker.Server
	url   string
	token string
	// requests counts the WebSocket requests the broker got.
	requests atomic.Int64
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// openStore opens a SQLite store in a temporary directory, closed when
// the test ends.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "broker.db"), sqlite.Config{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st
}

// newBroker starts a broker with cfg (Store and Token filled in) on
// 127.0.0.1.
func newBroker(t testing.TB, cfg broker.Config) *testBroker {
	t.Helper()
	return serveOn(t, listenLoopback(t), nil, "127.0.0.1", cfg)
}

// serveOn starts a broker with cfg on ln, serving wss:// when tlsConfig
// is set. Its URL names host and ln's port.
func serveOn(t testing.TB, ln net.Listener, tlsConfig *tls.Config, host string, cfg broker.Config) *testBroker {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = openStore(t)
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	srv, err := broker.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBroker{srv: srv, token: cfg.Token}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tb.requests.Add(1)
		srv.ServeHTTP(w, r)
	}))
	ts := httptest.NewUnstartedServer(mux)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug) // refused TLS handshakes
	srv.ConfigureHTTPServer(ts.Config)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	scheme := "ws://"
	if tlsConfig != nil {
		ts.TLS = tlsConfig
		ts.StartTLS()
		scheme = "wss://"
	} else {
		ts.Start()
	}
	tb.url = scheme + net.JoinHostPort(host, port) + wire.Path
	// Cleanups run last-in first-out: the broker closes its WebSockets,
	// then the HTTP server stops, then the store closes.
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return tb
}

// logs captures what a client logs, for the tests of what it logs.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) logger() *slog.Logger { return slog.New(&logHandler{l}) }

// count returns how many records have message msg.
func (l *logs) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(slices.DeleteFunc(slices.Clone(l.msgs), func(m string) bool { return m != msg }))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

type logHandler struct{ logs *logs }

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	h.logs.mu.Lock()
	defer h.logs.mu.Unlock()
	h.logs.msgs = append(h.logs.msgs, r.Message)
	return nil
}

func (h *logHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logHandler) WithGroup(string) slog.Handler      { return h }

// peer is a client.Session with what it logs.
type peer struct {
	*client.Session
	logs *logs
}

// dial starts a client of tb for key and waits until it is connected.
func (tb *testBroker) dial(t testing.TB, key *identity.Key, name string, opts ...func(*client.Config)) *peer {
	t.Helper()
	p := tb.dialNoWait(t, key, name, opts...)
	if err := p.WaitConnected(waitCtx(t)); err != nil {
		t.Fatalf("%s: connect: %v (state %+v)", name, err, p.State())
	}
	return p
}

// dialNoWait starts a client of tb for key; the test closes it at the end.
// Options adjust the client's configuration; tb may be nil when they set
// the endpoint.
func (tb *testBroker) dialNoWait(t testing.TB, key *identity.Key, name string, opts ...func(*client.Config)) *peer {
	t.Helper()
	p := &peer{logs: new(logs)}
	cfg := client.Config{
		Key:        key,
		Name:       name,
		Logger:     p.logs.logger(),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	}
	if tb != nil {
		cfg.Endpoint = func() (client.Endpoint, error) { return client.Endpoint{URL: tb.url, Token: tb.token}, nil }
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := client.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Session = c
	t.Cleanup(func() { closeWithin(t, name, c) })
	return p
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
