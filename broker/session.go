package broker

import (
	"context"
	"crypto/ed25519"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/rate"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// sessionConn is the connection of a session, from its hello on. It holds
// the session key's lease while it is the live connection of that key, and
// besides the writer it owns a pump goroutine, the only one reading the
// store's queue for this session on this connection. Its read loop serves
// the session's requests: send, ack, receipt, peers and status.
type sessionConn struct {
	*conn

	// Set before the connection is admitted (admitSession), read-only
	// afterwards: other connections read them under Server.mu.
	hello  wire.Hello
	pkey   presenceKey
	keyID  string
	since  time.Time // when it said hello
	member []byte    // the member key that vouched for the session; nil in a mesh without members

	// Written under Server.mu.
	attached bool  // it took its session's lease (attach)
	epoch    int64 // the epoch of its claim of the lease
	removed  bool  // its member was removed: the session leaves no lease

	kick      chan struct{}   // wakes the pump; capacity 1
	receipts  chan receiptJob // acks and receipts for the recorder
	recording atomic.Bool     // a recorder runs
	recorders sync.WaitGroup  // the recorders the read loop started
	queued    int64           // jobs passed to the recorder; the read loop's
	doneJobs  atomic.Int64    // jobs the recorder has done
	bye       *wire.Bye       // set by the read loop when the client says bye
	sendRate  *rate.Bucket    // DMs this session may send; used by the read loop only
	allRate   *rate.Bucket    // sends to every session of the mesh; used by the read loop only

	mu       sync.Mutex
	inflight map[string]struct{} // DMs pushed on this connection and not yet acked
	// The pump runs only while it has work (kickPump starts it).
	pumpCtx  context.Context // the connection's, for the pump's store reads; nil until openPump
	pumpShut bool            // closePump was called: no pump starts any more
	pumping  bool            // a pump runs
	pumps    sync.WaitGroup  // the pumps started
	// The pump's own, kept from one run to the next.
	cursor string          // last DM read from the store on this connection
	spare  []store.Message // the next hand-off's buffer
	// While the pump reads the store (reading), the DMs acked meanwhile:
	// the read may have seen them before their ack committed.
	reading      bool
	ackedWhileRd map[string]struct{}
	// The hand-off of DMs stored for this session by senders on this node
	// (see handOff in dm.go).
	committing int             // sends to this session between beginCommit and endCommit
	overlap    bool            // two of them overlapped since committing was last 0
	handed     []store.Message // stored DMs handed to the pump, in commit order
	rescan     bool            // the pump must read the store: it may hold DMs not handed
}

func newSessionConn(c *conn, h wire.Hello, member []byte) *sessionConn {
	return &sessionConn{
		conn:     c,
		hello:    h,
		pkey:     keyOf(h.Mesh, h.Key),
		keyID:    identity.KeyID(ed25519.PublicKey(h.Key)),
		since:    c.s.cfg.Now(),
		member:   member,
		kick:     make(chan struct{}, 1),
		receipts: make(chan receiptJob, receiptQueue),
		sendRate: bucketFor(c.s.cfg.SendRate),
		allRate:  &rate.Bucket{Burst: c.s.cfg.BroadcastBurst, Every: c.s.cfg.BroadcastEvery},
		inflight: make(map[string]struct{}),
		rescan:   true, // the pump starts with the backlog in the store
	}
}

// openSession admits the session a hello opened on c, takes its lease
// and returns it, ready to serve frames; nil when it was refused (c is then
// shut down). end gives the lease to grace, or away after a bye.
func (s *Server) openSession(ctx context.Context, c *conn, challenge []byte, h wire.Hello) *sessionConn {
	if h.Check {
		s.checkHello(ctx, c, challenge, h)
		return nil
	}
	sc, e := s.acceptHello(ctx, c, challenge, h)
	if e != nil {
		c.shutdown(e)
		return nil
	}
	if !sc.handshake(ctx) {
		sc.end(ctx)
		return nil
	}
	sc.openPump(ctx)
	sc.wake()
	return sc
}

// end is the session's part once its read loop is over: what the client
// acked before it left is recorded before the session leaves (a forgotten
// session must have nothing unread). It returns once the pump and the
// recorder have exited.
func (sc *sessionConn) end(ctx context.Context) {
	sc.recorders.Wait()
	if sc.attached {
		sc.leave(ctx)
	}
	sc.stop()
	sc.closePump()
	sc.s.dismissSession(sc)
}

// handle serves one frame of the session's read loop; false ends the
// connection.
func (sc *sessionConn) handle(ctx context.Context, f wire.Frame) bool {
	switch f := f.(type) {
	case wire.Bye:
		sc.bye = &f
		sc.shutdown(nil)
		return false
	case wire.Send:
		if f.Group != "" {
			sc.handleGroupSend(ctx, f)
		} else {
			sc.handleSend(ctx, f)
		}
	case wire.JoinGroup:
		sc.handleMembership(ctx, f.Req, f.Group, true)
	case wire.LeaveGroup:
		sc.handleMembership(ctx, f.Req, f.Group, false)
	case wire.SetStatus:
		sc.handleSetStatus(ctx, f)
	case wire.Ack, wire.Receipt:
		sc.toRecorder(ctx, receiptJob{f: f})
	case wire.PeersRequest:
		sc.recorded(ctx)
		sc.handlePeers(ctx, f)
	case wire.StatusRequest:
		sc.recorded(ctx)
		sc.handleStatus(ctx, f)
	case wire.Hello:
		sc.reply(wire.Errorf(wire.CodeBadFrame, "hello already accepted on this connection"))
	default:
		sc.reply(wire.Errorf(wire.CodeBadFrame, "a client does not send %s frames", f.Type()))
	}
	return true
}

// session is the store's record of the session, seen at seen.
func (sc *sessionConn) session(seen time.Time) store.Session {
	return store.Session{
		Mesh:       sc.hello.Mesh,
		PublicKey:  sc.hello.Key,
		SessionID:  sc.hello.SessionID,
		Name:       sc.hello.Name,
		ProjectDir: sc.hello.ProjectDir,
		Kind:       sc.hello.Kind,
		FirstSeen:  seen,
		LastSeen:   seen,
		Member:     sc.member,
	}
}

// leave ends the connection's hold on its session: the session goes to
// grace, or offline at once after a bye.
func (sc *sessionConn) leave(ctx context.Context) {
	s := sc.s
	if !s.release(ctx, sc, sc.bye != nil) {
		return // replaced: the new connection owns the session
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if sc.bye != nil && sc.bye.Forget {
		gone, err := s.cfg.Store.ForgetSession(ctx, sc.hello.Mesh, sc.hello.Key, s.cfg.Now())
		if err != nil {
			sc.log.Warn("forget session", "err", err)
		}
		sc.log.Info("session left and was forgotten", "forgotten", gone)
		return
	}
	if err := s.cfg.Store.UpsertSession(ctx, sc.session(s.cfg.Now())); err != nil {
		sc.log.Warn("record last seen", "err", err)
	}
	if sc.bye != nil {
		sc.log.Info("session left")
	} else {
		sc.log.Info("session connection lost; in grace", "grace", s.cfg.Grace)
	}
}
