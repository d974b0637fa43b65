package main

// Tests of `claudemesh launch`: the built binary runs a stand-in for claude,
// a shell script that records its pid, arguments and environment.

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/identity"
)

// fakeClaudeScript records how it was run next to $LAUNCH_RECORD.
const fakeClaudeScript = `#!/bin/sh
echo $$ > "$LAUNCH_RECORD.pid"
printf '%s\0' "$@" > "$LAUNCH_RECORD.args"
env > "$LAUNCH_RECORD.env"
`

// claudeRun is what the fake claude recorded of one launch.
type claudeRun struct {
	ran    bool
	pid    int
	args   []string
	env    map[string]string
	stderr string
	err    error // launch's exit status
	// launchPID is the pid of the claudemesh process.
	launchPID int
}

// launchWorld is a directory to launch in, a Claude Code config dir and the
// fake claude.
type launchWorld struct {
	project, config, claude, record string
}

func newLaunchWorld(t *testing.T) *launchWorld {
	t.Helper()
	root := t.TempDir()
	w := &launchWorld{
		project: filepath.Join(root, "my project.v2"),
		config:  filepath.Join(root, "config"),
		claude:  filepath.Join(root, "bin", "claude"),
		record:  filepath.Join(root, "record"),
	}
	for _, dir := range []string{w.project, w.config, filepath.Dir(w.claude)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(w.claude, []byte(fakeClaudeScript), 0o700); err != nil {
		t.Fatal(err)
	}
	return w
}

// launch runs `claudemesh launch args...` in the project directory. The
// environment already names a session and a display name, as a shell
// inside another session would.
func (w *launchWorld) launch(t *testing.T, args ...string) claudeRun {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), append([]string{"launch"}, args...)...)
	cmd.Dir = w.project
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + t.TempDir(),
		"CLAUDE_CONFIG_DIR=" + w.config,
		"CLAUDEMESH_CLAUDE=" + w.claude,
		"LAUNCH_RECORD=" + w.record,
		"CLAUDEMESH_SESSION_ID=" + parentSession,
		"CLAUDEMESH_NAME=parent",
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	for _, suffix := range []string{".pid", ".args", ".env"} {
		os.Remove(w.record + suffix)
	}
	r := claudeRun{}
	if r.err = cmd.Start(); r.err != nil {
		t.Fatal(r.err)
	}
	r.launchPID = cmd.Process.Pid
	r.err = cmd.Wait()
	r.stderr = stderr.String()

	pid, err := os.ReadFile(w.record + ".pid")
	if os.IsNotExist(err) {
		return r
	}
	r.ran = true
	if r.pid, err = strconv.Atoi(strings.TrimSpace(string(pid))); err != nil {
		t.Fatalf("recorded pid %q: %v", pid, err)
	}
	argv, err := os.ReadFile(w.record + ".args")
	if err != nil {
		t.Fatal(err)
	}
	r.args = strings.Split(strings.TrimSuffix(string(argv), "\x00"), "\x00")
	envText, err := os.ReadFile(w.record + ".env")
	if err != nil {
		t.Fatal(err)
	}
	r.env = map[string]string{}
	for line := range strings.Lines(string(envText)) {
		if k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "="); ok {
			r.env[k] = v
		}
	}
	return r
}

const parentSession = "9f0e1d2c-3b4a-4596-8877-665544332211"

// addTranscript writes a transcript of session id in the project directory,
// modified at mod.
func (w *launchWorld) addTranscript(t *testing.T, id string, mod time.Time) {
	t.Helper()
	cwd, err := filepath.EvalSymlinks(w.project)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(w.config, "projects", claudecode.ProjectKey(cwd), id+".jsonl")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"type":"user","cwd":"`+cwd+`"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestLaunch(t *testing.T) {
	const older, newer = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-aaaaaaaaaaaa"
	tests := []struct {
		name     string
		args     []string
		sessions bool     // the project has two sessions, newer the latest
		wantFlag string   // --session-id or --resume
		wantID   string   // "" for a fresh UUID
		wantRest []string // claude's arguments after the session
		wantName string
		wantNote string
	}{
		{
			name:     "fresh",
			args:     []string{"--name", "alice", "--", "-p", "hi there", "--model", "opus"},
			wantFlag: "--session-id",
			wantRest: []string{"-p", "hi there", "--model", "opus"},
			wantName: "alice",
			wantNote: "new session",
		},
		{
			name:     "fresh without arguments keeps the inherited name",
			wantFlag: "--session-id",
			wantName: "parent",
			wantNote: "new session",
		},
		{
			name:     "resume",
			args:     []string{"--resume", strings.ToUpper(older), "--name=bob", "--", "--verbose"},
			wantFlag: "--resume",
			wantID:   older,
			wantRest: []string{"--verbose"},
			wantName: "bob",
			wantNote: "resuming session",
		},
		{
			name:     "continue",
			args:     []string{"--continue", "do the thing"},
			sessions: true,
			wantFlag: "--resume",
			wantID:   newer,
			wantRest: []string{"do the thing"},
			wantName: "parent",
			wantNote: "continuing session",
		},
		{
			name:     "claude flags after a bare -- are not checked",
			args:     []string{"--", "-p", "--", "--continue"},
			wantFlag: "--session-id",
			wantRest: []string{"-p", "--", "--continue"},
			wantName: "parent",
			wantNote: "new session",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newLaunchWorld(t)
			if tt.sessions {
				w.addTranscript(t, older, time.Now().Add(-time.Hour))
				w.addTranscript(t, newer, time.Now().Add(-time.Minute))
			}
			r := w.launch(t, tt.args...)
			if r.err != nil || !r.ran {
				t.Fatalf("launch %q: %v, claude ran: %v\n%s", tt.args, r.err, r.ran, r.stderr)
			}
			if r.pid != r.launchPID {
				t.Errorf("claude ran as pid %d, launch was pid %d: launch must replace itself with claude", r.pid, r.launchPID)
			}
			if len(r.args) < 2 || r.args[0] != tt.wantFlag {
				t.Fatalf("claude args %q; want %s <id> first", r.args, tt.wantFlag)
			}
			id := r.args[1]
			if tt.wantID != "" && id != tt.wantID {
				t.Errorf("session %s, want %s", id, tt.wantID)
			}
			if got, err := identity.ParseSessionID(id); err != nil || got != id {
				t.Errorf("session id %q is not a canonical UUID (%v)", id, err)
			}
			if rest := r.args[2:]; !slices.Equal(rest, tt.wantRest) {
				t.Errorf("claude args after the session: %q, want %q", rest, tt.wantRest)
			}
			if got := r.env["CLAUDEMESH_NAME"]; got != tt.wantName {
				t.Errorf("CLAUDEMESH_NAME=%q, want %q", got, tt.wantName)
			}
			if got, ok := r.env["CLAUDEMESH_SESSION_ID"]; ok {
				t.Errorf("claude got CLAUDEMESH_SESSION_ID=%s; a nested claude would inherit it", got)
			}
			if r.env["CLAUDE_CONFIG_DIR"] != w.config || r.env["LAUNCH_RECORD"] != w.record {
				t.Errorf("claude did not get the rest of the environment: %v", r.env)
			}
			if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 ||
				!strings.Contains(lines[0], tt.wantNote+" "+id) {
				t.Errorf("stderr %q; want one line saying %q and the id", r.stderr, tt.wantNote)
			}
		})
	}
}

func TestLaunchRefuses(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		noClaude bool
		wantErr  string
	}{
		{name: "session-id", args: []string{"--", "--session-id", parentSession}, wantErr: "--session-id"},
		{name: "session-id=", args: []string{"--", "--session-id=" + parentSession}, wantErr: "--session-id"},
		{name: "resume", args: []string{"--", "--resume", parentSession}, wantErr: "--resume"},
		{name: "resume=", args: []string{"--", "--resume=" + parentSession}, wantErr: "--resume"},
		{name: "-r", args: []string{"--", "-r"}, wantErr: "-r"},
		{name: "continue", args: []string{"--", "-p", "--continue"}, wantErr: "--continue"},
		{name: "-c", args: []string{"--", "-c"}, wantErr: "-c"},
		{name: "-pc", args: []string{"--", "-pc"}, wantErr: "-pc"},
		{name: "fork", args: []string{"--resume", parentSession, "--", "--fork-session"}, wantErr: "--fork-session"},
		{name: "claude flag without --", args: []string{"-p"}, wantErr: "-p"},
		{name: "bad resume id", args: []string{"--resume", "not-a-uuid"}, wantErr: "invalid session id"},
		{name: "nil resume id", args: []string{"--resume", "00000000-0000-0000-0000-000000000000"}, wantErr: "nil UUID"},
		{name: "resume and continue", args: []string{"--resume", parentSession, "--continue"}, wantErr: "exclude each other"},
		{name: "continue without a session", args: []string{"--continue"}, wantErr: "no Claude Code session found"},
		{name: "no claude", args: nil, noClaude: true, wantErr: "CLAUDEMESH_CLAUDE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newLaunchWorld(t)
			if tt.noClaude {
				w.claude = filepath.Join(t.TempDir(), "missing")
			}
			r := w.launch(t, tt.args...)
			if r.err == nil || r.ran {
				t.Fatalf("launch %q: exit %v, claude ran: %v; want a refusal", tt.args, r.err, r.ran)
			}
			if !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr %q does not mention %q", r.stderr, tt.wantErr)
			}
		})
	}
}

func TestCheckClaudeArgs(t *testing.T) {
	tests := []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-p", "fix the --resume flag", "--model", "opus", "--verbose", "-d"}, true},
		{[]string{"--append-system-prompt", "-x"}, true},
		{[]string{"--resume"}, false},
		{[]string{"--continue=true"}, false},
		{[]string{"-dc"}, false},
		{[]string{"-rp"}, false},
		{[]string{"--", "-c"}, true},
	}
	for _, tt := range tests {
		if err := checkClaudeArgs(tt.args); (err == nil) != tt.ok {
			t.Errorf("checkClaudeArgs(%q) = %v, want ok %v", tt.args, err, tt.ok)
		}
	}
}
