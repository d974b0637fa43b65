// Package broker is the claudemesh message broker.
//
// Server accepts WebSocket connections, authenticates each session with a
// signed hello (see wire.HelloTranscript), keeps one live connection per
// session key, stores every DM durably before acknowledging its sender and
// pushes it to its recipient until the recipient acknowledges it (read or
// cleared) or its TTL passes. It records the recipient's receipts (received,
// pushed into its session) and tells a DM's sender, and only its sender,
// where the DM stands. The other end of the connection is package client.
//
// Lock order: Server.mu, then conn.mu. Neither is held across I/O or a
// channel send.
package broker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/rate"
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
	// QueueTTL is how long an unread DM is kept for its recipient, how long
	// after that its sender can still see it expired (a DM's status is
	// known for 2×QueueTTL after it was sent), and how long a session is
	// remembered after it was last seen. Default 7 days.
	QueueTTL time.Duration
	// HandshakeTimeout bounds the time from accept to a valid hello,
	// the TLS handshake and the HTTP upgrade request included when the
	// http.Server was set up by ConfigureHTTPServer. Default 10s.
	HandshakeTimeout time.Duration
	// PingInterval is how often the broker pings each client. Default 30s.
	PingInterval time.Duration
	// PongTimeout closes a connection from which nothing (not even a pong)
	// has arrived for this long; its session goes to grace. This is what
	// detects a half-open TCP connection. Default 75s.
	PongTimeout time.Duration
	// Grace is how long a session whose connection dropped stays reserved
	// for its return (shown as reconnecting) before it is offline.
	// Default 90s.
	Grace time.Duration
	// WriteTimeout bounds one frame write. Default 10s.
	WriteTimeout time.Duration
	// SendQueue is the number of frames buffered per connection. When it
	// is full, that connection's own goroutines wait (so a slow client
	// slows only itself); a client that stops reading is cut off by
	// WriteTimeout. Default 256.
	SendQueue int
	// ExpireInterval is how often expired DMs and sessions are purged.
	// Default 1 minute.
	ExpireInterval time.Duration

	// Limits against hostile or runaway clients. A DM over a rate or
	// queue limit is refused (rate_limited, queue_full) and the
	// connection stays open; nothing stored is changed.
	//
	// SendRate is the DMs per second one session may send, with bursts of
	// twice as many. Default 20.
	SendRate float64
	// MemberSendRate is the DMs per second all sessions of one member may
	// send together, bursts of twice as many. Default 50.
	MemberSendRate float64
	// MaxQueued and MaxQueuedBytes bound the DMs (and their bytes) waiting
	// for one recipient. Defaults 10000 and 64 MiB.
	MaxQueued      int
	MaxQueuedBytes int64
	// MaxQueuedPerSender and MaxQueuedBytesPerSender bound what one sender
	// — a member in a mesh with members, else a session key — may leave
	// waiting for one recipient, so that no sender fills a recipient's
	// whole queue. Defaults 1000 and 8 MiB.
	MaxQueuedPerSender      int
	MaxQueuedBytesPerSender int64
	// MaxMemberConns bounds the connections of one member (its sessions
	// and member connections). Default 32.
	MaxMemberConns int
	// MaxFrameSize bounds a frame from a client; a longer one closes the
	// connection (too_large). Default and maximum wire.MaxFrameSize.
	MaxFrameSize int
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
	def(&c.Grace, 90*time.Second)
	if c.PingInterval >= c.PongTimeout {
		c.PingInterval = c.PongTimeout / 3
	}
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.ExpireInterval, time.Minute)
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.SendRate <= 0 {
		c.SendRate = 20
	}
	if c.MemberSendRate <= 0 {
		c.MemberSendRate = 50
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = 10000
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = 64 << 20
	}
	if c.MaxQueuedPerSender <= 0 {
		c.MaxQueuedPerSender = 1000
	}
	if c.MaxQueuedBytesPerSender <= 0 {
		c.MaxQueuedBytesPerSender = 8 << 20
	}
	if c.MaxMemberConns <= 0 {
		c.MaxMemberConns = 32
	}
	if c.MaxFrameSize <= 0 || c.MaxFrameSize > wire.MaxFrameSize {
		c.MaxFrameSize = wire.MaxFrameSize
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

	mu           sync.Mutex
	closed       bool
	conns        map[*conn]struct{}     // every accepted connection
	leases       map[presenceKey]*lease // presence of each session key online or in grace
	nextConn     uint64
	replacements uint64
	memberRates  map[memberKey]*rate.Bucket // DMs per member
	queues       map[queueKey]*queueEstimate

	// accepting holds the handshake clock of each connection accepted by
	// an http.Server set up by ConfigureHTTPServer, until it is upgraded
	// or closed.
	accepting sync.Map // net.Conn → *accepted

	wg       sync.WaitGroup // connection handlers and the janitor
	stop     chan struct{}
	stopOnce sync.Once
}

// queueEstimate is an upper bound of what waits for a recipient (from
// one sender, or from all): the store's count when it was read, plus every
// DM accepted for it since. Acks only lower the truth, so while the bound
// is under the caps no store read is needed; it is read again when the
// bound reaches a cap or is queueRecount old.
type queueEstimate struct {
	n     int
	bytes int64
	at    time.Time
}

// queueKey names a queue estimate: what waits for a recipient from sender,
// or from everyone when sender is "".
type queueKey struct {
	to     presenceKey
	sender string
}

// queueRecount is how long a queue estimate is trusted.
const queueRecount = time.Second

// queueRoom reports whether one more DM of size bytes from sender fits in
// the queue of `to`, both in all that waits for it and in what this
// sender left waiting; it counts the DM in when it does. Otherwise it
// says which cap the DM would pass.
func (s *Server) queueRoom(ctx context.Context, mesh string, to, sender []byte, size int64, now time.Time) (*queueFull, error) {
	type limit struct {
		key      queueKey
		sender   []byte
		maxN     int
		maxBytes int64
	}
	limits := [2]limit{
		{queueKey{keyOf(mesh, to), ""}, nil, s.cfg.MaxQueued, s.cfg.MaxQueuedBytes},
		{queueKey{keyOf(mesh, to), string(sender)}, sender, s.cfg.MaxQueuedPerSender, s.cfg.MaxQueuedBytesPerSender},
	}
	fits := func(l limit, e *queueEstimate) bool {
		return e != nil && e.n < l.maxN && e.bytes+size <= l.maxBytes
	}
	// take counts the DM in when every estimate is fresh and fits; it
	// reports the first limit that does not. s.mu must be held.
	take := func(fresh func(*queueEstimate) bool) (failed int) {
		for i, l := range limits {
			if e := s.queues[l.key]; !fresh(e) || !fits(l, e) {
				return i
			}
		}
		for _, l := range limits {
			e := s.queues[l.key]
			e.n, e.bytes = e.n+1, e.bytes+size
		}
		return -1
	}
	s.mu.Lock()
	failed := take(func(e *queueEstimate) bool { return e != nil && now.Sub(e.at) < queueRecount })
	s.mu.Unlock()
	if failed < 0 {
		return nil, nil
	}
	// Count again from the store what is stale or at a cap.
	counted := make(map[queueKey]*queueEstimate, len(limits))
	for _, l := range limits {
		n, bytes, err := s.cfg.Store.QueueStats(ctx, mesh, to, l.sender, now)
		if err != nil {
			return nil, err
		}
		counted[l.key] = &queueEstimate{n: n, bytes: bytes, at: now}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(s.queues, counted)
	failed = take(func(*queueEstimate) bool { return true })
	if failed < 0 {
		return nil, nil
	}
	e := s.queues[limits[failed].key]
	return &queueFull{perSender: failed == 1, n: e.n, bytes: e.bytes}, nil
}

// queueFull says which cap a DM would pass: all that waits for the
// recipient, or what its sender left waiting (perSender), and how much
// waits.
type queueFull struct {
	perSender bool
	n         int
	bytes     int64
}

type memberKey struct {
	mesh   string
	member string // member public key bytes
}

// allowSend takes a token from the sending member's bucket (sessions
// without a member have none).
func (s *Server) allowSend(mesh string, member []byte, now time.Time) bool {
	if len(member) == 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memberKey{mesh, string(member)}
	b := s.memberRates[k]
	if b == nil {
		b = bucketFor(s.cfg.MemberSendRate)
		s.memberRates[k] = b
	}
	return b.Allow(now)
}

// bucketFor allows perSecond events a second with bursts of twice as many.
func bucketFor(perSecond float64) *rate.Bucket {
	return &rate.Bucket{Burst: max(1, int(2*perSecond)), Every: time.Duration(float64(time.Second) / perSecond)}
}

// admit records who connection c speaks for — a session of mesh with
// key pkey vouched for by member, or (memberConn) the member itself — in
// one step with counting the member's connections, so that simultaneous
// hellos cannot pass the limit together. It reports false, recording
// nothing, when the member has MaxMemberConns connections already (a
// session reconnecting over its own key does not count twice).
func (s *Server) admit(c *conn, mesh string, member []byte, pkey presenceKey, hello wire.Hello, memberConn bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if member != nil {
		n := 0
		for o := range s.conns {
			switch {
			case o == c || !bytes.Equal(o.member, member):
			case o.memberMesh == mesh:
				n++
			case !memberConn && o.hello.Mesh == mesh && o.pkey == pkey:
				// the same session again: it replaces that connection
			case o.hello.Mesh == mesh:
				n++
			}
		}
		if n >= s.cfg.MaxMemberConns {
			return false
		}
	}
	c.member = member
	if memberConn {
		c.memberMesh = mesh
	} else {
		c.hello, c.pkey = hello, pkey
	}
	return true
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
		conns:  make(map[*conn]struct{}),
		leases: make(map[presenceKey]*lease),

		memberRates: make(map[memberKey]*rate.Bucket),
		queues:      make(map[queueKey]*queueEstimate),
		stop:        make(chan struct{}),
	}
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// closeWait is how long Close lets connections say goodbye before it cuts
// the sockets of clients that do not read.
const closeWait = 2 * time.Second

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
		done := make(chan struct{})
		go func() {
			s.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeWait):
			// A writer blocked on a client that does not read would hold
			// Close for WriteTimeout: cut the sockets instead.
			for _, c := range conns {
				c.ws.NetConn().Close()
			}
			<-done
		}
	})
	s.wg.Wait()
	return nil
}

// accepted is the handshake clock of one accepted connection.
type accepted struct {
	at    time.Time   // when it was accepted
	timer *time.Timer // closes it HandshakeTimeout after at, unless stopped
}

type acceptedKey struct{}

// ConfigureHTTPServer makes hs hold every connection it accepts to
// HandshakeTimeout from its accept to a valid hello, all steps included: a
// connection still in its TLS handshake or its HTTP request when the time
// is up is closed, and an upgraded one that has not said
// its hello is refused with handshake_timeout. So a client cannot hold a
// connection open without saying who it is, however slowly it writes. It
// sets hs.ConnContext and hs.ConnState, keeping any hooks hs had; no
// ReadHeaderTimeout is needed besides. Call it before hs serves.
func (s *Server) ConfigureHTTPServer(hs *http.Server) {
	connContext, connState := hs.ConnContext, hs.ConnState
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connContext != nil {
			ctx = connContext(ctx, c)
		}
		raw := c
		if tc, ok := c.(*tls.Conn); ok {
			raw = tc.NetConn() // closing a tls.Conn may wait on its handshake
		}
		a := &accepted{at: time.Now()}
		a.timer = time.AfterFunc(s.cfg.HandshakeTimeout, func() { raw.Close() })
		s.accepting.Store(c, a)
		return context.WithValue(ctx, acceptedKey{}, a)
	}
	hs.ConnState = func(c net.Conn, state http.ConnState) {
		if connState != nil {
			connState(c, state)
		}
		switch state {
		case http.StateHijacked:
			// ServeHTTP has it: it stops the clock once upgraded.
			s.accepting.Delete(c)
		case http.StateClosed:
			if a, ok := s.accepting.LoadAndDelete(c); ok {
				a.(*accepted).timer.Stop()
			}
		}
	}
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

	// The hello is due HandshakeTimeout after the connection was accepted
	// (when ConfigureHTTPServer set up the http.Server that accepted it),
	// else after this request arrived.
	helloBy := time.Now().Add(s.cfg.HandshakeTimeout)
	a, _ := r.Context().Value(acceptedKey{}).(*accepted)
	if a != nil {
		helloBy = a.at.Add(s.cfg.HandshakeTimeout)
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if a != nil {
		// From here the read deadline of the hello holds it, so that the
		// client learns why it is closed.
		a.timer.Stop()
	}
	c := newConn(s, ws, id)
	c.helloBy = helloBy
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

// janitor purges expired DMs and forgotten sessions periodically, and
// leases whose grace ran out.
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	leases := time.NewTicker(min(s.cfg.ExpireInterval, max(s.cfg.Grace/4, time.Second)))
	defer leases.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-leases.C:
			s.sweep()
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := s.Expire(ctx); err != nil {
				s.log.Warn("expire queued DMs", "err", err)
			}
			cancel()
		}
	}
}

// Expire expires unread DMs whose TTL has passed (their payload is dropped;
// their senders see them expired), forgets DMs whose TTL passed a TTL ago
// and sessions not seen within the TTL. It returns how many DMs expired
// unread in this call. The janitor calls it periodically; it is exported for
// operators and tests that drive the clock.
func (s *Server) Expire(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	// A session connected for longer than the TTL is not forgotten.
	for _, ss := range s.onlineSessions() {
		ss.LastSeen = now
		if err := s.cfg.Store.UpsertSession(ctx, ss); err != nil {
			return 0, fmt.Errorf("expire: record online session: %w", err)
		}
	}
	n, err := s.cfg.Store.Expire(ctx, now, s.cfg.QueueTTL, now.Add(-s.cfg.QueueTTL))
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	if n > 0 {
		s.log.Info("expired queued DMs", "count", n)
	}
	return n, nil
}

// lease is the presence of one session key: online while a connection
// holds it, then in grace for cfg.Grace after that connection dropped,
// then offline (the lease is gone; the store still remembers the session).
type lease struct {
	conn      *conn      // the live connection; nil while in grace
	hello     wire.Hello // as last presented
	keyID     string
	since     time.Time // when the current or last connection said hello
	droppedAt time.Time // when the connection went away; zero while online
	member    []byte    // member key that vouched for the session, if any
}

// state is the lease's state at now.
func (l *lease) state(now time.Time, grace time.Duration) string {
	switch {
	case l.conn != nil:
		return wire.PeerOnline
	case now.Before(l.droppedAt.Add(grace)):
		return wire.PeerGrace
	}
	return wire.PeerOffline
}

// Stats counts what the broker did since it started.
type Stats struct {
	Online, Grace int // sessions in each lease state now
	// Replacements counts hellos that took a session from a connection of
	// another client instance (not a client's own reconnect).
	Replacements uint64
}

// Stats returns the broker's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Replacements: s.replacements}
	now := s.cfg.Now()
	for _, l := range s.leases {
		switch l.state(now, s.cfg.Grace) {
		case wire.PeerOnline:
			st.Online++
		case wire.PeerGrace:
			st.Grace++
		}
	}
	return st
}

// attach makes c the live connection of its session key, reattaching a
// lease online or in grace. It returns the connection it displaced, if any,
// and whether that belonged to another client instance. A standby hello is
// refused while the session is online or in grace under another instance.
func (s *Server) attach(c *conn) (old *conn, other bool, refused *wire.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	l := s.leases[c.pkey]
	if l != nil && c.hello.Standby && !sameInstance(l.hello, c.hello) {
		switch l.state(now, s.cfg.Grace) {
		case wire.PeerOnline:
			return nil, false, wire.Errorf(wire.CodeSessionActive, "this session is active in another process (connected since %s)", l.since.UTC().Format(time.RFC3339))
		case wire.PeerGrace:
			return nil, false, wire.Errorf(wire.CodeSessionActive, "this session's other process is reconnecting; it is reserved for it until %s", l.droppedAt.Add(s.cfg.Grace).UTC().Format(time.RFC3339))
		}
	}
	if l == nil {
		l = &lease{}
		s.leases[c.pkey] = l
	}
	old = l.conn
	other = old != nil && !sameInstance(old.hello, c.hello)
	if other {
		s.replacements++
	}
	*l = lease{conn: c, hello: c.hello, keyID: c.keyID, since: c.since, member: c.member}
	c.attached = true
	return old, other, nil
}

// sameInstance reports whether two hellos come from one client instance.
func sameInstance(a, b wire.Hello) bool {
	return a.Instance != "" && a.Instance == b.Instance
}

// release ends c's hold on its lease: the lease goes to grace, or away at
// once when the client said bye. It reports false when c no longer held
// the lease (a newer connection replaced it).
func (s *Server) release(c *conn, bye bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[c.pkey]
	if l == nil || l.conn != c {
		return false
	}
	if bye || c.removed {
		delete(s.leases, c.pkey)
	} else {
		l.conn, l.droppedAt = nil, s.cfg.Now()
	}
	return true
}

// sweep forgets leases whose grace has run out: those sessions are
// offline. Lease states are computed from the clock when read, so sweeping
// only frees memory and logs the transition.
func (s *Server) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	for k, e := range s.queues {
		if now.Sub(e.at) >= queueRecount {
			delete(s.queues, k)
		}
	}
	for k, l := range s.leases {
		if l.state(now, s.cfg.Grace) == wire.PeerOffline {
			delete(s.leases, k)
			s.log.Info("session offline", "mesh", k.mesh, "key_id", l.keyID, "session", l.hello.SessionID)
		}
	}
}

// live returns the live connection for key in mesh, or nil.
func (s *Server) live(mesh string, key []byte) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.leases[keyOf(mesh, key)]; l != nil {
		return l.conn
	}
	return nil
}

// listed is one session as peer_list shows it, with the key of the
// member that vouches for it (nil in a mesh without members).
type listed struct {
	peer   wire.Peer
	member []byte
}

// present returns the sessions of mesh that are online or in grace.
func (s *Server) present(mesh string) []listed {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	var ps []listed
	for k, l := range s.leases {
		if k.mesh != mesh {
			continue
		}
		h := l.hello
		p := wire.Peer{
			Key: h.Key, KeyID: l.keyID, Name: h.Name, SessionID: h.SessionID, ProjectDir: h.ProjectDir,
			State: l.state(now, s.cfg.Grace), ConnectedSince: l.since,
		}
		switch p.State {
		case wire.PeerOnline:
			p.LastSeen = now
		case wire.PeerGrace:
			p.LastSeen, p.GraceUntil = l.droppedAt, l.droppedAt.Add(s.cfg.Grace)
		default:
			continue
		}
		ps = append(ps, listed{p, l.member})
	}
	return ps
}

// onlineSessions returns the sessions connected now.
func (s *Server) onlineSessions() []store.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ss []store.Session
	for _, l := range s.leases {
		if l.conn != nil {
			ss = append(ss, l.conn.session(l.since))
		}
	}
	return ss
}

// verifyHello checks a hello against the challenge it answers. A mesh
// with members admits a session only with a valid, unexpired attestation
// by a current member, and only if no other member vouched for that
// session key before; any other mesh needs the broker's credential. It
// returns the vouching member's key, or the wire error to answer with.
func (s *Server) verifyHello(challenge []byte, h wire.Hello) ([]byte, *wire.Error) {
	if err := identity.ValidateMesh(h.Mesh); err != nil {
		return nil, wire.Errorf(wire.CodeBadMesh, "%v", err)
	}
	if _, err := identity.X25519PublicKey(ed25519.PublicKey(h.Key)); err != nil {
		return nil, wire.Errorf(wire.CodeBadSignature, "session key refused: %v", err)
	}
	if !ed25519.Verify(ed25519.PublicKey(h.Key), wire.HelloTranscript(challenge, h), h.Sig) {
		return nil, wire.Errorf(wire.CodeBadSignature, "hello signature does not verify for this key and challenge")
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	members, err := s.cfg.Store.MeshExists(ctx, h.Mesh)
	if err != nil {
		s.log.Error("look up mesh", "mesh", h.Mesh, "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not look up the mesh; retry")
	}
	if !members {
		if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(h.Token), []byte(s.cfg.Token)) != 1 {
			return nil, wire.Errorf(wire.CodeUnauthorized, "missing or wrong broker credential")
		}
		return nil, nil
	}
	a := h.Attestation
	if a == nil {
		return nil, wire.Errorf(wire.CodeAttestationRequired, "mesh %s admits only sessions its members attest: join it first (claudemesh join)", h.Mesh)
	}
	if err := a.Verify(h.Mesh, h.Key, s.cfg.Now()); err != nil {
		return nil, wire.Errorf(wire.CodeBadAttestation, "%v", err)
	}
	if _, err := s.cfg.Store.Member(ctx, h.Mesh, a.Member); errors.Is(err, store.ErrNotFound) {
		return nil, wire.Errorf(wire.CodeNotMember, "member key %s is not a member of mesh %s", identity.KeyID(ed25519.PublicKey(a.Member)), h.Mesh)
	} else if err != nil {
		s.log.Error("look up member", "mesh", h.Mesh, "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not look up the member; retry")
	}
	switch prev, err := s.cfg.Store.Session(ctx, h.Mesh, h.Key); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		s.log.Error("look up session", "mesh", h.Mesh, "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not look up the session; retry")
	case len(prev.Member) > 0 && !bytes.Equal(prev.Member, a.Member):
		return nil, wire.Errorf(wire.CodeSessionOwned, "session key %s belongs to another member", identity.KeyID(ed25519.PublicKey(h.Key)))
	}
	return a.Member, nil
}

func newChallenge() []byte {
	b := make([]byte, wire.ChallengeSize)
	rand.Read(b)
	return b
}
