package broker

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/rate"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// storeTimeout bounds one store call made on behalf of a client.
const storeTimeout = 15 * time.Second

// conn is one client connection. Its read loop runs in the http handler's
// goroutine (serve); it owns a writer goroutine, the only one writing to the
// socket, and after the hello a pump goroutine, the only one reading the
// store's queue for this session. serve returns after both have exited.
//
// Nothing outside the connection ever blocks on it: other connections only
// wake its pump (a non-blocking signal) or shut it down.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	id  uint64
	log *slog.Logger

	out        chan []byte   // frames for the writer; bounded
	quit       chan struct{} // closed by shutdown
	quitOnce   sync.Once
	final      *wire.Error // written before the close frame; set before quit is closed
	writerDone chan struct{}
	kick       chan struct{} // wakes the pump; capacity 1

	// Set by the hello, read-only afterwards. member, memberMesh, hello,
	// pkey and attached are written under Server.mu: other connections read
	// them (admit, cutMember).
	hello    wire.Hello
	pkey     presenceKey
	keyID    string
	since    time.Time
	attached bool   // the connection took its session's lease; set by attach
	member   []byte // the member key that vouched for the session, or that a member connection speaks for
	// memberMesh is the mesh of a member connection ("" for a session).
	memberMesh string
	// removed: the member was removed; the session leaves no lease.
	// Guarded by Server.mu.
	removed bool

	helloBy  time.Time    // when the hello is due
	bye      *wire.Bye    // set by the read loop when the client says bye
	sendRate *rate.Bucket // DMs this session may send; used by the read loop only

	mu       sync.Mutex
	inflight map[string]struct{} // DMs pushed on this connection and not yet acked
}

func newConn(s *Server, ws *websocket.Conn, id uint64) *conn {
	return &conn{
		s:          s,
		ws:         ws,
		id:         id,
		log:        s.log.With("conn", id),
		out:        make(chan []byte, s.cfg.SendQueue),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		kick:       make(chan struct{}, 1),
		sendRate:   bucketFor(s.cfg.SendRate),
		inflight:   make(map[string]struct{}),
	}
}

// shutdown closes the connection, first sending e when it is not nil. It is
// idempotent and never blocks.
func (c *conn) shutdown(e *wire.Error) {
	c.quitOnce.Do(func() {
		c.final = e
		close(c.quit)
	})
}

// send queues a frame for the writer, waiting while the queue is full. It
// reports false once the connection is shutting down. Only the connection's
// own goroutines call it, so a full queue slows this client alone.
func (c *conn) send(f wire.Frame) bool {
	b, err := wire.Encode(f)
	if err != nil {
		c.log.Error("encode frame", "type", f.Type(), "err", err)
		return false
	}
	select {
	case c.out <- b:
		return true
	case <-c.quit:
		return false
	}
}

// wake tells the pump that the store may hold new DMs for this session.
func (c *conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *conn) writer() {
	defer close(c.writerDone)
	defer c.ws.Close()
	cfg := &c.s.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case b := <-c.out:
			c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.log.Debug("write failed", "err", err)
				c.shutdown(nil)
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				c.log.Debug("ping failed", "err", err)
				c.shutdown(nil)
				return
			}
		case <-c.quit:
			deadline := time.Now().Add(time.Second)
			code, reason := websocket.CloseNormalClosure, ""
			if c.final == nil {
				// A connection that ends normally (a join answered, a
				// bye) says its last frames before the close; one ended
				// by an error (replaced, refused) says only the error.
				c.ws.SetWriteDeadline(deadline)
				c.flush()
			}
			if c.final != nil {
				if b, err := wire.Encode(c.final); err == nil {
					c.ws.SetWriteDeadline(deadline)
					c.ws.WriteMessage(websocket.TextMessage, b)
				}
				code, reason = closeCode(c.final.Code), c.final.Code
			}
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
			return
		}
	}
}

// flush writes the frames already queued, until the first failure.
func (c *conn) flush() {
	for {
		select {
		case b := <-c.out:
			if c.ws.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
		default:
			return
		}
	}
}

// closeCode maps the wire error that ends a connection to a WebSocket close
// code; the close reason carries the wire code itself.
func closeCode(code string) int {
	switch code {
	case wire.CodeSessionReplaced:
		return CloseSessionReplaced
	case wire.CodeShuttingDown:
		return websocket.CloseGoingAway
	case wire.CodeInternal:
		return websocket.CloseInternalServerErr
	case wire.CodeTooLarge:
		return websocket.CloseMessageTooBig
	}
	return websocket.ClosePolicyViolation
}

// CloseSessionReplaced is the WebSocket close code of a connection displaced
// by a newer connection of the same session key.
const CloseSessionReplaced = 4001

// serve runs the connection: handshake, then the read loop. It returns
// when the connection is over and its goroutines have exited.
func (c *conn) serve() {
	go c.writer()
	var pumpDone chan struct{}
	defer func() {
		c.shutdown(nil)
		<-c.writerDone
		if pumpDone != nil {
			<-pumpDone
		}
	}()

	defer func() {
		if c.attached {
			c.leave()
		}
	}()
	if !c.handshake() {
		return
	}

	pumpDone = make(chan struct{})
	go func() {
		defer close(pumpDone)
		c.pump()
	}()
	c.wake()

	c.watchLiveness()
	for {
		f, ok := c.next()
		if !ok {
			return
		}
		switch f := f.(type) {
		case wire.Bye:
			c.bye = &f
			c.shutdown(nil)
			return
		case wire.Send:
			c.handleSend(f)
		case wire.Ack:
			c.handleAck(f)
		case wire.Receipt:
			c.handleReceipt(f)
		case wire.PeersRequest:
			c.handlePeers(f)
		case wire.StatusRequest:
			c.handleStatus(f)
		case wire.Hello:
			c.reply(wire.Errorf(wire.CodeBadFrame, "hello already accepted on this connection"))
		default:
			c.reply(wire.Errorf(wire.CodeBadFrame, "a client does not send %s frames", f.Type()))
		}
	}
}

// watchLiveness makes anything that arrives after the handshake (a pong
// too) count as the client being alive for PongTimeout more.
func (c *conn) watchLiveness() {
	c.alive()
	c.ws.SetPongHandler(func(string) error { c.alive(); return nil })
}

func (c *conn) alive() { c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongTimeout)) }

// next returns the next valid frame after the handshake, answering the
// invalid ones with an error frame on the way; false once the connection
// is over.
func (c *conn) next() (wire.Frame, bool) {
	for {
		typ, data, err := readMessage(c.ws, c.s.cfg.MaxFrameSize)
		if err != nil {
			c.readFailed(err)
			return nil, false
		}
		c.alive()
		f, e := decodeMessage(typ, data)
		if e != nil {
			if typ == websocket.TextMessage {
				e.Ref = refusedRef(data)
			}
			c.reply(e)
			continue
		}
		return f, true
	}
}

// decodeMessage decodes a WebSocket message into a frame, or returns the
// error frame that refuses it.
func decodeMessage(typ int, data []byte) (wire.Frame, *wire.Error) {
	if typ != websocket.TextMessage {
		return nil, wire.Errorf(wire.CodeBadFrame, "frames are JSON text messages")
	}
	f, err := wire.Decode(data)
	if err != nil {
		var pe *wire.ParseError
		errors.As(err, &pe)
		return nil, &wire.Error{Code: pe.Code, Message: err.Error()}
	}
	return f, nil
}

// readMessage reads one message of at most limit bytes and
// reports websocket.ErrReadLimit for a longer one. It enforces the limit
// itself instead of through SetReadLimit because on a message over that
// limit gorilla/websocket writes a close frame of its own, after which the
// too_large error frame could no longer be sent.
func readMessage(ws *websocket.Conn, limit int) (int, []byte, error) {
	typ, r, err := ws.NextReader()
	if err != nil {
		return 0, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return 0, nil, err
	}
	if len(data) > limit {
		return 0, nil, websocket.ErrReadLimit
	}
	return typ, data, nil
}

func (c *conn) readFailed(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		c.log.Debug("client closed", "code", ce.Code)
	case errors.Is(err, websocket.ErrReadLimit):
		c.shutdown(wire.Errorf(wire.CodeTooLarge, "frame exceeds the %d-byte limit", c.s.cfg.MaxFrameSize))
	default:
		c.log.Debug("read failed", "err", err)
	}
}

// reply queues an error frame that does not end the connection.
func (c *conn) reply(e *wire.Error) {
	c.log.Debug("rejected frame", "code", e.Code, "msg", e.Message)
	c.send(e)
}

// handshake sends the challenge, reads and verifies the hello, and makes
// this connection the live one of its session key. On failure it has
// already shut the connection down with the reason.
func (c *conn) handshake() bool {
	cfg := &c.s.cfg
	challenge := newChallenge()
	if !c.send(wire.Challenge{Version: wire.Version, Nonce: challenge}) {
		return false
	}
	c.ws.SetReadDeadline(c.helloBy)
	typ, data, err := readMessage(c.ws, c.s.cfg.MaxFrameSize)
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.shutdown(wire.Errorf(wire.CodeHandshakeTimeout, "no hello within %v", cfg.HandshakeTimeout))
		} else {
			c.readFailed(err)
		}
		return false
	}
	f, e := decodeMessage(typ, data)
	if e != nil {
		c.shutdown(e)
		return false
	}
	switch f := f.(type) {
	case wire.MemberHello:
		c.serveMember(challenge, f)
		return false
	case wire.Join:
		c.join(challenge, f)
		return false
	}
	h, ok := f.(wire.Hello)
	if !ok {
		c.shutdown(wire.Errorf(wire.CodeHelloRequired, "the first frame must be a hello, got %s", f.Type()))
		return false
	}
	member, e := c.s.verifyHello(challenge, h)
	if e != nil {
		c.log.Info("hello refused", "code", e.Code, "mesh", h.Mesh, "key_id", identity.KeyID(ed25519.PublicKey(h.Key)))
		c.shutdown(e)
		return false
	}

	if !c.s.admit(c, h.Mesh, member, keyOf(h.Mesh, h.Key), h, false) {
		c.shutdown(wire.Errorf(wire.CodeTooManyConnections, "this member has %d connections open, the limit", cfg.MaxMemberConns))
		return false
	}
	c.keyID = identity.KeyID(ed25519.PublicKey(h.Key))
	c.since = cfg.Now()
	c.log = c.log.With("mesh", h.Mesh, "session", h.SessionID, "key_id", c.keyID)

	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	switch err := c.s.cfg.Store.UpsertSession(ctx, c.session(c.since)); {
	case errors.Is(err, store.ErrSessionTaken):
		// Someone presents the session UUID of another key: an impostor,
		// or a session whose key file was lost. Nothing of the owner's
		// changes.
		c.log.Warn("hello refused: session id registered to another key", "code", wire.CodeSessionIDTaken)
		c.shutdown(wire.Errorf(wire.CodeSessionIDTaken, "session %s is registered in mesh %s to another key; a session UUID belongs to the key that first registered it. If this session's key file was lost or replaced, start a new session: the old registration is forgotten %s after it was last seen", h.SessionID, h.Mesh, c.s.cfg.QueueTTL))
		return false
	case err != nil:
		c.log.Error("record session", "err", err)
		c.shutdown(wire.Errorf(wire.CodeInternal, "broker could not record the session; retry"))
		return false
	}
	old, other, refused := c.s.attach(c)
	if refused != nil {
		c.log.Info("standby hello refused", "code", refused.Code)
		c.shutdown(refused)
		return false
	}
	switch {
	case other:
		c.log.Info("session replaced by another process", "old_conn", old.id)
		old.shutdown(wire.Errorf(wire.CodeSessionReplaced, "this session connected from another process, which now holds it"))
	case old != nil:
		c.log.Info("session reconnected over a stale connection", "old_conn", old.id)
		old.shutdown(wire.Errorf(wire.CodeSessionReplaced, "this client connected again; this connection is stale"))
	}
	c.log.Info("session online", "name", h.Name, "standby", h.Standby)
	return c.send(wire.Welcome{Version: wire.Version, KeyID: c.keyID, ServerTime: c.since, Replaced: other, GraceMS: cfg.Grace.Milliseconds()})
}

// refusedRef returns what names the request in a frame that failed
// validation: the id of a send, the number of a peers or status request. So
// the client learns which request was refused instead of waiting for an
// answer. It returns "" when there is none.
func refusedRef(data []byte) string {
	var f struct {
		Type string          `json:"type"`
		ID   json.RawMessage `json:"id"`
		Req  json.RawMessage `json:"req"`
	}
	if json.Unmarshal(data, &f) != nil {
		return ""
	}
	switch f.Type {
	case wire.TypeSend:
		var id string
		if json.Unmarshal(f.ID, &id) != nil || len(id) > 64 {
			return ""
		}
		return id
	case wire.TypePeers, wire.TypeStatus:
		var req uint64
		if json.Unmarshal(f.Req, &req) != nil {
			return ""
		}
		return wire.RefOf(req)
	}
	return ""
}

func (c *conn) session(seen time.Time) store.Session {
	return store.Session{
		Mesh:       c.hello.Mesh,
		PublicKey:  c.hello.Key,
		SessionID:  c.hello.SessionID,
		Name:       c.hello.Name,
		ProjectDir: c.hello.ProjectDir,
		FirstSeen:  seen,
		LastSeen:   seen,
		Member:     c.member,
	}
}

// leave ends the connection's hold on its session: the session goes to
// grace, or offline at once after a bye.
func (c *conn) leave() {
	if !c.s.release(c, c.bye != nil) {
		return // replaced: the new connection owns the session
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if c.bye != nil && c.bye.Forget {
		gone, err := c.s.cfg.Store.ForgetSession(ctx, c.hello.Mesh, c.hello.Key, c.s.cfg.Now())
		if err != nil {
			c.log.Warn("forget session", "err", err)
		}
		c.log.Info("session left and was forgotten", "forgotten", gone)
		return
	}
	if err := c.s.cfg.Store.UpsertSession(ctx, c.session(c.s.cfg.Now())); err != nil {
		c.log.Warn("record last seen", "err", err)
	}
	if c.bye != nil {
		c.log.Info("session left")
	} else {
		c.log.Info("session connection lost; in grace", "grace", c.s.cfg.Grace)
	}
}

// pump pushes the session's queued DMs to the client, oldest first, each
// once per connection. It runs until the connection shuts down.
func (c *conn) pump() {
	var cursor string // last DM read from the store on this connection
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			msgs, err := c.s.cfg.Store.Pending(ctx, c.hello.Mesh, c.hello.Key, c.s.cfg.Now(), cursor, pendingPage)
			cancel()
			if errors.Is(err, store.ErrNotFound) && cursor != "" {
				cursor = "" // the cursor's DM expired: rescan, skipping what is in flight
				continue
			}
			if err != nil {
				c.log.Error("read queued DMs", "err", err)
				c.shutdown(wire.Errorf(wire.CodeInternal, "broker could not read the queue; reconnect"))
				return
			}
			for _, m := range msgs {
				cursor = m.ID
				if !c.markInflight(m.ID) {
					continue
				}
				if !c.send(dmFrame(m)) {
					return
				}
			}
			if len(msgs) < pendingPage {
				break
			}
		}
	}
}

func (c *conn) markInflight(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.inflight[id]; ok {
		return false
	}
	c.inflight[id] = struct{}{}
	return true
}

func dmFrame(m store.Message) wire.DM {
	return wire.DM{
		ID:          m.ID,
		From:        m.From,
		FromName:    m.FromName,
		FromSession: m.FromSession,
		Nonce:       m.Nonce,
		Box:         m.Box,
		SentAt:      m.CreatedAt,
		PushedAt:    m.PushedAt,
	}
}

func (c *conn) handleSend(f wire.Send) {
	s := c.s
	mesh := c.hello.Mesh
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	fail := func(code, format string, args ...any) {
		e := wire.Errorf(code, format, args...)
		e.Ref = f.ID
		c.reply(e)
	}
	if _, err := identity.X25519PublicKey(ed25519.PublicKey(f.To)); err != nil {
		fail(wire.CodeUnknownPeer, "recipient key %s is not a valid session key", identity.KeyID(ed25519.PublicKey(f.To)))
		return
	}
	now := s.cfg.Now()
	if !c.sendRate.Allow(now) || !s.allowSend(mesh, c.member, now) {
		fail(wire.CodeRateLimited, "too many DMs per second (this session may send %g, its member %g); retry later with the same id", s.cfg.SendRate, s.cfg.MemberSendRate)
		return
	}
	if s.live(mesh, f.To) == nil {
		if _, err := s.cfg.Store.Session(ctx, mesh, f.To); errors.Is(err, store.ErrNotFound) {
			fail(wire.CodeUnknownPeer, "no session with key %s in mesh %s", identity.KeyID(ed25519.PublicKey(f.To)), mesh)
			return
		} else if err != nil {
			c.log.Error("look up recipient", "msg_id", f.ID, "err", err)
			fail(wire.CodeInternal, "broker could not look up the recipient; retry with the same id")
			return
		}
	}
	sender, who := c.hello.Key, "this session has"
	if c.member != nil {
		sender, who = c.member, "this member's sessions have"
	}
	switch full, err := s.queueRoom(ctx, mesh, f.To, sender, int64(len(f.Box)), now); {
	case err != nil:
		c.log.Error("queue stats", "msg_id", f.ID, "err", err)
		fail(wire.CodeInternal, "broker could not check the recipient's queue; retry with the same id")
		return
	case full == nil:
	case full.perSender:
		fail(wire.CodeQueueFull, "%s %d DMs (%d bytes) waiting unread for %s; one sender may leave at most %d DMs, %d bytes for one recipient, so that no sender fills its queue. Retry once it has read some", who, full.n, full.bytes, identity.KeyID(ed25519.PublicKey(f.To)), s.cfg.MaxQueuedPerSender, s.cfg.MaxQueuedBytesPerSender)
		return
	default:
		fail(wire.CodeQueueFull, "%d DMs (%d bytes) already wait for %s; a recipient may have at most %d DMs, %d bytes waiting. Retry once it has read some", full.n, full.bytes, identity.KeyID(ed25519.PublicKey(f.To)), s.cfg.MaxQueued, s.cfg.MaxQueuedBytes)
		return
	}
	expires := now.Add(s.cfg.QueueTTL)
	res, err := s.cfg.Store.Enqueue(ctx, store.Message{
		ID:          f.ID,
		Mesh:        mesh,
		From:        c.hello.Key,
		FromName:    c.hello.Name,
		FromSession: c.hello.SessionID,
		To:          f.To,
		Sender:      c.member,
		Nonce:       f.Nonce,
		Box:         f.Box,
		CreatedAt:   now,
		ExpiresAt:   expires,
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		fail(wire.CodeDuplicateID, "DM id %s is already used by another DM; use a new id", f.ID)
		return
	case err != nil:
		c.log.Error("store DM", "msg_id", f.ID, "err", err)
		fail(wire.CodeInternal, "broker could not store the DM; retry with the same id")
		return
	}
	if res != store.Stored {
		expires = c.storedExpiry(ctx, f.ID, now)
	}
	status := wire.StatusQueued
	switch {
	case res == store.AlreadyAcked:
		status = wire.StatusDelivered
	case res == store.AlreadyExpired:
		// Not delivered any more; Sent.ExpiresAt, in the past, says why.
	default:
		if rc := s.live(mesh, f.To); rc != nil {
			rc.wake()
			status = wire.StatusDelivered
		}
	}
	c.log.Debug("DM stored", "msg_id", f.ID, "to", identity.KeyID(ed25519.PublicKey(f.To)), "result", res, "status", status)
	c.send(wire.Sent{ID: f.ID, Status: status, ExpiresAt: expires})
}

// storedExpiry returns the expiry of the DM id this session stored before,
// for the answer to a resend; zero (left out of the answer) when it cannot
// be read.
func (c *conn) storedExpiry(ctx context.Context, id string, now time.Time) time.Time {
	sts, err := c.s.cfg.Store.Status(ctx, c.hello.Mesh, c.hello.Key, []string{id}, now)
	if err != nil {
		c.log.Warn("read expiry of a resent DM", "msg_id", id, "err", err)
		return time.Time{}
	}
	return sts[0].ExpiresAt
}

// handleAck records that the session read (or, cleared, dismissed) DMs
// addressed to it, at the broker's time.
func (c *conn) handleAck(f wire.Ack) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, err := c.s.cfg.Store.Ack(ctx, c.hello.Mesh, c.hello.Key, f.IDs, c.s.cfg.Now(), f.Cleared); err != nil {
		c.log.Error("ack DMs", "err", err)
		c.reply(wire.Errorf(wire.CodeInternal, "broker could not record the ack; the DMs will be delivered again"))
		return
	}
	c.mu.Lock()
	for _, id := range f.IDs {
		delete(c.inflight, id)
	}
	c.mu.Unlock()
}

// receiptStates maps receipt states from the wire to the store.
var receiptStates = map[string]string{
	wire.ReceiptReceived: store.ReceiptReceived,
	wire.ReceiptPushed:   store.ReceiptPushed,
}

// handleReceipt records how far the session got with DMs addressed to it.
// It dates the receipt with the client's time when that is not in the
// broker's future; the store ignores ids addressed to anyone else.
func (c *conn) handleReceipt(f wire.Receipt) {
	now := c.s.cfg.Now()
	at := f.At
	if at.IsZero() || at.After(now) {
		at = now
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	n, err := c.s.cfg.Store.Receipt(ctx, c.hello.Mesh, c.hello.Key, f.IDs, receiptStates[f.State], at)
	if err != nil {
		c.log.Error("record receipt", "state", f.State, "err", err)
		c.reply(wire.Errorf(wire.CodeInternal, "broker could not record the %s receipt", f.State))
		return
	}
	c.log.Debug("receipt recorded", "state", f.State, "ids", len(f.IDs), "recorded", n)
}

// statusStates maps the delivery states of the store to the wire.
var statusStates = map[string]string{
	store.StateQueued:    wire.StateQueued,
	store.StateDelivered: wire.StateDelivered,
	store.StatePushed:    wire.StatePushed,
	store.StateRead:      wire.StateRead,
	store.StateCleared:   wire.StateCleared,
	store.StateExpired:   wire.StateExpired,
	store.StateUnknown:   wire.StateUnknown,
}

// handleStatus answers where DMs stand. The store reports only DMs this
// session sent; any other id is unknown.
func (c *conn) handleStatus(f wire.StatusRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	sts, err := c.s.cfg.Store.Status(ctx, c.hello.Mesh, c.hello.Key, f.IDs, c.s.cfg.Now())
	if err != nil {
		c.log.Error("read DM status", "err", err)
		c.reply(&wire.Error{Code: wire.CodeInternal, Message: "broker could not read the DM status; retry", Ref: wire.RefOf(f.Req)})
		return
	}
	out := make([]wire.MessageStatus, len(sts))
	for i, st := range sts {
		state, ok := statusStates[st.State]
		if !ok {
			state = wire.StateUnknown
		}
		out[i] = wire.MessageStatus{
			ID: st.ID, To: st.To, ToName: st.ToName, State: state,
			CreatedAt: st.CreatedAt, ExpiresAt: st.ExpiresAt,
			ReceivedAt: st.ReceivedAt, PushedAt: st.PushedAt, ReadAt: st.ReadAt,
		}
	}
	c.send(wire.StatusList{Req: f.Req, Statuses: out})
}

func (c *conn) handlePeers(f wire.PeersRequest) {
	s := c.s
	mesh := c.hello.Mesh
	byKey := make(map[presenceKey]listed)
	for _, l := range s.present(mesh) {
		byKey[keyOf(mesh, l.peer.Key)] = l
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	fail := func(what string, err error) {
		c.log.Error(what, "err", err)
		c.reply(&wire.Error{Code: wire.CodeInternal, Message: "broker could not list sessions; retry", Ref: wire.RefOf(f.Req)})
	}
	seen, err := s.cfg.Store.Sessions(ctx, mesh, s.cfg.Now().Add(-s.cfg.QueueTTL))
	if err != nil {
		fail("list sessions", err)
		return
	}
	for _, ss := range seen {
		k := keyOf(mesh, ss.PublicKey)
		if _, ok := byKey[k]; ok {
			continue
		}
		byKey[k] = listed{wire.Peer{
			Key: ss.PublicKey, KeyID: identity.KeyID(ss.PublicKey), Name: ss.Name, SessionID: ss.SessionID,
			ProjectDir: ss.ProjectDir, State: wire.PeerOffline, LastSeen: ss.LastSeen,
		}, ss.Member}
	}
	// In a mesh with members, say who vouches for each session.
	var names map[string]string
	if c.member != nil {
		members, err := s.cfg.Store.MemberList(ctx, mesh)
		if err != nil {
			fail("list members", err)
			return
		}
		names = make(map[string]string, len(members))
		for _, m := range members {
			names[string(m.Key)] = m.Name
		}
	}
	peers := make([]wire.Peer, 0, len(byKey))
	for _, l := range byKey {
		if len(l.member) > 0 {
			l.peer.MemberKeyID = identity.KeyID(l.member)
			l.peer.Member = cmp.Or(names[string(l.member)], "(removed member)")
		}
		peers = append(peers, l.peer)
	}
	rank := map[string]int{wire.PeerOnline: 0, wire.PeerGrace: 1, wire.PeerOffline: 2}
	slices.SortFunc(peers, func(a, b wire.Peer) int {
		return cmp.Or(cmp.Compare(rank[a.State], rank[b.State]), cmp.Compare(a.Name, b.Name), cmp.Compare(a.KeyID, b.KeyID))
	})
	if len(peers) > wire.MaxPeers {
		peers = peers[:wire.MaxPeers] // the most present first
	}
	c.send(wire.PeerList{Req: f.Req, Peers: peers})
}
