package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/e2e/fakemodel"
	"github.com/claudemesh/claudemesh/internal/testproc"
)

// envClaude names the Claude Code binary the tests drive.
const envClaude = "CLAUDEMESH_TEST_CLAUDE"

// Bounds of the processes a test starts.
const (
	runTimeout    = 90 * time.Second // one claude process, start to exit
	brokerStartup = 15 * time.Second
	stopGrace     = 10 * time.Second
)

// The MCP tools of claudemesh as Claude Code names them.
const (
	toolSendDM    = "mcp__claudemesh__send_dm"
	toolListPeers = "mcp__claudemesh__list_peers"
	toolInbox     = "mcp__claudemesh__inbox"
	toolWhoami    = "mcp__claudemesh__whoami"

	toolMessageStatus = "mcp__claudemesh__message_status"
	toolClearInbox    = "mcp__claudemesh__clear_inbox"
	toolJoinGroup     = "mcp__claudemesh__join_group"
	toolLeaveGroup    = "mcp__claudemesh__leave_group"
	toolSetStatus     = "mcp__claudemesh__set_status"
	toolAsk           = "mcp__claudemesh__ask"
	toolReply         = "mcp__claudemesh__reply"
	toolAsks          = "mcp__claudemesh__asks"
	toolHistory       = "mcp__claudemesh__history"
)

var meshTools = []string{toolSendDM, toolListPeers, toolInbox, toolWhoami, toolMessageStatus, toolClearInbox,
	toolJoinGroup, toolLeaveGroup, toolSetStatus, toolAsk, toolReply, toolAsks, toolHistory}

// claudemeshBin is the claudemesh binary TestMain builds for the package's
// tests, "" when the tests are skipped.
var claudemeshBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv(envClaude) == "" {
		return m.Run() // every test skips (or fails under CI) on its own
	}
	dir, err := os.MkdirTemp("", "claudemesh-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := testproc.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	claudemeshBin = bin
	return m.Run()
}

// claudeBinary returns the Claude Code binary to drive, skipping the test
// when there is none (failing it under CI).
func claudeBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(envClaude)
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: scripts/test installs Claude Code and sets it", envClaude)
		}
		t.Skip("set CLAUDEMESH_TEST_CLAUDE (scripts/install-claude prints the path) or run scripts/test")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v", envClaude, err)
	}
	if claudemeshBin == "" {
		t.Fatal("claudemesh binary was not built")
	}
	return bin
}

// tail shortens s to its last n bytes for logs.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// brokerProc is a `claudemesh broker` process on a free loopback port.
type brokerProc struct {
	home string // CLAUDEMESH_HOME: broker.json and the session keys
	data string // database directory
	cmd  *exec.Cmd
	out  *testproc.Buffer
	done chan struct{}
	err  error // exit status, once done is closed

	stopOnce sync.Once
}

// startBroker runs a broker with its own CLAUDEMESH_HOME and waits until it
// has published broker.json. It is stopped when the test ends.
func startBroker(t *testing.T) *brokerProc {
	t.Helper()
	root := t.TempDir()
	return runBroker(t, "broker", filepath.Join(root, "home"), filepath.Join(root, "data"))
}

// runBroker starts a broker on home and data and waits until it has
// published broker.json; it is stopped when the test ends, and what it
// said, under the name what, is logged if the test failed.
func runBroker(t *testing.T, what, home, data string) *brokerProc {
	t.Helper()
	b := &brokerProc{home: home, data: data, out: &testproc.Buffer{}, done: make(chan struct{})}
	b.cmd = exec.Command(claudemeshBin, "broker", "--listen", "127.0.0.1:0", "--data", b.data, "--log-level", "debug")
	b.cmd.Env = append(baseEnv(), "CLAUDEMESH_HOME="+b.home)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", what, tail(b.out.String(), 20000))
		}
	})
	testproc.WaitBroker(t, brokerStartup, b.home, b.cmd, b.done)
	return b
}

// stop ends the broker with SIGTERM, as a user's Ctrl-C would, and waits
// for it; it kills it if it does not stop in time.
func (b *brokerProc) stop(t *testing.T) {
	t.Helper()
	b.stopOnce.Do(func() {
		b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
			if b.err != nil {
				t.Errorf("broker exited with %v after SIGTERM", b.err)
			}
		case <-time.After(stopGrace):
			syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
			t.Errorf("broker did not stop within %v of SIGTERM", stopGrace)
		}
	})
}

// waitLog waits until one line of the broker's log holds all of parts.
func (b *brokerProc) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	testproc.Eventually(t, stopGrace, fmt.Sprintf("broker log line with %q", parts), func() bool {
		for line := range strings.Lines(b.out.String()) {
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
				return true
			}
		}
		return false
	})
}

// storeFiles returns the contents of the broker's SQLite files that exist.
func (b *brokerProc) storeFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"claudemesh.db", "claudemesh.db-wal", "claudemesh.db-shm"} {
		data, err := os.ReadFile(filepath.Join(b.data, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	if _, ok := files["claudemesh.db"]; !ok {
		t.Fatalf("no claudemesh.db in %s", b.data)
	}
	return files
}

// baseEnv is the environment every process of a test starts from: the
// caller's PATH and locale, and nothing of the caller's Claude Code or
// claudemesh settings.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "LANG", "LC_ALL", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// harness is one test's world: a scripted model, a broker and the Claude
// Code binary.
type harness struct {
	t      *testing.T
	claude string
	model  *fakemodel.Server
	broker *brokerProc
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, claude: claudeBinary(t)}
	model, err := fakemodel.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		model.Close()
		for _, p := range model.Problems() {
			t.Errorf("fake model: %s", p)
		}
		if t.Failed() {
			t.Log(describeRequests(model.Requests()))
		}
	})
	h.model = model
	h.broker = startBroker(t)
	return h
}

// describeRequests summarises what Claude Code asked the model, for logs.
func describeRequests(reqs []fakemodel.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests to the fake model:\n", len(reqs))
	for i, r := range reqs {
		fmt.Fprintf(&b, "  #%d %s %s session=%s model=%s script=%q turn=%d tool_use=%s tools=%d messages=%d\n",
			i, r.Method, r.Path, r.SessionID, r.Model, r.Script, r.Turn, r.ToolUseID, len(r.Tools), len(r.Messages))
		for _, m := range r.Messages {
			for _, blk := range m.Content {
				var s string
				switch blk.Type {
				case "text":
					s = blk.Text
				case "tool_use":
					s = blk.ID + " " + blk.Name + " " + string(blk.Input)
				case "tool_result":
					s = fmt.Sprintf("%s is_error=%v %s", blk.ToolUseID, blk.IsError, blk.ResultText())
				}
				fmt.Fprintf(&b, "      %s/%s: %s\n", m.Role, blk.Type, tail(strings.ReplaceAll(s, "\n", "⏎"), 300))
			}
		}
	}
	return b.String()
}

// seat is one user's Claude Code: its own config dir (so its transcripts
// survive between runs and --resume works), home, project directory and
// claudemesh display name.
type seat struct {
	h       *harness
	name    string
	config  string // CLAUDE_CONFIG_DIR
	home    string // HOME: Claude Code keeps MCP server logs under it
	project string // working directory
	// mcpArgs registers claudemesh; nil leaves it to the project's
	// .mcp.json.
	mcpArgs []string
	// binDir leads PATH: where a .mcp.json naming "claudemesh" finds it.
	binDir string
	// vars are more environment variables of its claude processes.
	vars []string
}

// newSeat makes a seat whose claudemesh server is registered through an
// --mcp-config file naming the built binary by its absolute path, with
// "alwaysLoad" as the project's .mcp.json has it.
func (h *harness) newSeat(name string) *seat {
	h.t.Helper()
	root := filepath.Join(h.t.TempDir(), name)
	s := &seat{
		h:       h,
		name:    name,
		config:  filepath.Join(root, "config"),
		home:    filepath.Join(root, "home"),
		project: filepath.Join(root, "project"),
		binDir:  filepath.Dir(claudemeshBin),
	}
	for _, dir := range []string{s.config, s.home, s.project} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			h.t.Fatal(err)
		}
	}
	writeFile(h.t, filepath.Join(s.project, "README.md"), "A project of "+name+".\n")
	cfg := filepath.Join(root, "mcp.json")
	writeJSON(h.t, cfg, map[string]any{"mcpServers": map[string]any{"claudemesh": s.serverEntry(claudemeshBin)}})
	s.mcpArgs = []string{"--mcp-config", cfg, "--strict-mcp-config"}
	h.t.Cleanup(func() {
		if h.t.Failed() {
			s.logMCPServer()
		}
	})
	return s
}

// serverEntry is the MCP server entry that registers claudemesh for the
// seat, starting command.
func (s *seat) serverEntry(command string) map[string]any {
	return map[string]any{
		"type":    "stdio",
		"command": command,
		"args":    []string{"mcp"},
		"env": map[string]string{
			"CLAUDEMESH_HOME":      s.h.broker.home,
			"CLAUDEMESH_NAME":      s.name,
			"CLAUDEMESH_LOG_LEVEL": "debug",
		},
		"alwaysLoad": true,
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b)+"\n")
}

// env is the environment of the seat's claude processes. The claudemesh
// settings are in it too, as a user's shell would have them, and binDir
// leads PATH, for a .mcp.json that names the binary "claudemesh".
func (s *seat) env() []string {
	env := baseEnv()
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			env[i] = "PATH=" + s.binDir + string(os.PathListSeparator) + v
		}
	}
	return append(append(env,
		"HOME="+s.home,
		"CLAUDE_CONFIG_DIR="+s.config,
		"DISABLE_AUTOUPDATER=1",
		// Keeps Claude Code off the network: no telemetry, update or
		// feature-flag lookups; the tests run on loopback only.
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"ANTHROPIC_BASE_URL="+s.h.model.URL(),
		"ANTHROPIC_API_KEY=sk-dummy",
		"CLAUDEMESH_HOME="+s.h.broker.home,
		"CLAUDEMESH_NAME="+s.name,
		"CLAUDEMESH_LOG_LEVEL=debug",
	), s.vars...)
}

// mcpLogs returns the files in which Claude Code logged the seat's
// claudemesh server (its stderr included), one per claude process.
func (s *seat) mcpLogs() []string {
	logs, _ := filepath.Glob(filepath.Join(s.home, ".cache", "claude-cli-nodejs", "*", "mcp-logs-claudemesh", "*"))
	return logs
}

// mcpLog returns what Claude Code logged of the seat's claudemesh server.
func (s *seat) mcpLog() string {
	var b strings.Builder
	for _, p := range s.mcpLogs() {
		data, err := os.ReadFile(p)
		if err != nil {
			s.h.t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// logMCPServer logs what Claude Code recorded of the seat's MCP server.
func (s *seat) logMCPServer() {
	for _, p := range s.mcpLogs() {
		b, err := os.ReadFile(p)
		if err == nil {
			s.h.t.Logf("%s: MCP server log %s:\n%s", s.name, p, tail(string(b), 8000))
		}
	}
}

// transcript returns the path of the seat's transcript of session id.
func (s *seat) transcript(id string) string {
	enc := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s.project)
	return filepath.Join(s.config, "projects", enc, id+".jsonl")
}

// proc is one running claude process.
type proc struct {
	t      *testing.T
	who    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser // nil unless started with input
	stderr *testproc.Buffer
	done   chan struct{}
	err    error // exit status, once done is closed

	mu      sync.Mutex
	lines   []string
	events  []map[string]any
	changed chan struct{} // closed and replaced on each new event
}

// start runs claude with args in the seat's project directory. With input,
// its stdin stays open for send. The process is bounded by runTimeout and
// its whole process group (MCP servers included) is killed when the test
// ends.
func (s *seat) start(input bool, args ...string) *proc {
	t := s.h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	cmd := exec.CommandContext(ctx, s.h.claude, args...)
	cmd.Dir = s.project
	cmd.Env = s.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopGrace
	p := &proc{t: t, who: s.name, cmd: cmd, stderr: &testproc.Buffer{}, done: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if input {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start claude: %v", err)
	}
	t.Logf("%s: claude %s", s.name, strings.Join(args, " "))
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.read(stdout)
	}()
	go func() {
		<-read
		p.err = cmd.Wait()
		cancel()
		close(p.done)
		p.mu.Lock()
		close(p.changed)
		p.changed = nil
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s: claude %s\nexit: %v\nstdout:\n%s\nstderr:\n%s", s.name, strings.Join(args, " "), p.err,
				tail(strings.Join(p.Lines(), "\n"), 20000), tail(p.stderr.String(), 8000))
		}
	})
	return p
}

// read collects the process's stream-json output.
func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			ev = nil
		}
		p.mu.Lock()
		p.lines = append(p.lines, line)
		if ev != nil {
			p.events = append(p.events, ev)
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// Lines returns the stdout lines so far.
func (p *proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Events returns the stream-json events so far.
func (p *proc) Events() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.events...)
}

// waitEvents waits until cond holds for the events printed so far.
func (p *proc) waitEvents(what string, cond func([]map[string]any) bool) {
	p.t.Helper()
	for {
		p.mu.Lock()
		events, changed := p.events, p.changed
		p.mu.Unlock()
		if cond(events) {
			return
		}
		if changed == nil {
			p.t.Fatalf("%s: claude exited (%v) before %s", p.who, p.err, what)
		}
		select {
		case <-changed:
		case <-time.After(runTimeout):
			p.t.Fatalf("%s: timed out waiting for %s", p.who, what)
		}
	}
}

// send writes one user turn to a process started with input.
func (p *proc) send(text string) {
	p.t.Helper()
	line, err := json.Marshal(map[string]any{"type": "user", "message": map[string]any{"role": "user", "content": text}})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		p.t.Fatalf("%s: write turn: %v", p.who, err)
	}
}

// wait waits for the process to exit and fails the test unless it exited
// with status 0.
func (p *proc) wait() {
	p.t.Helper()
	<-p.done
	if p.err != nil {
		p.t.Fatalf("%s: claude exited with %v\nstderr:\n%s", p.who, p.err, tail(p.stderr.String(), 4000))
	}
}

// closeInput ends the process's input, as the end of a stream-json session,
// and waits for it to exit.
func (p *proc) closeInput() {
	p.t.Helper()
	p.stdin.Close()
	p.wait()
}

// results counts the "result" events: one per finished turn.
func results(events []map[string]any) int {
	n := 0
	for _, ev := range events {
		if ev["type"] == "result" {
			n++
		}
	}
	return n
}

// lastResult returns the last "result" event.
func (p *proc) lastResult() map[string]any {
	p.t.Helper()
	events := p.Events()
	for i := len(events) - 1; i >= 0; i-- {
		if events[i]["type"] == "result" {
			return events[i]
		}
	}
	p.t.Fatalf("%s: no result event", p.who)
	return nil
}

// sessionID is the session id Claude Code reports in its init event.
func (p *proc) sessionID() string {
	p.t.Helper()
	for _, ev := range p.Events() {
		if ev["type"] == "system" && ev["subtype"] == "init" {
			if id, ok := ev["session_id"].(string); ok {
				return id
			}
		}
	}
	p.t.Fatalf("%s: no init event with a session id", p.who)
	return ""
}

// headless are the arguments of every scripted run: our MCP server, its
// tools allowed without a prompt, and machine-readable output.
func (s *seat) headless(extra ...string) []string {
	args := append([]string{}, s.mcpArgs...)
	args = append(args, "--allowedTools")
	args = append(args, meshTools...)
	args = append(args, "--output-format", "stream-json", "--verbose")
	return append(args, extra...)
}

// run is a one-shot `claude -p` whose prompt follows script; extra adds
// flags such as --session-id or --resume. It waits for the process to exit
// successfully.
func (s *seat) run(script string, extra ...string) *proc {
	s.h.t.Helper()
	prompt := fakemodel.Marker(script) + " Use claudemesh as scripted."
	args := s.headless(extra...)
	args = append(args, "-p", prompt)
	p := s.start(false, args...)
	p.wait()
	if res := p.lastResult(); res["is_error"] == true {
		s.h.t.Fatalf("%s: run %s ended in error: %v", s.name, script, res)
	}
	return p
}

// live starts a long-lived headless session that reads its turns from
// stdin (send, then waitTurns).
func (s *seat) live(extra ...string) *proc {
	s.h.t.Helper()
	args := s.headless(extra...)
	args = append(args, "-p", "--input-format", "stream-json")
	return s.start(true, args...)
}

// turn sends a prompt following script to a live session and waits until
// Claude Code has finished answering it: the n-th result event.
func (p *proc) turn(script string, n int) {
	p.t.Helper()
	p.send(fakemodel.Marker(script) + " Use claudemesh as scripted.")
	p.waitEvents(fmt.Sprintf("result of turn %d (%s)", n, script), func(ev []map[string]any) bool { return results(ev) >= n })
	if res := p.lastResult(); res["is_error"] == true {
		p.t.Fatalf("%s: turn %s ended in error: %v", p.who, script, res)
	}
}

// toolResults returns the results Claude Code sent back for the tool calls
// of script, failing the test unless there are want of them.
func (h *harness) toolResults(script string, want int) []fakemodel.ToolResult {
	h.t.Helper()
	got := h.model.ToolResults(script)
	if len(got) != want {
		h.t.Fatalf("script %s: %d tool results, want %d: %+v", script, len(got), want, got)
	}
	return got
}

// waitGroupGone waits, after the process exited, until no process of its
// process group is left: its MCP servers have exited too.
func (p *proc) waitGroupGone() {
	p.t.Helper()
	<-p.done
	pgid := p.cmd.Process.Pid
	testproc.Eventually(p.t, stopGrace, fmt.Sprintf("%s's MCP server to exit", p.who), func() bool {
		return len(groupMembers(pgid)) == 0
	})
}

// groupMembers lists the live (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		_, rest, ok := strings.Cut(string(b), ") ")
		if !ok {
			continue
		}
		var state string
		var ppid, pgrp, pid int
		if _, err := fmt.Sscanf(rest, "%s %d %d", &state, &ppid, &pgrp); err != nil {
			continue
		}
		if pgrp == pgid && state != "Z" && state != "X" {
			fmt.Sscanf(filepath.Base(filepath.Dir(path)), "%d", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}
