// Package broker is the claudemesh message broker and its client.
//
// Server accepts WebSocket connections, authenticates each session with a
// signed hello (see wire.HelloTranscript), keeps one live connection per
// session key, stores every DM durably before acknowledging its sender and
// pushes it to its recipient, forgetting it only once the recipient has
// acknowledged it. Client is the other end: it dials, says hello, reconnects
// with backoff and resends what the broker has not acknowledged.
//
// Lock order: Server.mu, then conn.mu. Neither is held across I/O or a
// channel send.
package broker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// Config configures a Server. The zero value of every field but Store is a
// usable default.
type Config struct {
	// Store keeps DMs and seen sessions. Required. The Server does not close
	// it.
	Store store.Store
	// Token is the shared credential a hello must carry. Empty means no
	// credential is checked: only for brokers reachable by trusted callers.
	Token string
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// QueueTTL is how long an undelivered DM is kept, and how long a session
	// is remembered after it was last seen. Default 7 days.
	QueueTTL time.Duration
	// HandshakeTimeout bounds the time from accept to a valid hello.
	// Default 10s.
	HandshakeTimeout time.Duration
	// PingInterval is how often the broker pings each client. Default 30s.
	PingInterval time.Duration
	// PongTimeout closes a connection from which nothing (not even a pong)
	// has arrived for this long. Default 75s.
	PongTimeout time.Duration
	// WriteTimeout bounds one frame write. Default 10s.
	WriteTimeout time.Duration
	// SendQueue is the number of frames buffered per connection; a client
	// that lets it fill up is disconnected (its DMs stay stored). Default 256.
	SendQueue int
	// ExpireInterval is how often expired DMs and sessions are purged.
	// Default 1 minute.
	ExpireInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.QueueTTL, 7*24*time.Hour)
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.PingInterval, 30*time.Second)
	def(&c.PongTimeout, 75*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.ExpireInterval, time.Minute)
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
}

// pendingPage is how many stored DMs a connection's pump reads at a time.
const pendingPage = 128

// Server is a claudemesh broker. It is an http.Handler for the WebSocket
// endpoint. Close it to disconnect every client and stop its goroutines.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu       sync.Mutex
	closed   bool
	conns    map[*conn]struct{}    // every accepted connection
	presence map[presenceKey]*conn // the live connection of each session key
	nextConn uint64

	wg       sync.WaitGroup // connection handlers and the janitor
	stop     chan struct{}
	stopOnce sync.Once
}

type presenceKey struct {
	mesh string
	key  [wire.KeySize]byte
}

func keyOf(mesh string, k []byte) presenceKey {
	pk := presenceKey{mesh: mesh}
	copy(pk.key[:], k)
	return pk
}

// NewServer returns a broker serving from cfg.Store. It starts the
// janitor that purges expired DMs.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("new broker: a store is required")
	}
	cfg.setDefaults()
	s := &Server{
		cfg: cfg,
		log: cfg.Logger,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  4096,
			WriteBufferSize: 4096,
		},
		conns:    make(map[*conn]struct{}),
		presence: make(map[presenceKey]*conn),
		stop:     make(chan struct{}),
	}
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// Close disconnects every client with a shutting_down error and returns
// once every goroutine of the server has exited. It is idempotent. It does
// not close the store.
func (s *Server) Close() error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		close(s.stop)
		for _, c := range conns {
			c.shutdown(wire.Errorf(wire.CodeShuttingDown, "broker is shutting down; reconnect later"))
		}
	})
	s.wg.Wait()
	return nil
}

// ServeHTTP upgrades the request to a WebSocket and serves one client until
// it disconnects or the server closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "broker is shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.nextConn++
	id := s.nextConn
	s.mu.Unlock()
	defer s.wg.Done()

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newConn(s, ws, id)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()

	c.serve()

	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// janitor purges expired DMs and forgotten sessions periodically.
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := s.Expire(ctx); err != nil {
				s.log.Warn("expire queued DMs", "err", err)
			}
			cancel()
		}
	}
}

// Expire removes DMs whose TTL has passed and sessions not seen within the
// TTL. The janitor calls it periodically; it is exported for operators and
// tests that drive the clock.
func (s *Server) Expire(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	n, err := s.cfg.Store.Expire(ctx, now, now.Add(-s.cfg.QueueTTL))
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	if n > 0 {
		s.log.Info("expired queued DMs", "count", n)
	}
	return n, nil
}

// register makes c the live connection of its session key and returns the
// connection it displaced, if any.
func (s *Server) register(c *conn) (old *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old = s.presence[c.pkey]
	s.presence[c.pkey] = c
	return old
}

// unregister removes c from presence unless a newer connection replaced it.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.presence[c.pkey] == c {
		delete(s.presence, c.pkey)
	}
}

// live returns the live connection for key in mesh, or nil.
func (s *Server) live(mesh string, key []byte) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence[keyOf(mesh, key)]
}

// online returns the live connections of mesh.
func (s *Server) online(mesh string) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []*conn
	for k, c := range s.presence {
		if k.mesh == mesh {
			cs = append(cs, c)
		}
	}
	return cs
}

// verifyHello checks a hello against the challenge it answers and the
// broker's credential. It returns the wire error to answer with.
func (s *Server) verifyHello(challenge []byte, h wire.Hello) *wire.Error {
	if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(h.Token), []byte(s.cfg.Token)) != 1 {
		return wire.Errorf(wire.CodeUnauthorized, "missing or wrong broker credential")
	}
	if err := identity.ValidateMesh(h.Mesh); err != nil {
		return wire.Errorf(wire.CodeBadMesh, "%v", err)
	}
	if _, err := identity.X25519PublicKey(ed25519.PublicKey(h.Key)); err != nil {
		return wire.Errorf(wire.CodeBadSignature, "session key refused: %v", err)
	}
	if !ed25519.Verify(ed25519.PublicKey(h.Key), wire.HelloTranscript(challenge, h), h.Sig) {
		return wire.Errorf(wire.CodeBadSignature, "hello signature does not verify for this key and challenge")
	}
	return nil
}

func newChallenge() []byte {
	b := make([]byte, wire.ChallengeSize)
	rand.Read(b)
	return b
}
