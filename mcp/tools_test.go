package mcp

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	mcpclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/internal/testproc"
	"github.com/claudemesh/claudemesh/store/sqlite"
	"github.com/claudemesh/claudemesh/wire"
)

// waitTimeout bounds every wait for a condition; a passing run never waits
// for it.
const waitTimeout = 20 * time.Second

const testToken = "0123456789abcdef0123456789abcdef-mcp-test"

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// eventually fails the test unless cond becomes true within waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testproc.Poll(t, waitTimeout, 5*time.Millisecond, what, cond)
}

// testBroker is a real broker on a loopback port with the SQLite store in
// a temporary directory.
type testBroker struct {
	url, token string
}

func startBroker(t *testing.T) *testBroker {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "broker.db"), sqlite.Config{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	// No rate limit: tests send DMs as fast as they can.
	srv, err := broker.NewServer(broker.Config{Store: st, Token: testToken, SendRate: 1e9, MemberSendRate: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, srv)
	ts := httptest.NewServer(mux)
	// Last in, first out: the broker closes its WebSockets, then the HTTP
	// server stops, then the store closes.
	t.Cleanup(func() { st.Close() })
	t.Cleanup(ts.Close)
	t.Cleanup(func() { srv.Close() })
	return &testBroker{url: "ws" + strings.TrimPrefix(ts.URL, "http") + wire.Path, token: testToken}
}

func (tb *testBroker) endpoint() func() (client.Endpoint, error) {
	return func() (client.Endpoint, error) { return client.Endpoint{URL: tb.url, Token: tb.token}, nil }
}

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

// session is an MCP server spoken to by an in-process MCP client.
type session struct {
	srv *Server
	c   *mcpclient.Client
}

// startSession starts the MCP server of a new session named name; opts
// adjust its configuration (the endpoint defaults to tb's).
func startSession(t *testing.T, tb *testBroker, name string, opts ...func(*Config)) *session {
	t.Helper()
	cfg := Config{
		Home:       t.TempDir(),
		Name:       name,
		SessionID:  uuid.NewString(),
		Delivery:   DeliveryInbox,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	}
	if tb != nil {
		cfg.Endpoint = tb.endpoint()
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := mcpclient.NewInProcessClient(s.mcp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Start(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcpgo.Implementation{Name: "test", Version: "0"}
	if _, err := c.Initialize(waitCtx(t), init); err != nil {
		t.Fatal(err)
	}
	return &session{srv: s, c: c}
}

func (ss *session) waitConnected(t *testing.T) {
	t.Helper()
	if err := ss.srv.bound().client.WaitConnected(waitCtx(t)); err != nil {
		t.Fatalf("%s: %v (state %+v)", ss.srv.cfg.Name, err, ss.srv.bound().client.State())
	}
}

// call calls tool with args (any JSON value, nil for none) and returns the
// result and its text.
func (ss *session) call(t *testing.T, tool string, args any) (*mcpgo.CallToolResult, string) {
	t.Helper()
	req := mcpgo.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := ss.c.CallTool(waitCtx(t), req)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(mcpgo.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	return res, text.String()
}

// mustCall calls tool, fails the test on an error result, and decodes the
// structured result.
func mustCall[T any](t *testing.T, ss *session, tool string, args any) T {
	t.Helper()
	res, text := ss.call(t, tool, args)
	if res.IsError {
		t.Fatalf("%s: error %q", tool, text)
	}
	var v T
	b, err := json.Marshal(res.StructuredContent)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		t.Fatalf("%s: structured result %v: %v", tool, res.StructuredContent, err)
	}
	return v
}

func (ss *session) keyID() string { return ss.srv.Key().ID() }

// unreadIDs is the ids of the DMs in the session's inbox, oldest first.
func (ss *session) unreadIDs() []string {
	ss.srv.inbox.mu.Lock()
	defer ss.srv.inbox.mu.Unlock()
	return ids(ss.srv.inbox.unread)
}

// barrier makes a request on ss's broker connection and waits for its
// answer: the broker handles a connection's frames in order, so whatever
// ss sent before (acks, receipts) has been handled.
func (ss *session) barrier(t *testing.T) {
	t.Helper()
	if _, err := ss.srv.bound().client.Peers(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func (ss *session) status(t *testing.T, id string) string {
	t.Helper()
	return mustCall[StatusResult](t, ss, "message_status", map[string]any{"id": id}).State
}

// pair starts alice and bob, connected and seeing each other.
func pair(t *testing.T) (tb *testBroker, alice, bob *session) {
	t.Helper()
	tb = startBroker(t)
	alice, bob = startSession(t, tb, "alice"), startSession(t, tb, "bob")
	alice.waitConnected(t)
	bob.waitConnected(t)
	return tb, alice, bob
}

// send sends a DM from one session to another and waits until it is in
// the recipient's inbox.
func send(t *testing.T, from, to *session, text string) string {
	t.Helper()
	res := mustCall[SendResult](t, from, "send_dm", map[string]any{"to": to.keyID(), "message": text})
	eventually(t, "the DM is in "+to.srv.cfg.Name+"'s inbox", func() bool { return slices.Contains(to.unreadIDs(), res.ID) })
	return res.ID
}

// Every tool refuses arguments its input schema does not accept, says
// which and why, and does nothing.
func TestToolsRefuseBadArguments(t *testing.T) {
	_, alice, bob := pair(t)
	waiting := send(t, alice, bob, "waiting for bob")

	for _, tc := range []struct {
		name string
		as   *session
		tool string
		args any
		want []string
	}{
		{"send_dm to a number", alice, "send_dm", map[string]any{"to": 123, "message": "hi"}, []string{"`to` must be a string, got a number (123)"}},
		{"send_dm message a boolean", alice, "send_dm", map[string]any{"to": "bob", "message": true}, []string{"`message` must be a string, got a boolean (true)"}},
		{"send_dm to null", alice, "send_dm", map[string]any{"to": nil, "message": "hi"}, []string{"`to` must be a string, got null"}},
		{"send_dm to an object", alice, "send_dm", map[string]any{"to": map[string]any{"name": "bob"}, "message": "hi"}, []string{"`to` must be a string, got an object"}},
		{"send_dm unknown argument", alice, "send_dm", map[string]any{"to": "bob", "message": "hi", "foo": 1}, []string{"unknown argument `foo`; send_dm takes: to, message"}},
		{"send_dm missing to", alice, "send_dm", map[string]any{"message": "hi"}, []string{"`to` is required (recipient", "send_dm takes: to, message"}},
		{"send_dm no arguments", alice, "send_dm", nil, []string{"`to` is required", "`message` is required"}},
		{"send_dm over the limit", alice, "send_dm", map[string]any{"to": "bob", "message": strings.Repeat("x", MaxText+1)}, []string{"`message` is 65537 bytes; the limit is 65536 bytes"}},
		{"send_dm arguments not an object", alice, "send_dm", []any{"bob", "hi"}, []string{"must be an object of named arguments, got an array", "send_dm takes: to, message"}},
		{"list_peers unknown argument", alice, "list_peers", map[string]any{"online": true}, []string{"unknown argument `online`; list_peers takes: group"}},
		{"inbox clear a string", bob, "inbox", map[string]any{"clear": "yes"}, []string{"inbox no longer takes `clear`", "clear_inbox"}},
		{"inbox clear true", bob, "inbox", map[string]any{"clear": true}, []string{"inbox no longer takes `clear`", "clear_inbox"}},
		{"inbox unknown argument", bob, "inbox", map[string]any{"limit": 5}, []string{"unknown argument `limit`; inbox takes no arguments"}},
		{"clear_inbox unknown argument", bob, "clear_inbox", map[string]any{"ids": []any{waiting}}, []string{"unknown argument `ids`; clear_inbox takes no arguments"}},
		{"message_status id a number", alice, "message_status", map[string]any{"id": 42}, []string{"`id` must be a string, got a number (42)"}},
		{"message_status missing id", alice, "message_status", map[string]any{}, []string{"`id` is required (the message id send_dm returned)", "message_status takes: id"}},
		{"message_status two unknown", alice, "message_status", map[string]any{"id": waiting, "b": 1, "a": 2}, []string{"unknown arguments `a`, `b`"}},
		{"whoami take_over a string", bob, "whoami", map[string]any{"take_over": "yes"}, []string{"`take_over` must be a boolean, got a string (\"yes\")"}},
		{"whoami take_over a number", bob, "whoami", map[string]any{"take_over": 1}, []string{"`take_over` must be a boolean, got a number (1)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, text := tc.as.call(t, tc.tool, tc.args)
			if !res.IsError {
				t.Fatalf("succeeded: %.300q", text)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%.300q does not say %q", text, w)
				}
			}
			if !strings.HasSuffix(text, "nothing was done.") {
				t.Errorf("%.300q does not say that nothing was done", text)
			}
			if res.StructuredContent != nil {
				t.Errorf("a refusal carries a structured result %v: the tool ran", res.StructuredContent)
			}
		})
	}

	// Nothing happened: bob's DM is still unread and the broker got no
	// ack for it; no refused send_dm reached bob.
	bob.barrier(t)
	if got := alice.status(t, waiting); got != "delivered" {
		t.Errorf("status of the DM waiting for bob = %s, want delivered (not read, not cleared)", got)
	}
	marker := send(t, alice, bob, "marker")
	if got := bob.unreadIDs(); !slices.Equal(got, []string{waiting, marker}) {
		t.Errorf("bob's inbox = %v, want only %v: a refused send_dm was sent", got, []string{waiting, marker})
	}
	// The same DMs with arguments that are right: read, and the sender
	// sees it.
	if got := mustCall[InboxResult](t, bob, "inbox", nil); len(got.Messages) != 2 {
		t.Errorf("inbox = %+v, want the 2 DMs", got)
	}
	eventually(t, "alice sees her DM read", func() bool { return alice.status(t, waiting) == "read" })
}

// inbox{clear: "yes"} used to be read as a request to read the DMs (or to
// clear them): it must do neither.
func TestInboxClearStringDoesNotAcknowledge(t *testing.T) {
	_, alice, bob := pair(t)
	first, second := send(t, alice, bob, "one"), send(t, alice, bob, "two")

	res, text := bob.call(t, "inbox", map[string]any{"clear": "yes"})
	if !res.IsError || !strings.Contains(text, "`clear`") {
		t.Fatalf("inbox{clear: \"yes\"}: isError=%v %q, want a refusal naming clear", res.IsError, text)
	}
	if got := bob.unreadIDs(); !slices.Equal(got, []string{first, second}) {
		t.Errorf("after the refusal bob's inbox = %v, want both DMs still unread", got)
	}
	bob.barrier(t)
	for _, id := range []string{first, second} {
		if got := alice.status(t, id); got != "delivered" {
			t.Errorf("status of %s after the refusal = %s, want delivered: the broker got an ack", id, got)
		}
	}

	// clear_inbox is how DMs are dismissed unread; the senders see it.
	cleared := mustCall[ClearResult](t, bob, "clear_inbox", nil)
	if cleared.Cleared != 2 || cleared.Unread != 0 {
		t.Errorf("clear_inbox = %+v, want 2 cleared, 0 unread", cleared)
	}
	if got := bob.unreadIDs(); len(got) != 0 {
		t.Errorf("after clear_inbox bob's inbox = %v", got)
	}
	for _, id := range []string{first, second} {
		eventually(t, "alice sees "+id+" cleared", func() bool { return alice.status(t, id) == "cleared" })
	}
}

// whoami{take_over: "true"} is not a request to take the session over.
func TestWhoamiTakeOverStringDoesNotTakeOver(t *testing.T) {
	tb := startBroker(t)
	home, id := t.TempDir(), uuid.NewString()
	same := func(cfg *Config) {
		cfg.Home, cfg.SessionID, cfg.StandbyProbe = home, id, time.Hour
	}
	first := startSession(t, tb, "bob", same)
	first.waitConnected(t)
	second := startSession(t, tb, "bob", same)
	second.waitConnected(t)
	eventually(t, "the first process stands by", func() bool { return first.srv.bound().client.State().Replaced })

	res, text := first.call(t, "whoami", map[string]any{"take_over": "true"})
	if !res.IsError || !strings.Contains(text, "`take_over` must be a boolean") {
		t.Fatalf("whoami{take_over: \"true\"}: isError=%v %q, want a refusal", res.IsError, text)
	}
	if st := first.srv.bound().client.State(); !st.Replaced || st.Connected {
		t.Errorf("after the refusal the first process is %+v, want it still standing by", st)
	}
	if st := second.srv.bound().client.State(); !st.Connected {
		t.Errorf("after the refusal the second process is %+v, want it connected", st)
	}

	if w := mustCall[WhoamiResult](t, first, "whoami", map[string]any{"take_over": true}); w.Connection != "connected" {
		t.Errorf("whoami{take_over: true} = %+v, want connected", w)
	}
	eventually(t, "the second process stands by", func() bool { return second.srv.bound().client.State().Replaced })
}

// The annotations say what each tool changes; every input schema is
// closed.
func TestToolAnnotations(t *testing.T) {
	ss := startSession(t, nil, "alice", func(cfg *Config) { cfg.Endpoint = staticEndpoint(closedURL(t), "") })
	list, err := ss.c.ListTools(waitCtx(t), mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type hint struct{ readOnly, destructive, idempotent bool }
	want := map[string]hint{
		"send_dm":        {false, false, false},
		"list_peers":     {true, false, true},
		"inbox":          {false, false, false},
		"clear_inbox":    {false, true, false},
		"message_status": {true, false, true},
		"whoami":         {false, false, true}, // take_over changes which process holds the session
		"join_group":     {false, false, true},
		"leave_group":    {false, false, true},
		"set_status":     {false, false, true},
		"ask":            {false, false, false},
		"reply":          {false, false, false},
		"asks":           {false, false, true}, // marks expired asks seen
		"history":        {true, false, true},
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		a := tool.Annotations
		got := hint{*a.ReadOnlyHint, *a.DestructiveHint, *a.IdempotentHint}
		if got != want[tool.Name] {
			t.Errorf("%s: hints %+v, want %+v", tool.Name, got, want[tool.Name])
		}
		if tool.InputSchema.AdditionalProperties != false {
			t.Errorf("%s: additionalProperties %v, want false", tool.Name, tool.InputSchema.AdditionalProperties)
		}
	}
	slices.Sort(names)
	if want := []string{"ask", "asks", "clear_inbox", "history", "inbox", "join_group", "leave_group", "list_peers", "message_status", "reply", "send_dm", "set_status", "whoami"}; !slices.Equal(names, want) {
		t.Errorf("tools = %v, want %v", names, want)
	}
	for _, tool := range list.Tools {
		if tool.Name != "send_dm" {
			continue
		}
		p, _ := tool.InputSchema.Properties["message"].(map[string]any)
		if d, _ := p["description"].(string); !strings.Contains(d, "bytes") {
			t.Errorf("send_dm message description %q does not say the limit is in bytes", d)
		}
		if got := tool.InputSchema.PropertyOrder; !slices.Equal(got, []string{"to", "message", "reply_to"}) {
			t.Errorf("send_dm arguments in order %v, want to, message, reply_to", got)
		}
	}
}

func staticEndpoint(url, token string) func() (client.Endpoint, error) {
	return func() (client.Endpoint, error) { return client.Endpoint{URL: url, Token: token}, nil }
}

// inbox's result carries unread like every other tool's: the DMs not yet
// shown that are still unread after the call.
func TestInboxResultCarriesUnread(t *testing.T) {
	_, alice, bob := pair(t)
	for i := range inboxBatch + 2 {
		mustCall[SendResult](t, alice, "send_dm", map[string]any{"to": bob.keyID(), "message": "dm " + string(rune('a'+i%26))})
	}
	eventually(t, "bob has every DM", func() bool { return len(bob.unreadIDs()) == inboxBatch+2 })
	got := mustCall[InboxResult](t, bob, "inbox", nil)
	if len(got.Messages) != inboxBatch || got.Remaining != 2 || got.Unread != 2 {
		t.Errorf("inbox = %d DMs, remaining %d, unread %d; want %d, 2, 2", len(got.Messages), got.Remaining, got.Unread, inboxBatch)
	}
	res, _ := bob.call(t, "inbox", nil)
	var raw map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &raw)
	if n, ok := raw["unread"]; !ok || n != float64(0) {
		t.Errorf("second inbox result %v: want unread present and 0", raw)
	}
}

// With nothing listening at the broker's address every tool answers with
// the reason as soon as a connection attempt has failed, without waiting
// for the next attempt.
func TestToolsAnswerAtOnceWithoutBroker(t *testing.T) {
	url := closedURL(t)
	ss := startSession(t, nil, "alice", func(cfg *Config) {
		cfg.Endpoint = staticEndpoint(url, "")
		// Tools wait for an attempt in flight at most this long: an answer
		// well before it shows they did not wait.
		cfg.ConnectWait = time.Minute
		cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	})
	eventually(t, "the first attempt fails", func() bool { return ss.srv.bound().client.State().Attempts > 0 })

	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"send_dm", map[string]any{"to": "bob", "message": "hi"}},
		{"list_peers", nil},
		{"message_status", map[string]any{"id": uuid.NewString()}},
	} {
		start := time.Now()
		res, text := ss.call(t, c.tool, c.args)
		// A bound that cannot flake: the tool would otherwise wait a
		// minute (ConnectWait).
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%s took %v: it waited for the next attempt", c.tool, d)
		}
		if !res.IsError || !strings.Contains(text, "cannot reach the claudemesh broker at "+url) || !strings.Contains(text, "connection refused") ||
			!strings.Contains(text, "claudemesh broker") {
			t.Errorf("%s without a broker: isError=%v %q, want the address, the reason and how to start the broker", c.tool, res.IsError, text)
		}
	}
	// Tools that need no broker answer too.
	if res, text := ss.call(t, "inbox", nil); res.IsError || !strings.Contains(text, "Not connected") {
		t.Errorf("inbox without a broker: isError=%v %q", res.IsError, text)
	}
	if w := mustCall[WhoamiResult](t, ss, "whoami", nil); w.Connection != "connecting" || !strings.Contains(w.LastError, "connection refused") {
		t.Errorf("whoami without a broker = %+v", w)
	}
	if c := mustCall[ClearResult](t, ss, "clear_inbox", nil); c.Cleared != 0 {
		t.Errorf("clear_inbox without a broker = %+v", c)
	}
}

// While the first attempt has no answer yet, a tool waits ConnectWait for
// it and then says so.
func TestToolsWaitBrieflyForTheFirstAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var held []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never answered
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	url := "ws://" + ln.Addr().String() + wire.Path
	ss := startSession(t, nil, "alice", func(cfg *Config) {
		cfg.Endpoint = staticEndpoint(url, "")
		cfg.ConnectWait = 50 * time.Millisecond
	})
	res, text := ss.call(t, "list_peers", nil)
	if !res.IsError || !strings.Contains(text, url) || !strings.Contains(text, "no answer yet") {
		t.Errorf("list_peers while the first attempt hangs: isError=%v %q", res.IsError, text)
	}
}

// A broker that refuses the session's credential is reported as that, with
// how to fix it, not as a broker that cannot be reached; once broker.json
// holds the right credential the session gets in by itself.
func TestWrongCredentialIsReported(t *testing.T) {
	tb := startBroker(t)
	home := t.TempDir()
	// Publish broker.json as a broker does: under the home's lock.
	lock, err := broker.LockLocal(home, t.TempDir(), broker.Holder{PID: os.Getpid(), URL: tb.url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if err := lock.Publish(wire.LocalInfo{URL: tb.url, Token: "stale-" + testToken}); err != nil {
		t.Fatal(err)
	}
	ss := startSession(t, nil, "alice", func(cfg *Config) { cfg.Home = home })
	eventually(t, "the broker refuses the credential", func() bool { return ss.srv.bound().client.State().Unauthorized })

	for _, tool := range []string{"list_peers", "send_dm"} {
		res, text := ss.call(t, tool, map[string]any{"list_peers": nil, "send_dm": map[string]any{"to": "bob", "message": "hi"}}[tool])
		for _, w := range []string{
			"the broker at " + tb.url + " refused this session: wrong credential",
			filepath.Join(home, wire.LocalFile), "$CLAUDEMESH_HOME/broker.json", "same user", "restart this Claude Code session",
		} {
			if !res.IsError || !strings.Contains(text, w) {
				t.Errorf("%s with a stale credential: isError=%v %q, want it to say %q", tool, res.IsError, text, w)
			}
		}
		if strings.Contains(text, "cannot reach") || strings.Contains(text, "Start it") {
			t.Errorf("%s with a stale credential: %q calls the broker unreachable", tool, text)
		}
	}
	if _, text := ss.call(t, "whoami", nil); !strings.Contains(text, "wrong credential") {
		t.Errorf("whoami with a stale credential: %q", text)
	}

	// The broker's credential arrives in broker.json (the broker was
	// restarted with this home): the session gets in without a restart.
	if err := lock.Publish(wire.LocalInfo{URL: tb.url, Token: testToken}); err != nil {
		t.Fatal(err)
	}
	ss.waitConnected(t)
	mustCall[PeersResult](t, ss, "list_peers", nil)
}

// A session that has no credential for the broker says so.
func TestNoCredentialIsReported(t *testing.T) {
	tb := startBroker(t)
	ss := startSession(t, nil, "alice", func(cfg *Config) {
		cfg.BrokerURL = tb.url // no broker.json in this home
	})
	eventually(t, "the broker refuses the session", func() bool { return ss.srv.bound().client.State().Unauthorized })
	res, text := ss.call(t, "list_peers", nil)
	if !res.IsError || !strings.Contains(text, "refused this session: no credential") || !strings.Contains(text, "broker.json") {
		t.Errorf("list_peers without a credential: isError=%v %q", res.IsError, text)
	}
}
