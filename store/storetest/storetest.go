// Package storetest is the conformance suite for store.Store. Every
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// The suite checks the behaviour the broker relies on: a DM is kept byte for
// byte until its recipient acknowledges it, is delivered to nobody else, and
// once acknowledged is never delivered again, even when resent.
package storetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
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
		{"UpsertSession", testUpsertSession},
		{"SessionNotFound", testSessionNotFound},
		{"ForgetSession", testForgetSession},
		{"Sessions", testSessions},
		{"ConcurrentEnqueue", testConcurrentEnqueue},
		{"Closed", testClosed},
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

func ack(t *testing.T, s store.Store, mesh string, to []byte, want int, ids ...string) {
	t.Helper()
	got, err := s.Ack(t.Context(), mesh, to, ids)
	if err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if got != want {
		t.Fatalf("Ack(%v) = %d, want %d", ids, got, want)
	}
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
	return strings.Join(d, "; ")
}

func diffSession(got, want store.Session) string {
	if got.Mesh != want.Mesh || !bytes.Equal(got.PublicKey, want.PublicKey) || got.SessionID != want.SessionID ||
		got.Name != want.Name || got.ProjectDir != want.ProjectDir ||
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
	alice, bob := newKey(), newKey()
	now := base.Add(time.Hour)
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
		if err := s.UpsertSession(t.Context(), sess); err != nil {
			t.Fatal(err)
		}
		sessions[name] = sess
	}

	n, err := s.Expire(t.Context(), now, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Expire removed %d messages, want 2", n)
	}
	// Seen from before the expiry, only the live pending DM remains.
	wantPending(t, s, meshA, bob, base, "", 10, livePending)
	// The acknowledged tombstone still refuses a second delivery; the
	// expired ones are gone, so their IDs are new again.
	enqueue(t, s, liveAcked, store.AlreadyAcked)
	enqueue(t, s, expiredAcked, store.Stored)
	enqueue(t, s, expiredPending, store.Stored)

	if _, err := s.Session(t.Context(), meshA, sessions["old"].PublicKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session last seen before the cutoff: err = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"edge", "new"} {
		got, err := s.Session(t.Context(), meshA, sessions[name].PublicKey)
		if err != nil {
			t.Fatalf("session %s: %v", name, err)
		}
		if d := diffSession(got, sessions[name]); d != "" {
			t.Errorf("session %s: %s", name, d)
		}
	}
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

	later := store.Session{Mesh: meshA, PublicKey: key, SessionID: uuid.NewString(), Name: "alice-2",
		ProjectDir: "/home/alice/web", FirstSeen: base.Add(time.Hour), LastSeen: base.Add(time.Hour)}
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
		"Ack":     func() error { _, err := s.Ack(ctx, meshA, key, []string{uuid.NewString()}); return err },
		"Expire":  func() error { _, err := s.Expire(ctx, base, base); return err },
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
