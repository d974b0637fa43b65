package broker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// handleSend is one DM's way in: the recipient must be a valid key known
// in the mesh, the sender within its rates and the recipient's queue
// within its caps; then the DM is stored, and only then is the sender
// answered sent — delivered when the recipient is connected (its pump is
// woken), else queued. A refusal names the DM in its ref; nothing stored
// changes.
func (sc *sessionConn) handleSend(ctx context.Context, f wire.Send) {
	s := sc.s
	mesh := sc.hello.Mesh
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	refuse := func(e *wire.Error) {
		e.Ref = f.ID
		sc.reply(e)
	}
	if !s.validKeys.valid(f.To) {
		refuse(wire.Errorf(wire.CodeUnknownPeer, "recipient key %s is not a valid session key", identity.KeyID(ed25519.PublicKey(f.To))))
		return
	}
	now := s.cfg.Now()
	if !sc.sendRate.Allow(now) || !s.allowSend(mesh, sc.member, now) {
		refuse(wire.Errorf(wire.CodeRateLimited, "too many DMs per second (this session may send %g, its member %g); retry later with the same id", s.cfg.SendRate, s.cfg.MemberSendRate))
		return
	}
	if s.live(mesh, f.To) == nil {
		_, err := s.cfg.Store.Session(ctx, mesh, f.To)
		if e := storeRefusal(sc.log, opRecipient, err, about{mesh: mesh, key: f.To, id: f.ID}); e != nil {
			refuse(e)
			return
		}
	}
	sender, who := sc.hello.Key, "this session has"
	if sc.member != nil {
		sender, who = sc.member, "this member's sessions have"
	}
	full, err := s.queueRoom(ctx, mesh, f.To, sender, int64(len(f.Box)), now)
	if e := storeRefusal(sc.log, opQueueStats, err, about{id: f.ID}); e != nil {
		refuse(e)
		return
	}
	switch {
	case full == nil:
	case full.perSender:
		refuse(wire.Errorf(wire.CodeQueueFull, "%s %d DMs (%d bytes) waiting unread for %s; one sender may leave at most %d DMs, %d bytes for one recipient, so that no sender fills its queue. Retry once it has read some", who, full.n, full.bytes, identity.KeyID(ed25519.PublicKey(f.To)), s.cfg.MaxQueuedPerSender, s.cfg.MaxQueuedBytesPerSender))
		return
	default:
		refuse(wire.Errorf(wire.CodeQueueFull, "%d DMs (%d bytes) already wait for %s; a recipient may have at most %d DMs, %d bytes waiting. Retry once it has read some", full.n, full.bytes, identity.KeyID(ed25519.PublicKey(f.To)), s.cfg.MaxQueued, s.cfg.MaxQueuedBytes))
		return
	}
	expires := now.Add(s.cfg.QueueTTL)
	res, err := s.cfg.Store.Enqueue(ctx, store.Message{
		ID:          f.ID,
		Mesh:        mesh,
		From:        sc.hello.Key,
		FromName:    sc.hello.Name,
		FromSession: sc.hello.SessionID,
		To:          f.To,
		Sender:      sc.member,
		Nonce:       f.Nonce,
		Box:         f.Box,
		CreatedAt:   now,
		ExpiresAt:   expires,
	})
	if e := storeRefusal(sc.log, opEnqueue, err, about{id: f.ID}); e != nil {
		refuse(e)
		return
	}
	if res != store.Stored {
		expires = sc.storedExpiry(ctx, f.ID, now)
	}
	status := wire.StatusQueued
	switch {
	case res == store.AlreadyAcked:
		status = wire.StatusDelivered
	case res == store.AlreadyExpired:
		// Not delivered any more; Sent.ExpiresAt, in the past, says why.
	default:
		if s.pushNow(ctx, sc, mesh, f.To) {
			status = wire.StatusDelivered
		}
	}
	sc.log.Debug("DM stored", "msg_id", f.ID, "to", identity.KeyID(ed25519.PublicKey(f.To)), "result", res, "status", status)
	sc.send(wire.Sent{ID: f.ID, Status: status, ExpiresAt: expires})
}

// pushNow wakes the connection of recipient `to` to push what was stored
// for it, on this node or, through an event, on the node that holds it. It
// reports whether the recipient is connected.
func (s *Server) pushNow(ctx context.Context, sc *sessionConn, mesh string, to []byte) bool {
	if rc := s.live(mesh, to); rc != nil {
		rc.wake()
		return true
	}
	if s.mem != nil {
		return false // alone: not here is not connected
	}
	l, err := s.cluster.Lease(ctx, mesh, to, s.leaseTimes())
	if storeRefusal(sc.log, opLease, err, about{mesh: mesh, key: to}) != nil || err != nil || l.State != store.LeaseOnline {
		return false
	}
	s.publish(ctx, store.Event{Kind: store.EventDM, Mesh: mesh, Key: to})
	return true
}

// storedExpiry returns the expiry of the DM id this session stored before,
// for the answer to a resend; zero (left out of the answer) when it cannot
// be read.
func (sc *sessionConn) storedExpiry(ctx context.Context, id string, now time.Time) time.Time {
	sts, err := sc.s.cfg.Store.Status(ctx, sc.hello.Mesh, sc.hello.Key, []string{id}, now)
	if err != nil {
		sc.log.Warn("read expiry of a resent DM", "msg_id", id, "err", err)
		return time.Time{}
	}
	return sts[0].ExpiresAt
}

// pendingPage is how many stored DMs a connection's pump reads at a time.
const pendingPage = 128

// wake tells the pump that the store may hold new DMs for this session.
func (sc *sessionConn) wake() {
	select {
	case sc.kick <- struct{}{}:
	default:
	}
}

// pump pushes the session's queued DMs to the client, oldest first, each
// once per connection. It runs until the connection shuts down.
func (sc *sessionConn) pump(ctx context.Context) {
	var cursor string // last DM read from the store on this connection
	for {
		select {
		case <-sc.quit:
			return
		case <-sc.kick:
		}
		for {
			readCtx, cancel := context.WithTimeout(ctx, storeTimeout)
			msgs, err := sc.s.cfg.Store.Pending(readCtx, sc.hello.Mesh, sc.hello.Key, sc.s.cfg.Now(), cursor, pendingPage)
			cancel()
			if errors.Is(err, store.ErrNotFound) && cursor != "" {
				cursor = "" // the cursor's DM expired: rescan, skipping what is in flight
				continue
			}
			if e := storeRefusal(sc.log, opReadQueue, err, about{}); e != nil {
				sc.shutdown(e)
				return
			}
			for _, m := range msgs {
				cursor = m.ID
				if !sc.markInflight(m.ID) {
					continue
				}
				if !sc.send(dmFrame(m)) {
					return
				}
			}
			if len(msgs) < pendingPage {
				break
			}
		}
	}
}

func (sc *sessionConn) markInflight(id string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if _, ok := sc.inflight[id]; ok {
		return false
	}
	sc.inflight[id] = struct{}{}
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

// handleAck records that the session read (or, cleared, dismissed) DMs
// addressed to it, at the broker's time.
func (sc *sessionConn) handleAck(ctx context.Context, f wire.Ack) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := sc.s.cfg.Store.Ack(ctx, sc.hello.Mesh, sc.hello.Key, f.IDs, sc.s.cfg.Now(), f.Cleared)
	if e := storeRefusal(sc.log, opAck, err, about{}); e != nil {
		sc.reply(e)
		return
	}
	sc.mu.Lock()
	for _, id := range f.IDs {
		delete(sc.inflight, id)
	}
	sc.mu.Unlock()
}

// receiptStates maps receipt states from the wire to the store.
var receiptStates = map[string]string{
	wire.ReceiptReceived: store.ReceiptReceived,
	wire.ReceiptPushed:   store.ReceiptPushed,
}

// handleReceipt records how far the session got with DMs addressed to it.
// It dates the receipt with the client's time when that is not in the
// broker's future; the store ignores ids addressed to anyone else.
func (sc *sessionConn) handleReceipt(ctx context.Context, f wire.Receipt) {
	now := sc.s.cfg.Now()
	at := f.At
	if at.IsZero() || at.After(now) {
		at = now
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	n, err := sc.s.cfg.Store.Receipt(ctx, sc.hello.Mesh, sc.hello.Key, f.IDs, receiptStates[f.State], at)
	if e := storeRefusal(sc.log, opReceipt, err, about{state: f.State}); e != nil {
		sc.reply(e)
		return
	}
	sc.log.Debug("receipt recorded", "state", f.State, "ids", len(f.IDs), "recorded", n)
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
func (sc *sessionConn) handleStatus(ctx context.Context, f wire.StatusRequest) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	sts, err := sc.s.cfg.Store.Status(ctx, sc.hello.Mesh, sc.hello.Key, f.IDs, sc.s.cfg.Now())
	if e := storeRefusal(sc.log, opStatus, err, about{}); e != nil {
		e.Ref = wire.RefOf(f.Req)
		sc.reply(e)
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
	sc.send(wire.StatusList{Req: f.Req, Statuses: out})
}
