package broker_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// withClock dates a client's receipts with clk.
func withClock(clk *clock) func(*client.Config) {
	return func(c *client.Config) { c.Now = clk.Now }
}

// settle returns once the broker has handled every frame p wrote so far.
// The broker handles a connection's frames one after the other, so when it
// has answered a request written after them, it is done with them.
func settle(t testing.TB, p *peer) {
	t.Helper()
	p.peers(t)
}

// wantStatus checks what p learns about the DMs of want, asked in one
// request.
func wantStatus(t testing.TB, p *peer, want ...wire.MessageStatus) {
	t.Helper()
	ids := make([]string, len(want))
	for i, w := range want {
		ids[i] = w.ID
	}
	got, err := p.Status(waitCtx(t), ids)
	if err != nil {
		t.Fatalf("status of %v: %v", ids, err)
	}
	if len(got) != len(want) {
		t.Fatalf("status of %d ids returned %d statuses", len(ids), len(got))
	}
	for i := range want {
		if d := diffStatus(got[i], want[i]); d != "" {
			t.Errorf("status of DM %s: %s", want[i].ID, d)
		}
	}
}

func diffStatus(got, want wire.MessageStatus) string {
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
	check("CreatedAt", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("ExpiresAt", got.ExpiresAt.Equal(want.ExpiresAt), got.ExpiresAt, want.ExpiresAt)
	check("ReceivedAt", got.ReceivedAt.Equal(want.ReceivedAt), got.ReceivedAt, want.ReceivedAt)
	check("PushedAt", got.PushedAt.Equal(want.PushedAt), got.PushedAt, want.PushedAt)
	check("ReadAt", got.ReadAt.Equal(want.ReadAt), got.ReadAt, want.ReadAt)
	return strings.Join(d, "; ")
}

func unknownStatus(id string) wire.MessageStatus {
	return wire.MessageStatus{ID: id, State: wire.StateUnknown}
}

func TestDMStatusQueuedDeliveredPushedRead(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const ttl = time.Hour
	tb := newBroker(t, broker.Config{Now: clk.Now, QueueTTL: ttl})
	alice := tb.dial(t, newKey(t, testMesh), "alice", withClock(clk))
	bobKey := offlineRecipient(t, tb, alice, "bob")

	sentAt := clk.Now()
	id, _ := sendText(t, alice, bobKey, "where does this stand?")
	want := wire.MessageStatus{ID: id, To: wire.Key(bobKey.Public), ToName: "bob", State: wire.StateQueued,
		CreatedAt: sentAt, ExpiresAt: sentAt.Add(ttl)}
	wantStatus(t, alice, want)

	// Written to bob's connection is not yet delivered: only bob's client
	// can say it holds the DM.
	bob := tb.dial(t, bobKey, "bob", withClock(clk))
	if dm := bob.in.wait(t, id); !dm.PushedAt.IsZero() {
		t.Errorf("first delivery carries pushed_at %v", dm.PushedAt)
	}
	wantStatus(t, alice, want)

	received := clk.Advance(time.Second)
	if err := bob.Receipt([]string{id}, wire.ReceiptReceived); err != nil {
		t.Fatal(err)
	}
	settle(t, bob)
	want.State, want.ReceivedAt = wire.StateDelivered, received
	wantStatus(t, alice, want)

	pushed := clk.Advance(time.Second)
	if err := bob.Receipt([]string{id}, wire.ReceiptPushed); err != nil {
		t.Fatal(err)
	}
	settle(t, bob)
	want.State, want.PushedAt = wire.StatePushed, pushed
	wantStatus(t, alice, want)

	read := clk.Advance(time.Second)
	if err := bob.Ack([]string{id}); err != nil {
		t.Fatal(err)
	}
	settle(t, bob)
	want.State, want.ReadAt = wire.StateRead, read
	wantStatus(t, alice, want)

	// Later reports change nothing: the first time of each state stands,
	// and a read DM stays read past its expiry.
	clk.Advance(time.Second)
	for _, state := range []string{wire.ReceiptReceived, wire.ReceiptPushed} {
		if err := bob.Receipt([]string{id}, state); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.Clear([]string{id}); err != nil {
		t.Fatal(err)
	}
	settle(t, bob)
	clk.Advance(ttl)
	if _, err := tb.srv.Expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, alice, want)
}

func TestDMStatusCleared(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob", withClock(clk))

	cleared, _ := sendText(t, alice, bobKey, "never mind")
	read, _ := sendText(t, alice, bobKey, "do read this")
	bob.in.wait(t, cleared)
	bob.in.wait(t, read)
	at := clk.Advance(time.Minute)
	if err := bob.Clear([]string{cleared}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Ack([]string{read}); err != nil {
		t.Fatal(err)
	}
	settle(t, bob)
	sts, err := alice.Status(waitCtx(t), []string{cleared, read})
	if err != nil {
		t.Fatal(err)
	}
	if sts[0].State != wire.StateCleared || !sts[0].ReadAt.Equal(at) {
		t.Errorf("cleared DM: %+v, want cleared at %v", sts[0], at)
	}
	if sts[1].State != wire.StateRead || !sts[1].ReadAt.Equal(at) {
		t.Errorf("read DM: %+v, want read at %v", sts[1], at)
	}

	// Cleared, like read, is not delivered again.
	closeWithin(t, "bob", bob)
	bob = tb.dial(t, bobKey, "bob")
	bob.sync(t, alice)
	if n := bob.in.count(cleared); n != 0 {
		t.Errorf("cleared DM delivered %d times to a new connection", n)
	}
}

func TestDMStatusExpiredThenForgotten(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const ttl = time.Hour
	tb := newBroker(t, broker.Config{Now: clk.Now, QueueTTL: ttl})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := offlineRecipient(t, tb, alice, "bob")

	sentAt := clk.Now()
	id, _ := sendText(t, alice, bobKey, "too late")
	want := wire.MessageStatus{ID: id, To: wire.Key(bobKey.Public), ToName: "bob", State: wire.StateExpired,
		CreatedAt: sentAt, ExpiresAt: sentAt.Add(ttl)}

	clk.Advance(ttl)
	// Expired at its expiry, before the janitor ran.
	wantStatus(t, alice, want)
	if n, err := tb.srv.Expire(t.Context()); err != nil || n != 1 {
		t.Fatalf("expire at the TTL: %d, %v; want 1 expired", n, err)
	}
	wantStatus(t, alice, want)
	bob := tb.dial(t, bobKey, "bob")
	bob.sync(t, alice)
	if n := bob.in.count(id); n != 0 {
		t.Errorf("expired DM delivered %d times", n)
	}

	// The broker reports it for one more TTL, then forgets it.
	clk.Advance(ttl - time.Nanosecond)
	if _, err := tb.srv.Expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, alice, want)
	clk.Advance(time.Nanosecond)
	if _, err := tb.srv.Expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, alice, unknownStatus(id))
}

// Sent says when the DM expires; a resend is answered with the expiry set
// when the DM was first stored, and once that has passed the DM is not
// delivered again.
func TestSentCarriesExpiry(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const ttl = time.Hour
	tb := newBroker(t, broker.Config{Now: clk.Now, QueueTTL: ttl})
	observer := tb.dial(t, newKey(t, testMesh), "observer")
	bobKey := offlineRecipient(t, tb, observer, "bob")
	aliceKey := newKey(t, testMesh)
	rc := tb.join(t, aliceKey, websocket.DefaultDialer)

	nonce, box := seal(t, "expiring", aliceKey, bobKey)
	send := wire.Send{ID: uuid.NewString(), To: wire.Key(bobKey.Public), Nonce: nonce[:], Box: box}
	expires := clk.Now().Add(ttl)
	sent := func(what, status string) {
		t.Helper()
		rc.write(t, send)
		got, ok := rc.frame(t).(wire.Sent)
		if !ok || got.ID != send.ID || got.Status != status || !got.ExpiresAt.Equal(expires) {
			t.Fatalf("%s: answered %+v, want %s expiring at %v", what, got, status, expires)
		}
	}
	sent("send", wire.StatusQueued)
	clk.Advance(ttl / 2)
	sent("resend", wire.StatusQueued)
	clk.Advance(ttl / 2)
	sent("resend at the expiry", wire.StatusQueued)
	if _, err := tb.srv.Expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	sent("resend after the janitor", wire.StatusQueued)

	bob := tb.dial(t, bobKey, "bob")
	bob.sync(t, observer)
	if n := bob.in.count(send.ID); n != 0 {
		t.Errorf("DM resent after its expiry delivered %d times", n)
	}
}

func TestDMStatusOnlyForSender(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob")
	carol := tb.dial(t, newKey(t, testMesh), "carol")
	id, _ := sendText(t, alice, bobKey, "between alice and bob")
	bob.in.wait(t, id)

	// Neither the recipient nor a third session learns anything, not even
	// that the DM exists.
	wantStatus(t, bob, unknownStatus(id))
	wantStatus(t, carol, unknownStatus(id))
	elsewhere := tb.dial(t, &identity.Key{Mesh: "elsewhere", Public: alice.key.Public, Private: alice.key.Private}, "alice")
	wantStatus(t, elsewhere, unknownStatus(id))

	// The sender gets one answer per id, in order, over several requests
	// when there are many.
	ids := make([]string, wire.MaxAckIDs+100)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	ids[3], ids[wire.MaxAckIDs+50] = id, id
	sts, err := alice.Status(waitCtx(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != len(ids) {
		t.Fatalf("%d statuses for %d ids", len(sts), len(ids))
	}
	for i, st := range sts {
		want := wire.StateUnknown
		if ids[i] == id {
			want = wire.StateQueued
		}
		if st.ID != ids[i] || st.State != want {
			t.Fatalf("status %d: %+v, want %s %s", i, st, ids[i], want)
		}
	}
	if sts, err := alice.Status(waitCtx(t), nil); err != nil || len(sts) != 0 {
		t.Errorf("status of no ids: %v, %v", sts, err)
	}
}

// A status request the broker refuses is answered with an error that names
// it, so the caller does not wait for an answer that never comes.
func TestDMStatusRefused(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	_, err := alice.Status(waitCtx(t), []string{uuid.NewString(), "not-a-uuid"})
	if we := wireError(t, err); we.Code != wire.CodeBadFrame || we.Ref == "" {
		t.Errorf("status of a bad id: %+v, want bad_frame naming the request", we)
	}
	// The connection carries on.
	wantStatus(t, alice, unknownStatus(uuid.NewString()))
}

func TestRedeliveredDMCarriesPushedAt(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob", withClock(clk))
	pushed, _ := sendText(t, alice, bobKey, "pushed into the session")
	received, _ := sendText(t, alice, bobKey, "only received")
	bob.in.wait(t, pushed)
	bob.in.wait(t, received)

	at := clk.Advance(time.Minute)
	if err := bob.Receipt([]string{pushed, received}, wire.ReceiptReceived); err != nil {
		t.Fatal(err)
	}
	if err := bob.Receipt([]string{pushed}, wire.ReceiptPushed); err != nil {
		t.Fatal(err)
	}
	settle(t, bob)

	// The session's next process gets both again (neither was read), and
	// learns which one is already in the session.
	closeWithin(t, "bob", bob)
	bob = tb.dial(t, bobKey, "bob")
	if dm := bob.in.wait(t, pushed); !dm.PushedAt.Equal(at) {
		t.Errorf("redelivered pushed DM: pushed_at %v, want %v", dm.PushedAt, at)
	}
	if dm := bob.in.wait(t, received); !dm.PushedAt.IsZero() {
		t.Errorf("redelivered DM never pushed carries pushed_at %v", dm.PushedAt)
	}
}

// Receipts and acks name DMs by id, and ids are no secret: only the
// recipient's own reports count.
func TestReceiptsForOthersDMsChangeNothing(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now})
	alice := tb.dial(t, newKey(t, testMesh), "alice", withClock(clk))
	bobKey := offlineRecipient(t, tb, alice, "bob")
	carol := tb.dial(t, newKey(t, testMesh), "carol", withClock(clk))
	sentAt := clk.Now()
	id, _ := sendText(t, alice, bobKey, "for bob only")
	want := wire.MessageStatus{ID: id, To: wire.Key(bobKey.Public), ToName: "bob", State: wire.StateQueued,
		CreatedAt: sentAt, ExpiresAt: sentAt.Add(7 * 24 * time.Hour)}

	clk.Advance(time.Minute)
	for _, p := range []*peer{carol, alice} { // a third session, and the sender itself
		for _, state := range []string{wire.ReceiptReceived, wire.ReceiptPushed} {
			if err := p.Receipt([]string{id}, state); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Clear([]string{id}); err != nil {
			t.Fatal(err)
		}
		settle(t, p)
	}
	wantStatus(t, alice, want)

	bob := tb.dial(t, bobKey, "bob")
	if dm := bob.in.wait(t, id); !dm.PushedAt.IsZero() {
		t.Errorf("DM delivered with pushed_at %v that someone else reported", dm.PushedAt)
	}
}

// A receipt is dated with the recipient's time, unless that is missing or
// in the broker's future; a time before the DM existed counts from its
// creation.
func TestReceiptTime(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.join(t, bobKey, websocket.DefaultDialer)

	sentAt := clk.Now()
	var ids []string
	for range 4 {
		id, _ := sendText(t, alice, bobKey, "when?")
		if dm, ok := bob.frame(t).(wire.DM); !ok || dm.ID != id {
			t.Fatalf("bob got %+v, want DM %s", dm, id)
		}
		ids = append(ids, id)
	}
	now := clk.Advance(time.Hour)
	for i, at := range []time.Time{now.Add(-time.Minute), now.Add(time.Minute), {}, sentAt.Add(-time.Minute)} {
		bob.write(t, wire.Receipt{IDs: ids[i : i+1], State: wire.ReceiptReceived, At: at})
	}
	bob.write(t, wire.PeersRequest{Req: 1})
	if f, ok := bob.frame(t).(wire.PeerList); !ok {
		t.Fatalf("bob got %+v, want the peer list", f)
	}
	sts, err := alice.Status(waitCtx(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Time{now.Add(-time.Minute), now, now, sentAt} {
		if sts[i].State != wire.StateDelivered || !sts[i].ReceivedAt.Equal(want) {
			t.Errorf("receipt %d: %+v, want delivered at %v", i, sts[i], want)
		}
	}
}
