package broker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// handleGroupSend is a group send's way in. The broker never opens a box:
// it checks that the boxes are addressed to exactly the recipients the
// group has now (its members, or for wire.GroupAll every session of the
// mesh the broker remembers, the sender left out), that the sender is
// within its rates and every recipient's queue within its caps; then it
// stores one DM per recipient, all or none, and only then answers sent with
// where each went. A box set that is not the group is refused with
// group_changed and the members the broker expects, so that the sender can
// seal to them and send again; nothing is stored.
func (sc *sessionConn) handleGroupSend(ctx context.Context, f wire.Send) {
	s := sc.s
	mesh := sc.hello.Mesh
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	refuse := func(e *wire.Error) {
		e.Ref = f.ID
		sc.reply(e)
	}
	all := f.Group == wire.GroupAll
	label := "@" + f.Group
	now := s.cfg.Now()
	if all {
		for _, b := range f.Boxes {
			if len(b.Box) > s.cfg.MaxBroadcastBox {
				refuse(wire.Errorf(wire.CodeTooLarge, "a box of %d bytes is over the %d-byte limit of a send to @all; send a shorter message, or send it to a group", len(b.Box), s.cfg.MaxBroadcastBox))
				return
			}
		}
		// The broadcast bucket first: a refused broadcast takes nothing
		// from what the session may send as DMs.
		if !sc.allRate.Allow(now) {
			refuse(wire.Errorf(wire.CodeRateLimited, "too many sends to @all: a session may send %d at once, then one every %s; DMs to peers and groups are not affected. Retry later with the same id", s.cfg.BroadcastBurst, s.cfg.BroadcastEvery))
			return
		}
	}
	if !sc.sendRate.Allow(now) || !s.allowSend(mesh, sc.member, now) {
		refuse(wire.Errorf(wire.CodeRateLimited, "too many DMs per second (this session may send %g, its member %g); retry later with the same id", s.cfg.SendRate, s.cfg.MemberSendRate))
		return
	}
	want, err := s.recipients(ctx, mesh, f.Group, sc.hello.Key, now)
	if e := storeRefusal(sc.log, opGroupMembers, err, about{id: f.ID}); e != nil {
		refuse(e)
		return
	}
	if len(want) > s.cfg.MaxGroup {
		refuse(wire.Errorf(wire.CodeGroupTooLarge, "%s has %d other sessions; this broker delivers a group send to at most %d. Nothing was sent", label, len(want), s.cfg.MaxGroup))
		return
	}
	got := make([][]byte, len(f.Boxes))
	for i, b := range f.Boxes {
		got[i] = b.To
	}
	slices.SortFunc(got, bytes.Compare)
	if !slices.EqualFunc(got, want, bytes.Equal) && !sc.resent(ctx, f, got, now) {
		e := wire.Errorf(wire.CodeGroupChanged, "%s; nothing was sent. Seal to the members listed here and send again with the same id", mismatch(label, got, want))
		e.Members = make([]wire.Key, len(want))
		for i, k := range want {
			e.Members[i] = k
		}
		refuse(e)
		return
	}
	sender, who := sc.hello.Key, "this session has"
	if sc.member != nil {
		sender, who = sc.member, "this member's sessions have"
	}
	for _, b := range f.Boxes {
		full, err := s.queueRoom(ctx, mesh, b.To, sender, int64(len(b.Box)), now)
		if e := storeRefusal(sc.log, opQueueStats, err, about{id: f.ID}); e != nil {
			refuse(e)
			return
		}
		if full != nil {
			to := identity.KeyID(ed25519.PublicKey(b.To))
			if full.perSender {
				refuse(wire.Errorf(wire.CodeQueueFull, "%s %d DMs (%d bytes) waiting unread for %s, the most one sender may leave; nothing was sent to %s. Retry once it has read some", who, full.n, full.bytes, to, label))
			} else {
				refuse(wire.Errorf(wire.CodeQueueFull, "%d DMs (%d bytes) already wait for %s, the most a recipient may have; nothing was sent to %s. Retry once it has read some", full.n, full.bytes, to, label))
			}
			return
		}
	}
	created := now.UTC().Truncate(time.Microsecond)
	msgs := make([]store.Message, len(f.Boxes))
	for i, b := range f.Boxes {
		msgs[i] = store.Message{
			ID:          wire.GroupDMID(f.ID, b.To),
			Mesh:        mesh,
			From:        sc.hello.Key,
			FromName:    sc.hello.Name,
			FromSession: sc.hello.SessionID,
			To:          b.To,
			Sender:      sc.member,
			Nonce:       b.Nonce,
			Box:         b.Box,
			CreatedAt:   created,
			ExpiresAt:   created.Add(s.cfg.QueueTTL),
		}
	}
	res, err := s.cfg.Store.EnqueueGroup(ctx, f.ID, f.Group, msgs)
	if e := storeRefusal(sc.log, opEnqueueGroup, err, about{id: f.ID}); e != nil {
		refuse(e)
		return
	}
	sent := wire.Sent{ID: f.ID, Status: wire.StatusDelivered, ExpiresAt: msgs[0].ExpiresAt, Recipients: make([]wire.Recipient, len(msgs))}
	for i, m := range msgs {
		status := wire.StatusQueued
		switch res[i] {
		case store.AlreadyAcked:
			status = wire.StatusDelivered
		case store.AlreadyExpired:
		case store.Stored:
			s.cfg.Metrics.dmStored()
			fallthrough
		default:
			if s.pushNow(ctx, sc, mesh, m.To, nil) {
				status = wire.StatusDelivered
			}
		}
		if status == wire.StatusQueued {
			sent.Status = wire.StatusQueued
		}
		sent.Recipients[i] = wire.Recipient{To: m.To, Status: status}
	}
	sc.log.Debug("group DMs stored", "msg_id", f.ID, "group", f.Group, "recipients", len(msgs))
	sc.send(sent)
}

// recipients returns who a send to group reaches now, in key order: the
// members of group, or for wire.GroupAll every session of the mesh seen
// within the TTL; never the sender itself.
func (s *Server) recipients(ctx context.Context, mesh, group string, self []byte, now time.Time) ([][]byte, error) {
	var keys [][]byte
	if group == wire.GroupAll {
		seen, err := s.cfg.Store.Sessions(ctx, mesh, now.Add(-s.cfg.QueueTTL))
		if err != nil {
			return nil, err
		}
		for _, ss := range seen {
			keys = append(keys, ss.PublicKey)
		}
		slices.SortFunc(keys, bytes.Compare)
	} else {
		var err error
		if keys, err = s.cfg.Store.GroupMembers(ctx, mesh, group); err != nil {
			return nil, err
		}
	}
	return slices.DeleteFunc(keys, func(k []byte) bool { return bytes.Equal(k, self) }), nil
}

// resent reports whether f, whose boxes (got, in key order) are not the
// group's members now, repeats a group send this session stored before to
// exactly those recipients: a resend after a lost answer, which stays
// idempotent however the group changed since.
func (sc *sessionConn) resent(ctx context.Context, f wire.Send, got [][]byte, now time.Time) bool {
	group, sts, err := sc.s.cfg.Store.GroupStatus(ctx, sc.hello.Mesh, sc.hello.Key, f.ID, now)
	if err != nil || group != f.Group || len(sts) != len(got) {
		return false
	}
	stored := make([][]byte, len(sts))
	for i, st := range sts {
		stored[i] = st.To
	}
	slices.SortFunc(stored, bytes.Compare)
	return slices.EqualFunc(stored, got, bytes.Equal)
}

// mismatch says how the boxes (got) differ from the recipients (want),
// both in key order.
func mismatch(label string, got, want [][]byte) string {
	if len(want) == 0 {
		return fmt.Sprintf("no other session is in %s now", label)
	}
	has := make(map[string]bool, len(want))
	for _, k := range want {
		has[string(k)] = true
	}
	var extra, missing []string
	boxed := make(map[string]bool, len(got))
	for _, k := range got {
		boxed[string(k)] = true
		if !has[string(k)] {
			extra = append(extra, identity.KeyID(ed25519.PublicKey(k)))
		}
	}
	for _, k := range want {
		if !boxed[string(k)] {
			missing = append(missing, identity.KeyID(ed25519.PublicKey(k)))
		}
	}
	var parts []string
	if len(extra) > 0 {
		parts = append(parts, fmt.Sprintf("%d box(es) for sessions not in %s (%s)", len(extra), label, short(extra)))
	}
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("no box for %d of its %d recipients (%s)", len(missing), len(want), short(missing)))
	}
	return "the boxes are not the recipients of " + label + ": " + strings.Join(parts, "; ")
}

// short lists at most a few key ids.
func short(ids []string) string {
	if len(ids) > 5 {
		return strings.Join(ids[:5], ", ") + fmt.Sprintf(" and %d more", len(ids)-5)
	}
	return strings.Join(ids, ", ")
}

// handleMembership joins or leaves a group and answers with the session's
// groups.
func (sc *sessionConn) handleMembership(ctx context.Context, req uint64, group string, join bool) {
	s := sc.s
	mesh := sc.hello.Mesh
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	var err error
	if join {
		_, err = s.cfg.Store.JoinGroup(ctx, mesh, group, sc.hello.Key, s.cfg.Now())
	} else {
		_, err = s.cfg.Store.LeaveGroup(ctx, mesh, group, sc.hello.Key)
	}
	var ms []store.Membership
	if err == nil {
		ms, err = s.cfg.Store.Memberships(ctx, mesh)
	}
	if e := storeRefusal(sc.log, opJoinGroup, err, about{}); e != nil {
		e.Ref = wire.RefOf(req)
		sc.reply(e)
		return
	}
	groups := []string{}
	for _, m := range ms {
		if bytes.Equal(m.Key, sc.hello.Key) {
			groups = append(groups, m.Group)
		}
	}
	sc.log.Info("group membership changed", "group", group, "join", join)
	sc.send(wire.Groups{Req: req, Groups: groups})
}

// handleSetStatus records what the session says about itself; fields the
// frame leaves out keep their value, and the activity's time changes only
// with the activity.
func (sc *sessionConn) handleSetStatus(ctx context.Context, f wire.SetStatus) {
	s := sc.s
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	refuse := func(e *wire.Error) {
		e.Ref = wire.RefOf(f.Req)
		sc.reply(e)
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	p, err := s.cfg.Store.Presence(ctx, sc.hello.Mesh, sc.hello.Key)
	if e := storeRefusal(sc.log, opPresence, err, about{}); e != nil {
		refuse(e)
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		p = store.Presence{Mesh: sc.hello.Mesh, Key: sc.hello.Key}
	}
	if f.Summary != nil {
		p.Summary = *f.Summary
	}
	if f.Availability != "" {
		p.Availability = f.Availability
	}
	if f.Activity != "" && f.Activity != p.Activity {
		p.Activity, p.ActivitySince = f.Activity, now
	}
	p.UpdatedAt = now
	if e := storeRefusal(sc.log, opSetPresence, s.cfg.Store.SetPresence(ctx, p), about{}); e != nil {
		refuse(e)
		return
	}
	sc.send(wire.OK{Req: f.Req})
}

// addTeams puts each peer's groups and what it said about itself into
// peers.
func (s *Server) addTeams(ctx context.Context, mesh string, peers []wire.Peer) error {
	ms, err := s.cfg.Store.Memberships(ctx, mesh)
	if err != nil {
		return err
	}
	ps, err := s.cfg.Store.Presences(ctx, mesh)
	if err != nil {
		return err
	}
	groups := make(map[string][]string)
	for _, m := range ms {
		groups[string(m.Key)] = append(groups[string(m.Key)], m.Group)
	}
	said := make(map[string]store.Presence, len(ps))
	for _, p := range ps {
		said[string(p.Key)] = p
	}
	for i := range peers {
		p := &peers[i]
		p.Groups = groups[string(p.Key)]
		if q, ok := said[string(p.Key)]; ok {
			p.Summary, p.Availability, p.Activity, p.ActivitySince = q.Summary, q.Availability, q.Activity, q.ActivitySince
		}
	}
	return nil
}

// groupStatus fills st, unknown as a DM id, when its id is a group send of
// this session: the group, each recipient's status, and as its own state
// the least advanced of theirs.
func (sc *sessionConn) groupStatus(ctx context.Context, st *wire.MessageStatus) *wire.Error {
	group, sts, err := sc.s.cfg.Store.GroupStatus(ctx, sc.hello.Mesh, sc.hello.Key, st.ID, sc.s.cfg.Now())
	if err != nil {
		return storeRefusal(sc.log, opGroupStatus, err, about{id: st.ID})
	}
	rank := map[string]int{wire.StateQueued: 0, wire.StateDelivered: 1, wire.StatePushed: 2, wire.StateExpired: 3, wire.StateCleared: 4, wire.StateRead: 5}
	st.Group, st.State = group, wire.StateRead
	st.Recipients = make([]wire.MessageStatus, len(sts))
	for i, r := range sts {
		state, ok := statusStates[r.State]
		if !ok {
			state = wire.StateUnknown
		}
		st.Recipients[i] = wire.MessageStatus{
			ID: r.ID, To: r.To, ToName: r.ToName, State: state,
			CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
			ReceivedAt: r.ReceivedAt, PushedAt: r.PushedAt, ReadAt: r.ReadAt,
		}
		if rank[state] < rank[st.State] {
			st.State = state
		}
		st.CreatedAt, st.ExpiresAt = r.CreatedAt, r.ExpiresAt
	}
	return nil
}
