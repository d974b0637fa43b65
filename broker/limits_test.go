package broker_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/wire"
)

// The queue cap holds exactly without reading the store on every send, and
// room that acks free up is seen again.
func TestQueueCapFollowsAcks(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now, MaxQueued: 3})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob")
	var ids []string
	for i := range 3 {
		id, status := sendText(t, alice, bobKey, "fill")
		if status != wire.StatusDelivered {
			t.Fatalf("DM %d: %s", i, status)
		}
		ids = append(ids, id)
	}
	full := func() bool {
		t.Helper()
		_, err := alice.Send(waitCtx(t), uuid.NewString(), bobKey.Public, [wire.NonceSize]byte{}, []byte("x"))
		if err == nil {
			return false
		}
		if e := wireError(t, err); e.Code != wire.CodeQueueFull {
			t.Fatalf("send over the cap: %v, want queue_full", e)
		}
		return true
	}
	if !full() {
		t.Fatal("a fourth DM fit in a queue of 3")
	}
	for _, id := range ids {
		bob.in.wait(t, id)
	}
	if err := bob.Ack(ids); err != nil {
		t.Fatal(err)
	}
	// Right after a count at the cap, a DM is refused without counting
	// again; a moment later the broker counts again: the acked DMs no
	// longer count.
	if !full() {
		t.Fatal("a DM fit a queue counted full a moment ago")
	}
	eventually(t, "room after the acks", func() bool {
		clk.Advance(100 * time.Millisecond)
		return !full()
	})
}
