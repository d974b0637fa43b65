package claudecode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// What is registered where: read-only views of Claude Code's files for
// `claudemesh doctor`.

// ServerAt is an mcpServers.claudemesh entry found in a file.
type ServerAt struct {
	File    string
	Command string   // what the entry runs
	Args    []string // its arguments
	Ours    bool     // it runs a claudemesh binary as `claudemesh mcp`
}

// HookAt is a claudemesh command hook found in a settings file.
type HookAt struct {
	File  string
	Event string // SessionStart, UserPromptSubmit, ...
	Arg   string // the `claudemesh hook` argument
	Bin   string // the claudemesh binary it runs
}

// readObject reads a JSON file into generic members; a missing file is
// empty.
func readObject(path string) (map[string]json.RawMessage, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, syntaxError(err))
	}
	return m, nil
}

func serverIn(file string, servers json.RawMessage) (ServerAt, bool) {
	var all map[string]json.RawMessage
	if json.Unmarshal(servers, &all) != nil {
		return ServerAt{}, false
	}
	raw, ok := all[ServerName]
	if !ok {
		return ServerAt{}, false
	}
	var e stdioServer
	json.Unmarshal(raw, &e)
	return ServerAt{File: file, Command: e.Command, Args: e.Args, Ours: isOurServer(raw)}, true
}

// FindServer returns the mcpServers.claudemesh entry at the top of the
// JSON file path (Claude Code's state file for the user, or a project's
// .mcp.json), if there is one.
func FindServer(path string) (ServerAt, bool, error) {
	m, err := readObject(path)
	if err != nil {
		return ServerAt{}, false, err
	}
	s, ok := serverIn(path, m["mcpServers"])
	return s, ok, nil
}

// ProjectState is what Claude Code's state file says about one project
// directory: its local-scope claudemesh server, whether its folder was
// trusted, and which of its .mcp.json servers were approved or refused.
type ProjectState struct {
	Known       bool // the state file has an entry for the directory
	Trusted     bool // hasTrustDialogAccepted
	Server      ServerAt
	HasServer   bool // a local-scope mcpServers.claudemesh
	Approved    []string
	Disapproved []string
}

// FindProject reads the entry of dir in Claude Code's state file.
func FindProject(stateFile, dir string) (ProjectState, error) {
	m, err := readObject(stateFile)
	if err != nil {
		return ProjectState{}, err
	}
	var projects map[string]json.RawMessage
	json.Unmarshal(m["projects"], &projects)
	raw, ok := projects[dir]
	if !ok {
		return ProjectState{}, nil
	}
	var p struct {
		Trusted     bool            `json:"hasTrustDialogAccepted"`
		Servers     json.RawMessage `json:"mcpServers"`
		Approved    []string        `json:"enabledMcpjsonServers"`
		Disapproved []string        `json:"disabledMcpjsonServers"`
	}
	json.Unmarshal(raw, &p)
	st := ProjectState{Known: true, Trusted: p.Trusted, Approved: p.Approved, Disapproved: p.Disapproved}
	st.Server, st.HasServer = serverIn(stateFile+" (projects."+dir+")", p.Servers)
	return st, nil
}

// ApprovesAllProjectServers reports whether the settings file path sets
// enableAllProjectMcpServers.
func ApprovesAllProjectServers(path string) (bool, error) {
	m, err := readObject(path)
	if err != nil {
		return false, err
	}
	return string(m["enableAllProjectMcpServers"]) == "true", nil
}

// FindHooks returns the claudemesh hooks (`<claudemesh binary> hook NAME`)
// registered in the settings file path.
func FindHooks(path string) ([]HookAt, error) {
	m, err := readObject(path)
	if err != nil {
		return nil, err
	}
	var all map[string][]json.RawMessage
	json.Unmarshal(m["hooks"], &all)
	var out []HookAt
	events := make([]string, 0, len(all))
	for e := range all {
		events = append(events, e)
	}
	slices.Sort(events)
	for _, event := range events {
		for _, g := range all[event] {
			for _, c := range groupCommands(g) {
				if bin, name, ok := ourHook(c); ok {
					out = append(out, HookAt{File: path, Event: event, Arg: name, Bin: bin})
				}
			}
		}
	}
	return out, nil
}
