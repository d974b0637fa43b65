package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/e2e/fakemodel"
	"github.com/claudemesh/claudemesh/internal/testproc"
	"github.com/claudemesh/claudemesh/mcp"
)

// The tools of claudemesh's plugin as Claude Code names them: the server
// "claudemesh" of the plugin "claudemesh".
const (
	pluginWhoami    = "mcp__plugin_claudemesh_claudemesh__whoami"
	pluginListPeers = "mcp__plugin_claudemesh_claudemesh__list_peers"
	pluginInbox     = "mcp__plugin_claudemesh_claudemesh__inbox"
)

// repoRoot is the repository, which is the plugin and its marketplace.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// claudeCommand runs the seat's claude with args to completion (plugin
// and mcp subcommands) and returns its output.
func (s *seat) claudeCommand(args ...string) string {
	t := s.h.t
	t.Helper()
	cmd := exec.CommandContext(t.Context(), s.h.claude, args...)
	cmd.Dir, cmd.Env = s.project, s.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("claude %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// claudemesh runs the built claudemesh with args in the seat's
// environment and returns its output and error.
func (s *seat) claudemesh(args ...string) (string, error) {
	t := s.h.t
	t.Helper()
	cmd := exec.CommandContext(t.Context(), claudemeshBin, args...)
	cmd.Dir, cmd.Env = s.project, s.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The plugin passes Claude Code's own strictest validation, as CI runs it.
func TestPluginValidates(t *testing.T) {
	claude := claudeBinary(t)
	cmd := exec.CommandContext(t.Context(), claude, "plugin", "validate", "--strict", "--json", repoRoot(t))
	cmd.Env = append(baseEnv(), "HOME="+t.TempDir(), "CLAUDE_CONFIG_DIR="+t.TempDir(), "DISABLE_AUTOUPDATER=1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("claude plugin validate --strict: %v\n%s", err, out)
	}
	var report struct {
		Success  bool `json:"success"`
		Provides struct {
			Hooks []struct {
				Event string `json:"event"`
			} `json:"hooks"`
			MCPServers []struct {
				Name string `json:"name"`
			} `json:"mcpServers"`
		} `json:"provides"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("validate --json: %v\n%s", err, out)
	}
	if !report.Success {
		t.Fatalf("validate --strict failed:\n%s", out)
	}
	var events []string
	for _, h := range report.Provides.Hooks {
		events = append(events, h.Event)
	}
	for _, want := range []string{"SessionStart", "UserPromptSubmit"} {
		if !slices.Contains(events, want) {
			t.Errorf("the plugin provides hooks %v, want %s among them", events, want)
		}
	}
	if len(report.Provides.MCPServers) == 0 {
		t.Errorf("the plugin provides no MCP server:\n%s", out)
	}
}

// Loaded with --plugin-dir and nothing else (no claudemesh install, no
// --mcp-config), Claude Code starts claudemesh's server through the
// plugin: its tools answer from the first prompt, and under --continue the
// plugin's SessionStart hook gives the server the continued session, which
// gets what was queued for it.
func TestPluginDirSessionAndContinue(t *testing.T) {
	h := newHarness(t)
	xavier, yolanda := h.newSeat("xavier"), h.newSeat("yolanda")
	xavier.mcpArgs = []string{"--plugin-dir", repoRoot(t)}
	pluginTools := []string{"--allowedTools", pluginWhoami, pluginListPeers, pluginInbox}
	id := uuid.NewString()
	text := "Queued for the plugin's continued session " + uuid.NewString()

	h.model.Script("px-first", fakemodel.CallTool(pluginWhoami, nil), fakemodel.CallTool(pluginListPeers, nil), fakemodel.Text("Noted."))
	h.model.Script("py-send", fakemodel.CallTool(toolSendDM, map[string]any{"to": "xavier", "message": text}), fakemodel.Text("Sent."))
	h.model.Script("px-continued", fakemodel.CallTool(pluginWhoami, nil), fakemodel.CallTool(pluginInbox, nil), fakemodel.Text("Read."))

	first := xavier.run("px-first", append(pluginTools, "--session-id", id)...)
	reqs := h.model.ScriptRequests("px-first")
	if len(reqs) == 0 || !slices.Contains(reqs[0].Tools, pluginWhoami) {
		t.Fatalf("the first request offers tools %v, want the plugin's %s among them", reqs[0].Tools, pluginWhoami)
	}
	res := h.toolResults("px-first", 2)
	who := structured[mcp.WhoamiResult](t, res[0])
	if who.SessionID != id {
		t.Fatalf("whoami through the plugin: %+v, want session %s", who, id)
	}
	if peers := structured[mcp.PeersResult](t, res[1]); peers.Mesh == "" {
		t.Fatalf("list_peers through the plugin: %+v", peers)
	}
	first.waitGroupGone()

	yolanda.run("py-send")
	if sent := structured[mcp.SendResult](t, h.toolResults("py-send", 1)[0]); sent.Status != "queued" || sent.ToKeyID != who.KeyID {
		t.Fatalf("send_dm to the exited plugin session: %+v, want queued for key %s", sent, who.KeyID)
	}

	again := xavier.run("px-continued", append(pluginTools, "--continue")...)
	if got := again.sessionID(); got != id {
		t.Fatalf("claude --continue reports session %s, want %s", got, id)
	}
	again.waitGroupGone()
	res = h.toolResults("px-continued", 2)
	who2 := structured[mcp.WhoamiResult](t, res[0])
	if who2.SessionID != id || who2.KeyID != who.KeyID || !strings.Contains(who2.SessionSource, "SessionStart") {
		t.Fatalf("whoami under --continue through the plugin: %+v; want session %s with key %s, from the SessionStart hook", who2, id, who.KeyID)
	}
	inbox := structured[mcp.InboxResult](t, res[1])
	if len(inbox.Messages) != 1 || inbox.Messages[0].Text != text {
		t.Fatalf("inbox under --continue through the plugin: %+v; want yolanda's queued DM", inbox)
	}
}

// `claude plugin marketplace add` on the repository and `claude plugin
// install claudemesh@claudemesh` set claudemesh up: the server connects,
// and `claudemesh install` afterwards sees the plugin and registers
// nothing more; doctor finds one registration, the plugin's.
func TestPluginInstallFromMarketplace(t *testing.T) {
	h := newHarness(t)
	s := h.newSeat("installer")
	s.trustProject()
	s.claudeCommand("plugin", "marketplace", "add", repoRoot(t))
	s.claudeCommand("plugin", "install", "claudemesh@claudemesh")

	list := s.claudeCommand("mcp", "list")
	if !regexp.MustCompile(`(?m)^plugin:claudemesh:claudemesh: .*Connected`).MatchString(list) {
		t.Fatalf("claude mcp list does not show the plugin's server connected:\n%s", list)
	}

	out, err := s.claudemesh("install")
	if err != nil || !strings.Contains(out, "the claudemesh plugin is enabled (claudemesh@claudemesh)") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("claudemesh install with the plugin installed: %v\n%s", err, out)
	}
	if again := s.claudeCommand("mcp", "list"); strings.Count(again, "claudemesh mcp") > 1 || strings.Contains(again, "\nclaudemesh:") {
		t.Fatalf("after claudemesh install, claude mcp list shows another claudemesh server:\n%s", again)
	}

	out, err = s.claudemesh("doctor", "--json")
	if err != nil {
		t.Fatalf("doctor with the plugin installed: %v\n%s", err, out)
	}
	var report struct {
		Checks []struct{ Name, Status, Detail string } `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	for _, c := range report.Checks {
		if c.Name == "Claude Code registration" && (c.Status != "ok" || !strings.Contains(c.Detail, "plugin (claudemesh@claudemesh")) {
			t.Errorf("doctor: %s = %s %q, want ok from the plugin", c.Name, c.Status, c.Detail)
		}
		if strings.HasPrefix(c.Name, "hook ") && c.Status != "ok" {
			t.Errorf("doctor: %s = %s %q, want ok from the plugin", c.Name, c.Status, c.Detail)
		}
	}
}

// Registered twice — by the plugin and as a user's server — claudemesh is
// started twice by one claude process. Only one of the two offers tools
// and connects to the broker; the other stays idle and says why.
func TestPluginAndInstallDoNotBothServe(t *testing.T) {
	h := newHarness(t)
	s := h.newSeat("twice")
	s.mcpArgs = append([]string{"--plugin-dir", repoRoot(t)}, s.mcpArgs[:2]...) // the plugin and --mcp-config, not strict
	h.model.Script("dup", fakemodel.Text("Nothing to do."))
	id := uuid.NewString()
	s.run("dup", "--session-id", id)

	reqs := h.model.ScriptRequests("dup")
	if len(reqs) == 0 {
		t.Fatal("no request to the model")
	}
	var whoami []string
	for _, tool := range reqs[0].Tools {
		if strings.HasSuffix(tool, "__whoami") {
			whoami = append(whoami, tool)
		}
	}
	if len(whoami) != 1 {
		t.Errorf("the first request offers whoami as %v, want exactly one of %s and %s", whoami, toolWhoami, pluginWhoami)
	}
	testproc.Eventually(t, stopGrace, "the broker to see the session", func() bool {
		return strings.Contains(h.broker.out.String(), "session="+id)
	})
	if n := strings.Count(h.broker.out.String(), "msg=\"session online\""); n != 1 {
		t.Errorf("the broker saw %d sessions come online, want 1:\n%s", n, h.broker.out)
	}
}
