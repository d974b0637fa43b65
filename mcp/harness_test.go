package mcp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/store/sqlite"
	"github.com/claudemesh/claudemesh/wire"
)

// localBroker is a broker run the way `claudemesh broker` runs one for a
// home: its SQLite store in a data directory, its URL and credential
// published in the home's broker.json, where the sessions of that home
// find it. restart stops it and starts it again on the same store, on
// another port.
type localBroker struct {
	home, data string
	url        string
	srv        *broker.Server
	stop       func()
}

func startLocalBroker(t *testing.T) *localBroker {
	t.Helper()
	root := t.TempDir()
	lb := &localBroker{home: filepath.Join(root, "home"), data: filepath.Join(root, "data")}
	lb.start(t)
	t.Cleanup(lb.close)
	return lb
}

// start runs the broker on a new loopback port and publishes it.
func (lb *localBroker) start(t *testing.T) {
	t.Helper()
	lock, err := broker.LockLocal(lb.home, lb.data, broker.Holder{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(lb.data, "claudemesh.db"), sqlite.Config{Synchronous: "NORMAL"})
	if err != nil {
		lock.Close()
		t.Fatal(err)
	}
	srv, err := broker.NewServer(broker.Config{Store: st, Token: testToken, SendRate: 1e9, MemberSendRate: 1e9})
	if err != nil {
		st.Close()
		lock.Close()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, srv)
	ts := httptest.NewServer(mux)
	lb.srv, lb.url = srv, "ws"+strings.TrimPrefix(ts.URL, "http")+wire.Path
	// As the broker command does: the broker closes its WebSockets, then
	// the HTTP server stops, then the store closes, then the locks go.
	lb.stop = func() {
		srv.Close()
		ts.Close()
		st.Close()
		lock.Close()
	}
	if err := lock.Publish(wire.LocalInfo{URL: lb.url, Token: testToken, PID: os.Getpid(), StartedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
}

// close stops the broker if it runs.
func (lb *localBroker) close() {
	if lb.stop != nil {
		lb.stop()
		lb.stop = nil
	}
}

// in makes a session of lb's home: it finds the broker through
// broker.json, as `claudemesh mcp` does.
func (lb *localBroker) in(cfg *Config) { cfg.Home, cfg.Endpoint = lb.home, nil }

// withID gives the session the Claude Code session UUID id.
func withID(id string) func(*Config) { return func(cfg *Config) { cfg.SessionID = id } }

// fromEnv configures the session as ConfigFromEnv does from an
// environment holding only kv (name, value pairs) and CLAUDEMESH_HOME set
// to the session's home, keeping the test's broker endpoint and reconnect
// delays.
func fromEnv(t *testing.T, kv ...string) func(*Config) {
	t.Helper()
	return func(cfg *Config) {
		t.Helper()
		env := map[string]string{config.EnvHome: cfg.Home}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		c, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		c.Endpoint, c.MinBackoff, c.MaxBackoff = cfg.Endpoint, cfg.MinBackoff, cfg.MaxBackoff
		*cfg = c
	}
}

// decode decodes a tool's structured result.
func decode[T any](t *testing.T, res *mcpgo.CallToolResult) T {
	t.Helper()
	var v T
	b, err := json.Marshal(res.StructuredContent)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		t.Fatalf("structured result %v: %v", res.StructuredContent, err)
	}
	return v
}

func (ss *session) whoami(t *testing.T) WhoamiResult {
	t.Helper()
	return mustCall[WhoamiResult](t, ss, "whoami", nil)
}

func (ss *session) peers(t *testing.T) []PeerInfo {
	t.Helper()
	return mustCall[PeersResult](t, ss, "list_peers", nil).Peers
}

// waitPeer waits until list_peers shows the session with keyID in state
// (online, reconnecting or away) and returns its row.
func (ss *session) waitPeer(t *testing.T, keyID, state string) PeerInfo {
	t.Helper()
	var found PeerInfo
	eventually(t, fmt.Sprintf("%s sees %s %s", ss.srv.cfg.Name, keyID, state), func() bool {
		res, _ := ss.call(t, "list_peers", nil)
		if res.IsError {
			return false // not connected (yet, or again after a broker restart)
		}
		for _, p := range decode[PeersResult](t, res).Peers {
			if p.KeyID == keyID && p.State == state {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// sendTo calls send_dm and fails the test on an error result.
func (ss *session) sendTo(t *testing.T, to, text string) SendResult {
	t.Helper()
	return mustCall[SendResult](t, ss, "send_dm", map[string]any{"to": to, "message": text})
}

// waitInbox waits until n DMs are unread in the session, then reads them
// with the inbox tool and returns what it returned.
func (ss *session) waitInbox(t *testing.T, n int) []Message {
	t.Helper()
	eventually(t, fmt.Sprintf("%d DMs in %s's inbox", n, ss.srv.cfg.Name), func() bool { return len(ss.unreadIDs()) >= n })
	return mustCall[InboxResult](t, ss, "inbox", nil).Messages
}

// assertInboxEmpty checks that the inbox tool returns nothing.
func (ss *session) assertInboxEmpty(t *testing.T) {
	t.Helper()
	if res := mustCall[InboxResult](t, ss, "inbox", nil); len(res.Messages) != 0 || res.Remaining != 0 {
		t.Errorf("%s: inbox returned %d DMs (remaining %d), want none: %+v", ss.srv.cfg.Name, len(res.Messages), res.Remaining, res.Messages)
	}
}

// stop ends the session's server as Claude Code's exit does: it says bye
// to the broker.
func (ss *session) stop() { ss.srv.Close() }
