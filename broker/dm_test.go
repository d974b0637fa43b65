package broker_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// pending returns the IDs the store still holds for key, unacked and
// unexpired at now.
func pending(t testing.TB, st store.Store, key *identity.Key, now time.Time) []string {
	t.Helper()
	msgs, err := st.Pending(t.Context(), key.Mesh, key.Public, now, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func TestDMDeliveredOpenedAndAcked(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "broker.db")
	tb := serveStore(t, openStore(t, dbPath, "FULL"), broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob")

	const text = "the build is green; merge when ready"
	id, status := sendText(t, alice, bobKey, text)
	if status != wire.StatusDelivered {
		t.Errorf("status %q to a connected recipient, want %q", status, wire.StatusDelivered)
	}
	dm := bob.in.wait(t, id)
	if !bytes.Equal(dm.From, alice.key.Public) || dm.FromName != "alice" {
		t.Errorf("DM from %x %q, want alice's key and name", dm.From, dm.FromName)
	}
	got, err := identity.Open(dm.Box, [wire.NonceSize]byte(dm.Nonce), ed25519.PublicKey(dm.From), bobKey.Private)
	if err != nil {
		t.Fatalf("open DM: %v", err)
	}
	if string(got) != text {
		t.Errorf("opened %q, want %q", got, text)
	}
	if s := alice.State(); s.Outbox != 0 || !s.Connected || s.URL != tb.url || s.LastError != nil {
		t.Errorf("alice's state %+v, want connected to %s with an empty outbox", s, tb.url)
	}

	// The broker keeps only ciphertext.
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(dbPath + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(text)) {
			t.Errorf("the plaintext is in the broker's database file %s", filepath.Base(dbPath+suffix))
		}
	}

	if err := bob.Ack([]string{id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the acked DM leaves the queue", func() bool {
		return len(pending(t, tb.st, bobKey, time.Now())) == 0
	})

	// A new connection of the same session does not get the acked DM.
	closeWithin(t, "bob", bob)
	bob = tb.dial(t, bobKey, "bob")
	bob.sync(t, alice)
	if n := bob.in.count(id); n != 0 {
		t.Errorf("acked DM delivered %d times to a new connection", n)
	}
}

func TestDMQueuedForOfflineRecipient(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := offlineRecipient(t, tb, alice, "bob") // the mesh has seen bob

	id, status := sendText(t, alice, bobKey, "read this when you are back")
	if status != wire.StatusQueued {
		t.Errorf("status %q to an offline recipient, want %q", status, wire.StatusQueued)
	}
	if got := pending(t, tb.st, bobKey, time.Now()); len(got) != 1 || got[0] != id {
		t.Fatalf("queue %v, want [%s]", got, id)
	}
	bob := tb.dial(t, bobKey, "bob")
	bob.in.wait(t, id)
	bob.sync(t, alice)
	if n := bob.in.count(id); n != 1 {
		t.Errorf("queued DM delivered %d times on one connection, want 1", n)
	}
}

func TestDMToUnknownPeer(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	// A key seen in another mesh is unknown in this one.
	elsewhere := newKey(t, "elsewhere")
	closeWithin(t, "carol", tb.dial(t, elsewhere, "carol"))
	stranger := newKey(t, testMesh)

	for _, to := range []*identity.Key{stranger, elsewhere} {
		id := uuid.NewString()
		nonce, box := seal(t, "hello?", alice.key, to)
		status, err := alice.Send(waitCtx(t), id, to.Public, nonce, box)
		if err == nil {
			t.Fatalf("send to an unknown key: status %q, want an error", status)
		}
		we := wireError(t, err)
		if we.Code != wire.CodeUnknownPeer || we.Ref != id {
			t.Errorf("got %s ref %q, want %s ref %q", we.Code, we.Ref, wire.CodeUnknownPeer, id)
		}
		if got := pending(t, tb.st, &identity.Key{Mesh: testMesh, Public: to.Public}, time.Now()); len(got) != 0 {
			t.Errorf("refused DM stored: %v", got)
		}
	}
	if s := alice.State(); s.Outbox != 0 || !s.Connected {
		t.Errorf("after refusals: %+v, want connected with an empty outbox", s)
	}
}

func TestDMResendIsIdempotent(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob")

	id := uuid.NewString()
	nonce, box := seal(t, "once", alice.key, bobKey)
	send := func(box []byte) (string, error) { return alice.Send(waitCtx(t), id, bobKey.Public, nonce, box) }

	// The same DM sent three times, concurrently and then again.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			if _, err := send(box); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	if status, err := send(box); err != nil || status != wire.StatusDelivered {
		t.Fatalf("resend: %q, %v; want %q", status, err, wire.StatusDelivered)
	}
	bob.in.wait(t, id)
	bob.sync(t, alice)
	if n := bob.in.count(id); n != 1 {
		t.Errorf("DM sent three times delivered %d times, want 1", n)
	}
	if got := pending(t, tb.st, bobKey, time.Now()); len(got) != 2 || got[0] != id {
		t.Errorf("queue %v, want %s stored once (and the sync DM)", got, id)
	}

	// Another DM under the same id is refused and changes nothing.
	other := bytes.Clone(box)
	other[len(other)-1] ^= 1
	_, err := send(other)
	if we := wireError(t, err); we.Code != wire.CodeDuplicateID || we.Ref != id {
		t.Errorf("same id, other box: %s ref %q, want %s ref %q", we.Code, we.Ref, wire.CodeDuplicateID, id)
	}
	msgs, err := tb.st.Pending(t.Context(), testMesh, bobKey.Public, time.Now(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msgs[0].Box, box) {
		t.Error("the refused DM replaced the stored box")
	}

	// Once acked, a resend is confirmed without being delivered again.
	if err := bob.Ack([]string{id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ack is stored", func() bool { return len(pending(t, tb.st, bobKey, time.Now())) == 1 })
	if status, err := send(box); err != nil || status != wire.StatusDelivered {
		t.Fatalf("resend after ack: %q, %v; want %q", status, err, wire.StatusDelivered)
	}
	bob.sync(t, alice)
	if n := bob.in.count(id); n != 1 {
		t.Errorf("acked DM delivered again after a resend: %d deliveries", n)
	}
}

func TestDMRedeliveredUntilAcked(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob")

	var ids []string
	for i := range 3 {
		id, _ := sendText(t, alice, bobKey, strings.Repeat("x", i+1))
		ids = append(ids, id)
	}
	for conn := range 3 {
		for _, id := range ids {
			bob.in.wait(t, id)
		}
		bob.sync(t, alice)
		for _, id := range ids {
			if n := bob.in.count(id); n != 1 {
				t.Errorf("connection %d: unacked DM %s delivered %d times, want 1", conn, id, n)
			}
		}
		// Unacked DMs come in the order they were sent.
		dms := bob.in.all()
		for i, dm := range dms[:len(ids)] {
			if dm.ID != ids[i] {
				t.Errorf("connection %d: DM %d is %s, want %s", conn, i, dm.ID, ids[i])
			}
		}
		// Acknowledge only the sync DMs; keep ids unacked.
		var syncs []string
		for _, dm := range dms[len(ids):] {
			syncs = append(syncs, dm.ID)
		}
		if err := bob.Ack(syncs); err != nil {
			t.Fatal(err)
		}
		eventually(t, "only the unacked DMs remain", func() bool {
			return len(pending(t, tb.st, bobKey, time.Now())) == len(ids)
		})
		closeWithin(t, "bob", bob)
		bob = tb.dial(t, bobKey, "bob")
	}
}

func TestDMSurvivesBrokerRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "broker.db")
	st := openStore(t, path, "FULL")
	tb := serveStore(t, st, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := offlineRecipient(t, tb, alice, "bob") // the mesh has seen bob

	id, status := sendText(t, alice, bobKey, "survive the restart")
	if status != wire.StatusQueued {
		t.Fatalf("status %q, want %q", status, wire.StatusQueued)
	}
	closeWithin(t, "alice", alice)
	closeWithin(t, "broker", tb.srv)
	closeWithin(t, "store", st)

	tb = serveStore(t, openStore(t, path, "FULL"), broker.Config{})
	alice = tb.dial(t, alice.key, "alice")
	bob := tb.dial(t, bobKey, "bob")
	dm := bob.in.wait(t, id)
	if got, err := identity.Open(dm.Box, [wire.NonceSize]byte(dm.Nonce), ed25519.PublicKey(dm.From), bobKey.Private); err != nil || string(got) != "survive the restart" {
		t.Errorf("open DM after restart: %q, %v", got, err)
	}
	bob.sync(t, alice)
	if n := bob.in.count(id); n != 1 {
		t.Errorf("DM delivered %d times after the restart, want 1", n)
	}
}

func TestDMExpires(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const ttl = time.Hour
	tb := newBroker(t, broker.Config{Now: clk.Now, QueueTTL: ttl})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := offlineRecipient(t, tb, alice, "bob") // the mesh has seen bob

	sentAt := clk.Now()
	id, status := sendText(t, alice, bobKey, "stale soon")
	if status != wire.StatusQueued {
		t.Fatalf("status %q, want %q", status, wire.StatusQueued)
	}

	// Not a nanosecond early.
	clk.Advance(ttl - time.Nanosecond)
	if n, err := tb.srv.Expire(t.Context()); err != nil || n != 0 {
		t.Fatalf("expire before the TTL: %d, %v; want nothing expired", n, err)
	}
	if got := pending(t, tb.st, bobKey, sentAt); len(got) != 1 {
		t.Fatalf("queue before the TTL: %v, want [%s]", got, id)
	}

	clk.Advance(time.Nanosecond)
	if n, err := tb.srv.Expire(t.Context()); err != nil || n != 1 {
		t.Fatalf("expire at the TTL: %d, %v; want 1 expired", n, err)
	}
	// Its payload is gone, not merely hidden: not even a reader with an
	// earlier clock finds it.
	if got := pending(t, tb.st, bobKey, sentAt); len(got) != 0 {
		t.Fatalf("queue after expiry: %v, want empty", got)
	}
	bob := tb.dial(t, bobKey, "bob")
	bob.sync(t, alice)
	if n := bob.in.count(id); n != 0 {
		t.Errorf("expired DM delivered %d times", n)
	}
}

// A recipient that stops reading slows down no one else: the senders'
// DMs are all confirmed, all stay stored for the stuck recipient, the
// broker keeps routing to others, and once the recipient reads again it
// gets every DM.
func TestSlowRecipientDoesNotBlockSenders(t *testing.T) {
	t.Parallel()
	// Socket buffers of fixed size on both ends (setting them turns off
	// the kernel's autotuning): with the 8-frame queue they hold well
	// under 1 MB, so the 5 MB of DMs below leave the broker's writer to
	// the stuck recipient blocked long before the last one.
	const sockBuf = 128 << 10
	st := openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL")
	tb := serveConns(t, st, broker.Config{SendQueue: 8, WriteTimeout: 3 * waitTimeout}, func(c *net.TCPConn) {
		if err := c.SetWriteBuffer(sockBuf); err != nil {
			t.Error(err)
		}
	})
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob")
	stuckKey := newKey(t, testMesh)
	// The stuck recipient says hello, then reads nothing until the end.
	stuck := tb.join(t, stuckKey, &websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := new(net.Dialer).DialContext(ctx, network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetReadBuffer(sockBuf)
			}
			return c, err
		},
	})
	// Several sending clients: the broker stores one connection's DMs one
	// after the other.
	var senders []*peer
	for i := range 4 {
		senders = append(senders, tb.dial(t, newKey(t, testMesh), fmt.Sprint("sender", i)))
	}

	const n = 1200
	nonce := [wire.NonceSize]byte{1}
	box := make([]byte, 3<<10)
	rand.Read(box)
	ids := make(chan string, n)
	for range n {
		ids <- uuid.NewString()
	}
	close(ids)
	ctx := waitCtx(t)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		sent   = make(map[string]bool)
		failed []string
	)
	for _, s := range senders {
		for range 4 {
			wg.Go(func() {
				for id := range ids {
					status, err := s.Send(ctx, id, stuckKey.Public, nonce, box)
					mu.Lock()
					if err != nil || (status != wire.StatusDelivered && status != wire.StatusQueued) {
						failed = append(failed, id+": "+status+" "+errString(err))
					} else {
						sent[id] = true
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d sends to a stuck recipient failed, first: %s", len(failed), n, failed[0])
	}

	// Others are still served, and the stuck recipient is still
	// connected: the sends completed while it was stuck.
	bob.sync(t, senders[0])
	if p := bob.peers(t)[stuckKey.ID()]; !p.Online() {
		t.Errorf("stuck recipient is not online any more: %+v", p)
	}
	got := pending(t, tb.st, stuckKey, time.Now())
	if len(got) != n {
		t.Fatalf("%d DMs stored for the stuck recipient, want %d", len(got), n)
	}
	for _, id := range got {
		if !sent[id] {
			t.Fatalf("stored DM %s was never sent", id)
		}
	}

	// Once it reads again, the recipient gets every DM once, in order.
	for i, id := range got {
		f := stuck.frame(t)
		if dm, ok := f.(wire.DM); !ok || dm.ID != id {
			t.Fatalf("frame %d after the recipient resumed: %+v, want DM %s", i, f, id)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Many senders at once to one connected recipient: the broker hands most
// DMs straight to the recipient's connection and reads the store when
// sends overlap. Whichever way a DM goes, the recipient gets every DM
// once, each sender's in the order it sent them.
func TestConcurrentSendersEveryDMOnceInOrder(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	recipientKey := newKey(t, testMesh)
	recipient := tb.join(t, recipientKey, websocket.DefaultDialer)

	const senders, perSender = 6, 60
	nonce := [wire.NonceSize]byte{1}
	box := []byte("sealed")
	ctx := waitCtx(t)
	sentBy := make([][]string, senders)
	from := make(map[string]int) // sender key → index
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		key := newKey(t, testMesh)
		from[string(key.Public)] = i
		s := tb.dial(t, key, fmt.Sprint("sender", i))
		ids := make([]string, perSender)
		for j := range ids {
			ids[j] = uuid.NewString()
		}
		sentBy[i] = ids
		wg.Go(func() {
			for _, id := range ids {
				if _, err := s.Send(ctx, id, recipientKey.Public, nonce, box); err != nil {
					errs <- fmt.Errorf("send %s: %w", id, err)
					return
				}
			}
		})
	}

	got := make([][]string, senders)
	seen := make(map[string]bool)
	for range senders * perSender {
		var dm wire.DM
		for {
			f := recipient.frame(t)
			var ok bool
			if dm, ok = f.(wire.DM); ok {
				break
			}
		}
		if seen[dm.ID] {
			t.Fatalf("DM %s pushed twice on one connection", dm.ID)
		}
		seen[dm.ID] = true
		i, ok := from[string(dm.From)]
		if !ok {
			t.Fatalf("DM %s from an unknown sender", dm.ID)
		}
		got[i] = append(got[i], dm.ID)
		recipient.write(t, wire.Ack{IDs: []string{dm.ID}})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range senders {
		if !slices.Equal(got[i], sentBy[i]) {
			t.Errorf("sender %d: received %d DMs %v, want %d in order %v", i, len(got[i]), got[i], len(sentBy[i]), sentBy[i])
		}
	}
	eventually(t, "every DM is acked", func() bool {
		return len(pending(t, tb.st, recipientKey, time.Now())) == 0
	})
}

// A DM pushed without being read back from the store says what a read of
// it says: the same times, in UTC, whatever the zone of the broker's clock.
func TestHandedDMMatchesStoredDM(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("UTC+1", 3600)
	tb := newBroker(t, broker.Config{Now: func() time.Time { return time.Now().In(zone) }})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.join(t, bobKey, websocket.DefaultDialer)
	for range 3 {
		id := uuid.NewString()
		if _, err := alice.Send(waitCtx(t), id, bobKey.Public, [wire.NonceSize]byte{1}, []byte("sealed")); err != nil {
			t.Fatal(err)
		}
		var dm wire.DM
		for {
			var ok bool
			if dm, ok = bob.frame(t).(wire.DM); ok {
				break
			}
		}
		if dm.ID != id {
			t.Fatalf("pushed %s, want %s", dm.ID, id)
		}
		stored, err := tb.st.Pending(t.Context(), bobKey.Mesh, bobKey.Public, time.Now(), "", 10)
		if err != nil || len(stored) != 1 {
			t.Fatalf("stored: %d DMs, err %v", len(stored), err)
		}
		if !dm.SentAt.Equal(stored[0].CreatedAt) || dm.SentAt.Location() != time.UTC {
			t.Errorf("pushed sent_at %v, stored %v", dm.SentAt, stored[0].CreatedAt)
		}
		bob.write(t, wire.Ack{IDs: []string{id}})
		eventually(t, "the DM is acked", func() bool { return len(pending(t, tb.st, bobKey, time.Now())) == 0 })
	}
}
