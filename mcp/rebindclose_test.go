package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/client"
)

// writeSessionStart reports session id on the SessionStart channel file
// path, as `claudemesh hook session-start` does.
func writeSessionStart(t *testing.T, path, id string) {
	t.Helper()
	b, err := json.Marshal(published{SessionStart: claudecode.SessionStart{SessionID: id, Source: "clear"}, At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A tool called after Close does not follow the SessionStart channel: no
// key is made for the session it reports, and the server keeps the
// identity it closed.
func TestNoRebindAfterClose(t *testing.T) {
	tb := startBroker(t)
	channel := filepath.Join(t.TempDir(), "session-start.json")
	ss := startSession(t, tb, "alice", func(c *Config) { c.SessionStartFile = channel })
	ss.waitConnected(t)
	before := ss.srv.Key().SessionID
	ss.srv.Close()

	next := uuid.NewString()
	writeSessionStart(t, channel, next)
	if who := mustCall[WhoamiResult](t, ss, "whoami", nil); who.SessionID != before {
		t.Errorf("whoami after Close speaks as session %s, want %s", who.SessionID, before)
	}
	path, err := ss.srv.keystore.Path(ss.srv.cfg.Mesh, next)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a key of session %s was made after Close (stat: %v)", next, err)
	}
}

// holdHandler holds the goroutine that logs msg until release is closed,
// after closing reached.
type holdHandler struct {
	msg     string
	once    *sync.Once
	reached chan struct{}
	release <-chan struct{}
}

func (h holdHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h holdHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h holdHandler) WithGroup(string) slog.Handler            { return h }

func (h holdHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.reached) })
		<-h.release
	}
	return nil
}

// Close returns only after a rebind that a tool call started is over. The
// rebind leaves the old identity only once the broker has confirmed the
// DMs that identity sent, so when Close returns the old identity's DM is
// confirmed and both its client and the new identity's are closed: none
// is left connecting on its own.
func TestCloseWaitsForARebind(t *testing.T) {
	tb := startBroker(t)
	bob := startSession(t, tb, "bob")
	bob.waitConnected(t)

	// alice's broker is down until Close has begun; then her old identity
	// reconnects at its next attempt, a backoff of 250 to 500 ms later,
	// and its DM is confirmed.
	var up atomic.Bool
	down := closedURL(t)
	endpoint := func() (client.Endpoint, error) {
		if up.Load() {
			return client.Endpoint{URL: tb.url, Token: tb.token}, nil
		}
		return client.Endpoint{URL: down, Token: tb.token}, nil
	}
	reached, release := make(chan struct{}), make(chan struct{})
	hold := holdHandler{msg: "switched to the session reported by the SessionStart hook", once: new(sync.Once), reached: reached, release: release}
	alice := startSession(t, tb, "alice", func(c *Config) {
		c.Endpoint = endpoint
		c.MinBackoff, c.MaxBackoff = 500*time.Millisecond, 500*time.Millisecond
		c.Logger = slog.New(hold)
	})
	// Only tool calls look at the channel here: the watcher started with
	// none and has ended, so the rebind below is the one a tool call runs.
	<-alice.srv.watchDone
	channel := filepath.Join(t.TempDir(), "session-start.json")
	alice.srv.cfg.SessionStartFile = channel
	left := alice.srv.bound()

	id := uuid.NewString()
	nonce, box, err := client.Seal(id, "sent before the switch", time.Now(), bob.srv.Key().Public, left.boxes)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := left.client.Send(waitCtx(t), id, bob.srv.Key().Public, nonce, box)
		sent <- err
	}()
	eventually(t, "the DM waits in the outbox", func() bool { return left.client.State().Outbox == 1 })

	writeSessionStart(t, channel, uuid.NewString())
	called := make(chan error, 1)
	go func() {
		req := mcpgo.CallToolRequest{}
		req.Params.Name = "whoami"
		_, err := alice.c.CallTool(waitCtx(t), req)
		called <- err
	}()
	ctx := waitCtx(t)
	select {
	case <-reached: // the tool call has switched identities and is about to leave the old one
	case <-ctx.Done():
		t.Fatal("the tool call did not rebind")
	}
	closed := make(chan struct{})
	go func() {
		alice.srv.Close()
		close(closed)
	}()
	<-alice.srv.stop // Close has begun
	up.Store(true)
	close(release)
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	for what, b := range map[string]*binding{"the identity the rebind left": left, "the identity it took": alice.srv.bound()} {
		if err := b.client.Ready(ctx); !errors.Is(err, client.ErrClosed) {
			t.Errorf("when Close returned, the client of %s was not closed: Ready = %v", what, err)
		}
	}
	if err := <-sent; err != nil {
		t.Errorf("the old identity's DM: %v, want it confirmed before the identity left", err)
	}
	if err := <-called; err != nil {
		t.Errorf("whoami: %v", err)
	}
}
