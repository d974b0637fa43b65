package claudecode

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The plugin's files, at the root of the repository.
const (
	pluginManifest    = "../.claude-plugin/plugin.json"
	pluginMarketplace = "../.claude-plugin/marketplace.json"
	pluginHooks       = "../hooks/hooks.json"
	pluginLauncher    = "${CLAUDE_PLUGIN_ROOT}/plugin/claudemesh.sh"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The plugin registers exactly the hooks that install does: one command
// hook per event, running the launcher with the same `hook` argument. A
// hook added to install's list and not to the plugin (or the other way
// round) fails here.
func TestPluginHooksAreInstallHooks(t *testing.T) {
	var file struct {
		Hooks map[string][]struct {
			Matcher string `json:"matcher"`
			Hooks   []struct {
				Type    string `json:"type"`
				Command string `json:"command"`
			} `json:"hooks"`
		} `json:"hooks"`
	}
	readJSON(t, pluginHooks, &file)
	var got []Hook
	for event, groups := range file.Hooks {
		for _, g := range groups {
			if g.Matcher != "" {
				t.Errorf("%s: %s has matcher %q; install's hooks run on every occurrence", pluginHooks, event, g.Matcher)
			}
			for _, h := range g.Hooks {
				if h.Type != "command" {
					t.Errorf("%s: %s hook of type %q", pluginHooks, event, h.Type)
					continue
				}
				bin, arg, ok := pluginHook(h.Command)
				if !ok || bin != pluginLauncher {
					t.Errorf("%s: %s hook %q does not run %q hook NAME", pluginHooks, event, h.Command, pluginLauncher)
					continue
				}
				got = append(got, Hook{event, arg})
			}
		}
	}
	want := Hooks()
	order := func(a, b Hook) int {
		if a.Event != b.Event {
			return compare(a.Event, b.Event)
		}
		return compare(a.Arg, b.Arg)
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if !slices.Equal(got, want) {
		t.Errorf("the plugin's hooks (%s) are %v; claudemesh install registers %v: keep them the same", pluginHooks, got, want)
	}
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pluginHook splits a plugin hook command, `"LAUNCHER" hook NAME`.
func pluginHook(command string) (bin, name string, ok bool) {
	prefix := `"` + pluginLauncher + `" hook `
	name, ok = strings.CutPrefix(command, prefix)
	if !ok || !hookArg.MatchString(name) {
		return "", "", false
	}
	return pluginLauncher, name, true
}

// The plugin's MCP server is the one install registers, started through
// the launcher: `claudemesh mcp`, loaded with the first prompt.
func TestPluginServerIsInstallServer(t *testing.T) {
	var manifest struct {
		Name       string                     `json:"name"`
		MCPServers map[string]json.RawMessage `json:"mcpServers"`
	}
	readJSON(t, pluginManifest, &manifest)
	if manifest.Name != PluginName {
		t.Errorf("plugin name %q, want %q", manifest.Name, PluginName)
	}
	if len(manifest.MCPServers) != 1 {
		t.Fatalf("plugin declares servers %v, want only %s", manifest.MCPServers, ServerName)
	}
	var got, want map[string]any
	if err := json.Unmarshal(manifest.MCPServers[ServerName], &got); err != nil {
		t.Fatalf("%s: mcpServers.%s: %v", pluginManifest, ServerName, err)
	}
	if err := json.Unmarshal(serverEntry(pluginLauncher), &want); err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("plugin server %s, want install's entry with the launcher: %s", gotJSON, wantJSON)
	}

	var market struct {
		Name    string `json:"name"`
		Plugins []struct {
			Name   string `json:"name"`
			Source string `json:"source"`
		} `json:"plugins"`
	}
	readJSON(t, pluginMarketplace, &market)
	if len(market.Plugins) != 1 || market.Plugins[0].Name != PluginName || market.Plugins[0].Source != "./" {
		t.Errorf("marketplace %s lists %+v, want the plugin %s at ./", pluginMarketplace, market.Plugins, PluginName)
	}
	launcher := filepath.Join("..", "plugin", "claudemesh.sh")
	if info, err := os.Stat(launcher); err != nil || info.Mode()&0o111 == 0 {
		t.Errorf("launcher %s is not an executable file: %v", launcher, err)
	}
}
