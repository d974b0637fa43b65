package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/store"
)

// RunCluster runs the suite of store.Cluster. open returns a new, empty
// cluster for one subtest; each call of its node function returns a handle
// on that same cluster (another broker node's view of it: for a shared
// store another connection, else the same value).
func RunCluster(t *testing.T, open func(t *testing.T) (node func() store.Cluster)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, node func() store.Cluster)
	}{
		{"ClaimReleaseGraceOffline", testClaimRelease},
		{"ClaimReplacesAndFences", testClaimFences},
		{"StandbyClaim", testStandbyClaim},
		{"DeadNodeGoesToGrace", testDeadNode},
		{"DropLeases", testDropLeases},
		{"ReleaseNode", testReleaseNode},
		{"ConcurrentClaims", testConcurrentClaims},
		{"Events", testEvents},
		{"Token", testToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

const grace, lapse = 90 * time.Second, 5 * time.Second

func times(now time.Time) store.LeaseTimes {
	return store.LeaseTimes{Now: now, Grace: grace, Lapse: lapse}
}

func lease(key []byte, node string, conn uint64, instance string, since time.Time) store.Lease {
	return store.Lease{Mesh: meshA, Key: key, Node: node, Conn: conn, Instance: instance, SessionID: uuid.NewString(),
		Name: "s-" + instance, ProjectDir: "/src", Since: since}
}

func claim(t *testing.T, c store.Cluster, l store.Lease, now time.Time) (store.Lease, int64) {
	t.Helper()
	prev, epoch, err := c.Claim(t.Context(), l, false, times(now))
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if epoch <= 0 {
		t.Fatalf("claim: epoch %d", epoch)
	}
	return prev, epoch
}

func beat(t *testing.T, c store.Cluster, node string, now time.Time) {
	t.Helper()
	if err := c.Heartbeat(t.Context(), node, now); err != nil {
		t.Fatal(err)
	}
}

func leaseState(t *testing.T, c store.Cluster, key []byte, now time.Time) store.Lease {
	t.Helper()
	l, err := c.Lease(t.Context(), meshA, key, times(now))
	if errors.Is(err, store.ErrNotFound) {
		return store.Lease{State: store.LeaseOffline}
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func listed(t *testing.T, c store.Cluster, now time.Time) map[string]store.Lease {
	t.Helper()
	ls, err := c.Leases(t.Context(), meshA, times(now))
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]store.Lease)
	for _, l := range ls {
		if _, dup := m[string(l.Key)]; dup {
			t.Fatalf("key %x listed twice", l.Key[:4])
		}
		m[string(l.Key)] = l
	}
	return m
}

func testClaimRelease(t *testing.T, node func() store.Cluster) {
	c := node()
	key := newKey()
	beat(t, c, "n1", base)
	first := lease(key, "n1", 7, "i1", base)
	first.Kind = "human"
	prev, e1 := claim(t, c, first, base)
	if prev.Key != nil {
		t.Errorf("first claim took over %+v", prev)
	}
	if l := leaseState(t, c, key, base); l.State != store.LeaseOnline || l.Node != "n1" || l.Conn != 7 || l.Epoch != e1 || !l.Since.Equal(base) || l.Kind != "human" {
		t.Errorf("after the claim: %+v", l)
	}
	drop := base.Add(time.Second)
	beat(t, c, "n1", drop)
	if ok, err := c.Release(t.Context(), meshA, key, e1, drop, false); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	if l := leaseState(t, c, key, drop.Add(grace-time.Microsecond)); l.State != store.LeaseGrace || !l.DroppedAt.Equal(drop) {
		t.Errorf("in grace: %+v", l)
	}
	if _, ok := listed(t, c, drop)[string(key)]; !ok {
		t.Error("a lease in grace is not listed")
	}
	end := drop.Add(grace)
	beat(t, c, "n1", end)
	if l := leaseState(t, c, key, end); l.State != store.LeaseOffline {
		t.Errorf("after grace: %+v", l)
	}
	if _, ok := listed(t, c, end)[string(key)]; ok {
		t.Error("an offline lease is listed")
	}
	// Claimed again: a fresh lease with a greater epoch.
	prev, e2 := claim(t, c, lease(key, "n1", 8, "i1", end), end)
	if prev.Key != nil || e2 <= e1 {
		t.Errorf("claim after offline: prev %+v, epoch %d after %d", prev, e2, e1)
	}
	// bye ends it at once.
	if ok, err := c.Release(t.Context(), meshA, key, e2, end, true); err != nil || !ok {
		t.Fatalf("release with bye: %v %v", ok, err)
	}
	if l := leaseState(t, c, key, end); l.State != store.LeaseOffline {
		t.Errorf("after bye: %+v", l)
	}
}

// A claim on another node takes the lease; the old holder's release,
// late, changes nothing: it cannot overwrite the newer lease.
func testClaimFences(t *testing.T, node func() store.Cluster) {
	a, b := node(), node()
	key := newKey()
	beat(t, a, "n1", base)
	beat(t, b, "n2", base)
	_, e1 := claim(t, a, lease(key, "n1", 1, "i1", base), base)
	prev, e2 := claim(t, b, lease(key, "n2", 5, "i2", base.Add(time.Second)), base.Add(time.Second))
	if prev.Node != "n1" || prev.Conn != 1 || prev.Epoch != e1 || prev.State != store.LeaseOnline || prev.Instance != "i1" {
		t.Errorf("the claim on n2 took over %+v, want n1's online lease", prev)
	}
	if e2 <= e1 {
		t.Errorf("epochs %d then %d", e1, e2)
	}
	for _, bye := range []bool{false, true} {
		if ok, err := a.Release(t.Context(), meshA, key, e1, base.Add(2*time.Second), bye); err != nil || ok {
			t.Errorf("stale release (bye %v): %v %v, want refused", bye, ok, err)
		}
	}
	if l := leaseState(t, a, key, base.Add(2*time.Second)); l.State != store.LeaseOnline || l.Node != "n2" || l.Epoch != e2 {
		t.Errorf("after a stale release: %+v, want n2's lease online", l)
	}
}

func testStandbyClaim(t *testing.T, node func() store.Cluster) {
	c := node()
	key := newKey()
	beat(t, c, "n1", base)
	_, e1 := claim(t, c, lease(key, "n1", 1, "holder", base), base)
	standby := lease(key, "n1", 2, "other", base)
	prev, _, err := c.Claim(t.Context(), standby, true, times(base))
	if !errors.Is(err, store.ErrLeaseHeld) || prev.Instance != "holder" || prev.State != store.LeaseOnline {
		t.Errorf("standby claim of an online lease: %v, prev %+v", err, prev)
	}
	// In grace, still held.
	drop := base.Add(time.Second)
	beat(t, c, "n1", drop.Add(grace))
	if _, err := c.Release(t.Context(), meshA, key, e1, drop, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Claim(t.Context(), standby, true, times(drop.Add(grace/2))); !errors.Is(err, store.ErrLeaseHeld) {
		t.Errorf("standby claim of a lease in grace: %v", err)
	}
	if l := leaseState(t, c, key, drop.Add(grace/2)); l.State != store.LeaseGrace || l.Instance != "holder" {
		t.Errorf("a refused standby claim changed the lease: %+v", l)
	}
	// The same instance may come back in standby; after grace, anyone may.
	if _, _, err := c.Claim(t.Context(), lease(key, "n1", 3, "holder", drop), true, times(drop.Add(grace/2))); err != nil {
		t.Errorf("standby claim by the holding instance: %v", err)
	}
	l := leaseState(t, c, key, drop.Add(grace/2))
	if _, err := c.Release(t.Context(), meshA, key, l.Epoch, drop.Add(grace/2), false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Claim(t.Context(), standby, true, times(drop.Add(2*grace))); err != nil {
		t.Errorf("standby claim after grace: %v", err)
	}
}

// A node that stops heartbeating: its leases are in grace from its last
// heartbeat and offline a grace later, on every node; sweeping deletes
// them once, and reports them.
func testDeadNode(t *testing.T, node func() store.Cluster) {
	a, b := node(), node()
	k1, k2 := newKey(), newKey()
	beat(t, a, "dying", base)
	beat(t, b, "alive", base)
	claim(t, a, lease(k1, "dying", 1, "i1", base), base)
	claim(t, b, lease(k2, "alive", 1, "i2", base), base)
	last := base.Add(time.Second)
	beat(t, a, "dying", last)
	later := last.Add(lapse + time.Second)
	beat(t, b, "alive", later)
	for _, c := range []store.Cluster{a, b} {
		got := listed(t, c, later)
		if l := got[string(k1)]; l.State != store.LeaseGrace || !l.DroppedAt.Equal(last) {
			t.Errorf("lease on the dead node: %+v, want grace since its last heartbeat %v", l, last)
		}
		if l := got[string(k2)]; l.State != store.LeaseOnline {
			t.Errorf("lease on the live node: %+v", l)
		}
	}
	end := last.Add(grace)
	beat(t, b, "alive", end)
	if l := leaseState(t, b, k1, end); l.State != store.LeaseOffline {
		t.Errorf("a grace after the dead node's last heartbeat: %+v", l)
	}
	gone, err := b.SweepLeases(t.Context(), times(end))
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || !bytes.Equal(gone[0].Key, k1) {
		t.Errorf("swept %+v, want the dead node's lease only", gone)
	}
	if gone, err := a.SweepLeases(t.Context(), times(end)); err != nil || len(gone) != 0 {
		t.Errorf("second sweep: %+v %v, want nothing", gone, err)
	}
	if _, ok := listed(t, b, end)[string(k2)]; !ok {
		t.Error("the live node's lease was swept")
	}
}

func testDropLeases(t *testing.T, node func() store.Cluster) {
	c := node()
	member, other := newKey(), newKey()
	beat(t, c, "n1", base)
	var keys [][]byte
	for i, m := range [][]byte{member, member, other} {
		k := newKey()
		l := lease(k, "n1", uint64(i), fmt.Sprint(i), base)
		l.Member = m
		claim(t, c, l, base)
		keys = append(keys, k)
	}
	if err := c.DropLeases(t.Context(), meshA, member); err != nil {
		t.Fatal(err)
	}
	got := listed(t, c, base)
	if len(got) != 1 || got[string(keys[2])].State != store.LeaseOnline || !bytes.Equal(got[string(keys[2])].Member, other) {
		t.Errorf("after dropping a member's leases: %+v", got)
	}
}

func testConcurrentClaims(t *testing.T, node func() store.Cluster) {
	const n = 12
	key := newKey()
	nodes := []store.Cluster{node(), node()}
	for i, c := range nodes {
		beat(t, c, fmt.Sprint("n", i), base)
	}
	epochs := make(chan int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := nodes[i%2]
			_, e, err := c.Claim(t.Context(), lease(key, fmt.Sprint("n", i%2), uint64(i), fmt.Sprint(i), base), false, times(base))
			if err != nil {
				t.Error(err)
			}
			epochs <- e
		})
	}
	wg.Wait()
	close(epochs)
	seen, highest := make(map[int64]bool), int64(0)
	for e := range epochs {
		if seen[e] {
			t.Errorf("epoch %d given twice", e)
		}
		seen[e], highest = true, max(highest, e)
	}
	if l := leaseState(t, nodes[0], key, base); l.Epoch != highest {
		t.Errorf("the lease holds epoch %d, want the last claim's %d", l.Epoch, highest)
	}
}

func testEvents(t *testing.T, node func() store.Cluster) {
	a, b := node(), node()
	got := make(chan store.Event, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Listen(ctx, func(e store.Event) { got <- e }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listen: %v", err)
		}
	}()
	next := func() store.Event {
		t.Helper()
		select {
		case e := <-got:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
		return store.Event{}
	}
	if e := next(); e.Kind != store.EventResync {
		t.Fatalf("first event %+v, want resync", e)
	}
	want := store.Event{Kind: store.EventClaimed, Mesh: meshA, Key: newKey(), Node: "n1", Epoch: 42}
	if err := a.Publish(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Kind != want.Kind || e.Mesh != want.Mesh || !bytes.Equal(e.Key, want.Key) || e.Node != want.Node || e.Epoch != want.Epoch {
		t.Errorf("event %+v, want %+v", e, want)
	}
}

func testToken(t *testing.T, node func() store.Cluster) {
	a, b := node(), node()
	ta, err := a.Token(t.Context())
	if err != nil || len(ta) < 32 {
		t.Fatalf("token %q: %v", ta, err)
	}
	tb, err := b.Token(t.Context())
	if err != nil || tb != ta {
		t.Errorf("another node's token %q (%v), want %q", tb, err, ta)
	}
}

// A node that starts again releases what its earlier run held: in grace
// from then, never online without a connection.
func testReleaseNode(t *testing.T, node func() store.Cluster) {
	c := node()
	mine, other := newKey(), newKey()
	beat(t, c, "n1", base)
	beat(t, c, "n2", base)
	claim(t, c, lease(mine, "n1", 1, "i1", base), base)
	claim(t, c, lease(other, "n2", 1, "i2", base), base)
	restart := base.Add(time.Second)
	beat(t, c, "n1", restart)
	if err := c.ReleaseNode(t.Context(), "n1", restart); err != nil {
		t.Fatal(err)
	}
	if l := leaseState(t, c, mine, restart); l.State != store.LeaseGrace || !l.DroppedAt.Equal(restart) {
		t.Errorf("a restarted node's lease: %+v, want grace since the restart", l)
	}
	if l := leaseState(t, c, other, restart); l.State != store.LeaseOnline {
		t.Errorf("another node's lease: %+v, want online", l)
	}
	for node, want := range map[string][]byte{"n1": mine, "n2": other} {
		ls, err := c.NodeLeases(t.Context(), node, times(restart))
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) != 1 || !bytes.Equal(ls[0].Key, want) {
			t.Errorf("leases of %s: %+v", node, ls)
		}
	}
}
