package main

// Tests of the command line itself: help, usage errors and their exit
// statuses, flag values and their ranges, version. Most run the command
// in this process through run, with CLAUDEMESH_HOME set for the test;
// where the exit status matters they run the built binary.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/mcp"
	"github.com/claudemesh/claudemesh/wire"
)

// inProcess gives a run of the command in this process a home of its
// own, and an environment without the variables that would change what it
// does. Tests that use it cannot run in parallel.
func inProcess(t *testing.T) (home string) {
	t.Helper()
	home = t.TempDir()
	t.Setenv("CLAUDEMESH_HOME", home)
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{config.EnvLogLevel, config.EnvMesh, config.EnvDelivery, config.EnvBroker} {
		t.Setenv(v, "")
	}
	return home
}

// runIn runs `claudemesh args...` in this process with ctx.
func runIn(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = run(ctx, args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// canceled is a context that is already done: a command that wrongly
// got as far as serving returns at once instead of blocking the test.
func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func TestHelpGoesToStdout(t *testing.T) {
	home := inProcess(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-h"}, []string{"usage: claudemesh COMMAND", "invite revoke CODE", "member remove NAME", "hook EVENT", "mesh create NAME", "join BROKER_URL CODE", "help [COMMAND]", "version"}},
		{[]string{"--help"}, []string{"usage: claudemesh COMMAND"}},
		{[]string{"help"}, []string{"usage: claudemesh COMMAND"}},
		{[]string{"help", "help"}, []string{"usage: claudemesh COMMAND"}},
		{[]string{"help", "broker"}, []string{"usage: claudemesh broker", "--ttl DURATION", "(default 7d)", "--grace DURATION", "(default 1m30s)", "--max-frame N", "(default 1048576)", "--sync full|normal", "(default full)", "--data DIR"}},
		{[]string{"broker", "-h"}, []string{"usage: claudemesh broker", "--ttl DURATION", "(default 7d)"}},
		{[]string{"broker", "--help"}, []string{"usage: claudemesh broker"}},
		{[]string{"broker", "--ttl", "1d", "-h"}, []string{"usage: claudemesh broker"}},
		{[]string{"mcp", "-h"}, []string{"usage: claudemesh mcp", "--delivery push|inbox|off", "--channel", "--log-level"}},
		{[]string{"install", "-h"}, []string{"usage: claudemesh install [--project [--dir DIR]] [--force]", "--force", "(default .)"}},
		{[]string{"help", "uninstall"}, []string{"usage: claudemesh uninstall [--project [--dir DIR]]"}},
		{[]string{"launch", "-h"}, []string{"usage: claudemesh launch [--name N] [--resume ID | --continue] [-- CLAUDE_ARGS...]", "--resume UUID", "--continue"}},
		{[]string{"hook", "-h"}, []string{"usage: claudemesh hook session-start|prompt", "session-start", "prompt"}},
		{[]string{"help", "hook", "prompt"}, []string{"usage: claudemesh hook session-start|prompt"}},
		{[]string{"mesh", "-h"}, []string{"usage: claudemesh mesh create NAME [--name MEMBER_NAME] [--broker URL]", "--name NAME", "--broker URL"}},
		{[]string{"mesh", "create", "-h"}, []string{"usage: claudemesh mesh create NAME"}},
		{[]string{"invite", "-h"}, []string{"usage: claudemesh invite [--mesh MESH] [--uses N] [--expires DURATION]", "claudemesh invite revoke CODE", "--uses N", "(default 1)", "--expires DURATION", "(default 1d)"}},
		{[]string{"help", "invite", "revoke"}, []string{"usage: claudemesh invite revoke CODE [--mesh MESH]", "--mesh MESH"}},
		{[]string{"invite", "revoke", "-h"}, []string{"usage: claudemesh invite revoke CODE"}},
		{[]string{"join", "-h"}, []string{"usage: claudemesh join BROKER_URL CODE [--name MEMBER_NAME]", "--name NAME"}},
		{[]string{"member", "-h"}, []string{"claudemesh member list [--mesh MESH]", "claudemesh member remove NAME [--mesh MESH]", "--mesh MESH"}},
		{[]string{"member", "remove", "alice", "-h"}, []string{"claudemesh member remove NAME"}},
		{[]string{"help", "version"}, []string{"usage: claudemesh version"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, err := runIn(canceled(t), tt.args...)
			if err != nil {
				t.Fatalf("error %v; want the help and none", err)
			}
			if stderr != "" {
				t.Errorf("stderr %q; want it empty, the help on stdout", stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("help does not say %q:\n%s", w, stdout)
				}
			}
		})
	}
	// Help starts nothing.
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("asking for help left %d files in CLAUDEMESH_HOME", len(entries))
	}
}

// TestBadFlagValueDoesNotFallBackToDefault: each value a flag does not
// accept is refused in one line that names the flag and what it accepts,
// as a usage error, before the command starts anything.
func TestBadFlagValueDoesNotFallBackToDefault(t *testing.T) {
	home := inProcess(t)
	data := filepath.Join(t.TempDir(), "data")
	brokerArgs := []string{"broker", "--listen", "127.0.0.1:0", "--data", data}
	durations := "such as 90s, 10m, 36h, 7d or 1d12h"
	tests := []struct {
		cmd         []string
		flag, value string
		want        string // in the refusal, besides the flag
	}{
		{brokerArgs, "ttl", "0", "from 1m to 3650d"},
		{brokerArgs, "ttl", "-1h", "from 1m to 3650d"},
		{brokerArgs, "ttl", "30s", "from 1m to 3650d"},
		{brokerArgs, "ttl", "3651d", "from 1m to 3650d"},
		{brokerArgs, "ttl", "7x", durations},
		{brokerArgs, "ttl", "7", durations},
		{brokerArgs, "ttl", "1.5d", durations},
		{brokerArgs, "ttl", "1d-1h", durations},
		{brokerArgs, "ttl", "99999999999999d", durations},
		{brokerArgs, "grace", "0", "from 1s to 1d"},
		{brokerArgs, "grace", "-2m", "from 1s to 1d"},
		{brokerArgs, "liveness", "0s", "from 3s to 1h"},
		{brokerArgs, "handshake-timeout", "0", "from 1s to 10m"},
		{brokerArgs, "handshake-timeout", "-1s", "from 1s to 10m"},
		{brokerArgs, "rate", "0", "from 0.01 to 1000000"},
		{brokerArgs, "rate", "-1", "from 0.01 to 1000000"},
		{brokerArgs, "rate", "NaN", "from 0.01 to 1000000"},
		{brokerArgs, "rate", "Inf", "from 0.01 to 1000000"},
		{brokerArgs, "member-rate", "0", "from 0.01 to 1000000"},
		{brokerArgs, "max-queued", "0", "at least 1"},
		{brokerArgs, "max-queued", "-5", "at least 1"},
		{brokerArgs, "max-queued", "many", "at least 1"},
		{brokerArgs, "max-queued-bytes", "0", "at least 262144"},
		{brokerArgs, "max-queued-bytes", "1000", "at least 262144"},
		{brokerArgs, "max-queued-per-sender", "0", "at least 1"},
		{brokerArgs, "max-queued-bytes-per-sender", "1000", "at least 262144"},
		{brokerArgs, "max-member-conns", "0", "at least 1"},
		{brokerArgs, "max-member-conns", "-1", "at least 1"},
		{brokerArgs, "max-frame", "0", "from 524288 to 1048576"},
		{brokerArgs, "max-frame", "65536", "from 524288 to 1048576"},
		{brokerArgs, "max-frame", "1048577", "from 524288 to 1048576"},
		{brokerArgs, "sync", "fast", "full or normal"},
		{brokerArgs, "sync", "", "full or normal"},
		{brokerArgs, "log-level", "loud", "debug or info or warn or error"},
		{[]string{"invite", "--mesh", "team"}, "uses", "0", "from 1 to 1000"},
		{[]string{"invite", "--mesh", "team"}, "uses", "1001", "from 1 to 1000"},
		{[]string{"invite", "--mesh", "team"}, "uses", "two", "from 1 to 1000"},
		{[]string{"invite", "--mesh", "team"}, "expires", "0", "from 1m to 30d"},
		{[]string{"invite", "--mesh", "team"}, "expires", "-1h", "from 1m to 30d"},
		{[]string{"invite", "--mesh", "team"}, "expires", "31d", "from 1m to 30d"},
		{[]string{"invite", "--mesh", "team"}, "expires", "soon", durations},
		{[]string{"mcp"}, "delivery", "loud", "push or inbox or off"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd[0]+" --"+tt.flag+" "+tt.value, func(t *testing.T) {
			args := append(append([]string{}, tt.cmd...), "--"+tt.flag, tt.value)
			stdout, stderr, err := runIn(canceled(t), args...)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("claudemesh %q: error %v; want a usage error", args, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("refusal is more than one line: %q", msg)
			}
			if !strings.Contains(msg, "-"+tt.flag+":") || !strings.Contains(msg, tt.want) {
				t.Errorf("refusal %q; want it to name -%s and say %q", msg, tt.flag, tt.want)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("run printed stdout %q, stderr %q; the refusal is printed once, by main", stdout, stderr)
			}
			if report(io.Discard, err) != exitUsage {
				t.Errorf("exit status %d, want %d", report(io.Discard, err), exitUsage)
			}
			// Refused before anything started: no data directory, no
			// broker.json with a URL, nothing else in CLAUDEMESH_HOME.
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("%s exists after the refusal (%v)", data, err)
			}
			if entries, _ := os.ReadDir(home); len(entries) != 0 {
				t.Errorf("the refusal left %d files in CLAUDEMESH_HOME", len(entries))
			}
		})
	}
}

// TestDayDurationsReachTheBroker: the day unit is taken as days, not
// refused or replaced by a default. The broker says what it runs with
// where a session can see it: a queued DM's expiry (--ttl) and a dropped
// session's reservation (--grace).
func TestDayDurationsReachTheBroker(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	b := startBrokerWith(t, home, filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0", "--ttl", "1d12h", "--grace", "2m", "--liveness", "1m")
	alice := startSession(t, sessionConfig{home: home, sessionID: uuid.NewString(), name: "alice"})
	bob := startSession(t, sessionConfig{home: home, sessionID: uuid.NewString(), name: "bob"})
	alice.waitConnected(t)
	bobKey := bob.waitConnected(t).KeyID
	alice.waitPeer(t, bobKey, "online")
	bob.cmd.Process.Kill() // no bye: bob's session is reserved for the grace period
	<-bob.done

	p := alice.waitPeer(t, bobKey, "reconnecting")
	if grace := stampDiff(t, p.LastSeen, p.ReconnectingUntil); grace != 2*time.Minute {
		t.Errorf("bob is reconnecting from %s until %s: a grace of %v, want 2m", p.LastSeen, p.ReconnectingUntil, grace)
	}
	sent := alice.send(t, bobKey, "kept for a day and a half")
	st := mustCall[statusResult](t, alice, "message_status", map[string]any{"id": sent.ID})
	if ttl := stampDiff(t, st.SentAt, st.ExpiresAt); st.State != "queued" || ttl != 36*time.Hour {
		t.Errorf("DM to bob %+v: %s, kept %v; want queued, kept 36h", sent, st.State, ttl)
	}
	// Nothing a session sees tells the liveness timeout short of waiting
	// for it: the broker's start line does.
	waitFor(t, waitLong, "the broker's start line", func() (bool, error) {
		return strings.Contains(b.log.String(), "broker listening"), nil
	})
	if !strings.Contains(b.log.String(), "liveness=1m0s") {
		t.Errorf("broker log does not say liveness=1m0s:\n%s", b.log)
	}
	b.stop(t)
}

// stampDiff returns to - from, two RFC 3339 times of a tool result.
func stampDiff(t *testing.T, from, to string) time.Duration {
	t.Helper()
	a, errA := time.Parse(time.RFC3339, from)
	b, errB := time.Parse(time.RFC3339, to)
	if errA != nil || errB != nil {
		t.Fatalf("times %q and %q: %v, %v", from, to, errA, errB)
	}
	return b.Sub(a)
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"7d", 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1d30m15s", 24*time.Hour + 30*time.Minute + 15*time.Second},
		{"30d", 30 * 24 * time.Hour},
		{"0d", 0},
		{"+2d", 48 * time.Hour},
		{"-1d", -24 * time.Hour},
		{"2m", 2 * time.Minute},
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"250ms", 250 * time.Millisecond},
		{"0", 0},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "d", "7", "7x", "1.5d", "1d-1h", "1d+1h", "d1", "7dd", "1h1d", "7 d", " 7d", "99999999999999d", "106752d", "106751d1000h"} {
		if got, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) = %v; want an error", bad, got)
		}
	}
}

func TestFormatDurationReadsBack(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{7 * 24 * time.Hour, "7d"},
		{36 * time.Hour, "1d12h"},
		{24*time.Hour + time.Minute, "1d1m"},
		{90 * time.Second, "1m30s"},
		{10 * time.Second, "10s"},
		{2 * time.Minute, "2m"},
		{time.Hour, "1h"},
		{0, "0s"},
	}
	for _, tt := range tests {
		got := formatDuration(tt.in)
		if got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := parseDuration(got); err != nil || back != tt.in {
			t.Errorf("parseDuration(%q) = %v, %v; want %v back", got, back, err, tt.in)
		}
	}
}

// TestExitStatus runs the binary: 0 for help and success, 2 for a mistake
// in the command line (one line, then the hint), 1 for a failure of the
// work.
func TestExitStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		stdin      string
		status     int
		wantStdout string
		wantStderr string // the first line, for status 2
		hint       string // the second line, for status 2
	}{
		{name: "help", args: []string{"-h"}, wantStdout: "usage: claudemesh COMMAND"},
		{name: "help command", args: []string{"help", "member"}, wantStdout: "claudemesh member remove NAME"},
		{name: "command help", args: []string{"broker", "-h"}, wantStdout: "--max-frame N"},
		{name: "version", args: []string{"version"}, wantStdout: "claudemesh " + mcp.Version},
		{name: "no command", args: nil, status: exitUsage, wantStderr: "claudemesh: no command given", hint: "run 'claudemesh -h' for usage"},
		{name: "unknown command", args: []string{"nope"}, status: exitUsage, wantStderr: `claudemesh: unknown command "nope"`, hint: "run 'claudemesh -h' for usage"},
		{name: "help for an unknown command", args: []string{"help", "nope"}, status: exitUsage, wantStderr: `unknown command "nope"`, hint: "run 'claudemesh -h' for usage"},
		{name: "bad flag value", args: []string{"broker", "--ttl", "0"}, status: exitUsage, wantStderr: `claudemesh broker: invalid value "0" for flag -ttl: want a duration from 1m to 3650d`, hint: "run 'claudemesh broker -h' for usage"},
		{name: "unknown flag", args: []string{"broker", "--no-such-flag"}, status: exitUsage, wantStderr: "-no-such-flag", hint: "run 'claudemesh broker -h' for usage"},
		{name: "stray argument", args: []string{"broker", "now"}, status: exitUsage, wantStderr: `unexpected argument "now"`, hint: "run 'claudemesh broker -h' for usage"},
		{name: "missing argument", args: []string{"invite", "revoke"}, status: exitUsage, wantStderr: "claudemesh invite revoke: missing CODE", hint: "run 'claudemesh invite revoke -h' for usage"},
		{name: "bad argument", args: []string{"invite", "revoke", "not-a-code"}, status: exitUsage, wantStderr: "claudemesh invite revoke: ", hint: "run 'claudemesh invite revoke -h' for usage"},
		{name: "missing subcommand", args: []string{"member"}, status: exitUsage, wantStderr: "missing subcommand: list or remove", hint: "run 'claudemesh member -h' for usage"},
		{name: "unknown hook", args: []string{"hook", "finish"}, status: exitUsage, wantStderr: `unknown subcommand "finish"`, hint: "run 'claudemesh hook -h' for usage"},
		{name: "bad mesh name", args: []string{"mesh", "create", "Team!"}, status: exitUsage, wantStderr: "invalid mesh name", hint: "run 'claudemesh mesh create -h' for usage"},
		{name: "bad invite code", args: []string{"join", "ws://127.0.0.1:1/v1/ws", "cm1-aaaa"}, status: exitUsage, wantStderr: "claudemesh join: ", hint: "run 'claudemesh join -h' for usage"},
		{name: "bad member name", args: []string{"join", "ws://127.0.0.1:1/v1/ws", wire.FormatInviteCode(make([]byte, wire.InviteCodeSize)), "--name", "a b"}, status: exitUsage, wantStderr: "claudemesh join: --name: member name", hint: "run 'claudemesh join -h' for usage"},
		// Failures of the work, not of the command line.
		{name: "no mesh joined", args: []string{"member", "list"}, status: exitFailure},
		// Claude Code takes a hook's status 2 as "block": bad input on
		// stdin must not give it.
		{name: "hook with bad input", args: []string{"hook", "session-start"}, stdin: "not json", status: exitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), waitLong)
			defer cancel()
			home := t.TempDir()
			cmd := exec.CommandContext(ctx, binary(t), tt.args...)
			cmd.Env = env(t, home)
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			status := cmd.ProcessState.ExitCode()
			if ctx.Err() != nil || status != tt.status {
				t.Fatalf("claudemesh %q: %v (%v), status %d; want %d\nstdout: %s\nstderr: %s", tt.args, err, ctx.Err(), status, tt.status, stdout.String(), stderr.String())
			}
			switch tt.status {
			case 0:
				if !strings.Contains(stdout.String(), tt.wantStdout) || stderr.Len() != 0 {
					t.Errorf("stdout %q, stderr %q; want %q on stdout and nothing on stderr", stdout.String(), stderr.String(), tt.wantStdout)
				}
			case exitUsage:
				lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
				if len(lines) != 2 || !strings.Contains(lines[0], tt.wantStderr) || lines[1] != tt.hint {
					t.Errorf("stderr %q; want one line with %q, then %q", stderr.String(), tt.wantStderr, tt.hint)
				}
				if stdout.Len() != 0 {
					t.Errorf("stdout %q; want nothing", stdout.String())
				}
			default:
				if !strings.HasPrefix(stderr.String(), "claudemesh: ") || strings.Contains(stderr.String(), "for usage") {
					t.Errorf("stderr %q; want the failure, without a usage hint", stderr.String())
				}
			}
			if entries, _ := os.ReadDir(home); tt.status == exitUsage && len(entries) != 0 {
				t.Errorf("a refused command line left %d files in CLAUDEMESH_HOME", len(entries))
			}
		})
	}
}

func TestVersionSaysModuleRevisionAndGo(t *testing.T) {
	inProcess(t)
	stdout, stderr, err := runIn(t.Context(), "version")
	if err != nil || stderr != "" {
		t.Fatalf("version: %v, stderr %q", err, stderr)
	}
	// The MCP server reports mcp.Version to Claude Code: version says the same.
	for _, want := range []string{"claudemesh " + mcp.Version + "\n", "\nmodule:   ", "\nrevision: ", "\ngo:       go"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("version output does not contain %q:\n%s", want, stdout)
		}
	}
	if _, _, err := runIn(t.Context(), "version", "extra"); report(io.Discard, err) != exitUsage {
		t.Errorf("version extra: %v; want a usage error", err)
	}

	rev := "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		info *debug.BuildInfo
		want []string
	}{
		{"no build info", nil, []string{"module:   (devel)\n", "revision: unknown\n", "go:       " + runtime.Version() + "\n"}},
		{"devel without vcs", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}}, []string{"module:   (devel)\n", "revision: unknown\n", "go:       go1.99.1\n"}},
		{"release", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"},
		}}, []string{"module:   v1.2.3\n", "revision: " + rev + "\n"}},
		{"modified tree", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.2.4-0.20250101000000-0123456789ab+dirty"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"},
		}}, []string{"module:   v1.2.4-0.20250101000000-0123456789ab+dirty\n", "revision: " + rev + "+dirty\n"}},
	}
	for _, tt := range tests {
		got := versionText(tt.info)
		if !strings.HasPrefix(got, "claudemesh "+mcp.Version+"\n") {
			t.Errorf("%s: %q does not start with the MCP server's version", tt.name, got)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q does not contain %q", tt.name, got, w)
			}
		}
	}
}

// TestUnusableDataDirIsNotBlamedOnAFileInIt: a --data directory the
// broker cannot use is reported by its own name and the reason, not as a
// failure to write some temporary file in it.
func TestUnusableDataDirIsNotBlamedOnAFileInIt(t *testing.T) {
	inProcess(t)
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(root, "read-only")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, data string
		want       string
		asRoot     bool // root writes where the mode says no
	}{
		{"parent is a file", filepath.Join(file, "data"), "broker data directory " + filepath.Join(file, "data") + " cannot be made: " + file + ": not a directory", true},
		{"data is a file", file, "broker data directory " + file + " is not a directory", true},
		{"read-only directory", readOnly, "broker data directory " + readOnly + " is not writable: permission denied", false},
		{"under a read-only directory", filepath.Join(readOnly, "data"), "broker data directory " + filepath.Join(readOnly, "data") + " cannot be made: permission denied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.asRoot && os.Geteuid() == 0 {
				t.Skip("root writes in a read-only directory")
			}
			_, _, err := runIn(canceled(t), "broker", "--listen", "127.0.0.1:0", "--data", tt.data)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("broker --data %s: %v; want %q", tt.data, err, tt.want)
			}
			if report(io.Discard, err) != exitFailure {
				t.Errorf("exit status %d, want %d: the command line was fine", report(io.Discard, err), exitFailure)
			}
		})
	}
	if entries, _ := os.ReadDir(readOnly); len(entries) != 0 {
		t.Errorf("checking the directory left %d files in it", len(entries))
	}
}

// The smallest --max-frame still lets through the largest frames a client
// that keeps to the protocol sends: a DM with the largest box, and an ack
// of as many ids as a frame may carry.
func TestMaxFrameMinimumFitsLargestFrames(t *testing.T) {
	ids := make([]string, wire.MaxAckIDs)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	for _, f := range []wire.Frame{
		wire.Send{ID: uuid.NewString(), To: make(wire.Key, wire.KeySize), Nonce: make([]byte, wire.NonceSize), Box: bytes.Repeat([]byte{0xff}, wire.MaxBoxSize)},
		wire.Ack{IDs: ids, Cleared: true},
	} {
		b, err := wire.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > minFrameSize {
			t.Errorf("largest %s frame is %d bytes; --max-frame may be as small as %d", f.Type(), len(b), minFrameSize)
		}
	}
	if minFrameSize > wire.MaxFrameSize || minQueuedBytes < wire.MaxBoxSize {
		t.Errorf("bounds out of order: min frame %d, max frame %d, min queued bytes %d", minFrameSize, wire.MaxFrameSize, minQueuedBytes)
	}
}

// --uses allows what the broker's invite frame allows.
func TestInviteUsesBoundIsTheWires(t *testing.T) {
	for uses, ok := range map[int]bool{1: true, maxInviteUses: true, maxInviteUses + 1: false} {
		b, err := wire.Encode(wire.InviteCreate{Req: 1, Uses: uses, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.Decode(b); (err == nil) != ok {
			t.Errorf("invite_create with %d uses: %v; want accepted %v", uses, err, ok)
		}
	}
}
