// Package storetest is the conformance suite for store.Store. Every
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// The suite checks the behaviour the broker relies on: a DM is kept byte for
// byte until its recipient acknowledges it, is delivered to nobody else, and
// once acknowledged or expired is never delivered again, even when resent;
// its sender, and only its sender, can follow it from queued to read (or
// cleared, or expired) until the store forgets it.
package storetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/store"
)

// base is the time the suite's messages are created at. Test times are whole
// microseconds, the finest precision PostgreSQL keeps.
var base = time.Date(2030, 6, 1, 12, 0, 0, 123456000, time.UTC)

const meshA, meshB = "team-a", "team-b"

// Run runs the suite. open returns a new, empty store for one subtest and
// arranges for it to be closed when the subtest ends (t.Cleanup); closing it
// again after the suite closed it must be harmless.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Roundtrip", testRoundtrip},
		{"OldestFirst", testOldestFirst},
		{"AfterAndLimit", testAfterAndLimit},
		{"Isolation", testIsolation},
		{"ExpiredHidden", testExpiredHidden},
		{"Idempotent", testIdempotent},
		{"Conflict", testConflict},
		{"AckOnlyByRecipient", testAckOnlyByRecipient},
		{"AckCounts", testAckCounts},
		{"Expire", testExpire},
		{"ResendAfterExpiry", testResendAfterExpiry},
		{"StatusTransitions", testStatusTransitions},
		{"StatusOnlyForSender", testStatusOnlyForSender},
		{"ReceiptOnlyByRecipient", testReceiptOnlyByRecipient},
		{"ReceiptFirstTimeWins", testReceiptFirstTimeWins},
		{"RecordInOrderAllOrNone", testRecordInOrderAllOrNone},
		{"ClearedVersusRead", testClearedVersusRead},
		{"PendingReceiptTimes", testPendingReceiptTimes},
		{"AckAfterExpiry", testAckAfterExpiry},
		{"UpsertSession", testUpsertSession},
		{"SessionNotFound", testSessionNotFound},
		{"SessionIDBelongsToFirstKey", testSessionIDBelongsToFirstKey},
		{"SessionIDRaceHasOneWinner", testSessionIDRaceHasOneWinner},
		{"ForgetSession", testForgetSession},
		{"SessionMember", testSessionMember},
		{"Meshes", testMeshes},
		{"QueueStats", testQueueStats},
		{"QueueStatsPerSender", testQueueStatsPerSender},
		{"Invites", testInvites},
		{"Sessions", testSessions},
		{"ConcurrentEnqueue", testConcurrentEnqueue},
		{"Closed", testClosed},
		{"GroupMembership", testGroupMembership},
		{"EnqueueGroupAllOrNone", testEnqueueGroupAllOrNone},
		{"GroupStatus", testGroupStatus},
		{"Presence", testPresence},
		{"TeamsForgotten", testTeamsForgotten},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newKey() []byte { return randBytes(32) }

// newMessage returns a DM from `from` to `to` in mesh, created at `at` and
// expiring an hour later.
func newMessage(mesh string, from, to []byte, at time.Time) store.Message {
	return store.Message{
		ID:          uuid.NewString(),
		Mesh:        mesh,
		From:        from,
		FromName:    "alice",
		FromSession: uuid.NewString(),
		To:          to,
		Nonce:       randBytes(24),
		Box:         randBytes(80),
		CreatedAt:   at,
		ExpiresAt:   at.Add(time.Hour),
	}
}

func enqueue(t *testing.T, s store.Store, m store.Message, want store.EnqueueResult) {
	t.Helper()
	got, err := s.Enqueue(t.Context(), m)
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", m.ID, err)
	}
	if got != want {
		t.Fatalf("Enqueue(%s) = %v, want %v", m.ID, got, want)
	}
}

// ackTime is when ack reads DMs: after every DM the suite creates at base
// and before any expires.
var ackTime = base.Add(time.Minute)

// ack acknowledges ids as read at ackTime.
func ack(t *testing.T, s store.Store, mesh string, to []byte, want int, ids ...string) {
	t.Helper()
	ackAt(t, s, mesh, to, ackTime, false, want, ids...)
}

func ackAt(t *testing.T, s store.Store, mesh string, to []byte, at time.Time, cleared bool, want int, ids ...string) {
	t.Helper()
	got, err := s.Ack(t.Context(), mesh, to, ids, at, cleared)
	if err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if got != want {
		t.Fatalf("Ack(%v, cleared %t) = %d, want %d", ids, cleared, got, want)
	}
}

func receipt(t *testing.T, s store.Store, mesh string, to []byte, state string, at time.Time, want int, ids ...string) {
	t.Helper()
	got, err := s.Receipt(t.Context(), mesh, to, ids, state, at)
	if err != nil {
		t.Fatalf("Receipt(%s): %v", state, err)
	}
	if got != want {
		t.Fatalf("Receipt(%s, %v) = %d, want %d", state, ids, got, want)
	}
}

// wantStatus checks that Status, asked by `from` at now for the IDs of
// want, returns exactly want.
func wantStatus(t *testing.T, s store.Store, mesh string, from []byte, now time.Time, want ...store.MessageStatus) {
	t.Helper()
	ids := make([]string, len(want))
	for i, w := range want {
		ids[i] = w.ID
	}
	got, err := s.Status(t.Context(), mesh, from, ids, now)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Status(%v) returned %d statuses, want %d", ids, len(got), len(want))
	}
	for i := range want {
		if d := diffStatus(got[i], want[i]); d != "" {
			t.Errorf("Status(%v)[%d]: %s", ids, i, d)
		}
	}
}

// status returns what Status reports for m at now before any event: queued,
// with the recipient's name toName.
func status(m store.Message, toName string) store.MessageStatus {
	return store.MessageStatus{ID: m.ID, To: m.To, ToName: toName, State: store.StateQueued,
		CreatedAt: m.CreatedAt, ExpiresAt: m.ExpiresAt}
}

func unknown(id string) store.MessageStatus {
	return store.MessageStatus{ID: id, State: store.StateUnknown}
}

func diffStatus(got, want store.MessageStatus) string {
	var d []string
	check := func(field string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("State", got.State == want.State, got.State, want.State)
	check("To", bytes.Equal(got.To, want.To), got.To, want.To)
	check("ToName", got.ToName == want.ToName, got.ToName, want.ToName)
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
		{"ReceivedAt", got.ReceivedAt, want.ReceivedAt},
		{"PushedAt", got.PushedAt, want.PushedAt},
		{"ReadAt", got.ReadAt, want.ReadAt},
	} {
		check(f.name, f.got.Equal(f.want), f.got, f.want)
	}
	return strings.Join(d, "; ")
}

// wantPending checks that Pending returns exactly want, field by field.
func wantPending(t *testing.T, s store.Store, mesh string, to []byte, now time.Time, after string, limit int, want ...store.Message) {
	t.Helper()
	got, err := s.Pending(t.Context(), mesh, to, now, after, limit)
	if err != nil {
		t.Fatalf("Pending(after %q): %v", after, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Pending(after %q) returned %d messages %v, want %d %v", after, len(got), ids(got), len(want), ids(want))
	}
	for i := range want {
		if d := diffMessage(got[i], want[i]); d != "" {
			t.Fatalf("Pending(after %q)[%d]: %s", after, i, d)
		}
	}
}

func ids(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func diffMessage(got, want store.Message) string {
	var d []string
	check := func(field string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
		}
	}
	check("ID", got.ID == want.ID, got.ID, want.ID)
	check("Mesh", got.Mesh == want.Mesh, got.Mesh, want.Mesh)
	check("From", bytes.Equal(got.From, want.From), got.From, want.From)
	check("FromName", got.FromName == want.FromName, got.FromName, want.FromName)
	check("FromSession", got.FromSession == want.FromSession, got.FromSession, want.FromSession)
	check("To", bytes.Equal(got.To, want.To), got.To, want.To)
	check("Nonce", bytes.Equal(got.Nonce, want.Nonce), got.Nonce, want.Nonce)
	check("Box", bytes.Equal(got.Box, want.Box), got.Box, want.Box)
	check("CreatedAt", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("ExpiresAt", got.ExpiresAt.Equal(want.ExpiresAt), got.ExpiresAt, want.ExpiresAt)
	check("ReceivedAt", got.ReceivedAt.Equal(want.ReceivedAt), got.ReceivedAt, want.ReceivedAt)
	check("PushedAt", got.PushedAt.Equal(want.PushedAt), got.PushedAt, want.PushedAt)
	return strings.Join(d, "; ")
}

func diffSession(got, want store.Session) string {
	if got.Mesh != want.Mesh || !bytes.Equal(got.PublicKey, want.PublicKey) || got.SessionID != want.SessionID ||
		got.Name != want.Name || got.ProjectDir != want.ProjectDir || got.Kind != want.Kind ||
		!got.FirstSeen.Equal(want.FirstSeen) || !got.LastSeen.Equal(want.LastSeen) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func testRoundtrip(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	m := newMessage(meshA, alice, bob, base)
	m.FromName = "Zoë 🚀"
	m.Box = make([]byte, 512) // every byte value, NULs included
	for i := range m.Box {
		m.Box[i] = byte(i)
	}
	ephemeral := newMessage(meshA, newKey(), bob, base.Add(time.Microsecond))
	ephemeral.FromSession = ""
	enqueue(t, s, m, store.Stored)
	enqueue(t, s, ephemeral, store.Stored)
	wantPending(t, s, meshA, bob, base, "", 10, m, ephemeral)
}

func testOldestFirst(t *testing.T, s store.Store) {
	alice, bob, carol := newKey(), newKey(), newKey()
	var want []store.Message
	for i := range 5 {
		from := alice
		if i%2 == 1 {
			from = carol
		}
		m := newMessage(meshA, from, bob, base.Add(time.Duration(i)*time.Second))
		enqueue(t, s, m, store.Stored)
		want = append(want, m)
	}
	wantPending(t, s, meshA, bob, base, "", 10, want...)
}

func testAfterAndLimit(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	var ms []store.Message
	for i := range 7 {
		m := newMessage(meshA, alice, bob, base.Add(time.Duration(i)*time.Second))
		enqueue(t, s, m, store.Stored)
		ms = append(ms, m)
	}
	wantPending(t, s, meshA, bob, base, "", 1, ms[0])
	wantPending(t, s, meshA, bob, base, "", 3, ms[:3]...)
	wantPending(t, s, meshA, bob, base, ms[2].ID, 3, ms[3:6]...)
	wantPending(t, s, meshA, bob, base, ms[5].ID, 3, ms[6])
	wantPending(t, s, meshA, bob, base, ms[6].ID, 3)

	// A recipient pages while acknowledging: an acknowledged message still
	// marks its place.
	ack(t, s, meshA, bob, 1, ms[3].ID)
	wantPending(t, s, meshA, bob, base, ms[3].ID, 10, ms[4:]...)
	wantPending(t, s, meshA, bob, base, ms[2].ID, 10, ms[4:]...)

	// An unknown position is an error, not a restart from the beginning; so
	// is the ID of a message addressed to someone else.
	other := newMessage(meshA, alice, newKey(), base)
	enqueue(t, s, other, store.Stored)
	for _, after := range []string{uuid.NewString(), other.ID} {
		if _, err := s.Pending(t.Context(), meshA, bob, base, after, 10); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Pending(after %s) error = %v, want ErrNotFound", after, err)
		}
	}
}

func testIsolation(t *testing.T, s store.Store) {
	alice, bob, carol := newKey(), newKey(), newKey()
	toBob := newMessage(meshA, alice, bob, base)
	toCarol := newMessage(meshA, alice, carol, base)
	toBobElsewhere := newMessage(meshB, alice, bob, base)
	for _, m := range []store.Message{toBob, toCarol, toBobElsewhere} {
		enqueue(t, s, m, store.Stored)
	}
	wantPending(t, s, meshA, bob, base, "", 10, toBob)
	wantPending(t, s, meshA, carol, base, "", 10, toCarol)
	wantPending(t, s, meshB, bob, base, "", 10, toBobElsewhere)
	wantPending(t, s, meshB, carol, base, "", 10)
	wantPending(t, s, meshA, alice, base, "", 10)
}

func testExpiredHidden(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	now := base.Add(time.Hour)
	var ms []store.Message
	for _, expires := range []time.Time{now.Add(-time.Microsecond), now, now.Add(time.Microsecond)} {
		m := newMessage(meshA, alice, bob, base)
		m.ExpiresAt = expires
		enqueue(t, s, m, store.Stored)
		ms = append(ms, m)
	}
	wantPending(t, s, meshA, bob, now, "", 10, ms[2])
	wantPending(t, s, meshA, bob, base, "", 10, ms...)
}

func testIdempotent(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	m := newMessage(meshA, alice, bob, base)
	enqueue(t, s, m, store.Stored)
	enqueue(t, s, m, store.AlreadyQueued)
	wantPending(t, s, meshA, bob, base, "", 10, m)

	ack(t, s, meshA, bob, 1, m.ID)
	enqueue(t, s, m, store.AlreadyAcked)
	wantPending(t, s, meshA, bob, base, "", 10)
}

func testConflict(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	m := newMessage(meshA, alice, bob, base)
	enqueue(t, s, m, store.Stored)

	variants := map[string]func(*store.Message){
		"box":   func(v *store.Message) { v.Box = append(bytes.Clone(v.Box), 0) },
		"nonce": func(v *store.Message) { v.Nonce = randBytes(24) },
		"to":    func(v *store.Message) { v.To = newKey() },
		"from":  func(v *store.Message) { v.From = newKey() },
		"mesh":  func(v *store.Message) { v.Mesh = meshB },
	}
	conflicts := func(names ...string) {
		t.Helper()
		for _, name := range names {
			v := m
			variants[name](&v)
			if res, err := s.Enqueue(t.Context(), v); !errors.Is(err, store.ErrConflict) {
				t.Errorf("Enqueue with another %s = %v, %v; want ErrConflict", name, res, err)
			}
		}
	}
	conflicts("box", "nonce", "to", "from", "mesh")
	wantPending(t, s, meshA, bob, base, "", 10, m)
	for _, to := range [][]byte{newKey(), alice} {
		wantPending(t, s, meshA, to, base, "", 10)
	}

	// Once acknowledged the payload is gone, but the ID still belongs to
	// this sender, recipient and mesh.
	ack(t, s, meshA, bob, 1, m.ID)
	conflicts("to", "from", "mesh")
	enqueue(t, s, m, store.AlreadyAcked)
}

func testAckOnlyByRecipient(t *testing.T, s store.Store) {
	alice, bob, carol := newKey(), newKey(), newKey()
	toBob := newMessage(meshA, alice, bob, base)
	toCarol := newMessage(meshA, alice, carol, base)
	enqueue(t, s, toBob, store.Stored)
	enqueue(t, s, toCarol, store.Stored)

	ack(t, s, meshA, carol, 0, toBob.ID) // carol cannot ack bob's DM
	ack(t, s, meshA, alice, 0, toBob.ID) // nor can its sender
	ack(t, s, meshB, bob, 0, toBob.ID)   // nor bob from another mesh
	wantPending(t, s, meshA, bob, base, "", 10, toBob)

	ack(t, s, meshA, bob, 1, toBob.ID, toCarol.ID)
	wantPending(t, s, meshA, bob, base, "", 10)
	wantPending(t, s, meshA, carol, base, "", 10, toCarol)
	ack(t, s, meshA, bob, 0, toBob.ID) // already acked
}

func testAckCounts(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	var ms []store.Message
	for i := range 3 {
		m := newMessage(meshA, alice, bob, base.Add(time.Duration(i)*time.Second))
		enqueue(t, s, m, store.Stored)
		ms = append(ms, m)
	}
	ack(t, s, meshA, bob, 0)
	ack(t, s, meshA, bob, 2, ms[0].ID, uuid.NewString(), ms[2].ID, ms[0].ID)
	wantPending(t, s, meshA, bob, base, "", 10, ms[1])
	ack(t, s, meshA, bob, 1, ms[0].ID, ms[1].ID, ms[2].ID)
	wantPending(t, s, meshA, bob, base, "", 10)
}

func testExpire(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := newKey(), newKey()
	now := base.Add(time.Hour)
	const retention = 24 * time.Hour
	at := func(expires time.Time) store.Message {
		m := newMessage(meshA, alice, bob, base)
		m.ExpiresAt = expires
		enqueue(t, s, m, store.Stored)
		return m
	}
	expiredPending, expiredAcked := at(now), at(now.Add(-time.Minute))
	livePending, liveAcked := at(now.Add(time.Minute)), at(now.Add(time.Minute))
	ack(t, s, meshA, bob, 2, expiredAcked.ID, liveAcked.ID)

	cutoff := base.Add(30 * time.Minute)
	sessions := map[string]store.Session{}
	for name, seen := range map[string]time.Time{"old": cutoff.Add(-time.Microsecond), "edge": cutoff, "new": now} {
		sess := store.Session{Mesh: meshA, PublicKey: newKey(), Name: name, FirstSeen: base, LastSeen: seen}
		if err := s.UpsertSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		sessions[name] = sess
	}
	expire := func(now time.Time, want int) {
		t.Helper()
		n, err := s.Expire(ctx, now, retention, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("Expire(%v) expired %d messages, want %d", now, n, want)
		}
	}
	read := func(m store.Message) store.MessageStatus {
		st := status(m, "")
		st.State, st.ReadAt = store.StateRead, ackTime
		return st
	}
	expired := func(m store.Message) store.MessageStatus {
		st := status(m, "")
		st.State = store.StateExpired
		return st
	}

	expire(now, 1)
	// The expired DM is never pending again, not even to a reader whose
	// clock says it has not expired: its payload is gone.
	wantPending(t, s, meshA, bob, base, "", 10, livePending)
	// But its sender still learns that it expired, and the acknowledged
	// ones still refuse a second delivery.
	wantStatus(t, s, meshA, alice, now, expired(expiredPending), read(expiredAcked), status(livePending, ""), read(liveAcked))
	enqueue(t, s, expiredPending, store.AlreadyExpired)
	enqueue(t, s, expiredAcked, store.AlreadyAcked)
	enqueue(t, s, liveAcked, store.AlreadyAcked)
	expire(now, 0) // nothing new

	// A retention period after its ExpiresAt, a DM is forgotten, read or
	// not; the others stay.
	later := now.Add(retention)
	expire(later.Add(-time.Microsecond), 1) // livePending expires now
	wantStatus(t, s, meshA, alice, later, expired(expiredPending), unknown(expiredAcked.ID), expired(livePending), read(liveAcked))
	expire(later, 0)
	wantStatus(t, s, meshA, alice, later, unknown(expiredPending.ID), unknown(expiredAcked.ID), expired(livePending), read(liveAcked))
	// Forgotten IDs are new again.
	enqueue(t, s, expiredAcked, store.Stored)
	enqueue(t, s, expiredPending, store.Stored)

	if _, err := s.Session(ctx, meshA, sessions["old"].PublicKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session last seen before the cutoff: err = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"edge", "new"} {
		got, err := s.Session(ctx, meshA, sessions[name].PublicKey)
		if err != nil {
			t.Fatalf("session %s: %v", name, err)
		}
		if d := diffSession(got, sessions[name]); d != "" {
			t.Errorf("session %s: %s", name, d)
		}
	}
	if _, err := s.Expire(ctx, now, -time.Second, cutoff); err == nil {
		t.Error("Expire with a negative retention succeeded")
	}
}

// A resend after the DM's ExpiresAt is not queued again, even before
// Expire has run.
func testResendAfterExpiry(t *testing.T, s store.Store) {
	m := newMessage(meshA, newKey(), newKey(), base)
	enqueue(t, s, m, store.Stored)
	resend := m
	resend.CreatedAt = m.ExpiresAt.Add(-time.Microsecond)
	enqueue(t, s, resend, store.AlreadyQueued)
	resend.CreatedAt = m.ExpiresAt
	enqueue(t, s, resend, store.AlreadyExpired)
	resend.Box = randBytes(len(m.Box))
	if res, err := s.Enqueue(t.Context(), resend); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Enqueue with another box after expiry = %v, %v; want ErrConflict", res, err)
	}
}

func testStatusTransitions(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	if err := s.UpsertSession(t.Context(), store.Session{Mesh: meshA, PublicKey: bob, Name: "bob", FirstSeen: base, LastSeen: base}); err != nil {
		t.Fatal(err)
	}
	m := newMessage(meshA, alice, bob, base)
	enqueue(t, s, m, store.Stored)
	t1, t2, t3 := base.Add(time.Second), base.Add(2*time.Second), base.Add(3*time.Second)

	want := status(m, "bob")
	wantStatus(t, s, meshA, alice, base, want)
	receipt(t, s, meshA, bob, store.ReceiptReceived, t1, 1, m.ID)
	want.State, want.ReceivedAt = store.StateDelivered, t1
	wantStatus(t, s, meshA, alice, t1, want)
	receipt(t, s, meshA, bob, store.ReceiptPushed, t2, 1, m.ID)
	want.State, want.PushedAt = store.StatePushed, t2
	wantStatus(t, s, meshA, alice, t2, want)
	ackAt(t, s, meshA, bob, t3, false, 1, m.ID)
	want.State, want.ReadAt = store.StateRead, t3
	wantStatus(t, s, meshA, alice, t3, want)

	// Read stays read past the DM's expiry, also once Expire has run.
	if n, err := s.Expire(t.Context(), m.ExpiresAt, time.Hour, base); err != nil || n != 0 {
		t.Errorf("Expire after the read: %d, %v; want nothing expired", n, err)
	}
	wantStatus(t, s, meshA, alice, m.ExpiresAt.Add(time.Minute), want)

	// Pushed without a report of receipt is pushed; the recipient's name
	// is "" when the store does not know its session.
	stranger := newKey()
	m2 := newMessage(meshA, alice, stranger, base)
	enqueue(t, s, m2, store.Stored)
	receipt(t, s, meshA, stranger, store.ReceiptPushed, t1, 1, m2.ID)
	want2 := status(m2, "")
	want2.State, want2.PushedAt = store.StatePushed, t1
	wantStatus(t, s, meshA, alice, t1, want2, want)

	// Unread at its ExpiresAt, a DM is expired, whatever it got to.
	want2.State = store.StateExpired
	wantStatus(t, s, meshA, alice, m2.ExpiresAt, want2)
}

func testStatusOnlyForSender(t *testing.T, s store.Store) {
	alice, bob, carol := newKey(), newKey(), newKey()
	fromAlice := newMessage(meshA, alice, bob, base)
	fromCarol := newMessage(meshA, carol, bob, base)
	elsewhere := newMessage(meshB, alice, bob, base)
	for _, m := range []store.Message{fromAlice, fromCarol, elsewhere} {
		enqueue(t, s, m, store.Stored)
	}
	never := uuid.NewString()
	// In the order asked, repeats included; someone else's DM, a DM from
	// another mesh and an ID never used look alike.
	wantStatus(t, s, meshA, alice, base, unknown(fromCarol.ID), status(fromAlice, ""), unknown(never),
		status(fromAlice, ""), unknown(elsewhere.ID))
	wantStatus(t, s, meshB, alice, base, status(elsewhere, ""), unknown(fromAlice.ID))
	// The recipient is not the sender either.
	wantStatus(t, s, meshA, bob, base, unknown(fromAlice.ID), unknown(fromCarol.ID))
	wantStatus(t, s, meshA, carol, base, status(fromCarol, ""), unknown(fromAlice.ID))
	wantStatus(t, s, meshA, alice, base) // no ids, no statuses

	// More IDs than one lookup is likely to take at once.
	var want []store.MessageStatus
	for i := range 700 {
		if i%100 == 0 {
			want = append(want, status(fromAlice, ""))
			continue
		}
		want = append(want, unknown(uuid.NewString()))
	}
	wantStatus(t, s, meshA, alice, base, want...)
}

func testReceiptOnlyByRecipient(t *testing.T, s store.Store) {
	alice, bob, carol := newKey(), newKey(), newKey()
	m := newMessage(meshA, alice, bob, base)
	enqueue(t, s, m, store.Stored)
	at := base.Add(time.Second)
	for _, state := range []string{store.ReceiptReceived, store.ReceiptPushed} {
		receipt(t, s, meshA, alice, state, at, 0, m.ID) // not its sender
		receipt(t, s, meshA, carol, state, at, 0, m.ID) // not another session
		receipt(t, s, meshB, bob, state, at, 0, m.ID)   // not the recipient in another mesh
	}
	wantStatus(t, s, meshA, alice, at, status(m, ""))
	wantPending(t, s, meshA, bob, base, "", 10, m)

	receipt(t, s, meshA, bob, store.ReceiptReceived, at, 1, m.ID, uuid.NewString())
	want := status(m, "")
	want.State, want.ReceivedAt = store.StateDelivered, at
	wantStatus(t, s, meshA, alice, at, want)
}

func testReceiptFirstTimeWins(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := newKey(), newKey()
	m := newMessage(meshA, alice, bob, base)
	enqueue(t, s, m, store.Stored)
	t1, t2 := base.Add(time.Second), base.Add(2*time.Second)

	receipt(t, s, meshA, bob, store.ReceiptReceived, t2, 1, m.ID, m.ID)
	receipt(t, s, meshA, bob, store.ReceiptReceived, t1, 0, m.ID) // earlier, but second
	receipt(t, s, meshA, bob, store.ReceiptReceived, t2.Add(time.Hour), 0, m.ID)
	receipt(t, s, meshA, bob, store.ReceiptPushed, t2, 1, m.ID)
	receipt(t, s, meshA, bob, store.ReceiptPushed, t2.Add(time.Second), 0, m.ID)
	want := status(m, "")
	want.State, want.ReceivedAt, want.PushedAt = store.StatePushed, t2, t2
	wantStatus(t, s, meshA, alice, t2, want)

	// After the ack, receipts change nothing.
	late := newMessage(meshA, alice, bob, base)
	enqueue(t, s, late, store.Stored)
	ack(t, s, meshA, bob, 1, late.ID)
	receipt(t, s, meshA, bob, store.ReceiptReceived, t2, 0, late.ID)
	receipt(t, s, meshA, bob, store.ReceiptPushed, t2, 0, late.ID)
	wantLate := status(late, "")
	wantLate.State, wantLate.ReadAt = store.StateRead, ackTime
	wantStatus(t, s, meshA, alice, t2, wantLate)

	// A time before the DM was created (the recipient's clock is behind)
	// is recorded as its creation.
	early := newMessage(meshA, alice, bob, t2)
	enqueue(t, s, early, store.Stored)
	receipt(t, s, meshA, bob, store.ReceiptReceived, base, 1, early.ID)
	wantEarly := status(early, "")
	wantEarly.State, wantEarly.ReceivedAt = store.StateDelivered, t2
	wantStatus(t, s, meshA, alice, t2, wantEarly)

	if _, err := s.Receipt(ctx, meshA, bob, []string{m.ID}, "read", t1); err == nil {
		t.Error("Receipt with an unknown state succeeded")
	}
	if _, err := s.Receipt(ctx, meshA, bob, []string{early.ID}, store.ReceiptPushed, time.Time{}); err == nil {
		t.Error("Receipt at the zero time succeeded")
	}
	wantStatus(t, s, meshA, alice, t2, want, wantEarly)
}

func testRecordInOrderAllOrNone(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := newKey(), newKey()
	m1, m2 := newMessage(meshA, alice, bob, base), newMessage(meshA, alice, bob, base)
	enqueue(t, s, m1, store.Stored)
	enqueue(t, s, m2, store.Stored)
	t1, t2, t3 := base.Add(time.Second), base.Add(2*time.Second), base.Add(3*time.Second)

	// In order: the pushed receipt of m1 comes after its ack and changes
	// nothing; m2's applies.
	got, err := s.Record(ctx, meshA, bob, []store.Record{
		{State: store.ReceiptReceived, IDs: []string{m1.ID, m2.ID}, At: t1},
		{Ack: true, IDs: []string{m1.ID}, At: t2},
		{State: store.ReceiptPushed, IDs: []string{m1.ID}, At: t3},
		{State: store.ReceiptPushed, IDs: []string{m2.ID, uuid.NewString()}, At: t3},
	})
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if want := []int{2, 1, 0, 1}; !slices.Equal(got, want) {
		t.Fatalf("Record changed %v, want %v", got, want)
	}
	want1, want2 := status(m1, ""), status(m2, "")
	want1.State, want1.ReceivedAt, want1.ReadAt = store.StateRead, t1, t2
	want2.State, want2.ReceivedAt, want2.PushedAt = store.StatePushed, t1, t3
	wantStatus(t, s, meshA, alice, t3, want1, want2)

	// All or none: a bad record fails the records before it too.
	for _, bad := range []store.Record{
		{State: "read", IDs: []string{m2.ID}, At: t3},
		{State: store.ReceiptReceived, IDs: []string{m2.ID}},
	} {
		if _, err := s.Record(ctx, meshA, bob, []store.Record{{Ack: true, IDs: []string{m2.ID}, At: t3}, bad}); err == nil {
			t.Fatalf("Record with %+v succeeded", bad)
		}
	}
	m2.ReceivedAt, m2.PushedAt = t1, t3
	wantPending(t, s, meshA, bob, t3, "", 10, m2)
	if got, err := s.Record(ctx, meshA, bob, nil); err != nil || len(got) != 0 {
		t.Fatalf("Record of nothing = %v, %v", got, err)
	}
}

func testClearedVersusRead(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	cleared := newMessage(meshA, alice, bob, base)
	read := newMessage(meshA, alice, bob, base)
	enqueue(t, s, cleared, store.Stored)
	enqueue(t, s, read, store.Stored)
	t1, t2 := base.Add(time.Second), base.Add(2*time.Second)

	receipt(t, s, meshA, bob, store.ReceiptPushed, t1, 1, cleared.ID)
	ackAt(t, s, meshA, bob, t2, true, 1, cleared.ID)
	ackAt(t, s, meshA, bob, t2, false, 1, read.ID)
	wantCleared := status(cleared, "")
	wantCleared.State, wantCleared.PushedAt, wantCleared.ReadAt = store.StateCleared, t1, t2
	wantRead := status(read, "")
	wantRead.State, wantRead.ReadAt = store.StateRead, t2
	wantStatus(t, s, meshA, alice, t2, wantCleared, wantRead)
	wantPending(t, s, meshA, bob, base, "", 10)

	// The first ack decides: reading a cleared DM, or clearing a read one,
	// changes nothing.
	ackAt(t, s, meshA, bob, t2.Add(time.Second), false, 0, cleared.ID)
	ackAt(t, s, meshA, bob, t2.Add(time.Second), true, 0, read.ID)
	wantStatus(t, s, meshA, alice, t2, wantCleared, wantRead)
	enqueue(t, s, cleared, store.AlreadyAcked)

	// An ack dated before the DM was created counts from its creation.
	early := newMessage(meshA, alice, bob, t2)
	enqueue(t, s, early, store.Stored)
	ackAt(t, s, meshA, bob, base, false, 1, early.ID)
	wantEarly := status(early, "")
	wantEarly.State, wantEarly.ReadAt = store.StateRead, t2
	wantStatus(t, s, meshA, alice, t2, wantEarly)
}

func testPendingReceiptTimes(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	var ms []store.Message
	for i := range 3 {
		m := newMessage(meshA, alice, bob, base.Add(time.Duration(i)*time.Second))
		enqueue(t, s, m, store.Stored)
		ms = append(ms, m)
	}
	t1, t2 := base.Add(time.Minute), base.Add(2*time.Minute)
	receipt(t, s, meshA, bob, store.ReceiptReceived, t1, 2, ms[0].ID, ms[1].ID)
	receipt(t, s, meshA, bob, store.ReceiptPushed, t2, 1, ms[1].ID)
	ms[0].ReceivedAt = t1
	ms[1].ReceivedAt, ms[1].PushedAt = t1, t2
	wantPending(t, s, meshA, bob, base, "", 10, ms...)
}

// The recipient read a DM it held after the DM's ExpiresAt: while the store
// keeps the DM, the read counts.
func testAckAfterExpiry(t *testing.T, s store.Store) {
	alice, bob := newKey(), newKey()
	m := newMessage(meshA, alice, bob, base)
	enqueue(t, s, m, store.Stored)
	receipt(t, s, meshA, bob, store.ReceiptReceived, base, 1, m.ID)
	if n, err := s.Expire(t.Context(), m.ExpiresAt, time.Hour, base); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1 expired", n, err)
	}
	want := status(m, "")
	want.State, want.ReceivedAt = store.StateExpired, base
	wantStatus(t, s, meshA, alice, m.ExpiresAt, want)
	readAt := m.ExpiresAt.Add(time.Minute)
	ackAt(t, s, meshA, bob, readAt, false, 1, m.ID)
	want.State, want.ReadAt = store.StateRead, readAt
	wantStatus(t, s, meshA, alice, readAt, want)
}

func testUpsertSession(t *testing.T, s store.Store) {
	key := newKey()
	first := store.Session{Mesh: meshA, PublicKey: key, SessionID: uuid.NewString(), Name: "alice",
		ProjectDir: "/home/alice/api", FirstSeen: base, LastSeen: base}
	upsertAndCheck := func(sess, want store.Session) {
		t.Helper()
		if err := s.UpsertSession(t.Context(), sess); err != nil {
			t.Fatal(err)
		}
		got, err := s.Session(t.Context(), want.Mesh, want.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffSession(got, want); d != "" {
			t.Error(d)
		}
	}
	upsertAndCheck(first, first)

	// The kind is kept as the last hello said it.
	later := store.Session{Mesh: meshA, PublicKey: key, SessionID: uuid.NewString(), Name: "alice-2",
		ProjectDir: "/home/alice/web", Kind: "human", FirstSeen: base.Add(time.Hour), LastSeen: base.Add(time.Hour)}
	want := later
	want.FirstSeen = base
	upsertAndCheck(later, want)

	// The same key in another mesh is another session.
	elsewhere := later
	elsewhere.Mesh, elsewhere.Name = meshB, "alice-b"
	upsertAndCheck(elsewhere, elsewhere)
	got, err := s.Session(t.Context(), meshA, key)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffSession(got, want); d != "" {
		t.Errorf("after an upsert in another mesh: %s", d)
	}
}

func testSessionNotFound(t *testing.T, s store.Store) {
	key := newKey()
	if err := s.UpsertSession(t.Context(), store.Session{Mesh: meshA, PublicKey: key, Name: "alice", FirstSeen: base, LastSeen: base}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mesh string
		key  []byte
	}{{meshA, newKey()}, {meshB, key}} {
		if _, err := s.Session(t.Context(), c.mesh, c.key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Session(%s, %x) error = %v, want ErrNotFound", c.mesh, c.key, err)
		}
	}
}

func testForgetSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	idle, waited, other := newKey(), newKey(), newKey()
	for _, k := range [][]byte{idle, waited} {
		if err := s.UpsertSession(ctx, store.Session{Mesh: meshA, PublicKey: k, Name: "x", LastSeen: base}); err != nil {
			t.Fatal(err)
		}
	}
	m := newMessage(meshA, other, waited, base)
	enqueue(t, s, m, store.Stored)

	forget := func(key []byte, now time.Time, want bool) {
		t.Helper()
		gone, err := s.ForgetSession(ctx, meshA, key, now)
		if err != nil {
			t.Fatal(err)
		}
		if gone != want {
			t.Errorf("ForgetSession(%x) gone = %v, want %v", key[:4], gone, want)
		}
	}
	forget(idle, base, true)
	if _, err := s.Session(ctx, meshA, idle); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("forgotten session still there: %v", err)
	}
	forget(idle, base, true) // already gone

	// A DM waits for it: it must stay addressable, and the DM untouched.
	forget(waited, base, false)
	if _, err := s.Session(ctx, meshA, waited); err != nil {
		t.Errorf("session with a queued DM was forgotten: %v", err)
	}
	wantPending(t, s, meshA, waited, base, "", 10, m)

	// Once the DM is acked (or expired) nothing holds it.
	ack(t, s, meshA, waited, 1, m.ID)
	forget(waited, base, true)
}

func testSessions(t *testing.T, s store.Store) {
	t1, t2, t3 := base, base.Add(time.Minute), base.Add(2*time.Minute)
	add := func(mesh, name string, seen time.Time) store.Session {
		sess := store.Session{Mesh: mesh, PublicKey: newKey(), SessionID: uuid.NewString(), Name: name,
			ProjectDir: "/src/" + name, FirstSeen: base, LastSeen: seen}
		if err := s.UpsertSession(t.Context(), sess); err != nil {
			t.Fatal(err)
		}
		return sess
	}
	a, b, c := add(meshA, "a", t1), add(meshA, "b", t3), add(meshA, "c", t2)
	add(meshB, "d", t3)

	for _, tc := range []struct {
		since time.Time
		want  []store.Session
	}{
		{time.Time{}, []store.Session{b, c, a}},
		{t1, []store.Session{b, c, a}},
		{t2, []store.Session{b, c}},
		{t3.Add(time.Microsecond), nil},
	} {
		got, err := s.Sessions(t.Context(), meshA, tc.since)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("Sessions(since %v) returned %d sessions, want %d", tc.since, len(got), len(tc.want))
		}
		for i := range got {
			if d := diffSession(got[i], tc.want[i]); d != "" {
				t.Errorf("Sessions(since %v)[%d]: %s", tc.since, i, d)
			}
		}
	}
}

// testConcurrentEnqueue sends from many goroutines at once, the load under
// which an implementation batches its writes. Resent and conflicting DMs mixed
// into the load change nothing for the others.
func testConcurrentEnqueue(t *testing.T, s store.Store) {
	const senders, perSender = 32, 50
	bob := newKey()
	var wg sync.WaitGroup
	for range senders {
		from := newKey()
		wg.Go(func() {
			for i := range perSender {
				m := newMessage(meshA, from, bob, base.Add(time.Duration(i)*time.Microsecond))
				if res, err := s.Enqueue(t.Context(), m); err != nil || res != store.Stored {
					t.Errorf("Enqueue = %v, %v; want stored", res, err)
					return
				}
				if i%10 != 0 {
					continue
				}
				if res, err := s.Enqueue(t.Context(), m); err != nil || res != store.AlreadyQueued {
					t.Errorf("Enqueue again = %v, %v; want already-queued", res, err)
				}
				m.Box = randBytes(len(m.Box))
				if res, err := s.Enqueue(t.Context(), m); !errors.Is(err, store.ErrConflict) {
					t.Errorf("Enqueue with another box = %v, %v; want ErrConflict", res, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	seen := map[string]bool{}
	last := map[string]time.Time{} // per sender, messages keep their order
	after := ""
	for {
		page, err := s.Pending(t.Context(), meshA, bob, base, after, 300)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			if seen[m.ID] {
				t.Fatalf("message %s returned twice", m.ID)
			}
			seen[m.ID] = true
			if prev, ok := last[string(m.From)]; ok && !m.CreatedAt.After(prev) {
				t.Fatalf("message %s out of its sender's order", m.ID)
			}
			last[string(m.From)] = m.CreatedAt
		}
		after = page[len(page)-1].ID
	}
	if len(seen) != senders*perSender {
		t.Errorf("Pending returned %d messages, want %d", len(seen), senders*perSender)
	}
}

func testClosed(t *testing.T, s store.Store) {
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	ctx := t.Context()
	key := newKey()
	calls := map[string]func() error{
		"Enqueue": func() error { _, err := s.Enqueue(ctx, newMessage(meshA, newKey(), key, base)); return err },
		"Pending": func() error { _, err := s.Pending(ctx, meshA, key, base, "", 10); return err },
		"Ack":     func() error { _, err := s.Ack(ctx, meshA, key, []string{uuid.NewString()}, base, false); return err },
		"Receipt": func() error {
			_, err := s.Receipt(ctx, meshA, key, []string{uuid.NewString()}, store.ReceiptReceived, base)
			return err
		},
		"Status": func() error { _, err := s.Status(ctx, meshA, key, []string{uuid.NewString()}, base); return err },
		"Expire": func() error { _, err := s.Expire(ctx, base, time.Hour, base); return err },
		"UpsertSession": func() error {
			return s.UpsertSession(ctx, store.Session{Mesh: meshA, PublicKey: key, FirstSeen: base, LastSeen: base})
		},
		"Session":  func() error { _, err := s.Session(ctx, meshA, key); return err },
		"Sessions": func() error { _, err := s.Sessions(ctx, meshA, base); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", name, err)
		}
	}
}

func testSessionMember(t *testing.T, s store.Store) {
	ctx := t.Context()
	key, first, second := newKey(), newKey(), newKey()
	up := func(member []byte, at time.Time) {
		t.Helper()
		if err := s.UpsertSession(ctx, store.Session{Mesh: meshA, PublicKey: key, Name: "s", LastSeen: at, Member: member}); err != nil {
			t.Fatal(err)
		}
	}
	up(first, base)
	up(second, base.Add(time.Minute)) // never replaces the first member
	up(nil, base.Add(2*time.Minute))
	got, err := s.Session(ctx, meshA, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Member, first) || !got.LastSeen.Equal(base.Add(2*time.Minute)) {
		t.Errorf("session member %x, last seen %v; want the first member %x kept", got.Member, got.LastSeen, first)
	}
	other := newKey()
	if err := s.UpsertSession(ctx, store.Session{Mesh: meshA, PublicKey: other, Name: "o", LastSeen: base}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Session(ctx, meshA, other); len(got.Member) != 0 {
		t.Errorf("session without a member has member %x", got.Member)
	}
}

func testMeshes(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := store.Member{Key: newKey(), Name: "olga"}
	if ok, err := s.MeshExists(ctx, meshA); err != nil || ok {
		t.Fatalf("MeshExists before creation = %v, %v", ok, err)
	}
	if err := s.CreateMesh(ctx, meshA, owner, base); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMesh(ctx, meshA, store.Member{Key: newKey(), Name: "x"}, base); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateMesh = %v, want ErrConflict", err)
	}
	if ok, err := s.MeshExists(ctx, meshA); err != nil || !ok {
		t.Fatalf("MeshExists after creation = %v, %v", ok, err)
	}
	if ok, _ := s.MeshExists(ctx, meshB); ok {
		t.Errorf("another mesh exists")
	}
	m, err := s.Member(ctx, meshA, owner.Key)
	if err != nil || m.Role != "owner" || m.Name != "olga" || !m.JoinedAt.Equal(base) || m.Mesh != meshA {
		t.Fatalf("owner = %+v, %v", m, err)
	}
	if _, err := s.Member(ctx, meshB, owner.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("owner in another mesh: %v, want ErrNotFound", err)
	}
	if removed, err := s.RemoveMember(ctx, meshA, owner.Key); err != nil || !removed {
		t.Fatalf("RemoveMember = %v, %v", removed, err)
	}
	if removed, _ := s.RemoveMember(ctx, meshA, owner.Key); removed {
		t.Errorf("a second RemoveMember removed something")
	}
	if _, err := s.Member(ctx, meshA, owner.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removed member: %v, want ErrNotFound", err)
	}
}

func testInvites(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner := store.Member{Key: newKey(), Name: "olga"}
	if err := s.CreateMesh(ctx, meshA, owner, base); err != nil {
		t.Fatal(err)
	}
	inv := store.Invite{Hash: randBytes(32), Mesh: meshA, CreatedBy: owner.Key, Uses: 2, ExpiresAt: base.Add(time.Hour), CreatedAt: base}
	if err := s.CreateInvite(ctx, inv); err != nil {
		t.Fatal(err)
	}
	redeem := func(hash []byte, name string, at time.Time) (store.Member, error) {
		return s.RedeemInvite(ctx, hash, store.Member{Key: newKey(), Name: name}, at)
	}
	m, err := redeem(inv.Hash, "ann", base)
	if err != nil || m.Mesh != meshA || m.Role != "member" || m.Name != "ann" {
		t.Fatalf("redeem = %+v, %v", m, err)
	}
	if got, err := s.Member(ctx, meshA, m.Key); err != nil || got.Name != "ann" {
		t.Errorf("redeemed member = %+v, %v", got, err)
	}
	// A name taken does not spend a use.
	if _, err := redeem(inv.Hash, "olga", base); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redeem with a taken name = %v, want ErrConflict", err)
	}
	if _, err := redeem(inv.Hash, "ben", base); err != nil {
		t.Errorf("second use = %v", err)
	}
	if _, err := redeem(inv.Hash, "cat", base); !errors.Is(err, store.ErrInvite) {
		t.Errorf("third use of a 2-use invite = %v, want ErrInvite", err)
	}
	// Expired and revoked invites, unknown codes.
	exp := store.Invite{Hash: randBytes(32), Mesh: meshA, CreatedBy: owner.Key, Uses: 5, ExpiresAt: base.Add(time.Minute), CreatedAt: base}
	rev := store.Invite{Hash: randBytes(32), Mesh: meshA, CreatedBy: owner.Key, Uses: 5, ExpiresAt: base.Add(time.Hour), CreatedAt: base}
	for _, i := range []store.Invite{exp, rev} {
		if err := s.CreateInvite(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := redeem(exp.Hash, "dan", base.Add(time.Minute)); !errors.Is(err, store.ErrInvite) {
		t.Errorf("expired invite = %v, want ErrInvite", err)
	}
	if ok, err := s.RevokeInvite(ctx, meshB, rev.Hash); err != nil || ok {
		t.Errorf("revoke from another mesh = %v, %v; want false", ok, err)
	}
	if ok, err := s.RevokeInvite(ctx, meshA, rev.Hash); err != nil || !ok {
		t.Errorf("revoke = %v, %v", ok, err)
	}
	if _, err := redeem(rev.Hash, "eve", base); !errors.Is(err, store.ErrInvite) {
		t.Errorf("revoked invite = %v, want ErrInvite", err)
	}
	if _, err := redeem(randBytes(32), "fay", base); !errors.Is(err, store.ErrInvite) {
		t.Errorf("unknown invite = %v, want ErrInvite", err)
	}
	list, err := s.MemberList(ctx, meshA)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list {
		names = append(names, m.Name)
	}
	if strings.Join(names, ",") != "ann,ben,olga" {
		t.Errorf("members %v, want ann, ben, olga", names)
	}
}

func testQueueStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	from, to := newKey(), newKey()
	stats := func(now time.Time) (int, int64) {
		t.Helper()
		n, b, err := s.QueueStats(ctx, meshA, to, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		return n, b
	}
	if n, b := stats(base); n != 0 || b != 0 {
		t.Errorf("empty queue: %d DMs, %d bytes", n, b)
	}
	m1, m2 := newMessage(meshA, from, to, base), newMessage(meshA, from, to, base)
	other := newMessage(meshB, from, to, base)
	for _, m := range []store.Message{m1, m2, other} {
		enqueue(t, s, m, store.Stored)
	}
	if n, b := stats(base); n != 2 || b != int64(len(m1.Box)+len(m2.Box)) {
		t.Errorf("queue: %d DMs, %d bytes; want 2, %d", n, b, len(m1.Box)+len(m2.Box))
	}
	ack(t, s, meshA, to, 1, m1.ID)
	if n, _ := stats(base); n != 1 {
		t.Errorf("after an ack: %d DMs, want 1", n)
	}
	if n, _ := stats(m2.ExpiresAt); n != 0 {
		t.Errorf("at expiry: %d DMs, want 0", n)
	}
}

// testSessionIDBelongsToFirstKey: once a key registered a session UUID in a
// mesh, another key presenting that UUID is refused and the owner's row is
// not touched; the owner may change its own session id; the UUID is free
// again once the owner's session is forgotten; other meshes are separate.
func testSessionIDBelongsToFirstKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	id := uuid.NewString()
	owner := store.Session{Mesh: meshA, PublicKey: newKey(), SessionID: id, Name: "amy", ProjectDir: "/src/amy",
		FirstSeen: base, LastSeen: base}
	if err := s.UpsertSession(ctx, owner); err != nil {
		t.Fatal(err)
	}
	impostor := store.Session{Mesh: meshA, PublicKey: newKey(), SessionID: id, Name: "amy", ProjectDir: "/src/amy",
		FirstSeen: base.Add(time.Minute), LastSeen: base.Add(time.Minute)}
	if err := s.UpsertSession(ctx, impostor); !errors.Is(err, store.ErrSessionTaken) {
		t.Fatalf("another key with the owner's session id: err = %v, want ErrSessionTaken", err)
	}
	if _, err := s.Session(ctx, meshA, impostor.PublicKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused key was recorded anyway: %v", err)
	}
	got, err := s.Session(ctx, meshA, owner.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffSession(got, owner); d != "" {
		t.Errorf("the owner's row changed after a refused claim: %s", d)
	}
	// A key already known that switches to the owner's id is refused too,
	// and keeps its own id.
	other := store.Session{Mesh: meshA, PublicKey: newKey(), SessionID: uuid.NewString(), Name: "ben",
		FirstSeen: base, LastSeen: base}
	if err := s.UpsertSession(ctx, other); err != nil {
		t.Fatal(err)
	}
	switched := other
	switched.SessionID, switched.LastSeen = id, base.Add(time.Minute)
	if err := s.UpsertSession(ctx, switched); !errors.Is(err, store.ErrSessionTaken) {
		t.Errorf("a known key switching to a taken id: err = %v, want ErrSessionTaken", err)
	}
	if got, err := s.Session(ctx, meshA, other.PublicKey); err != nil || got.SessionID != other.SessionID {
		t.Errorf("after a refused switch the key's session id is %q (err %v), want %q", got.SessionID, err, other.SessionID)
	}
	// The same UUID in another mesh is another session.
	elsewhere := impostor
	elsewhere.Mesh = meshB
	if err := s.UpsertSession(ctx, elsewhere); err != nil {
		t.Errorf("the same id in another mesh: %v", err)
	}
	// Sessions without an id (ephemeral keys) never collide.
	for range 2 {
		if err := s.UpsertSession(ctx, store.Session{Mesh: meshA, PublicKey: newKey(), Name: "eph", LastSeen: base}); err != nil {
			t.Errorf("ephemeral session: %v", err)
		}
	}
	// The owner reconnecting keeps working.
	again := owner
	again.LastSeen = base.Add(2 * time.Minute)
	if err := s.UpsertSession(ctx, again); err != nil {
		t.Errorf("the owner again: %v", err)
	}
	// Forgotten, the id is free.
	if gone, err := s.ForgetSession(ctx, meshA, owner.PublicKey, base); err != nil || !gone {
		t.Fatalf("forget owner: gone %v, err %v", gone, err)
	}
	if err := s.UpsertSession(ctx, impostor); err != nil {
		t.Errorf("the id after its owner was forgotten: %v", err)
	}
}

// testSessionIDRaceHasOneWinner: keys racing for one session UUID: exactly
// one gets it.
func testSessionIDRaceHasOneWinner(t *testing.T, s store.Store) {
	const n = 16
	id := uuid.NewString()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.UpsertSession(t.Context(), store.Session{Mesh: meshA, PublicKey: newKey(), SessionID: id,
				Name: fmt.Sprint("k", i), LastSeen: base})
		}()
	}
	won := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrSessionTaken):
			t.Errorf("racing claim: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d keys got session id %s, want exactly 1", won, id)
	}
}

// testQueueStatsPerSender: QueueStats with a sender counts only what that
// sender answers for (Sender, or From when Sender is empty).
func testQueueStatsPerSender(t *testing.T, s store.Store) {
	ctx := t.Context()
	member, lone, other, to := newKey(), newKey(), newKey(), newKey()
	fromMember1 := newMessage(meshA, newKey(), to, base)
	fromMember1.Sender = member
	fromMember2 := newMessage(meshA, newKey(), to, base) // another session of the same member
	fromMember2.Sender = member
	fromLone := newMessage(meshA, lone, to, base)
	for _, m := range []store.Message{fromMember1, fromMember2, fromLone, newMessage(meshA, other, to, base)} {
		enqueue(t, s, m, store.Stored)
	}
	for _, tc := range []struct {
		name   string
		sender []byte
		want   []store.Message
	}{
		{"member", member, []store.Message{fromMember1, fromMember2}},
		{"session without member", lone, []store.Message{fromLone}},
		{"a session of the member by its own key", fromMember1.From, nil},
		{"unknown", newKey(), nil},
	} {
		n, b, err := s.QueueStats(ctx, meshA, to, tc.sender, base)
		if err != nil {
			t.Fatal(err)
		}
		var wantB int64
		for _, m := range tc.want {
			wantB += int64(len(m.Box))
		}
		if n != len(tc.want) || b != wantB {
			t.Errorf("%s: %d DMs, %d bytes; want %d, %d", tc.name, n, b, len(tc.want), wantB)
		}
	}
	ack(t, s, meshA, to, 1, fromMember1.ID)
	if n, _, err := s.QueueStats(ctx, meshA, to, member, base); err != nil || n != 1 {
		t.Errorf("after an ack: %d DMs (err %v), want 1", n, err)
	}
}
