// Package claudecode knows the files and conventions of Claude Code that
// claudemesh reads or edits: where Claude Code keeps its configuration, how
// it names the directory that holds a project's session transcripts (so
// that `claudemesh launch --continue` finds the session Claude Code would
// continue), and the MCP server entry and settings hooks through which
// Claude Code starts `claudemesh mcp` and `claudemesh hook` (Install,
// Uninstall).
//
// It imports nothing of claudemesh but identity, and touches no network.
package claudecode

import (
	"errors"
	"path/filepath"
)

// EnvConfigDir overrides where Claude Code keeps its configuration.
const EnvConfigDir = "CLAUDE_CONFIG_DIR"

// ConfigDir returns Claude Code's configuration directory: CLAUDE_CONFIG_DIR
// if set, else ~/.claude. It holds the user's settings.json and the session
// transcripts under projects/.
func ConfigDir(getenv func(string) string) (string, error) {
	if dir := getenv(EnvConfigDir); dir != "" {
		return dir, nil
	}
	home, err := homeDir(getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".claude"), nil
}

// StateFile returns the path of Claude Code's user-level state file, whose
// top-level "mcpServers" holds the MCP servers of user scope:
// $CLAUDE_CONFIG_DIR/.claude.json when that variable is set, else
// ~/.claude.json (next to ~/.claude, not in it).
func StateFile(getenv func(string) string) (string, error) {
	if dir := getenv(EnvConfigDir); dir != "" {
		return filepath.Join(dir, ".claude.json"), nil
	}
	home, err := homeDir(getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".claude.json"), nil
}

// SettingsFile returns the path of the user's settings in configDir.
func SettingsFile(configDir string) string {
	return filepath.Join(configDir, "settings.json")
}

func homeDir(getenv func(string) string) (string, error) {
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("find Claude Code's configuration: neither CLAUDE_CONFIG_DIR nor HOME is set")
	}
	return home, nil
}
