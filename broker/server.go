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
// Locks: Server.mu guards the server's sets of connections, the leases,
// the member rate buckets, the queue estimates and the connection fields
// marked as written under it; sessionConn.mu guards the DMs in flight on
// one session connection and those handed to its pump. The order is
// Server.mu, then sessionConn.mu (nothing holds both today); validKeys
// has a lock of its own, taken alone. Neither is held across I/O, logging or a
// channel send: what needs one is collected under the lock and done after
// it, as sweep logs and as Close and cutMember shut connections down.
// Functions named …Locked expect their caller to hold Server.mu.
package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/internal/rate"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/memory"
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
	// WriteTimeout. Default 32: a channel of that many is allocated for
	// every connection, idle or not.
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
	// MaxGroup bounds the recipients of one group send (a group, or every
	// other session of the mesh): a larger one is refused with
	// group_too_large. Default 100.
	MaxGroup int
	// BroadcastEvery and BroadcastBurst limit sends to every session of
	// the mesh (@all), per session, on top of SendRate: BroadcastBurst at
	// once, then one per BroadcastEvery. Defaults 30s and 3.
	BroadcastEvery time.Duration
	BroadcastBurst int
	// MaxBroadcastBox bounds each box of a send to every session of the
	// mesh. Default 16 KiB.
	MaxBroadcastBox int

	// Cluster is what this broker shares with the other brokers (nodes)
	// on its store: presence across nodes, events between them. Nil means
	// the broker is alone (store/memory).
	Cluster store.Cluster
	// Node names this broker among its cluster's nodes. Default "local".
	Node string
	// Metrics, when set, counts what the broker does (see Metrics); a
	// Metrics serves one Server.
	Metrics *Metrics

	// Heartbeat is how often a node of a cluster records that it is
	// alive, and NodeLapse how long without a heartbeat makes a node dead
	// to the others: its sessions go to grace, judged from its last
	// heartbeat. Defaults 1s and 5s; unused when the broker is alone.
	Heartbeat, NodeLapse time.Duration
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
	def(&c.Heartbeat, time.Second)
	def(&c.NodeLapse, 5*time.Second)
	if c.Heartbeat >= c.NodeLapse {
		c.Heartbeat = c.NodeLapse / 3
	}
	c.Node = cmp.Or(c.Node, "local")
	def(&c.ExpireInterval, time.Minute)
	if c.SendQueue <= 0 {
		c.SendQueue = 32
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
	if c.MaxGroup <= 0 {
		c.MaxGroup = 100
	}
	def(&c.BroadcastEvery, 30*time.Second)
	if c.BroadcastBurst <= 0 {
		c.BroadcastBurst = 3
	}
	if c.MaxBroadcastBox <= 0 {
		c.MaxBroadcastBox = 16 << 10
	}
	if c.MaxFrameSize <= 0 || c.MaxFrameSize > wire.MaxFrameSize {
		c.MaxFrameSize = wire.MaxFrameSize
	}
}

// Server is a claudemesh broker. It is an http.Handler for the WebSocket
// endpoint. Close it to disconnect every client and stop its goroutines.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu           sync.Mutex
	closed       bool
	conns        map[*conn]struct{}           // every accepted connection
	members      map[memberKey]*memberLocal   // each member's connections and the sessions it vouched for, here
	holders      map[presenceKey]*sessionConn // this node's connection holding each lease
	nextConn     uint64
	replacements uint64
	memberRates  map[memberKey]*rate.Bucket // DMs per member
	queues       map[queueKey]*queueEstimate

	validKeys validKeys // recipient keys already checked; its own lock
	writeBufs sync.Pool // write buffers the connections share (upgrader.WriteBufferPool)

	// accepting holds the handshake clock of each connection accepted by
	// an http.Server set up by ConfigureHTTPServer, until it is upgraded
	// or closed.
	accepting sync.Map // net.Conn → *accepted

	cluster store.Cluster
	mem     *memory.Cluster // the cluster when the broker is alone; nil in a cluster
	lapse   time.Duration   // cfg.NodeLapse in a cluster; 0 alone, where no node lapses

	wg          sync.WaitGroup     // connection handlers, the janitor, the heartbeat and the listener
	stopJanitor context.CancelFunc // ends the context of the janitor, the heartbeat and the listener
	stopOnce    sync.Once
}

// NewServer returns a broker serving from cfg.Store. It starts the
// janitor that purges expired DMs, and in a cluster the node's heartbeat
// and its listener for the other nodes' events: before it returns, the
// node has heartbeated and released what an earlier run under its name
// held.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("new broker: a store is required")
	}
	cfg.setDefaults()
	s := &Server{
		cfg: cfg,
		log: cfg.Logger,
		// An idle connection holds its read buffer only: the write
		// buffer comes from writeBufs for each message written. Larger
		// frames are read in several reads.
		upgrader: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 4096,
		},
		conns:   make(map[*conn]struct{}),
		members: make(map[memberKey]*memberLocal),
		holders: make(map[presenceKey]*sessionConn),

		memberRates: make(map[memberKey]*rate.Bucket),
		queues:      make(map[queueKey]*queueEstimate),
		cluster:     cfg.Cluster,
	}
	s.upgrader.WriteBufferPool = &s.writeBufs
	if cfg.Metrics != nil {
		cfg.Metrics.srv.Store(s)
	}
	if s.cluster == nil {
		s.mem = memory.NewCluster(cfg.Token)
		s.cluster = s.mem
	} else {
		s.lapse = cfg.NodeLapse
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		now := cfg.Now()
		if err := s.cluster.Heartbeat(ctx, cfg.Node, now); err != nil {
			return nil, fmt.Errorf("new broker: %w", err)
		}
		if err := s.cluster.ReleaseNode(ctx, cfg.Node, now); err != nil {
			return nil, fmt.Errorf("new broker: %w", err)
		}
	}
	// These goroutines' context ends with Close: their store calls end too.
	ctx, cancel := context.WithCancel(context.Background())
	s.stopJanitor = cancel
	s.wg.Add(2)
	go s.janitor(ctx)
	go s.pinger(ctx)
	if s.mem == nil {
		s.wg.Add(2)
		go s.heartbeat(ctx)
		go s.listen(ctx)
	}
	return s, nil
}

// closeWait is how long Close lets connections say goodbye before it cuts
// the sockets of clients that do not read.
const closeWait = 2 * time.Second

// Close is Shutdown with closeWait to finish: connections get that long to
// finish what they are doing (a session that leaves records when it was
// last seen). It is idempotent. It does not close the store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown drains the broker: it stops admitting connections (ServeHTTP
// answers 503 and Ready fails from now on), tells every client with a
// shutting_down error frame and a going-away close (wire.CloseGoingAway)
// to reconnect, to another broker of the cluster if it knows one, and
// waits until every connection has finished what it was doing — a send
// whose DM is being stored is stored, the acks read are recorded — and
// every goroutine of the server has exited. When ctx ends first it cuts
// the sockets of clients that do not read and cancels the store calls
// still made for clients, then waits for the goroutines. Only the first
// call (of Shutdown or Close) drains; later ones wait for it. It does not
// close the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		s.stopJanitor()
		for _, c := range conns {
			c.shutdown(wire.Errorf(wire.CodeShuttingDown, "broker is shutting down; reconnect, to another broker of the cluster if there is one"))
		}
		done := make(chan struct{})
		go func() {
			s.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			// A writer blocked on a client that does not read would hold
			// the drain for WriteTimeout, and a store that does not answer
			// for storeTimeout: cut the sockets and cancel the store calls.
			for _, c := range conns {
				c.cancel()
				c.ws.NetConn().Close()
			}
			<-done
		}
	})
	s.wg.Wait()
	return nil
}

// janitor purges expired DMs and forgotten sessions periodically, and
// leases whose grace ran out.
func (s *Server) janitor(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	leases := time.NewTicker(min(s.cfg.ExpireInterval, max(s.cfg.Grace/4, time.Second)))
	defer leases.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-leases.C:
			s.sweep(ctx)
		case <-t.C:
			expireCtx, cancel := context.WithTimeout(ctx, time.Minute)
			if _, err := s.Expire(expireCtx); err != nil && ctx.Err() == nil {
				s.log.Warn("expire queued DMs", "err", err)
			}
			cancel()
		}
	}
}

// pingSlices is how many groups of connections the pinger pings in turn,
// each at its own moment of PingInterval, rather than all at once.
const pingSlices = 4

// pinger asks every connection's writer for a ping each PingInterval.
func (s *Server) pinger(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval / pingSlices)
	defer t.Stop()
	for turn := uint64(0); ; turn++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		for c := range s.conns {
			if c.id%pingSlices == turn%pingSlices {
				c.ping()
			}
		}
		s.mu.Unlock()
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
	s.cfg.Metrics.dmsExpired(n)
	if n > 0 {
		s.log.Info("expired queued DMs", "count", n)
	}
	return n, nil
}

// Stats counts what the broker did since it started.
type Stats struct {
	Online, Grace int // sessions in each lease state now
	// Replacements counts hellos that took a session from a connection of
	// another client instance (not a client's own reconnect).
	Replacements uint64
}

// Accepted returns how many connections the broker has accepted since it
// started.
func (s *Server) Accepted() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextConn
}

// Stats returns the broker's counters: presence as this node sees it
// (in a cluster, the sessions of this node).
func (s *Server) Stats() Stats {
	var st Stats
	if s.mem != nil {
		st.Online, st.Grace = s.mem.Count(s.leaseTimes())
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		held, _ := s.cluster.NodeLeases(ctx, s.cfg.Node, s.leaseTimes())
		for _, l := range held {
			switch l.State {
			case store.LeaseOnline:
				st.Online++
			case store.LeaseGrace:
				st.Grace++
			}
		}
	}
	s.mu.Lock()
	st.Replacements = s.replacements
	s.mu.Unlock()
	return st
}
