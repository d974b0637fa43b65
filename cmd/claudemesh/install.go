package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/claudemesh/claudemesh/claudecode"
)

const installHelp = `usage: claudemesh install [--project [--dir DIR]] [--force]

Registers claudemesh with Claude Code: its MCP server and its SessionStart
and UserPromptSubmit hooks, for the user (in ~/.claude.json and
~/.claude/settings.json, with this binary's absolute path) or for a project
(in its .mcp.json and .claude/settings.json, to commit, with claudemesh from
the PATH). Run it while no Claude Code is open.
`

const uninstallHelp = `usage: claudemesh uninstall [--project [--dir DIR]]

Removes what 'claudemesh install' registered with Claude Code, and nothing else.
`

func runInstall(args []string, stdout, stderr io.Writer) error {
	c := newCmdLine("install", installHelp, stdout)
	project, dir := scopeFlags(c)
	force := c.Bool("force", false, "replace an mcpServers.claudemesh entry that runs something other than claudemesh")
	if _, err := c.parse(args); err != nil {
		return err
	}
	reg, err := registration(c, *project, *dir)
	if err != nil {
		return err
	}
	if done, err := pluginRegisters(stdout, reg, *project, *dir); err != nil || done {
		return err
	}
	if strings.Contains(reg.Command, string(filepath.Separator)+"go-build") {
		fmt.Fprintf(stderr, "claudemesh: warning: registering %s, a binary 'go run' will delete; install the binary first (go install ./cmd/claudemesh)\n", reg.Command)
	}
	reports, err := reg.Install(*force)
	printReports(stdout, reports, "claudemesh is already registered; nothing changed")
	if errors.Is(err, claudecode.ErrForeign) {
		return fmt.Errorf("install: %w; run with --force to replace it", err)
	}
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

func runUninstall(args []string, stdout io.Writer) error {
	c := newCmdLine("uninstall", uninstallHelp, stdout)
	project, dir := scopeFlags(c)
	if _, err := c.parse(args); err != nil {
		return err
	}
	reg, err := registration(c, *project, *dir)
	if err != nil {
		return err
	}
	reports, err := reg.Uninstall()
	printReports(stdout, reports, "claudemesh was not registered; nothing changed")
	if err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	return nil
}

func scopeFlags(c *cmdLine) (project *bool, dir *string) {
	project = c.Bool("project", false, "register for the project (its .mcp.json and .claude/settings.json, to commit) instead of for the user")
	dir = c.String("dir", ".", "the project's directory `DIR`; implies --project")
	return project, dir
}

// registration returns where to register: for the user, with this binary's
// absolute path, or for a project, with "claudemesh" from the PATH.
func registration(c *cmdLine, project bool, dir string) (claudecode.Registration, error) {
	c.Visit(func(f *flag.Flag) { project = project || f.Name == "dir" })
	if project {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return claudecode.Registration{}, fmt.Errorf("%s: %w", c.Name(), err)
		}
		if info, err := os.Stat(abs); err != nil || !info.IsDir() {
			return claudecode.Registration{}, usageErrorf(c.Name(), "--dir: %s is not a directory", abs)
		}
		return claudecode.ProjectScope(abs), nil
	}
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return claudecode.Registration{}, fmt.Errorf("%s: find this binary: %w", c.Name(), err)
	}
	return claudecode.UserScope(os.Getenv, self)
}

// pluginRegisters reports whether claudemesh's Claude Code plugin is
// enabled for the user or for the project that reg is about (the current
// directory for a user install): the plugin starts the MCP server and runs
// the hooks, so registering them again would run two servers per session.
// It says so on w, and install changes nothing.
func pluginRegisters(w io.Writer, reg claudecode.Registration, project bool, dir string) (bool, error) {
	if !project {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	enabled, err := claudecode.EnabledPlugin(os.Getenv, abs)
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	if len(enabled) == 0 {
		return false, nil
	}
	for _, e := range enabled {
		fmt.Fprintf(w, "%s: the claudemesh plugin is enabled (%s)\n", e.File, e.ID)
	}
	fmt.Fprintf(w, "claudemesh is registered by its Claude Code plugin, which starts the MCP server and runs the hooks; nothing changed in %s or %s.\n"+
		"To register it with 'claudemesh install' instead, first run: claude plugin uninstall %s\n", reg.MCPFile, reg.SettingsFile, enabled[0].ID)
	return true, nil
}

// printReports prints what was done to each file, and none when nothing
// changed.
func printReports(w io.Writer, reports []claudecode.Report, none string) {
	changed := false
	for _, r := range reports {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: %s\n", r.Path, n)
		}
		changed = changed || r.Changed
	}
	if len(reports) > 0 && !changed {
		fmt.Fprintln(w, none)
	}
}
