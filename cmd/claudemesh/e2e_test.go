package main

// End-to-end tests of the built binary: real `claudemesh broker` processes
// on loopback ports with their SQLite store in a temporary directory, and
// real `claudemesh mcp` processes spoken to over stdio by mark3labs' MCP
// client, the way Claude Code speaks to them. They test what needs the
// processes: stdout carries JSON-RPC only, the exit on stdin EOF and
// signals, the environment read end to end, the hooks as commands, a
// killed process and its successor, the files on disk. What the tools do
// is tested in package mcp, against an in-process broker.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claudemesh/claudemesh/internal/testpg"
	"github.com/claudemesh/claudemesh/internal/testproc"
)

// Deadlines. They are generous because the machine may be loaded; a
// healthy run stays far below them.
const (
	waitLong    = 20 * time.Second // a condition that needs a broker round trip or a reconnect
	exitWait    = 5 * time.Second  // a process to exit after stdin EOF or SIGTERM
	callTimeout = 40 * time.Second // one tool call (send_dm may wait 25 s for the broker)
)

// The binary is built once per test run, without cgo: the release binary
// must stay a static, cgo-free build.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := testpg.Run(m)
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// binary returns the path of the claudemesh binary built from this package.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds the binary and runs brokers and MCP servers")
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "claudemesh-e2e-")
		if built.err != nil {
			return
		}
		built.path, built.err = testproc.Build(built.dir)
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// waitFor polls cond until it reports true, failing the test when it
// returns an error or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	testproc.Eventually(t, timeout, what, func() bool {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return ok
	})
}

// proc is a started child process whose exit is observed by one goroutine.
type proc struct {
	what string
	cmd  *exec.Cmd
	log  *testproc.Buffer // stderr (and stdout for a broker)
	done chan struct{}
}

func startProc(t *testing.T, what string, cmd *exec.Cmd, log *testproc.Buffer) *proc {
	t.Helper()
	cmd.WaitDelay = exitWait
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	p := &proc{what: what, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", what, log)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process if it still runs and waits for it.
func (p *proc) kill() {
	if !p.exited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// waitExit waits for the process to exit on its own and checks that it
// exited with status 0.
func (p *proc) waitExit(t *testing.T, after string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(exitWait):
		t.Errorf("%s still runs %v after %s", p.what, exitWait, after)
		p.kill()
		return
	}
	if st := p.cmd.ProcessState; !st.Success() {
		t.Errorf("%s ended with %v after %s", p.what, st, after)
	}
}

// env returns a child's whole environment: nothing is inherited from the
// test's own (which may run inside a Claude Code session), so a stray
// CLAUDE_CODE_SESSION_ID or CLAUDEMESH_BROKER cannot leak in. HOME points to
// an empty directory so that nothing lands in the real one.
func env(t *testing.T, home string, extra ...string) []string {
	t.Helper()
	return append([]string{
		"CLAUDEMESH_HOME=" + home,
		"HOME=" + t.TempDir(),
		"PATH=/usr/bin:/bin",
	}, extra...)
}

// brokerProc is a running `claudemesh broker`.
type brokerProc struct {
	*proc
	home, data string
	url        string
}

// startBroker runs a broker on a free loopback port and waits until it has
// published its URL in home/broker.json.
func startBroker(t *testing.T, home, data string) *brokerProc {
	t.Helper()
	return startBrokerWith(t, home, data, "--listen", "127.0.0.1:0")
}

// startBrokerWith runs `claudemesh broker` with args (after --data) and
// waits until it has published its URL in home/broker.json.
func startBrokerWith(t *testing.T, home, data string, args ...string) *brokerProc {
	t.Helper()
	log := new(testproc.Buffer)
	cmd := exec.Command(binary(t), append([]string{"broker", "--data", data, "--log-level", "debug"}, args...)...)
	cmd.Env = env(t, home)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = log, log
	b := &brokerProc{proc: startProc(t, "broker", cmd, log), home: home, data: data}
	b.url = testproc.WaitBroker(t, waitLong, home, cmd, b.done).URL
	return b
}

// stop ends the broker with SIGTERM, as a service manager does.
func (b *brokerProc) stop(t *testing.T) {
	t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.waitExit(t, "SIGTERM")
}

// session is a running `claudemesh mcp` with an initialized MCP client.
type session struct {
	*proc
	name  string
	c     *mcpclient.Client
	stdin *os.File
}

// sessionConfig is the environment Claude Code would give the MCP server.
type sessionConfig struct {
	home      string
	sessionID string // CLAUDEMESH_SESSION_ID; "" for none
	name      string
	mesh      string   // "" for the default mesh
	env       []string // more variables
}

// startSession runs `claudemesh mcp` and completes the MCP handshake.
func startSession(t *testing.T, cfg sessionConfig) *session {
	t.Helper()
	vars := []string{"CLAUDEMESH_NAME=" + cfg.name, "CLAUDE_PROJECT_DIR=/projects/" + cfg.name, "CLAUDEMESH_LOG_LEVEL=debug"}
	if cfg.sessionID != "" {
		vars = append(vars, "CLAUDEMESH_SESSION_ID="+cfg.sessionID)
	}
	if cfg.mesh != "" {
		vars = append(vars, "CLAUDEMESH_MESH="+cfg.mesh)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	log := new(testproc.Buffer)
	cmd := exec.Command(binary(t), "mcp")
	cmd.Env = env(t, cfg.home, append(vars, cfg.env...)...)
	cmd.Dir = t.TempDir()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, log
	s := &session{name: cfg.name, stdin: inW}
	s.proc = startProc(t, "mcp "+cfg.name, cmd, log)
	inR.Close()
	outW.Close()
	s.c = mcpclient.NewClient(transport.NewIO(outR, inW, nil))
	t.Cleanup(func() {
		s.c.Close() // closes stdin
		select {
		case <-s.done:
		case <-time.After(exitWait):
		}
		s.kill()
		outR.Close()
	})

	if err := s.c.Start(t.Context()); err != nil {
		t.Fatalf("%s: start MCP client: %v", s.name, err)
	}
	var req mcpgo.InitializeRequest
	req.Params.ProtocolVersion = mcpgo.ProtocolVersion20251125 // what Claude Code sends
	req.Params.ClientInfo = mcpgo.Implementation{Name: "claudemesh-e2e", Version: "1"}
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	res, err := s.c.Initialize(ctx, req)
	if err != nil {
		t.Fatalf("%s: initialize: %v", s.name, err)
	}
	if res.ServerInfo.Name != "claudemesh" {
		t.Fatalf("%s: server name %q, want claudemesh", s.name, res.ServerInfo.Name)
	}
	return s
}

// stop closes the session's stdin, as Claude Code does on exit, and checks
// that the server exits promptly and cleanly.
func (s *session) stop(t *testing.T) {
	t.Helper()
	s.stdin.Close()
	s.waitExit(t, "stdin EOF")
}

// toolResult is a tool call's result as the model sees it.
type toolResult struct {
	structured json.RawMessage
	text       string
	isError    bool
}

func (s *session) tryCall(ctx context.Context, tool string, args map[string]any) (toolResult, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var req mcpgo.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := s.c.CallTool(ctx, req)
	if err != nil {
		return toolResult{}, fmt.Errorf("%s: %s: %w", s.name, tool, err)
	}
	out := toolResult{structured: res.RawStructuredContent, isError: res.IsError}
	for _, c := range res.Content {
		if tc, ok := mcpgo.AsTextContent(c); ok {
			out.text += tc.Text
		}
	}
	if !out.isError && len(out.structured) == 0 {
		return out, fmt.Errorf("%s: %s: result has no structured content (text %q)", s.name, tool, out.text)
	}
	return out, nil
}

// call calls tool and decodes its structured result into T (left zero for
// an error result).
func call[T any](t *testing.T, s *session, tool string, args map[string]any) (T, string, bool) {
	t.Helper()
	var v T
	res, err := s.tryCall(t.Context(), tool, args)
	if err != nil {
		t.Fatal(err)
	}
	if !res.isError {
		if err := json.Unmarshal(res.structured, &v); err != nil {
			t.Fatalf("%s: %s: decode %s: %v", s.name, tool, res.structured, err)
		}
	}
	return v, res.text, res.isError
}

// mustCall is call for a result that must not be an error.
func mustCall[T any](t *testing.T, s *session, tool string, args map[string]any) T {
	t.Helper()
	v, text, isError := call[T](t, s, tool, args)
	if isError {
		t.Fatalf("%s: %s(%v) failed: %s", s.name, tool, args, text)
	}
	return v
}

// The tools' structured results, written out here rather than imported so
// that a renamed JSON field breaks the test as it would break a client.
type (
	whoamiResult struct {
		Name          string `json:"name"`
		Mesh          string `json:"mesh"`
		KeyID         string `json:"key_id"`
		PublicKey     string `json:"public_key"`
		SessionID     string `json:"session_id"`
		SessionSource string `json:"session_source"`
		IdentityMode  string `json:"identity_mode"`
		Broker        string `json:"broker"`
		Connection    string `json:"connection"`
		LastError     string `json:"last_error"`
		Unread        int    `json:"unread"`
	}
	peerInfo struct {
		Name       string `json:"name"`
		KeyID      string `json:"key_id"`
		SessionID  string `json:"session_id"`
		ProjectDir string `json:"project_dir"`
		State      string `json:"state"`
		// LastSeen and ReconnectingUntil are set for a peer that is
		// reconnecting.
		LastSeen          string `json:"last_seen"`
		ReconnectingUntil string `json:"reconnecting_until"`
	}
	peersResult struct {
		Mesh  string     `json:"mesh"`
		Peers []peerInfo `json:"peers"`
	}
	sendResult struct {
		ID      string `json:"id"`
		To      string `json:"to"`
		ToKeyID string `json:"to_key_id"`
		Status  string `json:"status"`
	}
	message struct {
		ID          string `json:"id"`
		From        string `json:"from"`
		FromKeyID   string `json:"from_key_id"`
		FromSession string `json:"from_session"`
		SentAt      string `json:"sent_at"`
		Text        string `json:"text"`
		Error       string `json:"error"`
		Status      string `json:"status"`
		PushedAt    string `json:"pushed_at"`
	}
	statusResult struct {
		State     string `json:"state"`
		SentAt    string `json:"sent_at"`
		ExpiresAt string `json:"expires_at"`
	}
	inboxResult struct {
		Messages  []message `json:"messages"`
		Remaining int       `json:"remaining"`
	}
)

func (s *session) whoami(t *testing.T) whoamiResult {
	t.Helper()
	return mustCall[whoamiResult](t, s, "whoami", nil)
}

// waitConnected waits until the session is connected to its broker.
func (s *session) waitConnected(t *testing.T) whoamiResult {
	t.Helper()
	var w whoamiResult
	waitFor(t, waitLong, s.name+" to connect to the broker", func() (bool, error) {
		w = s.whoami(t)
		return w.Connection == "connected", nil
	})
	return w
}

func (s *session) peers(t *testing.T) peersResult {
	t.Helper()
	return mustCall[peersResult](t, s, "list_peers", nil)
}

// waitPeer waits until list_peers shows the session with keyID in state.
func (s *session) waitPeer(t *testing.T, keyID, state string) peerInfo {
	t.Helper()
	var found peerInfo
	waitFor(t, waitLong, fmt.Sprintf("%s to see %s %s", s.name, keyID, state), func() (bool, error) {
		peers, _, isError := call[peersResult](t, s, "list_peers", nil)
		if isError {
			return false, nil // not connected (yet, or again after a broker restart)
		}
		for _, p := range peers.Peers {
			if p.KeyID == keyID && p.State == state {
				found = p
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

func (s *session) send(t *testing.T, to, text string) sendResult {
	t.Helper()
	return mustCall[sendResult](t, s, "send_dm", map[string]any{"to": to, "message": text})
}

func (s *session) inbox(t *testing.T) inboxResult {
	t.Helper()
	return mustCall[inboxResult](t, s, "inbox", nil)
}

// waitInbox calls inbox until it has returned n DMs in all and returns
// them. A DM the broker accepted may reach the recipient's server a moment
// after send_dm returned.
func (s *session) waitInbox(t *testing.T, n int) []message {
	t.Helper()
	var got []message
	waitFor(t, waitLong, fmt.Sprintf("%d DMs in %s's inbox", n, s.name), func() (bool, error) {
		got = append(got, s.inbox(t).Messages...)
		return len(got) >= n, nil
	})
	return got
}

// waitEachOnce calls inbox until the DMs ids have come, and checks that
// each came exactly once.
func (s *session) waitEachOnce(t *testing.T, ids []string) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range s.waitInbox(t, len(ids)) {
		seen[m.ID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("DM %s arrived %d times, want once", id, seen[id])
		}
	}
}

// assertInboxEmpty checks that an inbox call returns nothing.
func (s *session) assertInboxEmpty(t *testing.T) {
	t.Helper()
	res := s.inbox(t)
	if len(res.Messages) != 0 || res.Remaining != 0 {
		t.Errorf("%s: inbox returned %d DMs (remaining %d), want none: %+v", s.name, len(res.Messages), res.Remaining, res.Messages)
	}
}

// mesh is a broker with its home and data directories.
type mesh struct {
	home, data string
	broker     *brokerProc
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	root := t.TempDir()
	m := &mesh{home: filepath.Join(root, "home"), data: filepath.Join(root, "data")}
	m.broker = startBroker(t, m.home, m.data)
	return m
}

func (m *mesh) join(t *testing.T, name, sessionID string) *session {
	t.Helper()
	return startSession(t, sessionConfig{home: m.home, sessionID: sessionID, name: name})
}

func TestBrokerStoresNoPlaintext(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	alice := m.join(t, "alice", uuid.NewString())
	bobID := uuid.NewString()
	bob := m.join(t, "bob", bobID)
	alice.waitConnected(t)
	bobKey := bob.waitConnected(t).KeyID
	alice.waitPeer(t, bobKey, "online")

	marker := "plaintext-marker-" + uuid.NewString()
	online := alice.send(t, "bob", marker+" delivered live")
	if got := bob.waitInbox(t, 1); got[0].Text != marker+" delivered live" {
		t.Fatalf("bob received %+v", got)
	}
	bob.stop(t)
	alice.waitPeer(t, bobKey, "away")
	queued := alice.send(t, "bob", marker+" queued")
	if queued.Status != "queued" {
		t.Fatalf("send_dm = %+v, want queued", queued)
	}

	check := func(when string) {
		t.Helper()
		var all []byte
		for _, name := range []string{"claudemesh.db", "claudemesh.db-wal", "claudemesh.db-shm"} {
			b, err := os.ReadFile(filepath.Join(m.data, name))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("%s: %s holds a DM's plaintext", when, name)
			}
			all = append(all, b...)
		}
		// The files read are the ones the DMs are in.
		for _, id := range []string{online.ID, queued.ID} {
			if !bytes.Contains(all, []byte(id)) {
				t.Errorf("%s: the database files do not hold DM %s; the test reads the wrong files", when, id)
			}
		}
	}
	check("broker running")
	m.broker.stop(t)
	check("broker stopped")
	for _, p := range []*proc{m.broker.proc, alice.proc, bob.proc} {
		if strings.Contains(p.log.String(), marker) {
			t.Errorf("the %s logged a DM's plaintext", p.what)
		}
	}

	keyFile := filepath.Join(m.home, "sessions", "default", bobID+".json")
	for path, want := range map[string]os.FileMode{
		keyFile:                              0o600,
		filepath.Dir(keyFile):                0o700,
		filepath.Join(m.home, "broker.json"): 0o600,
		m.data:                               0o700,
		filepath.Join(m.data, "credential"):  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %o, want %o", path, got, want)
		}
	}
}

func TestSessionExitsOnSIGTERM(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	alice := m.join(t, "alice", uuid.NewString())
	key := alice.waitConnected(t).KeyID
	bob := m.join(t, "bob", uuid.NewString())
	bob.waitPeer(t, key, "online")
	alice.cmd.Process.Signal(syscall.SIGTERM)
	alice.waitExit(t, "SIGTERM")
	bob.waitPeer(t, key, "away")
}

func TestInvalidSessionID(t *testing.T) {
	t.Parallel()
	for name, id := range map[string]string{
		"path":        "../../etc/passwd",
		"uuid-length": "../../../../../../../../../../../../", // 36 bytes, like a UUID
		"word":        "not-a-uuid",
		"nil":         "00000000-0000-0000-0000-000000000000",
		"braces":      "{8c4c1c9e-1f0e-4a47-9d1e-3f0c8e3b6d11}",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			home := filepath.Join(root, "home")
			cwd, userHome := t.TempDir(), t.TempDir()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(t.Context(), binary(t), "mcp")
			cmd.Env = []string{"CLAUDEMESH_HOME=" + home, "HOME=" + userHome, "CLAUDEMESH_SESSION_ID=" + id, "CLAUDEMESH_NAME=mallory"}
			cmd.Dir = cwd
			cmd.Stdin = strings.NewReader("")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.WaitDelay = exitWait
			err := cmd.Run()
			if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 {
				t.Errorf("claudemesh mcp with session id %q: %v, want exit status 1", id, err)
			}
			if msg := stderr.String(); !strings.Contains(msg, "CLAUDEMESH_SESSION_ID") || !strings.Contains(msg, "invalid session id") {
				t.Errorf("stderr %q does not explain the invalid CLAUDEMESH_SESSION_ID", msg)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			for _, dir := range []string{root, cwd, userHome} {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("%s holds %v after a refused start, want nothing", dir, entries)
				}
			}
		})
	}
}

// rawSession speaks JSON-RPC to `claudemesh mcp` by hand, to see exactly
// what it writes on stdout.
type rawSession struct {
	*proc
	stdin  io.WriteCloser
	lines  chan []byte // stdout lines; closed at EOF
	nextID int
}

func startRaw(t *testing.T, home string, extraEnv ...string) *rawSession {
	t.Helper()
	cmd := exec.Command(binary(t), "mcp")
	cmd.Env = env(t, home, append([]string{"CLAUDEMESH_NAME=raw", "CLAUDEMESH_SESSION_ID=" + uuid.NewString()}, extraEnv...)...)
	cmd.Dir = t.TempDir()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// An os.Pipe, unlike StdoutPipe, is not closed by Wait: every byte
	// written before the exit is read.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	log := new(testproc.Buffer)
	cmd.Stdout, cmd.Stderr = outW, log
	r := &rawSession{stdin: stdin, lines: make(chan []byte, 100)}
	r.proc = startProc(t, "mcp raw", cmd, log)
	outW.Close()
	ctx := t.Context()
	go func() {
		defer close(r.lines)
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			select {
			case r.lines <- bytes.Clone(sc.Bytes()):
			case <-ctx.Done():
				return
			}
		}
	}()
	return r
}

func (r *rawSession) write(t *testing.T, method string, params any, notification bool) int {
	t.Helper()
	msg := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		msg["params"] = params
	}
	id := 0
	if !notification {
		r.nextID++
		id = r.nextID
		msg["id"] = id
	}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("write %s: %v", method, err)
	}
	return id
}

// rawMessage is one JSON-RPC message from stdout.
type rawMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      *int            `json:"id"`
	Method  string          `json:"method"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// next reads stdout until the response to id, checking every line on
// the way.
func (r *rawSession) next(t *testing.T, id int) rawMessage {
	t.Helper()
	timeout := time.After(waitLong)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatalf("stdout ended before the response to request %d", id)
			}
			m := checkLine(t, line)
			if m.ID != nil && *m.ID == id && m.Method == "" {
				if m.Error != nil {
					t.Fatalf("request %d failed: %s", id, m.Error)
				}
				return m
			}
		case <-timeout:
			t.Fatalf("no response to request %d within %v", id, waitLong)
		}
	}
}

// checkLine asserts that a stdout line is one JSON-RPC 2.0 message.
func checkLine(t *testing.T, line []byte) rawMessage {
	t.Helper()
	var m rawMessage
	if err := json.Unmarshal(line, &m); err != nil || m.JSONRPC != "2.0" {
		t.Errorf("stdout line is not a JSON-RPC 2.0 message (%v): %q", err, line)
	}
	return m
}

func (r *rawSession) initialize(t *testing.T) {
	t.Helper()
	r.next(t, r.write(t, "initialize", map[string]any{
		"protocolVersion": "2025-11-25",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "claudemesh-e2e", "version": "1"},
	}, false))
	r.write(t, "notifications/initialized", nil, true)
}

func TestStdoutCarriesOnlyJSONRPC(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	r := startRaw(t, m.home, "CLAUDEMESH_LOG_LEVEL=debug")
	r.initialize(t)
	r.next(t, r.write(t, "tools/list", nil, false))
	// Call whoami until the server is connected, so the broker connection's
	// logs are written while stdout is in use.
	waitFor(t, waitLong, "whoami to report connected", func() (bool, error) {
		res := r.next(t, r.write(t, "tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}}, false))
		var out struct {
			StructuredContent whoamiResult `json:"structuredContent"`
		}
		if err := json.Unmarshal(res.Result, &out); err != nil {
			return false, err
		}
		return out.StructuredContent.Connection == "connected", nil
	})
	r.stdin.Close()
	r.waitExit(t, "stdin EOF")
	for line := range r.lines {
		checkLine(t, line)
	}
	log := r.log.String()
	for _, want := range []string{"level=DEBUG", "claudemesh MCP server started", "connected to broker"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
}

// A session whose process is killed (no bye) is held in grace: listed once,
// as reconnecting, with DMs to it queued; the next process of the session
// gets them.
func TestKilledSessionIsReconnectingThenReturns(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	alice := m.join(t, "alice", uuid.NewString())
	alice.waitConnected(t)
	bobID := uuid.NewString()
	bob := m.join(t, "bob", bobID)
	key := bob.waitConnected(t).KeyID
	alice.waitPeer(t, key, "online")

	bob.cmd.Process.Kill() // SIGKILL: no bye
	<-bob.done
	alice.waitPeer(t, key, "reconnecting")
	res := alice.send(t, "bob", "while you were gone")
	if res.Status != "queued" {
		t.Errorf("DM to a killed session: %s, want queued", res.Status)
	}
	var rows int
	for _, p := range alice.peers(t).Peers {
		if p.KeyID == key {
			rows++
		}
	}
	if rows != 1 {
		t.Errorf("alice lists bob %d times, want once", rows)
	}

	bob = m.join(t, "bob", bobID)
	if got := bob.waitInbox(t, 1); len(got) != 1 || got[0].Text != "while you were gone" || got[0].ID != res.ID {
		t.Errorf("bob back: inbox %+v, want the queued DM once", got)
	}
	alice.waitPeer(t, key, "online")
	bob.assertInboxEmpty(t)
}

// fireSessionStart runs `claudemesh hook session-start` as Claude Code would, with
// ev as its stdin. The test process stands in for the claude process: it
// is the parent of both the hook and the MCP servers.
func fireSessionStart(t *testing.T, home string, ev map[string]any) {
	t.Helper()
	in, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), binary(t), "hook", "session-start")
	cmd.Env = env(t, home)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hook session-start: %v\n%s", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("hook session-start printed %q on stdout, which Claude Code adds to the context", stdout.String())
	}
}

// The hook and the MCP server are separate processes under one claude
// process (here the test process): `claudemesh hook session-start` finds
// the server's channel through their common parent, and a server started
// with Claude Code's throwaway id (--continue) switches to the session the
// hook reports. What the switch does to the identities and the DMs is
// tested in package mcp.
func TestSessionStartHookReachesServer(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	throwaway, realID := uuid.NewString(), uuid.NewString()
	bob := startSession(t, sessionConfig{home: m.home, name: "bob", env: []string{"CLAUDE_CODE_SESSION_ID=" + throwaway}})
	throwKey := bob.waitConnected(t).KeyID

	fireSessionStart(t, m.home, map[string]any{"session_id": realID, "source": "resume", "cwd": "/projects/bob", "hook_event_name": "SessionStart"})
	var w whoamiResult
	waitFor(t, waitLong, "bob to switch to the real session", func() (bool, error) {
		w = bob.whoami(t)
		return w.SessionID == realID && w.Connection == "connected", nil
	})
	if w.KeyID == throwKey || w.IdentityMode != "stable" || w.SessionSource != "SessionStart hook (resume)" {
		t.Errorf("bob after the hook: %+v, want a stable key of session %s other than %s, from the SessionStart hook", w, realID, throwKey)
	}
	if _, err := os.Stat(filepath.Join(m.home, "sessions", "default", realID+".json")); err != nil {
		t.Errorf("the key of the session the hook reported is not in the keystore: %v", err)
	}
	bob.stop(t)
}

func TestHookRefusesBadInput(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	for name, in := range map[string]string{
		"not json":     "session_id=x",
		"no session":   `{"source":"startup"}`,
		"path trick":   `{"session_id":"../../etc/passwd"}`,
		"bad source":   `{"session_id":"` + uuid.NewString() + `","source":"../x"}`,
		"huge":         `{"session_id":"` + uuid.NewString() + `","cwd":"` + strings.Repeat("x", 2<<20) + `"}`,
		"unknown hook": "",
	} {
		t.Run(name, func(t *testing.T) {
			hook := "session-start"
			if name == "unknown hook" {
				hook = "nope"
			}
			cmd := exec.CommandContext(t.Context(), binary(t), "hook", hook)
			cmd.Env = env(t, home)
			cmd.Stdin = strings.NewReader(in)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err == nil {
				t.Errorf("hook accepted %q", truncateForLog(in))
			}
			if stderr.Len() == 0 || stdout.Len() != 0 {
				t.Errorf("stdout %q, stderr %q: want the reason on stderr only", stdout.String(), stderr.String())
			}
			if entries, _ := os.ReadDir(filepath.Join(home, "run")); len(entries) != 0 {
				t.Errorf("a refused hook left %d files in run/", len(entries))
			}
		})
	}
}

func truncateForLog(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// With CLAUDEMESH_CHANNEL=1 the server declares the claude/channel
// capability and sends each DM that arrives as a channel notification
// too, with identifier-only meta keys.
func TestChannelNotification(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	alice := m.join(t, "alice", uuid.NewString())
	alice.waitConnected(t)
	r := startRaw(t, m.home, "CLAUDEMESH_CHANNEL=1", "CLAUDEMESH_NAME=bob")
	init := r.next(t, r.write(t, "initialize", map[string]any{
		"protocolVersion": "2025-11-25",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "claudemesh-e2e", "version": "1"},
	}, false))
	var caps struct {
		Capabilities struct {
			Experimental map[string]any `json:"experimental"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(init.Result, &caps); err != nil || caps.Capabilities.Experimental["claude/channel"] == nil {
		t.Fatalf("initialize result %s lacks the claude/channel capability", init.Result)
	}
	r.write(t, "notifications/initialized", nil, true)

	var id string
	waitFor(t, waitLong, "bob to be online for alice", func() (bool, error) {
		res, _, isError := call[sendResult](t, alice, "send_dm", map[string]any{"to": "bob", "message": "over the channel"})
		id = res.ID
		return !isError, nil // an error: bob is not connected yet
	})
	timeout := time.After(waitLong)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatal("stdout ended before the channel notification")
			}
			var n struct {
				Method string `json:"method"`
				Params struct {
					Content string            `json:"content"`
					Meta    map[string]string `json:"meta"`
				} `json:"params"`
			}
			checkLine(t, line)
			if json.Unmarshal(line, &n) != nil || n.Method != "notifications/claude/channel" {
				continue
			}
			if !strings.Contains(n.Params.Content, "over the channel") || n.Params.Meta["message_id"] != id {
				t.Errorf("channel notification %+v, want DM %s", n.Params, id)
			}
			for k := range n.Params.Meta {
				if !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(k) {
					t.Errorf("meta key %q is not an identifier", k)
				}
			}
			r.stdin.Close()
			r.waitExit(t, "stdin EOF")
			return
		case <-timeout:
			t.Fatal("no channel notification")
		}
	}
}

// claudemesh runs the binary with CLAUDEMESH_HOME=home and returns its
// stdout, failing the test unless the exit status is as wanted.
func claudemesh(t *testing.T, home string, wantOK bool, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), args...)
	cmd.Env = env(t, home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if (err == nil) != wantOK {
		t.Fatalf("claudemesh %s: %v, want success %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantOK, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// invite prints a one-use invite code of the mesh, as its owner at home.
func invite(t *testing.T, home, mesh string) string {
	t.Helper()
	out, _ := claudemesh(t, home, true, "invite", "--mesh", mesh, "--uses", "1", "--expires", "1h")
	return strings.TrimSpace(out)
}

// Two machines (two CLAUDEMESH_HOMEs) join a mesh by invite and exchange a
// DM; a third, uninvited, cannot connect or reuse a code; a removed member
// is cut off within a second and cannot come back.
func TestMeshMembershipAcrossMachines(t *testing.T) {
	t.Parallel()
	m := newMesh(t) // the broker's machine: m.home has its credential
	url := m.broker.url
	claudemesh(t, m.home, true, "mesh", "create", "team", "--name", "olga")
	// Creating it twice is refused.
	if _, errOut := claudemesh(t, m.home, false, "mesh", "create", "team", "--name", "olga"); !strings.Contains(errOut, "already a member") {
		t.Errorf("second mesh create: %s", errOut)
	}

	homeA, homeB, homeC := t.TempDir(), t.TempDir(), t.TempDir()
	codeA := invite(t, m.home, "team")
	claudemesh(t, homeA, true, "join", url, codeA, "--name", "alice")
	claudemesh(t, homeB, true, "join", url, invite(t, m.home, "team"), "--name", "bob")
	// A used code admits no one; the uninvited machine cannot use it.
	if _, errOut := claudemesh(t, homeC, false, "join", url, codeA, "--name", "carol"); !strings.Contains(errOut, "bad_invite") {
		t.Errorf("join with a used code: %s", errOut)
	}
	// A revoked code neither.
	revoked := invite(t, m.home, "team")
	claudemesh(t, m.home, true, "invite", "revoke", revoked, "--mesh", "team")
	if _, errOut := claudemesh(t, homeC, false, "join", url, revoked, "--name", "carol"); !strings.Contains(errOut, "bad_invite") {
		t.Errorf("join with a revoked code: %s", errOut)
	}

	alice := startSession(t, sessionConfig{home: homeA, sessionID: uuid.NewString(), name: "alice", mesh: "team"})
	bob := startSession(t, sessionConfig{home: homeB, sessionID: uuid.NewString(), name: "bob", mesh: "team"})
	aKey := alice.waitConnected(t).KeyID
	bob.waitConnected(t)
	alice.waitPeer(t, bob.whoami(t).KeyID, "online")
	alice.send(t, "bob", "across machines")
	if got := bob.waitInbox(t, 1); got[0].Text != "across machines" || got[0].From != "alice" {
		t.Errorf("bob's inbox: %+v", got)
	}

	// Carol has no membership: her session is refused, for good.
	carol := startSession(t, sessionConfig{home: homeC, sessionID: uuid.NewString(), name: "carol", mesh: "team", env: []string{"CLAUDEMESH_BROKER=" + url}})
	waitFor(t, waitLong, "carol to be refused", func() (bool, error) {
		w := carol.whoami(t)
		return strings.Contains(w.LastError, "attestation_required"), nil
	})
	if _, text, isError := call[peersResult](t, carol, "list_peers", nil); !isError || !strings.Contains(text, "refuses") {
		t.Errorf("carol's list_peers: isError=%v %q", isError, text)
	}

	out, _ := claudemesh(t, m.home, true, "member", "list", "--mesh", "team")
	for _, want := range []string{"olga", "owner", "alice", "bob"} {
		if !strings.Contains(out, want) {
			t.Errorf("member list lacks %q:\n%s", want, out)
		}
	}
	// Only the owner manages the mesh.
	if _, errOut := claudemesh(t, homeB, false, "member", "remove", "alice", "--mesh", "team"); !strings.Contains(errOut, "not_owner") {
		t.Errorf("bob removing alice: %s", errOut)
	}

	removed := time.Now()
	claudemesh(t, m.home, true, "member", "remove", "alice", "--mesh", "team")
	waitFor(t, waitLong, "alice to be cut off", func() (bool, error) {
		return strings.Contains(alice.whoami(t).LastError, "member_removed"), nil
	})
	if d := time.Since(removed); d > 3*time.Second {
		t.Errorf("alice was cut off %v after the removal (the command included)", d)
	}
	// Gone from the mesh at once: no ghost in grace.
	for _, p := range bob.peers(t).Peers {
		if p.KeyID == aKey && p.State != "away" {
			t.Errorf("bob sees removed alice as %s", p.State)
		}
	}
	// And she cannot come back.
	again := startSession(t, sessionConfig{home: homeA, sessionID: uuid.NewString(), name: "alice", mesh: "team"})
	waitFor(t, waitLong, "alice's new session to be refused", func() (bool, error) {
		return strings.Contains(again.whoami(t).LastError, "not_member"), nil
	})
}
