package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh/wire"
)

// doctorSetup is a user's machine in temporary directories: a claudemesh
// home with its broker running on loopback, Claude Code's configuration
// with claudemesh installed for the user, and a trusted project directory
// to run the doctor in.
type doctorSetup struct {
	home, cfgDir, project string
	broker                *brokerProc
	env                   []string
}

func newDoctorSetup(t *testing.T) *doctorSetup {
	t.Helper()
	root := t.TempDir()
	s := &doctorSetup{
		home:    filepath.Join(root, "claudemesh"),
		cfgDir:  filepath.Join(root, "claude-config"),
		project: filepath.Join(root, "project"),
	}
	if err := os.MkdirAll(s.project, 0o755); err != nil {
		t.Fatal(err)
	}
	s.broker = startBroker(t, s.home, filepath.Join(root, "data"))
	bin := binary(t)
	s.env = []string{
		"CLAUDEMESH_HOME=" + s.home,
		"HOME=" + filepath.Join(root, "user"),
		"CLAUDE_CONFIG_DIR=" + s.cfgDir,
		"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin",
	}
	if out, err := s.run(t, "install"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	s.editJSON(t, filepath.Join(s.cfgDir, ".claude.json"), func(v map[string]any) {
		v["projects"] = map[string]any{s.project: map[string]any{"hasTrustDialogAccepted": true}}
	})
	return s
}

func (s *doctorSetup) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), args...)
	cmd.Dir, cmd.Env = s.project, s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (s *doctorSetup) editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	v := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	edit(v)
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, path, string(b))
}

type doctorReport struct {
	OK     bool          `json:"ok"`
	Checks []checkResult `json:"checks"`
}

// doctor runs `claudemesh doctor --json` and returns its report and exit
// status.
func (s *doctorSetup) doctor(t *testing.T) (doctorReport, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), "doctor", "--json")
	cmd.Dir, cmd.Env = s.project, s.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("doctor: %v", err)
	}
	var r doctorReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("doctor --json printed no JSON report (%v):\n%s\nstderr: %s", err, out.String(), errOut.String())
	}
	return r, code
}

func (r doctorReport) String() string {
	var b strings.Builder
	for _, c := range r.Checks {
		b.WriteString(c.Status + "  " + c.Name + ": " + c.Detail)
		if c.Fix != "" {
			b.WriteString("\n      fix: " + c.Fix)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// check returns the line named name.
func (r doctorReport) check(t *testing.T, name string) checkResult {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check named %q in:\n%s", name, r)
	return checkResult{}
}

// wantFail asserts that the check name failed, that its detail and fix
// say what they must, that the doctor exited 1 and that the checks in ok
// still passed (a failure is blamed where it is, not everywhere).
func wantFail(t *testing.T, r doctorReport, code int, name, detail, fix string, ok ...string) {
	t.Helper()
	c := r.check(t, name)
	if c.Status != statusFail || !strings.Contains(c.Detail, detail) || !strings.Contains(c.Fix, fix) {
		t.Errorf("check %q = %s %q (fix %q), want fail saying %q with a fix saying %q\n%s", name, c.Status, c.Detail, c.Fix, detail, fix, r)
	}
	if code != 1 || r.OK {
		t.Errorf("doctor exited %d with ok=%v, want 1 and false", code, r.OK)
	}
	for _, n := range ok {
		if c := r.check(t, n); c.Status != statusOK {
			t.Errorf("check %q = %s %q, want ok\n%s", n, c.Status, c.Detail, r)
		}
	}
}

// The checks in the order a session needs them; a new check must be added
// here on purpose.
var doctorChecks = []string{
	"binary on PATH", "CLAUDEMESH_HOME", "broker reachable", "TLS", "credential accepted", "clock skew",
	"Claude Code registration", "hook SessionStart", "hook UserPromptSubmit", "hook Stop", "project approval", "identity",
}

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	r, code := s.doctor(t)
	if code != 0 || !r.OK {
		t.Errorf("doctor exited %d with ok=%v on a healthy setup, want 0 and true\n%s", code, r.OK, r)
	}
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
		if c.Status != statusOK || c.Fix != "" {
			t.Errorf("check %q = %s %q (fix %q), want ok without a fix", c.Name, c.Status, c.Detail, c.Fix)
		}
	}
	if strings.Join(names, ",") != strings.Join(doctorChecks, ",") {
		t.Errorf("checks %q, want %q in this order", names, doctorChecks)
	}
	self, _ := filepath.EvalSymlinks(binary(t))
	for name, want := range map[string]string{
		"binary on PATH":           "(this binary)",
		"broker reachable":         s.broker.url,
		"credential accepted":      "not recorded",
		"Claude Code registration": "user (",
		"hook SessionStart":        self + " (this binary) hook session-start",
		"project approval":         "is trusted",
	} {
		if c := r.check(t, name); !strings.Contains(c.Detail, want) {
			t.Errorf("check %q says %q, want it to say %q", name, c.Detail, want)
		}
	}

	// The text form: one line per check, exit 0.
	out, err := s.run(t, "doctor")
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != len(doctorChecks) {
		t.Errorf("doctor printed %d lines, want %d:\n%s", len(lines), len(doctorChecks), out)
	}
}

// The doctor's checking hello leaves no session behind at the broker.
func TestDoctorLeavesNoSession(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	if r, code := s.doctor(t); code != 0 {
		t.Fatalf("doctor exited %d\n%s", code, r)
	}
	watcher := startSession(t, sessionConfig{home: s.home, sessionID: "7d2f0a52-3c4b-4f7e-9a1d-2b6c8e0f1a3d", name: "watcher"})
	watcher.waitConnected(t)
	for _, p := range watcher.peers(t).Peers {
		t.Errorf("list_peers shows %+v after doctor ran; want no one", p)
	}
}

func TestDoctorStoppedBroker(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	s.broker.stop(t)
	r, code := s.doctor(t)
	wantFail(t, r, code, "broker reachable", "cannot reach "+s.broker.url, "claudemesh broker", "binary on PATH", "Claude Code registration", "hook SessionStart")
	for _, n := range []string{"credential accepted", "clock skew"} {
		if c := r.check(t, n); c.Status != statusSkip {
			t.Errorf("check %q = %s with the broker stopped, want skip", n, c.Status)
		}
	}
}

func TestDoctorWrongCredential(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	path := filepath.Join(s.home, wire.LocalFile)
	s.editJSON(t, path, func(v map[string]any) { v["token"] = "not-the-brokers-credential" })
	os.Chmod(path, 0o600)
	r, code := s.doctor(t)
	wantFail(t, r, code, "credential accepted", wire.CodeUnauthorized, "same "+"CLAUDEMESH_HOME", "broker reachable", "CLAUDEMESH_HOME")
}

func TestDoctorMissingHook(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	s.editJSON(t, filepath.Join(s.cfgDir, "settings.json"), func(v map[string]any) {
		delete(v["hooks"].(map[string]any), "SessionStart")
	})
	r, code := s.doctor(t)
	wantFail(t, r, code, "hook SessionStart", "no SessionStart hook", "claudemesh install", "hook UserPromptSubmit", "Claude Code registration")
}

// The hook points at a claudemesh that no longer runs (the binary moved).
func TestDoctorHookBinaryGone(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	gone := filepath.Join(t.TempDir(), "claudemesh")
	s.editJSON(t, filepath.Join(s.cfgDir, "settings.json"), func(v map[string]any) {
		v["hooks"].(map[string]any)["UserPromptSubmit"] = []any{map[string]any{"hooks": []any{map[string]any{"type": "command", "command": gone + " hook prompt"}}}}
	})
	r, code := s.doctor(t)
	wantFail(t, r, code, "hook UserPromptSubmit", gone+" does not run", "claudemesh install", "hook SessionStart")
}

// Installed for the user and as the plugin: two servers per session.
func TestDoctorDuplicatedRegistration(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	s.editJSON(t, filepath.Join(s.cfgDir, "settings.json"), func(v map[string]any) {
		v["enabledPlugins"] = map[string]any{"claudemesh@claudemesh": true}
	})
	r, code := s.doctor(t)
	wantFail(t, r, code, "Claude Code registration", "registered 2 times: plugin (claudemesh@claudemesh", "claudemesh uninstall", "broker reachable")
	if c := r.check(t, "hook SessionStart"); c.Status != statusWarn || !strings.Contains(c.Detail, "registered 2 times") {
		t.Errorf("hook SessionStart = %s %q, want a warning that it runs twice", c.Status, c.Detail)
	}

	// And in a project's .mcp.json besides the user's registration.
	s2 := newDoctorSetup(t)
	if out, err := s2.run(t, "install", "--project"); err != nil {
		t.Fatalf("install --project: %v\n%s", err, out)
	}
	r, code = s2.doctor(t)
	wantFail(t, r, code, "Claude Code registration", "registered 2 times: user (", "claudemesh uninstall --project")
}

func TestDoctorUnwritableHome(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	s.broker.stop(t)
	if os.Geteuid() == 0 {
		// Permission bits do not stop root: make the home a file instead.
		if err := os.RemoveAll(s.home); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, s.home, "not a directory")
	} else {
		if err := os.Chmod(s.home, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(s.home, 0o700) })
	}
	r, code := s.doctor(t)
	detail := "is not writable"
	if os.Geteuid() == 0 {
		detail = "is not a directory"
	}
	wantFail(t, r, code, "CLAUDEMESH_HOME", detail, "set CLAUDEMESH_HOME to a directory you own", "binary on PATH")
}

// A key file that others can read is a failure with the chmod that fixes it.
func TestDoctorKeyFileMode(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	path := filepath.Join(s.home, wire.LocalFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	r, code := s.doctor(t)
	wantFail(t, r, code, "CLAUDEMESH_HOME", path+" (0644)", "chmod 600", "broker reachable")
}

func TestDoctorNotOnPath(t *testing.T) {
	t.Parallel()
	s := newDoctorSetup(t)
	s.env[len(s.env)-1] = "PATH=/usr/bin:/bin"
	r, code := s.doctor(t)
	wantFail(t, r, code, "binary on PATH", "no claudemesh on PATH", "go install", "broker reachable")
}
