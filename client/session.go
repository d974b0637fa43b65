// Package client is the broker's other end, as sessions and members use
// it: Session dials a broker, says the signed hello of a session key,
// reconnects with backoff, resends what the broker has not confirmed and
// stands by when another process holds the session; MemberConn and Join
// speak for a member key (creating meshes, invites, joining). It imports
// only wire and identity: a program that talks to a broker does not link
// the broker.
package client

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// Endpoint is where and how a client reaches its broker.
type Endpoint struct {
	URL   string // ws:// or wss:// URL of the broker's WebSocket endpoint
	Token string // broker credential; "" when the broker needs none
}

// Config configures a Session. Key and Endpoint are required.
type Config struct {
	// Endpoint is called before every connection attempt, so a client
	// follows a broker that restarted on another port or with a new
	// credential.
	Endpoint func() (Endpoint, error)
	// Key is the session key the client says hello with.
	Key *identity.Key
	// Name and ProjectDir are presented to peers.
	Name       string
	ProjectDir string
	// Kind is what speaks for the key, presented to peers:
	// wire.KindSession ("", a Claude Code session) or wire.KindHuman.
	Kind string
	// OnDM receives each DM pushed by the broker, in order, on the
	// client's connection goroutine: it must not block for long. The
	// broker delivers a DM again on the next connection until Ack or Clear
	// is called for it, so OnDM must tolerate repeats; a repeat of a DM
	// reported pushed (Receipt) carries PushedAt.
	OnDM func(wire.DM)
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the jittered delay between
	// connection attempts. Defaults 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds connecting and the hello. Default 10s.
	DialTimeout time.Duration
	// PingInterval is how often the client pings the broker. Default 30s.
	PingInterval time.Duration
	// PongTimeout is how long the client waits without hearing from the
	// broker (frames, pings or pongs) before it reconnects: this detects a
	// half-open connection. Default 75s.
	PongTimeout time.Duration
	// StandbyProbe is how often a replaced client asks whether its session
	// is free again (see Session). Default 30s, jittered.
	StandbyProbe time.Duration
	// Instance identifies this client to the broker across its reconnects;
	// "" picks a random UUID.
	Instance string
	// Now is the clock receipts and attestations are dated with; nil means
	// time.Now.
	Now func() time.Time
	// Member is the member key that attests Key in each hello, for a mesh
	// with members; nil for a mesh without. AttestFor is how long each
	// attestation is valid (default 24h; the broker accepts up to
	// wire.MaxAttestation).
	Member    ed25519.PrivateKey
	AttestFor time.Duration
	// RootCAs verifies the certificate of a wss:// broker; nil means the
	// system's roots. LoadRootCAs adds a private CA to them.
	RootCAs *x509.CertPool
	// AllowPlaintext lets the client dial a ws:// URL whose host is not a
	// loopback address (127.0.0.0/8, ::1, localhost). Without it such a
	// URL is refused before dialing (ErrPlaintext): the credential and the
	// message metadata would cross the network unencrypted.
	AllowPlaintext bool
}

// Errors returned by Session methods.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("broker client closed")
	// ErrNotConnected: the client has no connection to the broker now.
	ErrNotConnected = errors.New("not connected to the broker")
	// ErrUnconfirmed: the broker has not confirmed a DM yet. It stays in
	// the client's outbox and is sent again (same id) on every reconnect
	// until the broker confirms it.
	ErrUnconfirmed = errors.New("DM not yet confirmed by the broker; it will be retried with the same id")
)

// State is a snapshot of a client's connection.
type State struct {
	Connected bool
	URL       string
	Since     time.Time // when the current connection or outage began
	LastError error     // why the last connection ended or failed
	Attempts  int       // failed attempts since the last good connection
	// Replaced is true while another process holds this session: the
	// client is in standby (see Session) and LastError says since when.
	Replaced bool
	// Refused is true when the broker refused the session for good (not a
	// member, removed, another member's session key): the client does not
	// reconnect until Reconnect is called; LastError says why.
	Refused bool
	// Unauthorized is true when the broker refused the credential of the
	// last attempt (wire.CodeUnauthorized): the endpoint had none, or not
	// the broker's. The client keeps retrying, and reads the endpoint, and
	// with it the credential, afresh before every attempt: a client whose
	// broker was restarted with a new credential gets back in once the
	// endpoint has it.
	Unauthorized bool
	Outbox       int // DMs sent but not yet confirmed
}

// Session is a broker connection that keeps itself up. Its methods are safe
// for concurrent use.
//
// When another process presents the same session key, the broker gives the
// session to the newest hello and closes the older connection with
// session_replaced. The replaced client then goes to standby instead of
// reconnecting, so that two processes never fight over one session: every
// StandbyProbe it says a standby hello, which the broker accepts only once
// the other process has been gone for the grace period, and Reconnect
// takes the session back at once.
type Session struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	cur       *clientConn
	state     State
	up        chan struct{} // closed while connected; replaced on disconnect
	outbox    map[string]*outgoing
	order     []string                  // outbox ids in send order
	reqs      map[uint64]chan reqResult // requests (peers, status) waiting for their answer; each channel has room for its one answer, so it is answered under mu without blocking
	nextReq   uint64
	closed    bool
	inStandby bool          // another process holds the session
	reconnect chan struct{} // capacity 1: wakes a client that stopped retrying
	// changed is closed and replaced whenever state changes (a connection
	// is up or lost, an attempt failed, standby, refusal).
	changed chan struct{}
	// started and ended count connection attempts begun and finished
	// (connected or failed); attempts run one at a time.
	started, ended uint64

	quit     chan struct{}
	done     chan struct{}
	quitOnce sync.Once
}

type outgoing struct {
	id      string
	frame   []byte
	written bool          // handed to a connection at least once
	done    chan struct{} // closed with sent/err set
	sent    wire.Sent
	err     error
}

// reqResult answers a request: the broker's answer frame, or an error.
type reqResult struct {
	f   wire.Frame
	err error
}

// Dial starts a client that connects to the broker in the background and
// stays connected until Close. It does not wait for the first connection;
// see WaitConnected.
func Dial(cfg Config) (*Session, error) {
	if cfg.Key == nil || cfg.Endpoint == nil {
		return nil, errors.New("dial broker: key and endpoint are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnDM == nil {
		cfg.OnDM = func(wire.DM) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MinBackoff, 250*time.Millisecond)
	def(&cfg.MaxBackoff, 30*time.Second)
	def(&cfg.DialTimeout, 10*time.Second)
	def(&cfg.PingInterval, 30*time.Second)
	def(&cfg.PongTimeout, 75*time.Second)
	def(&cfg.StandbyProbe, 30*time.Second)
	def(&cfg.AttestFor, 24*time.Hour)
	if cfg.PingInterval >= cfg.PongTimeout {
		cfg.PingInterval = cfg.PongTimeout / 3
	}
	if cfg.Instance == "" {
		cfg.Instance = uuid.NewString()
	}
	c := &Session{
		cfg:       cfg,
		log:       cfg.Logger,
		up:        make(chan struct{}),
		outbox:    make(map[string]*outgoing),
		reqs:      make(map[uint64]chan reqResult),
		reconnect: make(chan struct{}, 1),
		changed:   make(chan struct{}),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	c.state.Since = time.Now()
	go c.run()
	return c, nil
}

// Close says bye to the broker, which ends the session's presence at once
// (no grace period), disconnects, and returns once the client's goroutines
// have exited. Unconfirmed DMs are abandoned. It is idempotent.
func (c *Session) Close() error {
	return c.close(false)
}

// Leave waits (until ctx ends) for the broker to confirm the DMs in the
// outbox, then closes the client like Close. With forget the broker also
// forgets the session unless DMs wait for it: for an identity that turned
// out never to be a real session.
func (c *Session) Leave(ctx context.Context, forget bool) error {
	for o := c.oldestOutgoing(); o != nil; o = c.oldestOutgoing() {
		select {
		case <-o.done:
		case <-ctx.Done():
			return c.close(forget)
		}
	}
	return c.close(forget)
}

// oldestOutgoing returns the oldest DM not yet confirmed, or nil.
func (c *Session) oldestOutgoing() *outgoing {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.order) == 0 {
		return nil
	}
	return c.outbox[c.order[0]]
}

func (c *Session) close(forget bool) error {
	c.quitOnce.Do(func() {
		bye, _ := wire.Encode(wire.Bye{Forget: forget})
		c.mu.Lock()
		c.closed = true
		if c.cur != nil {
			c.cur.tryWrite(bye) // the writer sends it before closing
		}
		for _, o := range c.outbox {
			o.err = ErrClosed
			close(o.done)
		}
		clear(c.outbox)
		c.order = nil
		c.mu.Unlock()
		close(c.quit)
	})
	<-c.done
	return nil
}

// State returns a snapshot of the connection state.
func (c *Session) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state
	st.Outbox = len(c.outbox)
	return st
}

// Reconnect makes a client that stopped retrying (another connection took
// its session key) try again now.
func (c *Session) Reconnect() {
	select {
	case c.reconnect <- struct{}{}:
	default:
	}
}

// WaitConnected waits until the client is connected or ctx ends.
func (c *Session) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.cur != nil {
			c.mu.Unlock()
			return nil
		}
		up := c.up
		c.mu.Unlock()
		select {
		case <-up:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.quit:
			return ErrClosed
		}
	}
}

// Ready returns nil when the client is connected. Otherwise it returns why
// not (an error wrapping ErrNotConnected and the last error, or ErrClosed),
// at once when the reason is known: the last connection attempt failed
// (the client keeps retrying in the background), the broker refused the
// session, or another process holds it. Only while no attempt has ended
// since the client started or lost its connection does it wait, until an
// attempt ends or ctx does.
func (c *Session) Ready(ctx context.Context) error {
	return c.await(ctx, func() bool { return c.state.Attempts > 0 || c.state.Refused || c.state.Replaced },
		func() error {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.notConnectedLocked()
		})
}

// await waits until the client is connected (nil), closed (ErrClosed),
// failed reports true, with c.mu held, (why it is not connected), or ctx
// ends (what expired returns).
func (c *Session) await(ctx context.Context, failed func() bool, expired func() error) error {
	for {
		c.mu.Lock()
		switch {
		case c.closed:
			c.mu.Unlock()
			return ErrClosed
		case c.cur != nil:
			c.mu.Unlock()
			return nil
		case failed():
			err := c.notConnectedLocked()
			c.mu.Unlock()
			return err
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-c.quit:
			return ErrClosed
		case <-ctx.Done():
			return expired()
		}
	}
}

// TakeOver makes a client in standby (another process holds its session)
// take the session back now, which puts the other process in standby, and
// waits until the client is connected (nil), that attempt failed (why), or
// ctx ends. A client not in standby is left as it is: TakeOver returns nil
// at once.
func (c *Session) TakeOver(ctx context.Context) error {
	c.mu.Lock()
	if !c.state.Replaced {
		c.mu.Unlock()
		return nil
	}
	// An attempt in flight now may be a standby probe: wait for one that
	// begins after the request.
	after := c.started
	c.mu.Unlock()
	c.Reconnect()
	return c.await(ctx, func() bool { return c.ended > after },
		func() error { return fmt.Errorf("take over the session: %w", ctx.Err()) })
}

// Send hands one sealed DM to the broker and waits for the broker's
// confirmation that it is stored: wire.StatusDelivered or
// wire.StatusQueued. A broker refusal is returned as a *wire.Error.
//
// The DM survives reconnects: it is sent again with the same id until the
// broker confirms it, so it is stored once. If ctx ends before the
// confirmation, Send returns ErrUnconfirmed when the DM was already handed
// to a connection (it stays in the outbox and keeps being retried), or
// ErrNotConnected when it never was (it is withdrawn).
func (c *Session) Send(ctx context.Context, id string, to ed25519.PublicKey, nonce [wire.NonceSize]byte, box []byte) (string, error) {
	sent, err := c.send(ctx, wire.Send{ID: id, To: wire.Key(to), Nonce: nonce[:], Box: box})
	return sent.Status, err
}

// SendGroup hands a group send to the broker: one sealed box per recipient
// of group (a group name, or wire.GroupAll), sealed to the DM id
// wire.GroupDMID(id, recipient). It waits, and survives reconnects, as Send
// does, and returns the broker's answer with each recipient's status. A
// box set that is not the group's members now is refused with a
// *wire.Error of code wire.CodeGroupChanged whose Members are the
// recipients to seal to instead (then send again with the same id).
func (c *Session) SendGroup(ctx context.Context, id, group string, boxes []wire.Box) (wire.Sent, error) {
	return c.send(ctx, wire.Send{ID: id, Group: group, Boxes: boxes})
}

func (c *Session) send(ctx context.Context, f wire.Send) (wire.Sent, error) {
	id := f.ID
	frame, err := wire.Encode(f)
	if err != nil {
		return wire.Sent{}, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return wire.Sent{}, ErrClosed
	}
	o, ok := c.outbox[id]
	if !ok {
		o = &outgoing{id: id, frame: frame, done: make(chan struct{})}
		c.outbox[id] = o
		c.order = append(c.order, id)
	}
	cur := c.cur
	if cur != nil {
		o.written = true
	}
	c.mu.Unlock()
	if cur != nil {
		cur.write(frame)
	}
	select {
	case <-o.done:
		return o.sent, o.err
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		select {
		case <-o.done:
			return o.sent, o.err
		default:
		}
		if o.written {
			return wire.Sent{}, ErrUnconfirmed
		}
		c.dropOutgoingLocked(id)
		return wire.Sent{}, c.notConnectedLocked()
	}
}

// dropOutgoingLocked removes id from the outbox. c.mu must be held.
func (c *Session) dropOutgoingLocked(id string) *outgoing {
	o := c.outbox[id]
	if o == nil {
		return nil
	}
	delete(c.outbox, id)
	for i, v := range c.order {
		if v == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	return o
}

// complete resolves the outbox entry id, if it is still there.
func (c *Session) complete(sent wire.Sent, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.dropOutgoingLocked(sent.ID)
	if o == nil {
		return false
	}
	o.sent, o.err = sent, err
	close(o.done)
	return true
}

// Peers returns the sessions of the client's mesh: online ones and those
// seen within the broker's queue TTL.
func (c *Session) Peers(ctx context.Context) ([]wire.Peer, error) {
	f, err := c.request(ctx, "list peers", func(req uint64) wire.Frame { return wire.PeersRequest{Req: req} })
	if err != nil {
		return nil, err
	}
	l, ok := f.(wire.PeerList)
	if !ok {
		return nil, fmt.Errorf("list peers: broker answered with a %s frame", f.Type())
	}
	return l.Peers, nil
}

// Status reports where DMs this session sent stand: one status per id, in
// the order of ids. A DM another session sent, or one the broker has
// forgotten, is wire.StateUnknown. More than wire.MaxAckIDs ids take several
// requests. Without a connection it returns ErrNotConnected; a broker that
// predates status requests does not answer, so bound ctx.
func (c *Session) Status(ctx context.Context, ids []string) ([]wire.MessageStatus, error) {
	var out []wire.MessageStatus
	for chunk := range chunks(ids, wire.MaxAckIDs) {
		f, err := c.request(ctx, "DM status", func(req uint64) wire.Frame { return wire.StatusRequest{Req: req, IDs: chunk} })
		if err != nil {
			return nil, err
		}
		l, ok := f.(wire.StatusList)
		if !ok {
			return nil, fmt.Errorf("DM status: broker answered with a %s frame", f.Type())
		}
		if len(l.Statuses) != len(chunk) {
			return nil, fmt.Errorf("DM status: broker answered %d statuses for %d ids", len(l.Statuses), len(chunk))
		}
		out = append(out, l.Statuses...)
	}
	return out, nil
}

// request sends the frame that build makes for a fresh request number and
// waits for the broker's answer to that number. A broker's refusal is a
// *wire.Error; the end of ctx is wrapped with what.
func (c *Session) request(ctx context.Context, what string, build func(req uint64) wire.Frame) (wire.Frame, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	cur := c.cur
	if cur == nil {
		err := c.notConnectedLocked()
		c.mu.Unlock()
		return nil, err
	}
	c.nextReq++
	req := c.nextReq
	ch := make(chan reqResult, 1)
	c.reqs[req] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.reqs, req)
		c.mu.Unlock()
	}()

	frame, err := wire.Encode(build(req))
	if err != nil {
		return nil, err
	}
	if !cur.write(frame) {
		return nil, ErrNotConnected
	}
	select {
	case r := <-ch:
		return r.f, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// notConnectedLocked explains the outage: ErrNotConnected, wrapping the last
// error too (a broker's refusal stays a *wire.Error). c.mu must be held.
func (c *Session) notConnectedLocked() error {
	if c.state.LastError != nil {
		return fmt.Errorf("%w: %w", ErrNotConnected, c.state.LastError)
	}
	return ErrNotConnected
}

// changedLocked wakes whoever waits for a change of state. c.mu must be
// held.
func (c *Session) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Ack tells the broker that DMs were read (returned to the model) so it
// forgets them. Without a connection it returns ErrNotConnected and the
// broker will deliver them again later.
func (c *Session) Ack(ids []string) error {
	return c.writeChunks(ids, func(chunk []string) wire.Frame { return wire.Ack{IDs: chunk} })
}

// Clear tells the broker that the user dismissed DMs unread; like Ack, the
// broker forgets them, but their senders see them cleared, not read.
func (c *Session) Clear(ids []string) error {
	return c.writeChunks(ids, func(chunk []string) wire.Frame { return wire.Ack{IDs: chunk, Cleared: true} })
}

// Receipt reports that DMs addressed to this session reached state
// (wire.ReceiptReceived or wire.ReceiptPushed) now, so that their senders
// can see it. The broker keeps the first report of each state. Without a
// connection it returns ErrNotConnected.
func (c *Session) Receipt(ids []string, state string) error {
	if state != wire.ReceiptReceived && state != wire.ReceiptPushed {
		return fmt.Errorf("receipt: unknown state %q", state)
	}
	at := c.cfg.Now()
	return c.writeChunks(ids, func(chunk []string) wire.Frame { return wire.Receipt{IDs: chunk, State: state, At: at} })
}

// writeChunks queues the frames that frame makes for ids, at most
// wire.MaxAckIDs ids each, on the current connection.
func (c *Session) writeChunks(ids []string, frame func(chunk []string) wire.Frame) error {
	if len(ids) == 0 {
		return nil
	}
	c.mu.Lock()
	cur := c.cur
	if cur == nil {
		err := c.notConnectedLocked()
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	for chunk := range chunks(ids, wire.MaxAckIDs) {
		b, err := wire.Encode(frame(chunk))
		if err != nil {
			return err
		}
		if !cur.write(b) {
			return ErrNotConnected
		}
	}
	return nil
}

func chunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// run owns the connection: connect, serve, back off, repeat.
func (c *Session) run() {
	defer close(c.done)
	// ctx ends when the client closes, aborting a dial in progress.
	ctx, cancel := context.WithCancel(context.Background())
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() { cancel(); <-watcher }()
	attempts := 0
	for {
		select {
		case <-c.quit:
			return
		default:
		}
		c.mu.Lock()
		c.started++
		c.mu.Unlock()
		ep, err := c.cfg.Endpoint()
		var cc *clientConn
		if err == nil {
			cc, err = c.connect(ctx, ep)
		}
		if err != nil {
			attempts++
			if c.setFailed(ep.URL, err, attempts) {
				c.log.Warn("the broker refused this session's credential; retrying, with the credential read afresh each time", "url", ep.URL, "err", err)
			}
			c.log.Debug("broker connection failed", "url", ep.URL, "attempt", attempts, "err", err)
		} else {
			start := time.Now()
			err = c.serve(cc)
			if time.Since(start) > 10*time.Second {
				attempts = 0
			}
			attempts++
			c.log.Info("broker connection lost", "url", ep.URL, "err", err)
		}
		if refused(err) {
			c.log.Warn("the broker refuses this session; not reconnecting until asked", "err", err)
			c.setRefused(true)
			select {
			case <-c.quit:
				return
			case <-c.reconnect:
				c.setRefused(false)
			}
			attempts = 0
			continue
		}
		if standby(err) {
			if we, _ := errors.AsType[*wire.Error](err); we.Code == wire.CodeSessionReplaced {
				c.log.Warn("this session is active in another process; standing by instead of taking it back", "probe", c.cfg.StandbyProbe)
			} else {
				c.log.Debug("session still active in another process", "err", err)
			}
			select {
			case <-c.quit:
				return
			case <-c.reconnect:
				c.setStandby(false) // asked to take the session back
			case <-time.After(jitter(c.cfg.StandbyProbe)):
			}
			attempts = 0
			continue
		}
		if Draining(err) {
			// The broker asked its sessions to move: the next attempt,
			// at once, goes to the next broker of the list.
			continue
		}
		select {
		case <-c.quit:
			return
		case <-c.reconnect:
		case <-time.After(c.backoff(attempts)):
		}
	}
}

// Draining reports whether err is a broker's word that it is shutting
// down and its sessions should reconnect, to another broker if they know
// one.
func Draining(err error) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == wire.CodeShuttingDown
}

// refused reports whether err is a refusal that retrying cannot fix: the
// key is not (or no longer) a member, or another member owns the session
// key.
func refused(err error) bool {
	we, ok := errors.AsType[*wire.Error](err)
	if !ok {
		return false
	}
	switch we.Code {
	case wire.CodeNotMember, wire.CodeMemberRemoved, wire.CodeSessionOwned, wire.CodeSessionIDTaken, wire.CodeAttestationRequired, wire.CodeBadAttestation:
		return true
	}
	return false
}

func (c *Session) setRefused(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.Refused = v
	c.changedLocked()
}

// standby reports whether err means another process holds the session.
func standby(err error) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && (we.Code == wire.CodeSessionReplaced || we.Code == wire.CodeSessionActive)
}

func (c *Session) setStandby(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inStandby = v
	c.state.Replaced = v
	c.changedLocked()
}

// unauthorized reports whether err is the broker refusing the credential.
func unauthorized(err error) bool {
	we, ok := errors.AsType[*wire.Error](err)
	return ok && we.Code == wire.CodeUnauthorized
}

// jitter returns a random duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func (c *Session) backoff(attempts int) time.Duration {
	d := c.cfg.MinBackoff << min(attempts-1, 16)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return jitter(d)
}

// setFailed records a failed attempt. It reports whether the broker
// refused the credential where the attempt before did not.
func (c *Session) setFailed(url string, err error, attempts int) (newlyUnauthorized bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended++
	c.state.URL = url
	c.state.LastError = err
	c.state.Attempts = attempts
	u := unauthorized(err)
	newlyUnauthorized = u && !c.state.Unauthorized
	c.state.Unauthorized = u
	if standby(err) {
		c.inStandby, c.state.Replaced = true, true
	}
	c.changedLocked()
	return newlyUnauthorized
}

// connect dials ep and completes the hello.
func (c *Session) connect(ctx context.Context, ep Endpoint) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	d, err := c.dialer(ep.URL)
	if err != nil {
		return nil, err
	}
	// The WebSocket handshake heeds ctx's deadline but not its
	// cancellation: close the socket when ctx ends, so that Close never
	// waits for a dial that hangs. Deferred after cancel, stop runs first.
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	closeOnDone := func(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
		return func(dctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(dctx, network, addr)
			if err == nil {
				stop = context.AfterFunc(ctx, func() { conn.Close() })
			}
			return conn, err
		}
	}
	if d.NetDialTLSContext != nil {
		d.NetDialTLSContext = closeOnDone(d.NetDialTLSContext)
	} else {
		d.NetDialContext = closeOnDone((&net.Dialer{}).DialContext)
	}
	ws, _, err := d.DialContext(ctx, ep.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", ep.URL, err)
	}
	ws.SetReadLimit(wire.MaxFrameSize)
	deadline, _ := ctx.Deadline()
	ws.SetReadDeadline(deadline)
	ws.SetWriteDeadline(deadline)
	fail := func(err error) (*clientConn, error) {
		ws.Close()
		return nil, err
	}
	f, err := readFrame(ws)
	if err != nil {
		return fail(fmt.Errorf("read challenge from %s: %w", ep.URL, err))
	}
	ch, ok := f.(wire.Challenge)
	if !ok {
		return fail(fmt.Errorf("broker %s sent %s before its challenge", ep.URL, f.Type()))
	}
	k := c.cfg.Key
	h := wire.Hello{
		Version:    wire.Version,
		Mesh:       k.Mesh,
		SessionID:  k.SessionID,
		Key:        wire.Key(k.Public),
		Name:       c.cfg.Name,
		ProjectDir: c.cfg.ProjectDir,
		Token:      ep.Token,
		Instance:   c.cfg.Instance,
		Standby:    c.inStandbyNow(),
		Kind:       c.cfg.Kind,
	}
	if c.cfg.Member != nil {
		h.Attestation = wire.Attest(c.cfg.Member, k.Mesh, wire.Key(k.Public), c.cfg.Now().Add(c.cfg.AttestFor))
	}
	h.Sig = ed25519.Sign(k.Private, wire.HelloTranscript(ch.Nonce, h))
	b, err := wire.Encode(h)
	if err != nil {
		return fail(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return fail(fmt.Errorf("send hello to %s: %w", ep.URL, err))
	}
	f, err = readFrame(ws)
	if err != nil {
		return fail(fmt.Errorf("read welcome from %s: %w", ep.URL, err))
	}
	w, ok := f.(wire.Welcome)
	if !ok {
		return fail(fmt.Errorf("broker %s sent %s instead of welcome", ep.URL, f.Type()))
	}
	ws.SetWriteDeadline(time.Time{})
	cc := &clientConn{url: ep.URL, ws: ws, out: make(chan []byte, 64), dead: make(chan struct{}), writerDone: make(chan struct{})}
	c.log.Info("connected to broker", "url", ep.URL, "key_id", w.KeyID, "replaced", w.Replaced, "standby", h.Standby)
	return cc, nil
}

func (c *Session) inStandbyNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inStandby
}

// readFrame reads one frame; an error frame is returned as the error.
func readFrame(ws *websocket.Conn) (wire.Frame, error) {
	typ, data, err := ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		return nil, errors.New("broker sent a binary message")
	}
	f, err := wire.Decode(data)
	if err != nil {
		return nil, err
	}
	if e, ok := f.(*wire.Error); ok {
		return nil, e
	}
	return f, nil
}

// serve runs an established connection until it fails; it returns why.
func (c *Session) serve(cc *clientConn) error {
	go cc.writer(c.quit, c.cfg.PingInterval)
	defer func() {
		cc.kill()
		<-cc.writerDone
	}()

	c.mu.Lock()
	c.cur = cc
	c.inStandby = false
	c.ended++
	c.state = State{Connected: true, URL: cc.url, Since: time.Now()}
	close(c.up)
	c.changedLocked()
	var resend [][]byte
	for _, id := range c.order {
		o := c.outbox[id]
		o.written = true
		resend = append(resend, o.frame)
	}
	c.mu.Unlock()
	for _, b := range resend {
		if !cc.write(b) {
			break
		}
	}

	refresh := func() { cc.ws.SetReadDeadline(time.Now().Add(c.cfg.PongTimeout)) }
	refresh()
	cc.ws.SetPongHandler(func(string) error { refresh(); return nil })
	cc.ws.SetPingHandler(func(data string) error {
		refresh()
		err := cc.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	// An error frame that answers no request either explains why the
	// broker is about to close the connection (keep it as the reason and
	// read on until the connection actually ends) or refuses a frame.
	var reason *wire.Error
	var err error
	for {
		var f wire.Frame
		f, err = readFrame(cc.ws)
		if e, ok := errors.AsType[*wire.Error](err); ok {
			refresh()
			if c.retryLater(e) {
				// The broker could not store a DM (its database is
				// away, say): reconnect with backoff, maybe to another
				// broker, and resend it with the same id.
				c.log.Info("the broker could not store a DM; reconnecting to resend it", "msg_id", e.Ref, "msg", e.Message)
				reason = e
				break
			}
			if !c.handleError(e) {
				c.log.Info("broker error", "code", e.Code, "msg", e.Message)
				if terminal(e.Code) {
					reason = e
				}
			}
			continue
		}
		if err != nil {
			break
		}
		refresh()
		c.handle(f)
	}
	if reason != nil {
		err = reason
	}

	c.mu.Lock()
	c.cur = nil
	c.up = make(chan struct{})
	c.state.Connected = false
	c.state.Since = time.Now()
	c.state.LastError = err
	if standby(err) {
		c.inStandby, c.state.Replaced = true, true
	}
	c.changedLocked()
	for req, ch := range c.reqs {
		ch <- reqResult{err: ErrNotConnected}
		delete(c.reqs, req)
	}
	c.mu.Unlock()
	return err
}

// handle dispatches one frame from the broker. An error frame that ends the
// connection arrives as readFrame's error, not here.
func (c *Session) handle(f wire.Frame) {
	switch f := f.(type) {
	case wire.Sent:
		c.complete(f, nil)
	case wire.Groups:
		c.resolve(f.Req, reqResult{f: f})
	case wire.OK:
		c.resolve(f.Req, reqResult{f: f})
	case wire.DM:
		c.cfg.OnDM(f)
	case wire.PeerList:
		c.resolve(f.Req, reqResult{f: f})
	case wire.StatusList:
		c.resolve(f.Req, reqResult{f: f})
	default:
		c.log.Debug("unexpected frame from broker", "type", f.Type())
	}
}

// resolve answers the request req, if it still waits.
func (c *Session) resolve(req uint64, r reqResult) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.reqs[req]
	if ok {
		ch <- r
		delete(c.reqs, req)
	}
	return ok
}

// retryLater reports whether e answers a DM of the outbox with internal:
// the broker failed to store it, and nothing was stored, so the DM stays
// in the outbox to be resent with the same id after a reconnect, and the
// caller of Send sees ErrUnconfirmed rather than a refusal.
func (c *Session) retryLater(e *wire.Error) bool {
	if e.Code != wire.CodeInternal || e.Ref == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.outbox[e.Ref]
	return ok
}

// handleError routes an error frame that answers a request.
func (c *Session) handleError(e *wire.Error) bool {
	if e.Ref == "" {
		return false
	}
	if c.complete(wire.Sent{ID: e.Ref}, e) {
		return true
	}
	if req, err := strconv.ParseUint(e.Ref, 10, 64); err == nil {
		return c.resolve(req, reqResult{err: e})
	}
	return false
}

// terminal reports whether an error frame code ends the connection.
func terminal(code string) bool {
	switch code {
	case wire.CodeSessionReplaced, wire.CodeShuttingDown, wire.CodeTooLarge, wire.CodeInternal, wire.CodeMemberRemoved:
		return true
	}
	return false
}

// clientConn is one established connection: the client's read loop runs
// in Session.serve, the writer here.
type clientConn struct {
	url        string
	ws         *websocket.Conn
	out        chan []byte
	dead       chan struct{}
	deadOnce   sync.Once
	writerDone chan struct{}
}

func (cc *clientConn) kill() { cc.deadOnce.Do(func() { close(cc.dead) }) }

// write queues a frame; it reports false once the connection is dead.
func (cc *clientConn) write(b []byte) bool {
	select {
	case cc.out <- b:
		return true
	case <-cc.dead:
		return false
	}
}

// tryWrite queues a frame unless the queue is full.
func (cc *clientConn) tryWrite(b []byte) {
	select {
	case cc.out <- b:
	default:
	}
}

// writer sends the queued frames and pings the broker. It ends the
// connection when the connection dies or the client closes (quit), sending
// what is still queued first (acks, a bye): closing the socket is what ends
// the read loop in Session.serve.
func (cc *clientConn) writer(quit <-chan struct{}, pingEvery time.Duration) {
	defer close(cc.writerDone)
	defer cc.ws.Close()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	closeConn := func() {
		cc.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	}
	for {
		select {
		case b := <-cc.out:
			cc.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := cc.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				cc.kill()
				return
			}
		case <-ping.C:
			if err := cc.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				cc.kill()
				return
			}
		case <-quit:
			cc.kill()
			cc.ws.SetWriteDeadline(time.Now().Add(time.Second))
			for drained := false; !drained; {
				select {
				case b := <-cc.out:
					if cc.ws.WriteMessage(websocket.TextMessage, b) != nil {
						drained = true
					}
				default:
					drained = true
				}
			}
			closeConn()
			return
		case <-cc.dead:
			closeConn()
			return
		}
	}
}

// JoinGroup makes the session a member of group and returns the groups it
// belongs to now. Membership is the broker's: it lasts across reconnects
// and restarts until LeaveGroup, or until the broker forgets the session.
func (c *Session) JoinGroup(ctx context.Context, group string) ([]string, error) {
	return c.membership(ctx, "join group", func(req uint64) wire.Frame { return wire.JoinGroup{Req: req, Group: group} })
}

// LeaveGroup ends the session's membership of group and returns the groups
// it belongs to now.
func (c *Session) LeaveGroup(ctx context.Context, group string) ([]string, error) {
	return c.membership(ctx, "leave group", func(req uint64) wire.Frame { return wire.LeaveGroup{Req: req, Group: group} })
}

func (c *Session) membership(ctx context.Context, what string, build func(req uint64) wire.Frame) ([]string, error) {
	f, err := c.request(ctx, what, build)
	if err != nil {
		return nil, err
	}
	g, ok := f.(wire.Groups)
	if !ok {
		return nil, fmt.Errorf("%s: broker answered with a %s frame", what, f.Type())
	}
	return g.Groups, nil
}

// SetStatus changes what the session says about itself (see wire.SetStatus:
// what st leaves out stays as it was).
func (c *Session) SetStatus(ctx context.Context, st wire.SetStatus) error {
	f, err := c.request(ctx, "set status", func(req uint64) wire.Frame { st.Req = req; return st })
	if err != nil {
		return err
	}
	if _, ok := f.(wire.OK); !ok {
		return fmt.Errorf("set status: broker answered with a %s frame", f.Type())
	}
	return nil
}
