package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/claudemesh/claudemesh/mcp"
)

const versionHelp = `usage: claudemesh version

Prints the version the MCP server reports to Claude Code, then what the
binary was built from: the module version, the version control revision
(+dirty when the working tree had changes) and the Go version.
`

func runVersion(args []string, stdout io.Writer) error {
	if _, err := newCmdLine("version", versionHelp, stdout).parse(args); err != nil {
		return err
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	fmt.Fprint(stdout, versionText(info))
	return nil
}

// versionText describes the build in info, which is nil when the binary
// carries none.
func versionText(info *debug.BuildInfo) string {
	module, revision, modified, goVersion := "", "", false, ""
	if info != nil {
		module, goVersion = info.Main.Version, info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if module == "" {
		module = "(devel)"
	}
	if revision == "" {
		revision = "unknown"
	} else if modified {
		revision += "+dirty"
	}
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	return fmt.Sprintf("claudemesh %s\nmodule:   %s\nrevision: %s\ngo:       %s\n", mcp.Version, module, revision, goVersion)
}
