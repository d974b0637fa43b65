package broker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/store"
)

// heldStore holds every Enqueue until released (or its context ends), as
// a store on a slow disk would.
type heldStore struct {
	store.Store
	entered chan string   // the id of each DM held
	release chan struct{} // closed to let them go on
}

func (s *heldStore) Enqueue(ctx context.Context, m store.Message) (store.EnqueueResult, error) {
	s.entered <- m.ID
	select {
	case <-s.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.Store.Enqueue(ctx, m)
}

func heldBroker(t *testing.T) (*testBroker, *heldStore) {
	t.Helper()
	st := openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL")
	held := &heldStore{Store: st, entered: make(chan string, 16), release: make(chan struct{})}
	return serveStore(t, st, broker.Config{Store: held}), held
}

// A drain waits for the DM being stored: Shutdown does not return before
// the store call, and the DM is in the store afterwards. Meanwhile the
// broker is not ready and refuses new connections.
func TestShutdownFinishesStoreWrites(t *testing.T) {
	tb, held := heldBroker(t)
	if err := tb.srv.Ready(waitCtx(t)); err != nil {
		t.Fatalf("a fresh broker is not ready: %v", err)
	}
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bob := tb.dial(t, newKey(t, testMesh), "bob")
	id := uuid.NewString()
	nonce, box := seal(t, "in flight", alice.key, bob.key)
	go alice.Send(waitCtx(t), id, bob.key.Public, nonce, box)
	if got := <-held.entered; got != id {
		t.Fatalf("store held %s, want %s", got, id)
	}

	drained := make(chan struct{})
	go func() {
		defer close(drained)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		tb.srv.Shutdown(ctx)
	}()
	eventually(t, "the broker draining", func() bool {
		return errors.Is(tb.srv.Ready(t.Context()), broker.ErrDraining)
	})
	rec := httptest.NewRecorder()
	tb.srv.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "not ready: draining\n" {
		t.Errorf("readyz while draining: %d %q", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	tb.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/ws", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a new connection while draining: %d, want 503", rec.Code)
	}
	select {
	case <-drained:
		t.Fatal("Shutdown returned while a DM was being stored")
	default:
	}

	close(held.release)
	select {
	case <-drained:
	case <-time.After(waitTimeout):
		t.Fatal("Shutdown still waits after the store call finished")
	}
	msgs, err := held.Pending(waitCtx(t), testMesh, bob.key.Public, time.Now(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Errorf("after the drain the store holds %v for bob, want the DM in flight", msgs)
	}
}

// A drain that runs out of time cuts the connections and cancels the
// store calls made for them: Shutdown returns soon after its context ends,
// however long the store would take.
func TestShutdownIsBounded(t *testing.T) {
	tb, held := heldBroker(t)
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bob := tb.dial(t, newKey(t, testMesh), "bob")
	nonce, box := seal(t, "stuck", alice.key, bob.key)
	go alice.Send(waitCtx(t), uuid.NewString(), bob.key.Public, nonce, box)
	<-held.entered

	const bound = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	tb.srv.Shutdown(ctx)
	if took := time.Since(start); took < bound || took > bound+5*time.Second {
		t.Errorf("Shutdown with a store that never answers took %v, want a little over %v", took, bound)
	}
}
