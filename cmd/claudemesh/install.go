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

func runInstall(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: claudemesh install [--project [--dir DIR]] [--force]")
		fmt.Fprintln(stderr, "\nRegisters claudemesh with Claude Code: its MCP server and its SessionStart hook.")
		fs.PrintDefaults()
	}
	project, dir := scopeFlags(fs)
	force := fs.Bool("force", false, "replace an mcpServers.claudemesh entry that runs something other than claudemesh")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reg, err := registration(fs, *project, *dir)
	if err != nil {
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

func runUninstall(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("uninstall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: claudemesh uninstall [--project [--dir DIR]]")
		fmt.Fprintln(stderr, "\nRemoves what 'claudemesh install' registered with Claude Code, and nothing else.")
		fs.PrintDefaults()
	}
	project, dir := scopeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	reg, err := registration(fs, *project, *dir)
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

func scopeFlags(fs *flag.FlagSet) (project *bool, dir *string) {
	project = fs.Bool("project", false, "register for the project (its .mcp.json and .claude/settings.json, to commit) instead of for the user")
	dir = fs.String("dir", ".", "the project's directory; implies --project")
	return project, dir
}

// registration returns where to register: for the user, with this binary's
// absolute path, or for a project, with "claudemesh" from the PATH.
func registration(fs *flag.FlagSet, project bool, dir string) (claudecode.Registration, error) {
	if fs.NArg() > 0 {
		return claudecode.Registration{}, fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { project = project || f.Name == "dir" })
	if project {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return claudecode.Registration{}, fmt.Errorf("%s: %w", fs.Name(), err)
		}
		if info, err := os.Stat(abs); err != nil || !info.IsDir() {
			return claudecode.Registration{}, fmt.Errorf("%s: %s is not a directory", fs.Name(), abs)
		}
		return claudecode.ProjectScope(abs), nil
	}
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return claudecode.Registration{}, fmt.Errorf("%s: find this binary: %w", fs.Name(), err)
	}
	return claudecode.UserScope(os.Getenv, self)
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
