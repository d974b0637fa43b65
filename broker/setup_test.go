package broker_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
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

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/testproc"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/sqlite"
	"github.com/claudemesh/claudemesh/wire"
)

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

// clock is an injected time source that moves only when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// logRecord is one captured log line.
type logRecord struct {
	msg   string
	attrs map[string]string
}

// logs captures what a broker or a client logs, so that tests can count
// events that have no other observable trace.
type logs struct {
	mu   sync.Mutex
	recs []logRecord
}

func (l *logs) logger() *slog.Logger { return slog.New(&logHandler{logs: l}) }

// count returns how many records have message msg and, for every pair of
// kv, that attribute value.
func (l *logs) count(msg string, kv ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, r := range l.recs {
		if r.msg != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if r.attrs[kv[i]] != kv[i+1] {
				continue next
			}
		}
		n++
	}
	return n
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		fmt.Fprintf(&b, "%s %v\n", r.msg, r.attrs)
	}
	return b.String()
}

type logHandler struct {
	logs  *logs
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{msg: r.Message, attrs: make(map[string]string)}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.recs = append(h.logs.recs, rec)
	h.logs.mu.Unlock()
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{logs: h.logs, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }

// openStore opens the SQLite store at path; the test closes it at the end.
func openStore(t testing.TB, path, synchronous string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path, sqlite.Config{Synchronous: synchronous})
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

// testBroker is a real broker on a loopback port.
type testBroker struct {
	srv   *broker.Server
	st    store.Store
	url   string
	token string
	logs  *logs
	// accepted receives a value for every WebSocket request the broker
	// gets (buffered; sends never block).
	accepted chan struct{}
	// requests counts the WebSocket requests the broker got (those of
	// serveConns).
	requests atomic.Int64
}

// newBroker starts a broker on a fresh SQLite store in a temporary
// directory. cfg.Token defaults to testToken; cfg.Store and cfg.Logger are
// filled in.
func newBroker(t testing.TB, cfg broker.Config) *testBroker {
	t.Helper()
	return serveStore(t, openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL"), cfg)
}

// serveStore starts a broker on st. The test closes the broker before the
// store.
func serveStore(t testing.TB, st store.Store, cfg broker.Config) *testBroker {
	t.Helper()
	return serveConns(t, st, cfg, nil)
}

// serveConns is serveStore that also hands every accepted TCP connection
// to onConn (when not nil) before the broker sees it. cfg.Store, when set,
// is the store the broker uses instead of st (one that wraps st).
func serveConns(t testing.TB, st store.Store, cfg broker.Config, onConn func(*net.TCPConn)) *testBroker {
	t.Helper()
	tb := &testBroker{st: st, logs: new(logs), accepted: make(chan struct{}, 1024)}
	if cfg.Store == nil {
		cfg.Store = st
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	// Tests of other behaviour send DMs as fast as they can: no rate
	// limit unless the test sets one.
	if cfg.SendRate == 0 {
		cfg.SendRate, cfg.MemberSendRate = 1e9, 1e9
	}
	if cfg.Logger == nil {
		cfg.Logger = tb.logs.logger()
	}
	tb.token = cfg.Token
	srv, err := broker.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tb.srv = srv
	mux := http.NewServeMux()
	mux.Handle(wire.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tb.requests.Add(1)
		select {
		case tb.accepted <- struct{}{}:
		default:
		}
		srv.ServeHTTP(w, r)
	}))
	ts := httptest.NewUnstartedServer(mux)
	srv.ConfigureHTTPServer(ts.Config)
	if onConn != nil {
		ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			onConn(c.(*net.TCPConn))
			return ctx
		}
	}
	ts.Start()
	tb.url = "ws" + strings.TrimPrefix(ts.URL, "http") + wire.Path
	// Cleanups run last-in first-out: the broker closes its WebSockets,
	// then the HTTP server stops, then the store closes.
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

func (tb *testBroker) endpoint() func() (client.Endpoint, error) {
	return func() (client.Endpoint, error) {
		return client.Endpoint{URL: tb.url, Token: tb.token}, nil
	}
}

// inbox records the DMs a client receives.
type inbox struct {
	mu      sync.Mutex
	dms     []wire.DM
	changed chan struct{} // closed and replaced on every DM
}

func newInbox() *inbox { return &inbox{changed: make(chan struct{})} }

func (in *inbox) add(dm wire.DM) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.dms = append(in.dms, dm)
	close(in.changed)
	in.changed = make(chan struct{})
}

// count returns how many times the DM id arrived.
func (in *inbox) count(id string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, dm := range in.dms {
		if dm.ID == id {
			n++
		}
	}
	return n
}

// all returns the DMs received so far, in order.
func (in *inbox) all() []wire.DM {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.dms)
}

// wait returns the DM id once it arrived.
func (in *inbox) wait(t testing.TB, id string) wire.DM {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		in.mu.Lock()
		for _, dm := range in.dms {
			if dm.ID == id {
				in.mu.Unlock()
				return dm
			}
		}
		changed := in.changed
		in.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("DM %s did not arrive within %v", id, waitTimeout)
		}
	}
}

// peer is a client.Session with its key and what it received.
type peer struct {
	*client.Session
	key  *identity.Key
	in   *inbox
	logs *logs
}

func newKey(t testing.TB, mesh string) *identity.Key {
	t.Helper()
	k, err := identity.NewEphemeral(mesh)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dial starts a client for key and waits until it is connected.
func (tb *testBroker) dial(t testing.TB, key *identity.Key, name string, opts ...func(*client.Config)) *peer {
	t.Helper()
	p := tb.dialNoWait(t, key, name, opts...)
	if err := p.WaitConnected(waitCtx(t)); err != nil {
		t.Fatalf("%s: connect: %v (state %+v)", name, err, p.State())
	}
	return p
}

// dialNoWait starts a client for key; the test closes it at the end.
// Options adjust the client's configuration.
func (tb *testBroker) dialNoWait(t testing.TB, key *identity.Key, name string, opts ...func(*client.Config)) *peer {
	t.Helper()
	p := &peer{key: key, in: newInbox(), logs: new(logs)}
	cfg := client.Config{
		Endpoint:   tb.endpoint(),
		Key:        key,
		Name:       name,
		ProjectDir: "/src/" + name,
		OnDM:       p.in.add,
		Logger:     p.logs.logger(),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
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

// seal encrypts text from one key to another.
func seal(t testing.TB, text string, from, to *identity.Key) ([wire.NonceSize]byte, []byte) {
	t.Helper()
	nonce, box, err := identity.Seal([]byte(text), to.Public, from.Private)
	if err != nil {
		t.Fatal(err)
	}
	return nonce, box
}

// sendText seals text to `to`, sends it with a new id and returns the id and
// the broker's status.
func sendText(t testing.TB, from *peer, to *identity.Key, text string) (id, status string) {
	t.Helper()
	id = uuid.NewString()
	nonce, box := seal(t, text, from.key, to)
	status, err := from.Send(waitCtx(t), id, to.Public, nonce, box)
	if err != nil {
		t.Fatalf("send %s: %v", id, err)
	}
	return id, status
}

// sync sends a fresh DM from `from` to p and waits for it. A connection's
// pump pushes a recipient's DMs in the order the broker stored them, so
// once the fresh DM arrived, every older DM that this connection was going
// to receive has arrived too.
func (p *peer) sync(t testing.TB, from *peer) {
	t.Helper()
	id, _ := sendText(t, from, p.key, "sync")
	p.in.wait(t, id)
}

// peers lists the mesh as p sees it, keyed by key ID.
func (p *peer) peers(t testing.TB) map[string]wire.Peer {
	t.Helper()
	list, err := p.Peers(waitCtx(t))
	if err != nil {
		t.Fatalf("list peers: %v", err)
	}
	m := make(map[string]wire.Peer)
	for _, pe := range list {
		if _, dup := m[pe.KeyID]; dup {
			t.Fatalf("peer %s listed twice in %+v", pe.KeyID, list)
		}
		m[pe.KeyID] = pe
	}
	return m
}

// wireError returns err as a *wire.Error, failing the test otherwise.
func wireError(t testing.TB, err error) *wire.Error {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("got error %v (%T), want a *wire.Error", err, err)
	}
	return we
}

// rawConn is a WebSocket to the broker driven frame by frame.
type rawConn struct {
	*websocket.Conn
}

func (tb *testBroker) dialRaw(t testing.TB) *rawConn {
	t.Helper()
	return tb.dialRawWith(t, websocket.DefaultDialer)
}

func (tb *testBroker) dialRawWith(t testing.TB, d *websocket.Dialer) *rawConn {
	t.Helper()
	ws, resp, err := d.DialContext(waitCtx(t), tb.url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", tb.url, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	return &rawConn{ws}
}

// frame reads one frame.
func (rc *rawConn) frame(t testing.TB) wire.Frame {
	t.Helper()
	rc.SetReadDeadline(time.Now().Add(waitTimeout))
	typ, data, err := rc.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("broker sent message type %d, want text", typ)
	}
	f, err := wire.Decode(data)
	if err != nil {
		t.Fatalf("broker sent an invalid frame %q: %v", data, err)
	}
	return f
}

func (rc *rawConn) challenge(t testing.TB) []byte {
	t.Helper()
	f := rc.frame(t)
	ch, ok := f.(wire.Challenge)
	if !ok {
		t.Fatalf("first frame is %T, want a challenge", f)
	}
	return ch.Nonce
}

func (rc *rawConn) write(t testing.TB, f wire.Frame) {
	t.Helper()
	b, err := wire.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("write %s: %v", f.Type(), err)
	}
}

// hello returns a hello for key answering challenge, signed by priv.
func hello(challenge []byte, mesh string, pub ed25519.PublicKey, priv ed25519.PrivateKey, token string) wire.Hello {
	h := wire.Hello{Version: wire.Version, Mesh: mesh, Key: wire.Key(pub), Name: "raw", Token: token}
	h.Sig = ed25519.Sign(priv, wire.HelloTranscript(challenge, h))
	return h
}

// join completes a handshake for key on a raw connection dialled with d.
func (tb *testBroker) join(t testing.TB, key *identity.Key, d *websocket.Dialer) *rawConn {
	t.Helper()
	rc := tb.dialRawWith(t, d)
	rc.write(t, hello(rc.challenge(t), key.Mesh, key.Public, key.Private, tb.token))
	if f := rc.frame(t); f.Type() != wire.TypeWelcome {
		t.Fatalf("hello answered with %+v, want a welcome", f)
	}
	return rc
}

// offlineRecipient returns the key of a session the mesh has seen and that
// is offline now.
func offlineRecipient(t *testing.T, tb *testBroker, observer *peer, name string) *identity.Key {
	t.Helper()
	key := newKey(t, testMesh)
	closeWithin(t, name, tb.dial(t, key, name))
	waitState(t, observer, key.ID(), wire.PeerOffline)
	return key
}
