package claudecode

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const bin = "/opt/bin/claudemesh"

// The files Install writes into empty directories, in Claude Code's layout.
const (
	wantMCPFile = `{
  "mcpServers": {
    "claudemesh": {
      "type": "stdio",
      "command": "COMMAND",
      "args": [
        "mcp"
      ],
      "alwaysLoad": true
    }
  }
}
`
	wantSettingsFile = `{
  "hooks": {
    "SessionStart": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "HOOK hook session-start"
          }
        ]
      }
    ],
    "UserPromptSubmit": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "HOOK hook prompt"
          }
        ]
      }
    ],
    "Stop": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "HOOK hook stop"
          }
        ]
      }
    ]
  }
}
`
)

// scopes are the two registrations, set up in fresh directories.
var scopes = []struct {
	name    string
	command string
	reg     func(t *testing.T) Registration
}{
	{"user", bin, func(t *testing.T) Registration {
		home := t.TempDir()
		r, err := UserScope(env(map[string]string{"HOME": home}), bin)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(home, ".claude.json"); r.MCPFile != want {
			t.Fatalf("user MCP file %s, want %s", r.MCPFile, want)
		}
		if want := filepath.Join(home, ".claude", "settings.json"); r.SettingsFile != want {
			t.Fatalf("user settings %s, want %s", r.SettingsFile, want)
		}
		return r
	}},
	{"project", "claudemesh", func(t *testing.T) Registration {
		dir := t.TempDir()
		r := ProjectScope(dir)
		if r.MCPFile != filepath.Join(dir, ".mcp.json") || r.SettingsFile != filepath.Join(dir, ".claude", "settings.json") {
			t.Fatalf("project files %s, %s", r.MCPFile, r.SettingsFile)
		}
		return r
	}},
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// checkReports checks which files a call reports changed, and that every
// file has a note.
func checkReports(t *testing.T, what string, reports []Report, wantChanged ...bool) {
	t.Helper()
	if len(reports) != len(wantChanged) {
		t.Fatalf("%s: %d reports, want %d: %+v", what, len(reports), len(wantChanged), reports)
	}
	for i, r := range reports {
		if r.Changed != wantChanged[i] || len(r.Notes) == 0 {
			t.Errorf("%s: report %+v; want changed=%v with notes", what, r, wantChanged[i])
		}
	}
}

// unchanged records a file's contents and modification time, and returns a
// check that the file has not been written since.
func unchanged(t *testing.T, path string) func(what string) {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	before, err := os.ReadFile(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		t.Fatal(err)
	}
	if !missing {
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return func(what string) {
		t.Helper()
		info, err := os.Stat(path)
		if missing {
			if err == nil {
				t.Errorf("%s: created %s", what, path)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if after := readFile(t, path); after != string(before) || !info.ModTime().Equal(old) {
			t.Errorf("%s: %s was written:\n%s\nbefore:\n%s", what, path, after, before)
		}
	}
}

func TestInstallIntoEmptyDirectories(t *testing.T) {
	for _, sc := range scopes {
		t.Run(sc.name, func(t *testing.T) {
			r := sc.reg(t)
			reports, err := r.Install(false)
			if err != nil {
				t.Fatal(err)
			}
			checkReports(t, "install", reports, true, true)
			if got, want := readFile(t, r.MCPFile), strings.ReplaceAll(wantMCPFile, "COMMAND", sc.command); got != want {
				t.Errorf("%s:\n%s\nwant:\n%s", r.MCPFile, got, want)
			}
			if got, want := readFile(t, r.SettingsFile), strings.ReplaceAll(wantSettingsFile, "HOOK", sc.command); got != want {
				t.Errorf("%s:\n%s\nwant:\n%s", r.SettingsFile, got, want)
			}
			checkMode(t, r.MCPFile, 0o600)
			checkMode(t, r.SettingsFile, 0o600)
			checkMode(t, filepath.Dir(r.SettingsFile), 0o700)

			// Again: nothing to do, nothing written.
			mcpSame, settingsSame := unchanged(t, r.MCPFile), unchanged(t, r.SettingsFile)
			reports, err = r.Install(false)
			if err != nil {
				t.Fatal(err)
			}
			checkReports(t, "second install", reports, false, false)
			mcpSame("second install")
			settingsSame("second install")

			reports, err = r.Uninstall()
			if err != nil {
				t.Fatal(err)
			}
			checkReports(t, "uninstall", reports, true, true)
			for _, path := range []string{r.MCPFile, r.SettingsFile} {
				if got := readFile(t, path); got != "{}\n" {
					t.Errorf("after uninstall %s holds %q, want {}", path, got)
				}
			}

			mcpSame, settingsSame = unchanged(t, r.MCPFile), unchanged(t, r.SettingsFile)
			reports, err = r.Uninstall()
			if err != nil {
				t.Fatal(err)
			}
			checkReports(t, "second uninstall", reports, false, false)
			mcpSame("second uninstall")
			settingsSame("second uninstall")
		})
	}
}

func TestUninstallWithNothingThere(t *testing.T) {
	for _, sc := range scopes {
		t.Run(sc.name, func(t *testing.T) {
			r := sc.reg(t)
			reports, err := r.Uninstall()
			if err != nil {
				t.Fatal(err)
			}
			checkReports(t, "uninstall", reports, false, false)
			for _, path := range []string{r.MCPFile, r.SettingsFile} {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("uninstall created %s (%v)", path, err)
				}
			}
		})
	}
}

func TestInstallHonoursConfigDir(t *testing.T) {
	home, config := t.TempDir(), filepath.Join(t.TempDir(), "claude config")
	r, err := UserScope(env(map[string]string{"HOME": home, "CLAUDE_CONFIG_DIR": config}), bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Install(false); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(config, ".claude.json"), filepath.Join(config, "settings.json")} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("install did not write %s: %v", path, err)
		}
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("install wrote into HOME although CLAUDE_CONFIG_DIR is set: %v", entries)
	}
	checkMode(t, config, 0o700)
}

// Files as Claude Code writes them: two-space indents; the state file has no
// final newline, the settings file has one. Other keys come before and after
// the ones claudemesh touches, and strings hold escapes and characters that
// must come back as they were.
const (
	stateWithOthers = `{
  "numStartups": 12,
  "firstStartTime": "2026-11-26T00:58:54.602Z",
  "mcpServers": {
    "zeta": {
      "type": "stdio",
      "command": "npx",
      "args": [
        "-y",
        "zeta-server"
      ],
      "env": {}
    },
    "alpha": {
      "type": "http",
      "url": "https://mcp.example.test/x?a=1&b=<2>"
    }
  },
  "projects": {
    "/home/u/p": {
      "allowedTools": [],
      "mcpServers": {},
      "lastCost": 1.5e-3,
      "note": "caf\u00e9 \"quoted\" café"
    }
  },
  "userID": "abc"
}`
	settingsWithOthers = `{
  "permissions": {
    "allow": [
      "Bash(go test:*)"
    ]
  },
  "hooks": {
    "PreToolUse": [
      {
        "matcher": "Bash",
        "hooks": [
          {
            "type": "command",
            "command": "echo pre"
          }
        ]
      }
    ],
    "SessionStart": [
      {
        "matcher": "startup",
        "hooks": [
          {
            "type": "command",
            "command": "echo started"
          }
        ]
      }
    ]
  },
  "model": "opus",
  "zz": null
}
`
)

func TestInstallKeepsOtherContent(t *testing.T) {
	for _, sc := range scopes {
		t.Run(sc.name, func(t *testing.T) {
			r := sc.reg(t)
			writeFile(t, r.MCPFile, stateWithOthers, 0o644)
			writeFile(t, r.SettingsFile, settingsWithOthers, 0o640)

			reports, err := r.Install(false)
			if err != nil {
				t.Fatal(err)
			}
			checkReports(t, "install", reports, true, true)
			state, settings := readFile(t, r.MCPFile), readFile(t, r.SettingsFile)
			inOrder(t, r.MCPFile, state, `"numStartups"`, `"firstStartTime"`, `"mcpServers"`, `"zeta"`, `"alpha"`,
				`"claudemesh"`, `"projects"`, `"userID"`)
			inOrder(t, r.SettingsFile, settings, `"permissions"`, `"hooks"`, `"PreToolUse"`, `"SessionStart"`,
				`"echo started"`, `"`+sc.command+` hook session-start"`, `"model"`, `"zz"`)
			for _, s := range []string{`"caf\u00e9 \"quoted\" café"`, `1.5e-3`, `&b=<2>`, `"command": "` + sc.command + `"`} {
				if !strings.Contains(state, s) {
					t.Errorf("%s lost %s:\n%s", r.MCPFile, s, state)
				}
			}
			if strings.HasSuffix(state, "\n") || !strings.HasSuffix(settings, "}\n") {
				t.Errorf("final newlines changed: state %q, settings %q", state[len(state)-3:], settings[len(settings)-3:])
			}
			checkMode(t, r.MCPFile, 0o644)
			checkMode(t, r.SettingsFile, 0o640)

			if _, err := r.Uninstall(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, r.MCPFile); got != stateWithOthers {
				t.Errorf("install then uninstall changed %s:\n%s\nwant:\n%s", r.MCPFile, got, stateWithOthers)
			}
			if got := readFile(t, r.SettingsFile); got != settingsWithOthers {
				t.Errorf("install then uninstall changed %s:\n%s\nwant:\n%s", r.SettingsFile, got, settingsWithOthers)
			}
			checkMode(t, r.MCPFile, 0o644)
			checkMode(t, r.SettingsFile, 0o640)
		})
	}
}

// inOrder checks that each of parts occurs in s, after the previous one.
func inOrder(t *testing.T, name, s string, parts ...string) {
	t.Helper()
	at := 0
	for _, p := range parts {
		i := strings.Index(s[at:], p)
		if i < 0 {
			t.Errorf("%s: %s missing or out of order:\n%s", name, p, s)
			return
		}
		at += i + len(p)
	}
}

// The repository's own .mcp.json, in another layout, already registers
// claudemesh: install leaves it alone.
func TestInstallAcceptsEquivalentEntry(t *testing.T) {
	r := ProjectScope(t.TempDir())
	writeFile(t, r.MCPFile, `{"mcpServers": {"claudemesh": {"type": "stdio", "command": "claudemesh", "args": ["mcp"], "alwaysLoad": true, "env": {"CLAUDEMESH_MESH": "team"}}}}`+"\n", 0o644)
	same := unchanged(t, r.MCPFile)
	reports, err := r.Install(false)
	if err != nil {
		t.Fatal(err)
	}
	checkReports(t, "install", reports, false, true)
	same("install over an equivalent entry")
}

func TestInstallRefusesForeignEntries(t *testing.T) {
	tests := []struct {
		name              string
		state, settings   string
		wantInState       string // after a forced install
		wantGoneFromState string
		wantGoneSettings  string
	}{
		{
			name:              "another server named claudemesh",
			state:             `{"mcpServers": {"claudemesh": {"command": "npx", "args": ["-y", "claudemesh-js"]}, "other": {"command": "x"}}}`,
			wantInState:       `"command": "` + bin + `"`,
			wantGoneFromState: "claudemesh-js",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scopes[0].reg(t)
			if tt.state != "" {
				writeFile(t, r.MCPFile, tt.state, 0o600)
			}
			if tt.settings != "" {
				writeFile(t, r.SettingsFile, tt.settings, 0o600)
			}
			stateSame, settingsSame := unchanged(t, r.MCPFile), unchanged(t, r.SettingsFile)
			reports, err := r.Install(false)
			if !errors.Is(err, ErrForeign) || reports != nil {
				t.Fatalf("install = %+v, %v; want ErrForeign", reports, err)
			}
			if msg := err.Error(); !strings.Contains(msg, bin) || !strings.Contains(msg, "/old/claudemesh") && !strings.Contains(msg, "npx") {
				t.Errorf("error %q does not say what is there and what was wanted", msg)
			}
			stateSame("refused install")
			settingsSame("refused install")

			reports, err = r.Install(true)
			if err != nil {
				t.Fatal(err)
			}
			checkReports(t, "forced install", reports, true, true)
			state, settings := readFile(t, r.MCPFile), readFile(t, r.SettingsFile)
			if !strings.Contains(state, tt.wantInState) || tt.wantGoneFromState != "" && strings.Contains(state, tt.wantGoneFromState) {
				t.Errorf("forced install: %s:\n%s", r.MCPFile, state)
			}
			if tt.wantGoneSettings != "" && strings.Contains(settings, tt.wantGoneSettings) || !strings.Contains(settings, bin+" hook session-start") {
				t.Errorf("forced install: %s:\n%s", r.SettingsFile, settings)
			}
			if strings.Contains(tt.settings, "echo hi") && !strings.Contains(settings, "echo hi") {
				t.Errorf("forced install removed another hook:\n%s", settings)
			}
			if strings.Contains(tt.state, `"other"`) && !strings.Contains(state, `"other"`) {
				t.Errorf("forced install removed another server:\n%s", state)
			}
		})
	}
}

// A claudemesh binary that moved (reinstalled elsewhere) is updated in
// place without --force: the entries are claudemesh's own.
func TestInstallUpdatesAMovedBinary(t *testing.T) {
	r := scopes[0].reg(t)
	writeFile(t, r.MCPFile, `{"mcpServers": {"claudemesh": {"type": "stdio", "command": "/old/claudemesh", "args": ["mcp"]}, "other": {"command": "x"}}}`, 0o600)
	writeFile(t, r.SettingsFile, `{"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "/old/claudemesh hook session-start"}, {"type": "command", "command": "echo hi"}]}]}}`, 0o600)
	reports, err := r.Install(false)
	if err != nil {
		t.Fatal(err)
	}
	checkReports(t, "install over a moved binary", reports, true, true)
	state, settings := readFile(t, r.MCPFile), readFile(t, r.SettingsFile)
	if !strings.Contains(state, `"command": "`+bin+`"`) || strings.Contains(state, "/old/claudemesh") || !strings.Contains(state, `"other"`) {
		t.Errorf("%s after install:\n%s", r.MCPFile, state)
	}
	if strings.Contains(settings, "/old/claudemesh") || !strings.Contains(settings, bin+" hook session-start") || !strings.Contains(settings, "echo hi") {
		t.Errorf("%s after install:\n%s", r.SettingsFile, settings)
	}
}

func TestUninstallRemovesOnlyClaudemesh(t *testing.T) {
	r := scopes[0].reg(t)
	writeFile(t, r.MCPFile, `{"mcpServers": {"claudemesh": {"command": "npx", "args": ["-y", "claudemesh-js"]}}}`, 0o600)
	writeFile(t, r.SettingsFile, `{"hooks": {
  "SessionStart": [
    {"matcher": "resume", "hooks": [{"type": "command", "command": "echo a"}, {"type": "command", "command": "'/my tools/claudemesh' hook session-start"}]},
    {"hooks": [{"type": "command", "command": "/usr/local/bin/claudemesh hook session-start"}]}
  ],
  "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "claudemesh hook prompt"}]}],
  "Stop": [{"hooks": [{"type": "command", "command": "notclaudemesh hook stop"}, {"type": "command", "command": "claudemesh hook $(rm -rf x)"}]}],
  "Odd": "not a list"
}}`, 0o600)
	stateSame := unchanged(t, r.MCPFile)
	reports, err := r.Uninstall()
	if err != nil {
		t.Fatal(err)
	}
	checkReports(t, "uninstall", reports, false, true)
	if !strings.Contains(reports[0].Notes[0], "npx") {
		t.Errorf("uninstall does not say it left the foreign server alone: %q", reports[0].Notes)
	}
	stateSame("uninstall")
	want := `{
  "hooks": {
    "SessionStart": [
      {
        "matcher": "resume",
        "hooks": [
          {
            "type": "command",
            "command": "echo a"
          }
        ]
      }
    ],
    "Stop": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "notclaudemesh hook stop"
          },
          {
            "type": "command",
            "command": "claudemesh hook $(rm -rf x)"
          }
        ]
      }
    ],
    "Odd": "not a list"
  }
}`
	if got := readFile(t, r.SettingsFile); got != want {
		t.Errorf("after uninstall:\n%s\nwant:\n%s", got, want)
	}
}

func TestInvalidFilesAreLeftAlone(t *testing.T) {
	tests := []struct {
		name, state, settings, wantErr string
	}{
		{name: "truncated state", state: `{"mcpServers": {`, wantErr: "invalid JSON"},
		{name: "trailing comma", settings: `{"hooks": {},}`, wantErr: "invalid JSON"},
		{name: "two values", settings: `{} {}`, wantErr: "invalid JSON"},
		{name: "array", state: `[]`, wantErr: "not a JSON object"},
		{name: "mcpServers not an object", state: `{"mcpServers": []}`, wantErr: "mcpServers"},
		{name: "hooks not an object", settings: `{"hooks": "x"}`, wantErr: "hooks"},
		{name: "event not a list", settings: `{"hooks": {"SessionStart": {}}}`, wantErr: "SessionStart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scopes[0].reg(t)
			if tt.state != "" {
				writeFile(t, r.MCPFile, tt.state, 0o600)
			}
			if tt.settings != "" {
				writeFile(t, r.SettingsFile, tt.settings, 0o600)
			}
			stateSame, settingsSame := unchanged(t, r.MCPFile), unchanged(t, r.SettingsFile)
			_, err := r.Install(true)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("install: %v; want an error about %s", err, tt.wantErr)
			}
			bad := r.MCPFile
			if tt.settings != "" {
				bad = r.SettingsFile
			}
			if !strings.Contains(err.Error(), bad) {
				t.Errorf("error %q does not name %s", err, bad)
			}
			stateSame("install")
			settingsSame("install")
		})
	}
}

func TestInstallEmptyFile(t *testing.T) {
	r := scopes[1].reg(t)
	writeFile(t, r.MCPFile, "\n", 0o644)
	if _, err := r.Install(false); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, r.MCPFile), strings.ReplaceAll(wantMCPFile, "COMMAND", "claudemesh"); got != want {
		t.Errorf("install into an empty file:\n%s\nwant:\n%s", got, want)
	}
}

// A settings file that is a symlink (into a dotfiles repository, say) stays
// one: the file it points to is edited.
func TestInstallThroughSymlink(t *testing.T) {
	r := scopes[0].reg(t)
	target := filepath.Join(t.TempDir(), "dotfiles", "settings.json")
	writeFile(t, target, "{\n  \"model\": \"opus\"\n}\n", 0o644)
	if err := os.MkdirAll(filepath.Dir(r.SettingsFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, r.SettingsFile); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Install(false); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(r.SettingsFile); err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a symlink (%v)", r.SettingsFile, err)
	}
	if got := readFile(t, target); !strings.Contains(got, "session-start") || !strings.Contains(got, "opus") {
		t.Errorf("symlink target after install:\n%s", got)
	}
	checkMode(t, target, 0o644)
}

// A binary whose path needs quoting is quoted in the hook command, and
// uninstall recognises it.
func TestInstallQuotesCommand(t *testing.T) {
	home := t.TempDir()
	command := "/home/u/my tools/it's/claudemesh"
	r, err := UserScope(env(map[string]string{"HOME": home}), command)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Install(false); err != nil {
		t.Fatal(err)
	}
	want := `"command": "'/home/u/my tools/it'\\''s/claudemesh' hook session-start"`
	if got := readFile(t, r.SettingsFile); !strings.Contains(got, want) {
		t.Errorf("settings:\n%s\nwant the hook %s", got, want)
	}
	reports, err := r.Install(false)
	if err != nil {
		t.Fatal(err)
	}
	checkReports(t, "second install", reports, false, false)
	if _, err := r.Uninstall(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{r.MCPFile, r.SettingsFile} {
		if got := readFile(t, path); got != "{}\n" {
			t.Errorf("after uninstall %s holds %q", path, got)
		}
	}
}

func TestOurHook(t *testing.T) {
	tests := []struct {
		command, bin, name string
	}{
		{"claudemesh hook session-start", "claudemesh", "session-start"},
		{"/usr/local/bin/claudemesh hook prompt", "/usr/local/bin/claudemesh", "prompt"},
		{"'/my tools/claudemesh' hook session-start", "/my tools/claudemesh", "session-start"},
		{`'/it'\''s/claudemesh' hook session-start`, "/it's/claudemesh", "session-start"},
		{`"/my tools/claudemesh" hook session-start`, "/my tools/claudemesh", "session-start"},
		{`/my\ tools/claudemesh hook session-start`, "/my tools/claudemesh", "session-start"},
		{"claudemesh-dev hook session-start", "", ""},
		{"/bin/claudemesh/x hook session-start", "", ""},
		{"claudemesh hook", "", ""},
		{"claudemesh hook session-start; rm -rf /", "", ""},
		{"FOO=1 claudemesh hook session-start", "", ""},
		{"$HOME/claudemesh hook session-start", "", ""},
		{"echo claudemesh hook session-start", "", ""},
		{"claudemesh mcp", "", ""},
	}
	for _, tt := range tests {
		bin, name, ok := ourHook(tt.command)
		if bin != tt.bin || name != tt.name || ok != (tt.bin != "") {
			t.Errorf("ourHook(%q) = %q, %q, %v; want %q, %q", tt.command, bin, name, ok, tt.bin, tt.name)
		}
	}
}

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"claudemesh", "/a/b-c_d.e/claudemesh", "/a b/claudemesh", "/it's", "/$x/`y`", `/a"b\c`, "/x=y", "~/c", "/ü/claudemesh", ""} {
		q := shellQuote(s)
		got, ok := shellWord(q)
		if s == "" {
			if q != "''" {
				t.Errorf("shellQuote(\"\") = %s", q)
			}
			continue
		}
		if !ok || got != s {
			t.Errorf("shellWord(shellQuote(%q) = %s) = %q, %v", s, q, got, ok)
		}
		if q == s && strings.ContainsAny(s, " '\"$`\\=~") {
			t.Errorf("shellQuote(%q) left it unquoted", s)
		}
	}
	if !slices.Equal([]string{shellQuote("/usr/bin/claudemesh")}, []string{"/usr/bin/claudemesh"}) {
		t.Error("a plain path was quoted")
	}
}
