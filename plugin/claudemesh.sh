#!/bin/sh
# Starts the claudemesh binary found on PATH, for the MCP server and the
# hooks of the claudemesh Claude Code plugin. The plugin ships no binary:
# when there is none on the PATH Claude Code runs with, this says so and
# how to fix it, on stderr (Claude Code shows it in /mcp and in the
# hook's error), and exits with 127 like a shell whose command is missing.
if ! command -v claudemesh >/dev/null 2>&1; then
	cat >&2 <<MSG
claudemesh: the claudemesh binary is not on the PATH Claude Code runs with:
  PATH=$PATH
Install it and put it on that PATH, then restart Claude Code:
  go install github.com/claudemesh/claudemesh/cmd/claudemesh@latest
  (it lands in \$(go env GOPATH)/bin, usually ~/go/bin: add that to PATH in
  your shell profile, or link the binary into a directory already on PATH)
Then 'claudemesh doctor' checks the rest of the setup.
MSG
	exit 127
fi
exec claudemesh "$@"
