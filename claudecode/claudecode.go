// Package claudecode is claudemesh's one adapter to Claude Code: all that
// depends on how Claude Code works lives here, and what claudemesh makes of
// it (which session to be, what to push) lives with its users.
//
//   - Its files: where Claude Code keeps its configuration (ConfigDir,
//     StateFile), how it names the directory that holds a project's session
//     transcripts (ProjectKey, LatestSession: the session `claudemesh launch
//     --continue` resumes; TranscriptExists: whether a session id was ever a
//     real conversation), and the MCP server entry and settings hooks
//     through which Claude Code starts `claudemesh mcp` and `claudemesh
//     hook` (Install, Uninstall).
//   - Its environment: the variables it sets for the MCP servers and hooks
//     it starts (EnvSessionID, EnvProjectDir, EnvMessagingSocket, ...).
//   - Its hooks: the JSON a SessionStart hook gets on stdin
//     (ParseSessionStart).
//   - Its process: the claude process that runs a hook or an MCP server,
//     found through /proc (FindProcess), and the names of files kept per
//     such process (Process.FileName, RemoveGone), through which a hook and
//     the MCP server of one session pass word.
//   - Its messaging socket: writing a user message into a running session
//     (WriteMessagingSocket).
//
// It imports nothing of claudemesh but identity and internal/atomicfile, and
// touches no network: the messaging socket is a local Unix socket.
package claudecode

import (
	"errors"
	"path/filepath"
)

// Environment variables of Claude Code.
const (
	// EnvConfigDir overrides where Claude Code keeps its configuration.
	EnvConfigDir = "CLAUDE_CONFIG_DIR"
	// EnvSessionID is the session UUID Claude Code gives the MCP servers
	// and hooks it starts. An MCP server keeps the one it started with: a
	// throwaway under --continue, a stale one after /clear. A hook gets the
	// true one (see SessionStart).
	EnvSessionID = "CLAUDE_CODE_SESSION_ID"
	// EnvProjectDir is the directory of the session's project.
	EnvProjectDir = "CLAUDE_PROJECT_DIR"
	// EnvMessagingSocket is the session's messaging socket, through which a
	// message is written into the session (WriteMessagingSocket), and
	// EnvMessagingToken the token that goes with it.
	EnvMessagingSocket = "CLAUDE_CODE_MESSAGING_SOCKET"
	EnvMessagingToken  = "CLAUDE_CODE_MESSAGING_TOKEN"
	// EnvClaudeCode is "1" in the processes Claude Code starts.
	EnvClaudeCode = "CLAUDECODE"
)

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
