package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/e2e/fakemodel"
	"github.com/claudemesh/claudemesh/mcp"
)

// claudemesh finds the sessions Claude Code records for a directory, by the
// same directory name, both for a path with spaces, dots and underscores
// and for one whose name Claude Code cuts at 200 characters and suffixes
// with a hash. `claudemesh launch --continue` then resumes that session
// under its own id, which the MCP server sees from the start.
func TestLaunchContinueFindsClaudeCodeSession(t *testing.T) {
	h := newHarness(t)
	s := h.newSeat("keys")
	root := filepath.Dir(s.project)
	long := filepath.Join(root, strings.Repeat("a_long.directory-name ", 4), strings.Repeat("deeper.still_", 6), strings.Repeat("x", 60))
	projects := []struct {
		name, dir string
		long      bool
	}{
		{"special", filepath.Join(root, "my project.v2_final"), false},
		{"long", long, true},
	}
	var lastID string
	for _, p := range projects {
		writeFile(t, filepath.Join(p.dir, "README.md"), "A project.\n")
		s.project = p.dir
		h.model.Script("key-"+p.name, fakemodel.Text("Done."))
		id := s.run("key-" + p.name).sessionID()

		dir, err := filepath.EvalSymlinks(p.dir)
		if err != nil {
			t.Fatal(err)
		}
		key := claudecode.ProjectKey(dir)
		if got := len(key) > 200; got != p.long {
			t.Fatalf("%s: key of %d characters; the test needs it long: %v", p.name, len(key), p.long)
		}
		entries, err := os.ReadDir(filepath.Join(s.config, "projects"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Logf("%s: Claude Code's project directories: %q", p.name, names)
		if _, err := os.Stat(filepath.Join(s.config, "projects", key, id+".jsonl")); err != nil {
			t.Errorf("%s: no transcript of session %s under the key claudemesh computes: %v", p.name, id, err)
		}

		got, err := claudecode.LatestSession(s.config, p.dir)
		if err != nil || got != id {
			t.Fatalf("%s: LatestSession = %q, %v; Claude Code reports session %s", p.name, got, err, id)
		}
		lastID = id
	}

	// `claudemesh launch --continue` in the long directory: claude found on
	// the PATH, as a user runs it.
	bin := t.TempDir()
	for name, target := range map[string]string{"claude": h.claude, "claudemesh": claudemeshBin} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	s.binDir = bin
	launcher := *h
	launcher.claude = claudemeshBin
	ls := *s
	ls.h = &launcher
	h.model.Script("key-continued", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Done."))
	args := append([]string{"launch", "--continue", "--"}, s.headless()...)
	p := ls.start(false, append(args, "-p", fakemodel.Marker("key-continued")+" Use claudemesh as scripted.")...)
	p.wait()
	if got := p.sessionID(); got != lastID {
		t.Fatalf("launch --continue ran session %s, want the latest %s", got, lastID)
	}
	if !strings.Contains(p.stderr.String(), "continuing session "+lastID) {
		t.Errorf("launch did not say which session it continues; stderr:\n%s", p.stderr.String())
	}
	who := structured[mcp.WhoamiResult](t, h.toolResults("key-continued", 1)[0])
	if who.SessionID != lastID || who.IdentityMode != "stable" {
		t.Fatalf("whoami after launch --continue: %+v; want session %s from the start", who, lastID)
	}
}
