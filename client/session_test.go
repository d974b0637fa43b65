package client_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// closedURL returns a loopback WebSocket URL on which nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr + wire.Path
}

// silentURL returns a loopback WebSocket URL whose listener accepts
// connections and never answers: a connection attempt to it stays in
// flight until the client's dial timeout. accepted receives a value for
// each connection (buffered; sends never block).
func silentURL(t *testing.T) (url string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case acc <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "ws://" + ln.Addr().String() + wire.Path, acc
}

func dialURL(t *testing.T, url string, opts ...func(*client.Config)) *client.Session {
	t.Helper()
	cfg := client.Config{
		Endpoint: func() (client.Endpoint, error) { return client.Endpoint{URL: url}, nil },
		Key:      newKey(t, testMesh),
		// No second attempt during the test: what Ready says comes from
		// the first one.
		MinBackoff: time.Hour,
		MaxBackoff: time.Hour,
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := client.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWithin(t, "client", c) })
	return c
}

// Once an attempt has failed, Ready answers with its reason without
// waiting for the next one.
func TestReadyDoesNotWaitAfterAFailedAttempt(t *testing.T) {
	url := closedURL(t)
	c := dialURL(t, url)
	eventually(t, "the first attempt fails", func() bool { return c.State().Attempts > 0 })

	ctx := waitCtx(t)
	err := c.Ready(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Ready waited until its context ended (%v): it must answer at once once an attempt failed", err)
	}
	if !errors.Is(err, client.ErrNotConnected) {
		t.Fatalf("Ready = %v, want ErrNotConnected", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("Ready = %v, want it to carry the dial error", err)
	}
	if st := c.State(); st.Connected || st.URL != url || st.LastError == nil || st.Unauthorized {
		t.Errorf("state = %+v, want not connected to %s, with the dial error", st, url)
	}
}

// While the first attempt is in flight Ready waits for it, until its
// context ends.
func TestReadyWaitsForTheFirstAttempt(t *testing.T) {
	url, _ := silentURL(t)
	c := dialURL(t, url, func(cfg *client.Config) { cfg.DialTimeout = time.Hour })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := c.Ready(ctx)
	if ctx.Err() == nil {
		t.Fatalf("Ready = %v before its context ended, with an attempt still in flight", err)
	}
	if !errors.Is(err, client.ErrNotConnected) {
		t.Errorf("Ready = %v, want ErrNotConnected", err)
	}

	tb := newBroker(t, broker.Config{})
	p := tb.dialNoWait(t, newKey(t, testMesh), "alice")
	if err := p.Ready(waitCtx(t)); err != nil {
		t.Errorf("Ready on a first attempt that succeeds = %v (state %+v)", err, p.State())
	}
}

// A wrong credential is a refusal the client tells apart from an outage;
// it keeps trying, reading the endpoint afresh, so a corrected credential
// lets it in without a restart.
func TestUnauthorizedIsReportedAndRetried(t *testing.T) {
	tb := newBroker(t, broker.Config{})
	var mu sync.Mutex
	token := "stale-" + testToken
	endpoint := func() (client.Endpoint, error) {
		mu.Lock()
		defer mu.Unlock()
		return client.Endpoint{URL: tb.url, Token: token}, nil
	}
	p := tb.dialNoWait(t, newKey(t, testMesh), "alice", func(cfg *client.Config) { cfg.Endpoint = endpoint })
	eventually(t, "the broker refuses the credential", func() bool { return p.State().Unauthorized })

	err := p.Ready(waitCtx(t))
	we, ok := errors.AsType[*wire.Error](err)
	if !errors.Is(err, client.ErrNotConnected) || !ok || we.Code != wire.CodeUnauthorized {
		t.Fatalf("Ready = %v, want ErrNotConnected carrying the broker's %s", err, wire.CodeUnauthorized)
	}
	if st := p.State(); st.Refused || st.Connected {
		t.Errorf("state = %+v: a wrong credential must not stop the retries", st)
	}
	if n := p.logs.count("the broker refused this session's credential; retrying, with the credential read afresh each time"); n != 1 {
		t.Errorf("%d warnings about the credential, want 1 however many attempts fail", n)
	}

	mu.Lock()
	token = testToken
	mu.Unlock()
	if err := p.WaitConnected(waitCtx(t)); err != nil {
		t.Fatalf("after the credential was corrected: %v (state %+v)", err, p.State())
	}
	if st := p.State(); st.Unauthorized || st.LastError != nil {
		t.Errorf("connected state = %+v, want the refusal forgotten", st)
	}
}

// TakeOver waits for the attempt it asks for and reports its outcome; it
// leaves a client that holds its session alone.
func TestTakeOver(t *testing.T) {
	tb := newBroker(t, broker.Config{})
	key := newKey(t, testMesh)
	probe := func(cfg *client.Config) { cfg.StandbyProbe = time.Hour }
	first := tb.dial(t, key, "bob", probe)
	if err := first.TakeOver(waitCtx(t)); err != nil {
		t.Errorf("TakeOver of a connected client = %v, want nil", err)
	}
	second := tb.dial(t, key, "bob", probe)
	eventually(t, "the first process stands by", func() bool { return first.State().Replaced })
	if err := first.Ready(waitCtx(t)); !errors.Is(err, client.ErrNotConnected) {
		t.Errorf("Ready in standby = %v, want ErrNotConnected at once", err)
	}

	if err := first.TakeOver(waitCtx(t)); err != nil {
		t.Fatalf("TakeOver = %v (state %+v)", err, first.State())
	}
	if st := first.State(); !st.Connected || st.Replaced {
		t.Errorf("after TakeOver: %+v, want connected", st)
	}
	eventually(t, "the second process stands by", func() bool { return second.State().Replaced })
	if n := tb.srv.Stats().Replacements; n != 2 {
		t.Errorf("%d replacements, want 2", n)
	}
}

// Close returns at once while an attempt hangs in the WebSocket handshake,
// not after the dial timeout.
func TestCloseDoesNotWaitForAHangingDial(t *testing.T) {
	url, accepted := silentURL(t)
	c, err := client.Dial(client.Config{
		Endpoint:    func() (client.Endpoint, error) { return client.Endpoint{URL: url}, nil },
		Key:         newKey(t, testMesh),
		DialTimeout: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-waitCtx(t).Done():
		t.Fatal("the client never connected to the silent listener")
	}
	closeWithin(t, "a client dialing a silent broker", c)
}

func TestClientReportsWithoutConnection(t *testing.T) {
	t.Parallel()
	down := errors.New("no broker here")
	p := (*testBroker)(nil).dialNoWait(t, newKey(t, testMesh), "alone", func(c *client.Config) {
		c.Endpoint = func() (client.Endpoint, error) { return client.Endpoint{}, down }
	})
	id := []string{uuid.NewString()}
	for name, call := range map[string]func() error{
		"Receipt": func() error { return p.Receipt(id, wire.ReceiptPushed) },
		"Clear":   func() error { return p.Clear(id) },
		"Ack":     func() error { return p.Ack(id) },
		"Status":  func() error { _, err := p.Status(waitCtx(t), id); return err },
	} {
		if err := call(); !errors.Is(err, client.ErrNotConnected) {
			t.Errorf("%s without a connection: %v, want ErrNotConnected", name, err)
		}
	}
	if err := p.Receipt(id, wire.StateRead); err == nil || errors.Is(err, client.ErrNotConnected) {
		t.Errorf("Receipt with a state that is no receipt state: %v, want it refused", err)
	}
}

// failingStore fails the first Enqueue calls, as a store whose database
// went away for a moment does, and records the ids it was asked to store.
type failingStore struct {
	store.Store
	mu    sync.Mutex
	fails int
	ids   []string
}

func (f *failingStore) Enqueue(ctx context.Context, m store.Message) (store.EnqueueResult, error) {
	f.mu.Lock()
	f.ids = append(f.ids, m.ID)
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return 0, errors.New("the database is away")
	}
	return f.Store.Enqueue(ctx, m)
}

// A DM the broker could not store (internal) is never reported as sent nor
// refused: the client keeps it, reconnects and resends it with the same
// id, and it is delivered once.
func TestSendTheBrokerCouldNotStoreIsResent(t *testing.T) {
	t.Parallel()
	fs := &failingStore{Store: openStore(t), fails: 2}
	tb := newBroker(t, broker.Config{Store: fs})
	in := make(chan wire.DM, 4)
	bobKey := newKey(t, testMesh)
	tb.dial(t, bobKey, "bob", func(c *client.Config) { c.OnDM = func(dm wire.DM) { in <- dm } })
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	id := uuid.NewString()
	nonce, box := [wire.NonceSize]byte{}, []byte("sealed for bob")
	status, err := alice.Send(waitCtx(t), id, bobKey.Public, nonce, box)
	if err != nil || status != wire.StatusDelivered {
		t.Fatalf("send through a failing store: %q, %v; want delivered once the store answers", status, err)
	}
	select {
	case dm := <-in:
		if dm.ID != id {
			t.Errorf("bob got %s, want %s", dm.ID, id)
		}
	case <-waitCtx(t).Done():
		t.Fatal("bob never got the DM")
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.ids) != 3 || fs.ids[0] != id || fs.ids[2] != id {
		t.Errorf("the store was asked to store %v, want the same id three times", fs.ids)
	}
	select {
	case dm := <-in:
		t.Errorf("bob got %s a second time", dm.ID)
	default:
	}
}
