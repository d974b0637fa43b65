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
	if s.validKeys.check(f.To) != nil {
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
	// Times as every store keeps them (UTC, whole microseconds), so that a
	// DM handed to the recipient's pump says what a read of it would.
	created := now.UTC().Truncate(time.Microsecond)
	expires := created.Add(s.cfg.QueueTTL)
	m := store.Message{
		ID:          f.ID,
		Mesh:        mesh,
		From:        sc.hello.Key,
		FromName:    sc.hello.Name,
		FromSession: sc.hello.SessionID,
		To:          f.To,
		Sender:      sc.member,
		Nonce:       f.Nonce,
		Box:         f.Box,
		CreatedAt:   created,
		ExpiresAt:   expires,
	}
	rc := s.live(mesh, f.To)
	if rc != nil {
		rc.beginCommit()
	}
	res, err := s.cfg.Store.Enqueue(ctx, m)
	if rc != nil {
		rc.endCommit(m, err == nil && res == store.Stored)
	}
	if e := storeRefusal(sc.log, opEnqueue, err, about{id: f.ID}); e != nil {
		refuse(e)
		return
	}
	if res == store.Stored {
		s.cfg.Metrics.dmStored()
	} else {
		expires = sc.storedExpiry(ctx, f.ID, now)
	}
	status := wire.StatusQueued
	switch {
	case res == store.AlreadyAcked:
		status = wire.StatusDelivered
	case res == store.AlreadyExpired:
		// Not delivered any more; Sent.ExpiresAt, in the past, says why.
	default:
		if s.pushNow(ctx, sc, mesh, f.To, rc) {
			status = wire.StatusDelivered
		}
	}
	sc.log.Debug("DM stored", "msg_id", f.ID, "to", identity.KeyID(ed25519.PublicKey(f.To)), "result", res, "status", status)
	sc.send(wire.Sent{ID: f.ID, Status: status, ExpiresAt: expires})
}

// pushNow wakes the connection of recipient `to` to push what was stored
// for it, on this node or, through an event, on the node that holds it. It
// reports whether the recipient is connected. handed is the connection
// the DM was handed to, if any: it needs no other wake.
func (s *Server) pushNow(ctx context.Context, sc *sessionConn, mesh string, to []byte, handed *sessionConn) bool {
	if rc := s.live(mesh, to); rc != nil {
		if rc != handed {
			rc.wake()
		}
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

// handOffMax bounds the DMs handed to one connection's pump and not yet
// taken; beyond it the pump reads the store instead.
const handOffMax = 64

// wake tells the pump that the store may hold new DMs for this session,
// which it has to read.
func (sc *sessionConn) wake() {
	sc.mu.Lock()
	sc.rescan = true
	sc.mu.Unlock()
	sc.kickPump()
}

// kickPump tells the pump it has work, starting it if none runs.
func (sc *sessionConn) kickPump() {
	select {
	case sc.kick <- struct{}{}:
	default:
	}
	sc.mu.Lock()
	start := sc.pumpCtx != nil && !sc.pumpShut && !sc.pumping
	if start {
		sc.pumping = true
		sc.pumps.Add(1)
	}
	sc.mu.Unlock()
	if start {
		go sc.pump()
	}
}

// openPump lets kickPump start the pump, which reads the store within ctx.
func (sc *sessionConn) openPump(ctx context.Context) {
	sc.mu.Lock()
	sc.pumpCtx = ctx
	sc.mu.Unlock()
}

// closePump stops pumps from starting and waits for the one running, which
// returns as the connection shuts down.
func (sc *sessionConn) closePump() {
	sc.mu.Lock()
	sc.pumpShut = true
	sc.mu.Unlock()
	sc.pumps.Wait()
}

// pumpIdle ends the pump's run when it has no work left: false when a kick
// came in meanwhile.
func (sc *sessionConn) pumpIdle() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.kick) > 0 {
		return false
	}
	sc.pumping = false
	return true
}

// A DM that a sender on this node stores for a session connected here is
// handed to the session's pump, which pushes it without reading it back
// from the store, when that cannot change the order of the DMs nor skip
// one:
//
//   - the sender registers with the connection (beginCommit) before it
//     stores the DM and hands the stored DM over (endCommit) after its
//     commit; a send that found the session elsewhere or nowhere, a
//     resend, a failed store call, an event from another node or a
//     reconnection only wakes the pump, which then reads the store;
//   - when two registered sends overlap, neither is handed: their commit
//     order is the store's alone, so the pump reads the store. Handed DMs
//     therefore come one after another, each committed before the next
//     was even queued: the order of the hand-off is the commit order;
//   - a DM committed before a send began was either handed before it or
//     woke the pump before it (a sender wakes or hands over before it
//     answers sent), and a pump woken to read reads the store before it
//     takes what was handed (which the read covers, since each DM is
//     handed after its commit).
//
// The pump's store cursor never moves past a handed DM: a later read goes
// on from the last DM read from the store, skipping what is in flight on
// the connection, so a DM committed concurrently but handed to no one is
// still found.

// beginCommit registers a send to this session that is about to store its
// DM.
func (sc *sessionConn) beginCommit() {
	sc.mu.Lock()
	if sc.committing > 0 {
		sc.overlap = true
	}
	sc.committing++
	sc.mu.Unlock()
}

// endCommit ends a send registered by beginCommit. stored reports that m
// was stored by this send; otherwise the store may still have changed (a
// failed call may have committed), and the pump reads it.
func (sc *sessionConn) endCommit(m store.Message, stored bool) {
	sc.mu.Lock()
	if stored && !sc.overlap && !sc.rescan && len(sc.handed) < handOffMax {
		sc.handed = append(sc.handed, m)
	} else {
		sc.rescan = true
	}
	sc.committing--
	if sc.committing == 0 {
		sc.overlap = false
	}
	sc.mu.Unlock()
	sc.kickPump()
}

// takeHanded returns the DMs handed to the pump and whether it must read
// the store instead; spare becomes the next hand-off's buffer.
func (sc *sessionConn) takeHanded(spare []store.Message) (handed []store.Message, rescan bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	handed, rescan = sc.handed, sc.rescan
	sc.handed, sc.rescan = spare[:0], false
	return handed, rescan
}

// pump pushes the session's queued DMs to the client, oldest first, each
// once per connection. It runs while it has work, so that an idle session
// holds no goroutine for it: kickPump starts it, it returns once no kick
// is left, or when the connection shuts down (and then it is not started
// again). One runs at a time; cursor and spare are its own.
func (sc *sessionConn) pump() {
	defer sc.pumps.Done()
	ctx := sc.pumpCtx
	for {
		select {
		case <-sc.quit:
			return
		case <-sc.kick:
		default:
			if sc.pumpIdle() {
				return
			}
			continue
		}
		handed, rescan := sc.takeHanded(sc.spare)
		if !rescan {
			now := sc.s.cfg.Now()
			for _, m := range handed {
				if !m.ExpiresAt.After(now) || !sc.markInflight(m.ID) {
					continue
				}
				if !sc.send(dmFrame(m)) {
					sc.s.cfg.Metrics.pushed(pushClosed)
					return
				}
				sc.s.cfg.Metrics.pushed(pushHandoff)
			}
		}
		clear(handed)
		sc.spare = handed
		if !rescan {
			continue
		}
		for {
			sc.setReading(true)
			readCtx, cancel := context.WithTimeout(ctx, storeTimeout)
			msgs, err := sc.s.cfg.Store.Pending(readCtx, sc.hello.Mesh, sc.hello.Key, sc.s.cfg.Now(), sc.cursor, pendingPage)
			cancel()
			if errors.Is(err, store.ErrNotFound) && sc.cursor != "" {
				sc.cursor = "" // the cursor's DM expired: rescan, skipping what is in flight
				continue
			}
			if e := storeRefusal(sc.log, opReadQueue, err, about{}); e != nil {
				sc.shutdown(e)
				return
			}
			for _, m := range msgs {
				sc.cursor = m.ID
				if !sc.markInflight(m.ID) {
					continue
				}
				if !sc.send(dmFrame(m)) {
					sc.s.cfg.Metrics.pushed(pushClosed)
					return
				}
				sc.s.cfg.Metrics.pushed(pushStore)
			}
			sc.setReading(false)
			if len(msgs) < pendingPage {
				break
			}
		}
	}
}

// setReading marks the span from before the pump reads the store until it
// has gone through what it read. A DM acked in that span may be in what it
// read although it is no longer in flight: markInflight refuses it.
func (sc *sessionConn) setReading(reading bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.reading = reading
	if !reading {
		clear(sc.ackedWhileRd)
	}
}

// markInflight records that the DM id is pushed on this connection; false
// when it was pushed already, or acked during the pump's current read.
func (sc *sessionConn) markInflight(id string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if _, ok := sc.inflight[id]; ok {
		return false
	}
	if _, ok := sc.ackedWhileRd[id]; ok {
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

// receiptQueue bounds the acks and receipts read from a connection and not
// yet taken by its recorder; when it is full the read loop waits.
const receiptQueue = 16

// receiptJob is an ack or a receipt for the recorder, or with done and no
// frame, a request to say when everything before it is recorded.
type receiptJob struct {
	f    wire.Frame
	done chan struct{}
}

// record is the connection's recorder: it stores the acks and receipts
// the read loop passes it, in the order they came. The read loop goes on
// reading (a send, say) while an ack waits for its commit, which it may
// then share with that send. What queued up while a commit was waited for
// is recorded together, in one store call: a recorder behind a busy store
// catches up instead of holding the read loop, and with it the client. A
// DM stays in flight on the connection, so it is not pushed again, until
// its ack committed; a peers or status request waits until what came
// before it is recorded (recorded), so that its answer reflects it.
//
// A recorder runs only while there is something to record: the read loop
// starts one when it passes a job and none runs, and it returns once the
// queue is empty. An idle session keeps no goroutine for it. At most one
// runs at a time: one that finds the queue empty says so (recording)
// before it looks again, and goes on only if no other was started since.
func (sc *sessionConn) record(ctx context.Context) {
	defer sc.recorders.Done()
	var jobs []receiptJob
	for {
		select {
		case j := <-sc.receipts:
			jobs = append(jobs[:0], j)
		more:
			for len(jobs) < receiptQueue {
				select {
				case j := <-sc.receipts:
					jobs = append(jobs, j)
				default:
					break more
				}
			}
			sc.recordJobs(ctx, jobs)
			for _, j := range jobs {
				if j.done != nil {
					close(j.done)
				}
			}
			sc.doneJobs.Add(int64(len(jobs)))
			clear(jobs)
		default:
			sc.recording.Store(false)
			if len(sc.receipts) == 0 || !sc.recording.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// toRecorder passes j to the recorder, starting one if none runs, and
// waits while its queue is full. Only the read loop calls it.
func (sc *sessionConn) toRecorder(ctx context.Context, j receiptJob) {
	sc.queued++
	sc.receipts <- j
	if sc.recording.CompareAndSwap(false, true) {
		sc.recorders.Add(1)
		go sc.record(ctx)
	}
}

// recorded waits until the recorder has recorded every ack and receipt the
// read loop passed it. Only the read loop calls it.
func (sc *sessionConn) recorded(ctx context.Context) {
	if sc.queued == sc.doneJobs.Load() {
		return
	}
	done := make(chan struct{})
	sc.toRecorder(ctx, receiptJob{done: done})
	<-done
}

// recordJobs records the acks (at the broker's time) and receipts (at the
// client's, when that is not in the broker's future) of jobs in one store
// call; the store ignores ids addressed to anyone else. Acked DMs are no
// longer in flight.
func (sc *sessionConn) recordJobs(ctx context.Context, jobs []receiptJob) {
	now := sc.s.cfg.Now()
	rs := make([]store.Record, 0, len(jobs))
	for _, j := range jobs {
		switch f := j.f.(type) {
		case wire.Ack:
			rs = append(rs, store.Record{Ack: true, Cleared: f.Cleared, IDs: f.IDs, At: now})
		case wire.Receipt:
			at := f.At
			if at.IsZero() || at.After(now) {
				at = now
			}
			rs = append(rs, store.Record{State: receiptStates[f.State], IDs: f.IDs, At: at})
		}
	}
	if len(rs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	changed, err := sc.s.cfg.Store.Record(ctx, sc.hello.Mesh, sc.hello.Key, rs)
	if err != nil {
		for _, j := range jobs { // each frame refused as it would have been alone
			var e *wire.Error
			switch f := j.f.(type) {
			case wire.Ack:
				e = storeRefusal(sc.log, opAck, err, about{})
			case wire.Receipt:
				e = storeRefusal(sc.log, opReceipt, err, about{state: f.State})
			}
			if e != nil {
				sc.reply(e)
			}
		}
		return
	}
	for i, r := range rs {
		switch {
		case r.Ack:
			sc.s.cfg.Metrics.dmsAcked(changed[i], r.Cleared)
		case r.State == store.ReceiptReceived:
			sc.s.cfg.Metrics.dmsDelivered(changed[i])
		}
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, r := range rs {
		if !r.Ack {
			continue
		}
		for _, id := range r.IDs {
			if _, ok := sc.inflight[id]; ok && sc.reading {
				if sc.ackedWhileRd == nil {
					sc.ackedWhileRd = make(map[string]struct{})
				}
				sc.ackedWhileRd[id] = struct{}{}
			}
			delete(sc.inflight, id)
		}
	}
}

// receiptStates maps receipt states from the wire to the store.
var receiptStates = map[string]string{
	wire.ReceiptReceived: store.ReceiptReceived,
	wire.ReceiptPushed:   store.ReceiptPushed,
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
	for i := range out {
		if out[i].State == wire.StateUnknown {
			if e := sc.groupStatus(ctx, &out[i]); e != nil {
				e.Ref = wire.RefOf(f.Req)
				sc.reply(e)
				return
			}
		}
	}
	sc.send(wire.StatusList{Req: f.Req, Statuses: out})
}
