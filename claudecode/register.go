package claudecode

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ServerName is the name under which claudemesh's MCP server is registered;
// Claude Code names its tools mcp__claudemesh__<tool>.
const ServerName = "claudemesh"

// ProjectCommand is the command a project's files use to start claudemesh:
// the binary found on each teammate's PATH.
const ProjectCommand = "claudemesh"

// hooks are the Claude Code hooks claudemesh registers: on each event, the
// command `claudemesh hook <arg>`. Install adds one group per event, with no
// matcher, so that the hook runs on every occurrence.
var hooks = []struct{ event, arg string }{
	{"SessionStart", "session-start"}, // startup, resume, clear, compact
	{"UserPromptSubmit", "prompt"},    // a line of context when DMs are unread; the session is working
	{"Stop", "stop"},                  // the turn ended: the session is idle
}

// ErrForeign reports that the place where claudemesh would register holds
// an entry it did not write: an mcpServers.claudemesh entry that runs
// something other than claudemesh. Install replaces it only when forced.
var ErrForeign = errors.New("already registered differently")

// Registration says where and how claudemesh is registered with Claude
// Code: the file whose "mcpServers" lists its MCP server, the settings file
// whose "hooks" run `claudemesh hook`, and the command that starts the
// claudemesh binary.
type Registration struct {
	MCPFile      string
	SettingsFile string
	Command      string
}

// UserScope is the registration for every project of the user: the MCP
// server in Claude Code's state file (see StateFile) and the hooks in the
// user's settings. command should be the absolute path of the binary.
func UserScope(getenv func(string) string, command string) (Registration, error) {
	state, err := StateFile(getenv)
	if err != nil {
		return Registration{}, err
	}
	config, err := ConfigDir(getenv)
	if err != nil {
		return Registration{}, err
	}
	return Registration{MCPFile: state, SettingsFile: SettingsFile(config), Command: command}, nil
}

// ProjectScope is the registration shared with everyone who works in the
// project directory dir: its .mcp.json and .claude/settings.json, starting
// ProjectCommand.
func ProjectScope(dir string) Registration {
	return Registration{
		MCPFile:      filepath.Join(dir, ".mcp.json"),
		SettingsFile: filepath.Join(dir, ".claude", "settings.json"),
		Command:      ProjectCommand,
	}
}

// Report says what Install or Uninstall did to one file.
type Report struct {
	Path    string
	Changed bool     // the file was written
	Notes   []string // what was changed or found, one line each
}

// serverEntry is claudemesh's MCP server entry, its keys in this order.
func serverEntry(command string) json.RawMessage {
	e := &object{}
	e.set("type", encode("stdio"))
	e.set("command", encode(command))
	e.set("args", encode([]string{"mcp"}))
	e.set("alwaysLoad", encode(true))
	return e.marshal()
}

// hookCommand is the shell command of the hook that runs
// `claudemesh hook arg` with the binary command.
func hookCommand(command, arg string) string {
	return shellQuote(command) + " hook " + arg
}

// Install registers claudemesh: its MCP server and its hooks. Entries that
// are already there are left as they are, so a second Install changes
// nothing; entries of a claudemesh binary at another path (it moved) are
// updated. An mcpServers.claudemesh entry that runs something other than
// claudemesh makes Install fail with an error matching ErrForeign and write
// nothing, unless force is set: then it is replaced. Every file is checked before any is written. Everything else in
// the files is kept, key order included.
func (r Registration) Install(force bool) ([]Report, error) {
	return r.edit(func(mcp, settings *jsonFile) error {
		if err := r.installServer(mcp, force); err != nil {
			return err
		}
		return r.installHooks(settings, force)
	})
}

// Uninstall removes what Install adds: the mcpServers.claudemesh entry if it
// runs a claudemesh binary as `claudemesh mcp`, every hook that runs
// `<claudemesh binary> hook <name>`, and the hook groups, event lists and
// "hooks" or "mcpServers" objects that this leaves empty. Nothing else is
// touched; with nothing installed, nothing is written.
func (r Registration) Uninstall() ([]Report, error) {
	return r.edit(func(mcp, settings *jsonFile) error {
		if err := uninstallServer(mcp); err != nil {
			return err
		}
		return uninstallHooks(settings)
	})
}

// edit reads both files, lets change edit them, then writes those it
// changed.
func (r Registration) edit(change func(mcp, settings *jsonFile) error) ([]Report, error) {
	mcp, err := readJSONFile(r.MCPFile)
	if err != nil {
		return nil, err
	}
	files := []*jsonFile{mcp}
	settings := mcp
	if r.SettingsFile != r.MCPFile {
		if settings, err = readJSONFile(r.SettingsFile); err != nil {
			return nil, err
		}
		files = append(files, settings)
	}
	if err := change(mcp, settings); err != nil {
		return nil, err
	}
	var reports []Report
	for _, f := range files {
		reports = append(reports, Report{Path: f.path, Notes: f.notes})
	}
	for i, f := range files {
		if !f.dirty {
			continue
		}
		if err := f.write(); err != nil {
			return reports, err
		}
		reports[i].Changed = true
	}
	return reports, nil
}

func (r Registration) installServer(f *jsonFile, force bool) error {
	servers, err := f.root.field("mcpServers", "mcpServers in "+f.path)
	if err != nil {
		return err
	}
	want := shellQuote(r.Command) + " mcp"
	note := "added mcpServers." + ServerName + ": " + want
	if cur, ok := servers.get(ServerName); ok {
		got := describeServer(cur)
		switch {
		case runs(cur, r.Command):
			f.found("mcpServers." + ServerName + " is already registered: " + want)
			return nil
		case isOurServer(cur):
			// Ours, from a binary that has moved since.
			note = "updated mcpServers." + ServerName + " (it ran " + got + "): " + want
		case !force:
			return fmt.Errorf("%s: mcpServers.%s runs %s, not %s: %w", f.path, ServerName, got, want, ErrForeign)
		default:
			note = "replaced mcpServers." + ServerName + " (it ran " + got + "): " + want
		}
	}
	servers.set(ServerName, serverEntry(r.Command))
	f.root.set("mcpServers", servers.marshal())
	f.changed(note)
	return nil
}

// describeServer returns an MCP server entry's command line, or what else
// the entry is, for messages.
func describeServer(raw json.RawMessage) string {
	var e struct {
		Type    string   `json:"type"`
		Command string   `json:"command"`
		Args    []string `json:"args"`
		URL     string   `json:"url"`
	}
	switch {
	case json.Unmarshal(raw, &e) != nil:
		return "an entry that is not a JSON object with string args: " + string(raw)
	case e.Command == "" && e.URL != "":
		return "a " + e.Type + " server at " + e.URL
	case e.Type != "" && e.Type != "stdio":
		return "a " + e.Type + " server"
	}
	words := make([]string, 0, 1+len(e.Args))
	for _, w := range append([]string{e.Command}, e.Args...) {
		words = append(words, shellQuote(w))
	}
	return strings.Join(words, " ")
}

// stdioServer is the part of an MCP server entry that says what it runs.
type stdioServer struct {
	Type    string   `json:"type"`
	Command string   `json:"command"`
	Args    []string `json:"args"`
}

// runs reports whether an MCP server entry runs `command mcp`.
func runs(raw json.RawMessage, command string) bool {
	var e stdioServer
	return json.Unmarshal(raw, &e) == nil && (e.Type == "" || e.Type == "stdio") &&
		e.Command == command && slices.Equal(e.Args, []string{"mcp"})
}

// isOurServer reports whether an MCP server entry starts a claudemesh
// binary as `claudemesh mcp`, the shape Install writes.
func isOurServer(raw json.RawMessage) bool {
	var e stdioServer
	if json.Unmarshal(raw, &e) != nil || e.Type != "" && e.Type != "stdio" {
		return false
	}
	return filepath.Base(e.Command) == "claudemesh" && slices.Equal(e.Args, []string{"mcp"})
}

func uninstallServer(f *jsonFile) error {
	raw, ok := f.root.get("mcpServers")
	if !ok {
		f.found("no mcpServers." + ServerName + " to remove")
		return nil
	}
	servers, err := parseObject(raw)
	if err != nil {
		return fmt.Errorf("%s: mcpServers is not a JSON object", f.path)
	}
	cur, ok := servers.get(ServerName)
	switch {
	case !ok:
		f.found("no mcpServers." + ServerName + " to remove")
		return nil
	case !isOurServer(cur):
		f.found("left mcpServers." + ServerName + " alone: it runs " + describeServer(cur) + ", not claudemesh mcp")
		return nil
	}
	f.changed("removed mcpServers." + ServerName + ": " + describeServer(cur))
	servers.delete(ServerName)
	if servers.len() == 0 {
		f.root.delete("mcpServers")
		f.changed("removed mcpServers, now empty")
	} else {
		f.root.set("mcpServers", servers.marshal())
	}
	return nil
}

func (r Registration) installHooks(f *jsonFile, force bool) error {
	all, err := f.root.field("hooks", "hooks in "+f.path)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		want := hookCommand(r.Command, h.arg)
		var groups []json.RawMessage
		if raw, ok := all.get(h.event); ok {
			if groups, err = parseArray(raw); err != nil {
				return fmt.Errorf("%s: hooks.%s is not a JSON array", f.path, h.event)
			}
		}
		var present bool
		var others []string
		for _, g := range groups {
			for _, c := range groupCommands(g) {
				bin, name, ok := ourHook(c)
				switch {
				case !ok || name != h.arg:
				case bin == r.Command:
					present = true
				default:
					others = append(others, c)
				}
			}
		}
		// others are claudemesh hooks from a binary that has moved since:
		// replaced by this one.
		if present && len(others) == 0 {
			f.found(h.event + " hook is already registered: " + want)
			continue
		}
		if len(others) > 0 {
			groups = removeHooks(groups, func(c string) bool { return slices.Contains(others, c) })
			f.changed("removed " + h.event + " hook: " + strings.Join(others, ", "))
		}
		if !present {
			g := &object{}
			g.set("hooks", marshalArray([]json.RawMessage{hookEntry(want)}))
			groups = append(groups, g.marshal())
			f.changed("added " + h.event + " hook: " + want)
		}
		all.set(h.event, marshalArray(groups))
		f.root.set("hooks", all.marshal())
	}
	return nil
}

// hookEntry is one command hook, its keys in this order.
func hookEntry(command string) json.RawMessage {
	e := &object{}
	e.set("type", encode("command"))
	e.set("command", encode(command))
	return e.marshal()
}

// groupCommands returns the commands of a hook group's command hooks.
func groupCommands(group json.RawMessage) []string {
	var g struct {
		Hooks []json.RawMessage `json:"hooks"`
	}
	if json.Unmarshal(group, &g) != nil {
		return nil
	}
	var cmds []string
	for _, h := range g.Hooks {
		if c, ok := hookCommandOf(h); ok {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// hookCommandOf returns the command of a command hook.
func hookCommandOf(hook json.RawMessage) (string, bool) {
	var h struct {
		Type    string `json:"type"`
		Command string `json:"command"`
	}
	if json.Unmarshal(hook, &h) != nil || h.Type != "command" {
		return "", false
	}
	return h.Command, true
}

// removeHooks removes from groups the command hooks whose command matches,
// and the groups that this leaves without hooks.
func removeHooks(groups []json.RawMessage, match func(command string) bool) []json.RawMessage {
	var kept []json.RawMessage
	for _, g := range groups {
		obj, err := parseObject(g)
		if err != nil {
			kept = append(kept, g)
			continue
		}
		raw, ok := obj.get("hooks")
		if !ok {
			kept = append(kept, g)
			continue
		}
		list, err := parseArray(raw)
		if err != nil {
			kept = append(kept, g)
			continue
		}
		var left []json.RawMessage
		for _, h := range list {
			if c, ok := hookCommandOf(h); ok && match(c) {
				continue
			}
			left = append(left, h)
		}
		switch {
		case len(left) == len(list):
			kept = append(kept, g)
		case len(left) > 0:
			obj.set("hooks", marshalArray(left))
			kept = append(kept, obj.marshal())
		}
		// A group emptied by the removal goes.
	}
	return kept
}

func uninstallHooks(f *jsonFile) error {
	raw, ok := f.root.get("hooks")
	if !ok {
		f.found("no claudemesh hooks to remove")
		return nil
	}
	all, err := parseObject(raw)
	if err != nil {
		return fmt.Errorf("%s: hooks is not a JSON object", f.path)
	}
	var removedAny bool
	for _, m := range slices.Clone(all.members) {
		groups, err := parseArray(m.value)
		if err != nil {
			continue // not a list of hook groups: none of ours
		}
		var removed []string
		groups = removeHooks(groups, func(c string) bool {
			if _, _, ok := ourHook(c); ok {
				removed = append(removed, c)
				return true
			}
			return false
		})
		if len(removed) == 0 {
			continue
		}
		removedAny = true
		f.changed("removed " + m.key + " hook: " + strings.Join(removed, ", "))
		if len(groups) == 0 {
			all.delete(m.key)
			f.changed("removed hooks." + m.key + ", now empty")
		} else {
			all.set(m.key, marshalArray(groups))
		}
	}
	switch {
	case !removedAny:
		f.found("no claudemesh hooks to remove")
	case all.len() == 0:
		f.root.delete("hooks")
		f.changed("removed hooks, now empty")
	default:
		f.root.set("hooks", all.marshal())
	}
	return nil
}

var hookArg = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// ourHook reports whether a hook command runs `claudemesh hook <name>` with
// a binary named claudemesh, and returns the binary and the name.
func ourHook(command string) (bin, name string, ok bool) {
	i := strings.LastIndex(command, " hook ")
	if i < 0 {
		return "", "", false
	}
	bin, ok = shellWord(command[:i])
	name = command[i+len(" hook "):]
	if !ok || filepath.Base(bin) != "claudemesh" || !hookArg.MatchString(name) {
		return "", "", false
	}
	return bin, name, true
}

// shellQuote quotes s as one word for a POSIX shell, leaving it as it is
// when it needs no quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !isShellSafe(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isShellSafe(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._-+,:@%", r)
}

// shellWord undoes shellQuote and the other simple ways of writing one word
// for a POSIX shell: backslash escapes, single and double quotes. It
// reports false for anything else (several words, expansions).
func shellWord(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", false
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '$', '`':
					return "", false
				case '\\':
					if i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0 {
						i++
					}
				}
				b.WriteByte(s[i])
			}
			if i == len(s) {
				return "", false
			}
		case '\\':
			if i+1 == len(s) {
				return "", false
			}
			i++
			b.WriteByte(s[i])
		case ' ', '\t', '\n', '$', '`', ';', '&', '|', '<', '>', '(', ')', '*', '?', '[', '~':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), b.Len() > 0
}
