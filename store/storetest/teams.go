package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/store"
)

// seen records a session for key in mesh at base.
func seen(t *testing.T, s store.Store, mesh string, key []byte) {
	t.Helper()
	if err := s.UpsertSession(t.Context(), store.Session{Mesh: mesh, PublicKey: key, Name: "n", FirstSeen: base, LastSeen: base}); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys(keys ...[]byte) [][]byte {
	out := slices.Clone(keys)
	slices.SortFunc(out, bytes.Compare)
	return out
}

func wantMembers(t *testing.T, s store.Store, mesh, group string, want ...[]byte) {
	t.Helper()
	got, err := s.GroupMembers(t.Context(), mesh, group)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, sortedKeys(want...), bytes.Equal) {
		t.Errorf("GroupMembers(%s, %s) = %d keys %x, want %d keys %x", mesh, group, len(got), got, len(want), sortedKeys(want...))
	}
}

func testGroupMembership(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b, c := newKey(), newKey(), newKey()
	for _, k := range [][]byte{a, b, c} {
		seen(t, s, meshA, k)
	}
	seen(t, s, meshB, a)
	for _, j := range []struct {
		group string
		key   []byte
		want  bool
	}{{"backend", a, true}, {"backend", b, true}, {"backend", a, false}, {"ops", c, true}} {
		got, err := s.JoinGroup(ctx, meshA, j.group, j.key, base)
		if err != nil || got != j.want {
			t.Fatalf("JoinGroup(%s) = %v, %v; want %v", j.group, got, err, j.want)
		}
	}
	wantMembers(t, s, meshA, "backend", a, b)
	wantMembers(t, s, meshA, "ops", c)
	wantMembers(t, s, meshB, "backend") // groups belong to their mesh
	wantMembers(t, s, meshA, "nobody")

	ms, err := s.Memberships(ctx, meshA)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Group != "backend" || ms[2].Group != "ops" || !bytes.Equal(ms[2].Key, c) || !ms[2].JoinedAt.Equal(base) {
		t.Errorf("Memberships = %+v", ms)
	}

	left, err := s.LeaveGroup(ctx, meshA, "backend", a)
	if err != nil || !left {
		t.Fatalf("LeaveGroup = %v, %v; want true", left, err)
	}
	left, err = s.LeaveGroup(ctx, meshA, "backend", a)
	if err != nil || left {
		t.Fatalf("second LeaveGroup = %v, %v; want false", left, err)
	}
	wantMembers(t, s, meshA, "backend", b)
}

// groupSend returns the DMs of one group send from `from` to each of to.
func groupSend(from []byte, to ...[]byte) []store.Message {
	msgs := make([]store.Message, len(to))
	for i, k := range to {
		msgs[i] = newMessage(meshA, from, k, base)
	}
	return msgs
}

func testEnqueueGroupAllOrNone(t *testing.T, s store.Store) {
	ctx := t.Context()
	from, b, c, d := newKey(), newKey(), newKey(), newKey()
	send := uuid.NewString()
	msgs := groupSend(from, b, c, d)
	res, err := s.EnqueueGroup(ctx, send, "backend", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res, []store.EnqueueResult{store.Stored, store.Stored, store.Stored}) {
		t.Fatalf("EnqueueGroup = %v, want stored thrice", res)
	}
	for i, k := range [][]byte{b, c, d} {
		wantPending(t, s, meshA, k, base, "", 10, msgs[i])
	}
	// The same send again: each DM recognised, nothing doubled.
	res, err = s.EnqueueGroup(ctx, send, "backend", msgs)
	if err != nil || !slices.Equal(res, []store.EnqueueResult{store.AlreadyQueued, store.AlreadyQueued, store.AlreadyQueued}) {
		t.Fatalf("resend = %v, %v; want already queued thrice", res, err)
	}
	wantPending(t, s, meshA, c, base, "", 10, msgs[1])

	// One DM whose id another DM holds: none of the send is stored.
	e, f := newKey(), newKey()
	other := groupSend(from, e, f)
	other[1].ID = msgs[0].ID
	if _, err := s.EnqueueGroup(ctx, uuid.NewString(), "backend", other); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("EnqueueGroup with a taken id: %v, want ErrConflict", err)
	}
	wantPending(t, s, meshA, e, base, "", 10)
	wantPending(t, s, meshA, f, base, "", 10)
}

func testGroupStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	from, b, c := newKey(), newKey(), newKey()
	seen(t, s, meshA, b)
	send := uuid.NewString()
	msgs := groupSend(from, b, c)
	if _, err := s.EnqueueGroup(ctx, send, "backend", msgs); err != nil {
		t.Fatal(err)
	}
	ack(t, s, meshA, b, 1, msgs[0].ID)
	group, sts, err := s.GroupStatus(ctx, meshA, from, send, ackTime)
	if err != nil {
		t.Fatal(err)
	}
	if group != "backend" || len(sts) != 2 {
		t.Fatalf("GroupStatus = %q, %+v", group, sts)
	}
	states := map[string]string{}
	for _, st := range sts {
		states[string(st.To)] = st.State
	}
	if states[string(b)] != store.StateRead || states[string(c)] != store.StateQueued {
		t.Errorf("states = %v, want read for b, queued for c", states)
	}
	// Only the sender learns anything; an unknown send is not found.
	if _, _, err := s.GroupStatus(ctx, meshA, b, send, ackTime); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GroupStatus by a recipient: %v, want ErrNotFound", err)
	}
	if _, _, err := s.GroupStatus(ctx, meshB, from, send, ackTime); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GroupStatus in another mesh: %v, want ErrNotFound", err)
	}
	if _, _, err := s.GroupStatus(ctx, meshA, from, uuid.NewString(), ackTime); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GroupStatus of an unknown send: %v, want ErrNotFound", err)
	}
	// A DM of the send is also known by its own id.
	wantStatus(t, s, meshA, from, ackTime, status(msgs[1], ""))
}

func testPresence(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newKey()
	if _, err := s.Presence(ctx, meshA, a); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Presence before any: %v, want ErrNotFound", err)
	}
	p := store.Presence{Mesh: meshA, Key: a, Summary: "rebasing main", Availability: "busy", Activity: "working",
		ActivitySince: base, UpdatedAt: base}
	if err := s.SetPresence(ctx, p); err != nil {
		t.Fatal(err)
	}
	p2 := p
	p2.Activity, p2.ActivitySince, p2.UpdatedAt = "idle", base.Add(time.Minute), base.Add(time.Minute)
	if err := s.SetPresence(ctx, p2); err != nil {
		t.Fatal(err)
	}
	got, err := s.Presence(ctx, meshA, a)
	if err != nil {
		t.Fatal(err)
	}
	if got.Summary != p2.Summary || got.Availability != "busy" || got.Activity != "idle" ||
		!got.ActivitySince.Equal(p2.ActivitySince) || !got.UpdatedAt.Equal(p2.UpdatedAt) {
		t.Errorf("Presence = %+v, want %+v", got, p2)
	}
	// A zero activity time stays zero.
	b := newKey()
	if err := s.SetPresence(ctx, store.Presence{Mesh: meshA, Key: b, Availability: "dnd", UpdatedAt: base}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Presences(ctx, meshA)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("Presences = %+v, want 2", all)
	}
	for _, q := range all {
		if bytes.Equal(q.Key, b) && (!q.ActivitySince.IsZero() || q.Availability != "dnd") {
			t.Errorf("Presence of b = %+v", q)
		}
	}
	if other, err := s.Presences(ctx, meshB); err != nil || len(other) != 0 {
		t.Errorf("Presences of another mesh = %+v, %v", other, err)
	}
}

func testTeamsForgotten(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newKey(), newKey()
	seen(t, s, meshA, a)
	if err := s.UpsertSession(ctx, store.Session{Mesh: meshA, PublicKey: b, Name: "b", FirstSeen: base, LastSeen: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{a, b} {
		if _, err := s.JoinGroup(ctx, meshA, "backend", k, base); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPresence(ctx, store.Presence{Mesh: meshA, Key: k, Summary: "x", UpdatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	// a expires with its session; b is forgotten on a bye.
	if _, err := s.Expire(ctx, base.Add(time.Minute), time.Hour, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	wantMembers(t, s, meshA, "backend", b)
	if _, err := s.Presence(ctx, meshA, a); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("presence of an expired session: %v, want ErrNotFound", err)
	}
	if gone, err := s.ForgetSession(ctx, meshA, b, base); err != nil || !gone {
		t.Fatalf("ForgetSession = %v, %v", gone, err)
	}
	wantMembers(t, s, meshA, "backend")
	if _, err := s.Presence(ctx, meshA, b); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("presence of a forgotten session: %v, want ErrNotFound", err)
	}
	// A session seen again starts with no groups: a forgotten key's
	// memberships do not come back.
	seen(t, s, meshA, b)
	wantMembers(t, s, meshA, "backend")
}
