package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runInstallBin runs the built binary with args in dir, with HOME (and no
// CLAUDE_CONFIG_DIR) pointing at home.
func runInstallBin(t *testing.T, dir, home string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// serverCommand returns the command of mcpServers.claudemesh in path.
func serverCommand(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		MCPServers map[string]struct {
			Command string   `json:"command"`
			Args    []string `json:"args"`
		} `json:"mcpServers"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v.MCPServers["claudemesh"].Command + " " + strings.Join(v.MCPServers["claudemesh"].Args, " ")
}

func TestInstallCommand(t *testing.T) {
	home, project := t.TempDir(), t.TempDir()
	self, err := filepath.EvalSymlinks(binary(t))
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, err := runInstallBin(t, project, home, "install")
	if err != nil {
		t.Fatalf("install: %v\n%s", err, errOut)
	}
	state := filepath.Join(home, ".claude.json")
	if got := serverCommand(t, state); got != self+" mcp" {
		t.Errorf("user install registers %q, want this binary %q", got, self+" mcp")
	}
	settings := filepath.Join(home, ".claude", "settings.json")
	if b, _ := os.ReadFile(settings); !bytes.Contains(b, []byte(self+" hook session-start")) {
		t.Errorf("%s:\n%s\nwant the SessionStart hook", settings, b)
	}
	for _, want := range []string{state + ": added mcpServers.claudemesh", settings + ": added SessionStart hook"} {
		if !strings.Contains(out, want) {
			t.Errorf("install printed:\n%s\nwant %q", out, want)
		}
	}

	out, errOut, err = runInstallBin(t, project, home, "install")
	if err != nil || !strings.Contains(out, "already registered; nothing changed") {
		t.Errorf("second install: %v\n%s%s", err, out, errOut)
	}

	out, errOut, err = runInstallBin(t, project, home, "install", "--project")
	if err != nil {
		t.Fatalf("install --project: %v\n%s", err, errOut)
	}
	if got := serverCommand(t, filepath.Join(project, ".mcp.json")); got != "claudemesh mcp" {
		t.Errorf("project install registers %q, want %q", got, "claudemesh mcp")
	}
	if !strings.Contains(out, filepath.Join(project, ".claude", "settings.json")+": added SessionStart hook: claudemesh hook session-start") {
		t.Errorf("install --project printed:\n%s", out)
	}

	out, errOut, err = runInstallBin(t, project, home, "uninstall")
	if err != nil || !strings.Contains(out, "removed mcpServers.claudemesh") {
		t.Errorf("uninstall: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = runInstallBin(t, home, home, "uninstall", "--dir", project)
	if err != nil || !strings.Contains(out, filepath.Join(project, ".mcp.json")+": removed mcpServers.claudemesh") {
		t.Errorf("uninstall --dir: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = runInstallBin(t, project, home, "uninstall", "--project")
	if err != nil || !strings.Contains(out, "was not registered; nothing changed") {
		t.Errorf("uninstall with nothing installed: %v\n%s%s", err, out, errOut)
	}
}

func TestInstallCommandRefusesForeignEntry(t *testing.T) {
	project := t.TempDir()
	mcpFile := filepath.Join(project, ".mcp.json")
	foreign := `{"mcpServers": {"claudemesh": {"command": "npx", "args": ["claudemesh-js"]}}}`
	if err := os.WriteFile(mcpFile, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runInstallBin(t, project, t.TempDir(), "install", "--project")
	if err == nil || !strings.Contains(errOut, "npx claudemesh-js") || !strings.Contains(errOut, "--force") {
		t.Fatalf("install over a foreign entry: %v\n%s; want a refusal that names it and --force", err, errOut)
	}
	if b, _ := os.ReadFile(mcpFile); string(b) != foreign {
		t.Errorf("refused install changed %s:\n%s", mcpFile, b)
	}
	if _, err := os.Stat(filepath.Join(project, ".claude")); !os.IsNotExist(err) {
		t.Errorf("refused install created .claude (%v)", err)
	}

	out, errOut, err := runInstallBin(t, project, t.TempDir(), "install", "--project", "--force")
	if err != nil || !strings.Contains(out, "replaced mcpServers.claudemesh") {
		t.Fatalf("install --force: %v\n%s%s", err, out, errOut)
	}
	if got := serverCommand(t, mcpFile); got != "claudemesh mcp" {
		t.Errorf("after install --force: %q", got)
	}
}

func TestInstallCommandErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"install", "extra"}, "unexpected argument"},
		{[]string{"install", "--dir", "/nonexistent/dir"}, "not a directory"},
		{[]string{"uninstall", "--force"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		_, errOut, err := runInstallBin(t, t.TempDir(), t.TempDir(), tt.args...)
		if err == nil || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("claudemesh %q: %v\n%s; want an error about %q", tt.args, err, errOut, tt.wantErr)
		}
	}
}

// With the claudemesh plugin enabled, install registers nothing: the
// plugin already starts the server and runs the hooks, and a second
// registration would start two servers per session.
func TestInstallLeavesThePluginAlone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings func(home, project string) string // the file that enables the plugin
		args     []string
	}{
		{"user plugin, user install", func(home, _ string) string { return filepath.Join(home, ".claude", "settings.json") }, []string{"install"}},
		{"user plugin, project install", func(home, _ string) string { return filepath.Join(home, ".claude", "settings.json") }, []string{"install", "--project"}},
		{"project plugin, user install", func(_, project string) string { return filepath.Join(project, ".claude", "settings.json") }, []string{"install"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home, project := t.TempDir(), t.TempDir()
			file := tc.settings(home, project)
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			enabled := `{"enabledPlugins": {"claudemesh@claudemesh": true, "other@x": true}}`
			if err := os.WriteFile(file, []byte(enabled), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, err := runInstallBin(t, project, home, tc.args...)
			if err != nil {
				t.Fatalf("install: %v\n%s", err, errOut)
			}
			for _, want := range []string{"the claudemesh plugin is enabled (claudemesh@claudemesh)", "nothing changed", "claude plugin uninstall claudemesh@claudemesh"} {
				if !strings.Contains(out, want) {
					t.Errorf("install says %q, want it to say %q", out, want)
				}
			}
			// Nothing registered anywhere, the enabling file untouched.
			for _, f := range []string{filepath.Join(home, ".claude.json"), filepath.Join(project, ".mcp.json")} {
				if _, err := os.Stat(f); err == nil {
					t.Errorf("install wrote %s while the plugin is enabled", f)
				}
			}
			if b, _ := os.ReadFile(file); string(b) != enabled {
				t.Errorf("%s changed to %s", file, b)
			}
		})
	}

	// A disabled plugin does not stop install.
	home, project := t.TempDir(), t.TempDir()
	writeTestFile(t, filepath.Join(home, ".claude", "settings.json"), `{"enabledPlugins": {"claudemesh@claudemesh": false}}`)
	if _, errOut, err := runInstallBin(t, project, home, "install"); err != nil {
		t.Fatalf("install: %v\n%s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, ".claude.json")); err != nil {
		t.Errorf("install with the plugin disabled registered nothing: %v", err)
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
