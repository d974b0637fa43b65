package broker_test

import (
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/testpg"
	"github.com/claudemesh/claudemesh/store/postgres"
	"github.com/claudemesh/claudemesh/wire"
)

// backends start a broker on each kind of store: SQLite in a temporary
// directory, and PostgreSQL (skipped without a server).
var backends = []struct {
	name  string
	start func(t *testing.T, cfg broker.Config) *testBroker
}{
	{"sqlite", func(t *testing.T, cfg broker.Config) *testBroker { return newBroker(t, cfg) }},
	{"postgres", func(t *testing.T, cfg broker.Config) *testBroker {
		ps, err := postgres.Open(t.Context(), testpg.URL(t), postgres.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ps.Close() })
		cfg.Cluster, cfg.Node = ps, "a"
		return serveStore(t, ps, cfg)
	}},
}

// sealGroup seals text from `from` to each of to under the DM id of group
// send id, as a client does.
func sealGroup(t *testing.T, id, text string, from *identity.Key, to ...*identity.Key) []wire.Box {
	t.Helper()
	boxes := make([]wire.Box, len(to))
	for i, k := range to {
		nonce, box := seal(t, wire.GroupDMID(id, wire.Key(k.Public))+":"+text, from, k)
		boxes[i] = wire.Box{To: wire.Key(k.Public), Nonce: nonce[:], Box: box}
	}
	return boxes
}

func join(t *testing.T, p *peer, group string) {
	t.Helper()
	groups, err := p.JoinGroup(waitCtx(t), group)
	if err != nil || !slices.Contains(groups, group) {
		t.Fatalf("join %s: %v, %v", group, groups, err)
	}
}

// A group send to five members, two of them away: three are pushed at
// once and two queued and pushed when they return, each box opens only
// with its own recipient's key, a session outside the group gets nothing,
// and the sender sees each recipient's status.
func TestGroupSend(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			tb := be.start(t, broker.Config{})
			alice := tb.dial(t, newKey(t, testMesh), "alice")
			outsider := tb.dial(t, newKey(t, testMesh), "outsider")
			var members []*peer
			var keys []*identity.Key
			for _, name := range []string{"m1", "m2", "m3", "m4", "m5"} {
				p := tb.dial(t, newKey(t, testMesh), name)
				join(t, p, "backend")
				members, keys = append(members, p), append(keys, p.key)
			}
			join(t, outsider, "frontend")
			// m4 and m5 go away.
			for _, p := range members[3:] {
				closeWithin(t, p.key.ID(), p)
				waitState(t, alice, p.key.ID(), wire.PeerOffline)
			}

			id := uuid.NewString()
			sent, err := alice.SendGroup(waitCtx(t), id, "backend", sealGroup(t, id, "rebasing main, hold your pushes", alice.key, keys...))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for i, k := range keys {
				want[k.ID()] = wire.StatusDelivered
				if i >= 3 {
					want[k.ID()] = wire.StatusQueued
				}
			}
			got := map[string]string{}
			for _, r := range sent.Recipients {
				got[identity.KeyID(ed25519.PublicKey(r.To))] = r.Status
			}
			if !mapsEqual(got, want) || sent.Status != wire.StatusQueued {
				t.Fatalf("sent %+v: recipients %v, want %v", sent, got, want)
			}
			// The three online members have it now.
			for _, p := range members[:3] {
				opened(t, p, id, alice.key)
			}
			// The two away ones get it when they return.
			for i, p := range members[3:] {
				back := tb.dial(t, p.key, "back")
				members[3+i] = back
				opened(t, back, id, alice.key)
			}
			// A box opens only with its own key: m1's copy is not m2's.
			dm1 := members[0].in.wait(t, wire.GroupDMID(id, wire.Key(keys[0].Public)))
			if _, err := identity.Open(dm1.Box, [wire.NonceSize]byte(dm1.Nonce), ed25519.PublicKey(dm1.From), keys[1].Private); err == nil {
				t.Error("m2's key opened m1's box")
			}
			// Nobody outside the group received anything.
			outsider.sync(t, alice)
			if n := len(outsider.in.all()); n != 1 {
				t.Errorf("the outsider received %d DMs, want only the sync DM", n)
			}
			// The sender sees each recipient: m1 read it, the rest
			// are still unread.
			if err := members[0].Ack([]string{dm1.ID}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "m1's copy read", func() bool {
				sts, err := alice.Status(waitCtx(t), []string{id})
				if err != nil || len(sts) != 1 || sts[0].Group != "backend" || len(sts[0].Recipients) != 5 {
					return false
				}
				n := 0
				for _, r := range sts[0].Recipients {
					if r.State == wire.StateRead {
						n++
						if identity.KeyID(ed25519.PublicKey(r.To)) != keys[0].ID() {
							t.Errorf("recipient %s read, want only m1", r.ToName)
						}
					}
				}
				return n == 1 && sts[0].State == wire.StateQueued
			})
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// opened waits for p's copy of group send id and opens it with p's key.
func opened(t *testing.T, p *peer, id string, from *identity.Key) {
	t.Helper()
	dmID := wire.GroupDMID(id, wire.Key(p.key.Public))
	dm := p.in.wait(t, dmID)
	plain, err := identity.Open(dm.Box, [wire.NonceSize]byte(dm.Nonce), ed25519.PublicKey(from.Public), p.key.Private)
	if err != nil || string(plain) != dmID+":rebasing main, hold your pushes" {
		t.Errorf("%s: open its copy: %q, %v", p.key.ID(), plain, err)
	}
}

// A member that joined after the send does not get it; a group that
// changed between the sender's look and its send is refused with the
// members now, and the send sealed to them goes through.
func TestGroupChangedBetweenLookAndSend(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bob := tb.dial(t, newKey(t, testMesh), "bob")
	carol := tb.dial(t, newKey(t, testMesh), "carol")
	join(t, bob, "ops")

	id := uuid.NewString()
	boxes := sealGroup(t, id, "x", alice.key, bob.key)
	join(t, carol, "ops") // after alice sealed
	_, err := alice.SendGroup(waitCtx(t), id, "ops", boxes)
	we := wireError(t, err)
	if we.Code != wire.CodeGroupChanged || len(we.Members) != 2 {
		t.Fatalf("refusal %+v, want group_changed with two members", we)
	}
	if n := len(pendingIDs(t, tb, bob.key)); n != 0 {
		t.Fatalf("bob has %d DMs pending after the refusal, want none", n)
	}
	resealed := sealGroup(t, id, "x", alice.key, bob.key, carol.key)
	sent, err := alice.SendGroup(waitCtx(t), id, "ops", resealed)
	if err != nil || len(sent.Recipients) != 2 {
		t.Fatalf("second try: %+v, %v", sent, err)
	}
	bob.in.wait(t, wire.GroupDMID(id, wire.Key(bob.key.Public)))
	carol.in.wait(t, wire.GroupDMID(id, wire.Key(carol.key.Public)))

	// dave joins later: he does not get it, and a resend of the same
	// send stays idempotent although the group changed again.
	dave := tb.dial(t, newKey(t, testMesh), "dave")
	join(t, dave, "ops")
	again, err := alice.SendGroup(waitCtx(t), id, "ops", resealed)
	if err != nil || len(again.Recipients) != 2 {
		t.Fatalf("resend: %+v, %v", again, err)
	}
	dave.sync(t, alice)
	if n := len(dave.in.all()); n != 1 {
		t.Errorf("a later member received %d DMs, want only the sync DM", n)
	}
	bob.sync(t, alice)
	if n := bob.in.count(wire.GroupDMID(id, wire.Key(bob.key.Public))); n != 1 {
		t.Errorf("bob received the group DM %d times, want once", n)
	}
}

func pendingIDs(t *testing.T, tb *testBroker, key *identity.Key) []string {
	t.Helper()
	msgs, err := tb.st.Pending(t.Context(), testMesh, key.Public, time.Now(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

// A flood of sends to everyone is cut by the broadcast limit, while DMs
// from the same session still go through.
func TestBroadcastFloodLimited(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now, BroadcastBurst: 2, BroadcastEvery: time.Minute})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bob := tb.dial(t, newKey(t, testMesh), "bob")
	var reached, limited int
	for range 10 {
		id := uuid.NewString()
		sent, err := alice.SendGroup(waitCtx(t), id, wire.GroupAll, sealGroup(t, id, "all hands", alice.key, bob.key))
		if err != nil {
			if wireError(t, err).Code != wire.CodeRateLimited {
				t.Fatalf("broadcast refused with %v, want rate_limited", err)
			}
			limited++
			continue
		}
		reached += len(sent.Recipients)
		// DMs go on meanwhile.
		dmID, _ := sendText(t, alice, bob.key, "a plain DM")
		bob.in.wait(t, dmID)
	}
	if reached != 2 || limited != 8 {
		t.Errorf("%d broadcasts reached someone and %d were limited, want 2 and 8", reached, limited)
	}
	for range 5 {
		dmID, status := sendText(t, alice, bob.key, "still a DM")
		if status != wire.StatusDelivered {
			t.Fatalf("DM after the flood: %s", status)
		}
		bob.in.wait(t, dmID)
	}
	clk.Advance(time.Minute)
	id := uuid.NewString()
	if _, err := alice.SendGroup(waitCtx(t), id, wire.GroupAll, sealGroup(t, id, "later", alice.key, bob.key)); err != nil {
		t.Errorf("broadcast a minute later: %v", err)
	}
}

// Group membership and status survive a broker restart.
func TestTeamsSurviveRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "broker.db")
	st := openStore(t, path, "FULL")
	tb := serveStore(t, st, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bob := tb.dial(t, newKey(t, testMesh), "bob")
	join(t, bob, "backend")
	join(t, bob, "ops")
	if _, err := bob.LeaveGroup(waitCtx(t), "ops"); err != nil {
		t.Fatal(err)
	}
	summary := "rebasing main"
	if err := bob.SetStatus(waitCtx(t), wire.SetStatus{Summary: &summary, Availability: wire.DND, Activity: wire.Working}); err != nil {
		t.Fatal(err)
	}
	closeWithin(t, "alice", alice)
	closeWithin(t, "bob", bob)
	closeWithin(t, "broker", tb.srv)
	closeWithin(t, "store", st)

	tb = serveStore(t, openStore(t, path, "FULL"), broker.Config{})
	alice = tb.dial(t, alice.key, "alice")
	got := alice.peers(t)[bob.key.ID()]
	if !slices.Equal(got.Groups, []string{"backend"}) || got.Summary != summary || got.Availability != wire.DND ||
		got.Activity != wire.Working || got.ActivitySince.IsZero() {
		t.Errorf("bob after the restart: %+v, want in backend only, dnd, working on %q", got, summary)
	}
	id := uuid.NewString()
	sent, err := alice.SendGroup(waitCtx(t), id, "backend", sealGroup(t, id, "x", alice.key, bob.key))
	if err != nil || len(sent.Recipients) != 1 || sent.Recipients[0].Status != wire.StatusQueued {
		t.Errorf("send to backend after the restart: %+v, %v", sent, err)
	}
}

// What a session says about itself reaches a peer on another broker node.
func TestStatusAcrossNodes(t *testing.T) {
	t.Parallel()
	url := testpg.URL(t)
	node := func(name string) *testBroker {
		ps, err := postgres.Open(t.Context(), url, postgres.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ps.Close() })
		return serveStore(t, ps, broker.Config{Cluster: ps, Node: name})
	}
	a, b := node("a"), node("b")
	alice := a.dial(t, newKey(t, testMesh), "alice")
	bob := b.dial(t, newKey(t, testMesh), "bob")
	join(t, alice, "backend")
	summary := "fixing the flaky test"
	if err := alice.SetStatus(waitCtx(t), wire.SetStatus{Summary: &summary, Activity: wire.Working}); err != nil {
		t.Fatal(err)
	}
	got := bob.peers(t)[alice.key.ID()]
	if got.Summary != summary || got.Activity != wire.Working || !slices.Equal(got.Groups, []string{"backend"}) || got.State != wire.PeerOnline {
		t.Fatalf("alice as bob sees her on the other node: %+v", got)
	}
	if err := alice.SetStatus(waitCtx(t), wire.SetStatus{Activity: wire.Idle}); err != nil {
		t.Fatal(err)
	}
	again := bob.peers(t)[alice.key.ID()]
	if again.Activity != wire.Idle || again.Summary != summary || !again.ActivitySince.After(got.ActivitySince) {
		t.Errorf("after idle: %+v, want idle since after %v, summary kept", again, got.ActivitySince)
	}
	// A group send from the other node reaches her.
	id := uuid.NewString()
	sent, err := bob.SendGroup(waitCtx(t), id, "backend", sealGroup(t, id, "x", bob.key, alice.key))
	if err != nil || sent.Recipients[0].Status != wire.StatusDelivered {
		t.Fatalf("group send across nodes: %+v, %v", sent, err)
	}
	alice.in.wait(t, wire.GroupDMID(id, wire.Key(alice.key.Public)))
}
