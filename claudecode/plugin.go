package claudecode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// PluginName is the name of claudemesh's Claude Code plugin, whose
// manifest is .claude-plugin/plugin.json at the root of the repository
// (also a marketplace of that name). Claude Code names its MCP server
// "plugin:claudemesh:claudemesh" and its tools
// mcp__plugin_claudemesh_claudemesh__<tool>.
const PluginName = "claudemesh"

// Hook is one hook claudemesh registers with Claude Code: on Event, the
// command `claudemesh hook Arg`.
type Hook struct{ Event, Arg string }

// Hooks returns the hooks that Install registers, in its order. The
// plugin's hooks/hooks.json must register the same ones (a test compares
// them), so that the two ways of setting claudemesh up cannot drift apart.
func Hooks() []Hook {
	out := make([]Hook, len(hooks))
	for i, h := range hooks {
		out[i] = Hook{Event: h.event, Arg: h.arg}
	}
	return out
}

// PluginSetting is a settings file that enables claudemesh's plugin.
type PluginSetting struct {
	File string // the settings file
	ID   string // the plugin's id there, "claudemesh@MARKETPLACE"
}

// ProjectSettingsFiles returns the settings files of the project in dir
// that can enable plugins and register hooks: the shared one and the local
// one.
func ProjectSettingsFiles(dir string) []string {
	return []string{filepath.Join(dir, ".claude", "settings.json"), filepath.Join(dir, ".claude", "settings.local.json")}
}

// EnabledPlugin returns the settings files — the user's, and those of the
// project in dir unless dir is "" — in which claudemesh's plugin is
// enabled: their "enabledPlugins" maps "claudemesh@MARKETPLACE" to true.
// Claude Code writes that entry when it installs the plugin. A missing
// file enables nothing; an unreadable or invalid one is an error.
func EnabledPlugin(getenv func(string) string, dir string) ([]PluginSetting, error) {
	config, err := ConfigDir(getenv)
	if err != nil {
		return nil, err
	}
	files := []string{SettingsFile(config)}
	if dir != "" {
		files = append(files, ProjectSettingsFiles(dir)...)
	}
	var out []PluginSetting
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		var s struct {
			EnabledPlugins map[string]json.RawMessage `json:"enabledPlugins"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("read %s: %w", f, syntaxError(err))
		}
		var ids []string
		for id, v := range s.EnabledPlugins {
			if name, _, ok := strings.Cut(id, "@"); ok && name == PluginName && string(v) == "true" {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			out = append(out, PluginSetting{File: f, ID: id})
		}
	}
	return out, nil
}
