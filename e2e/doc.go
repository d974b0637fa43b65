// Package e2e drives the real Claude Code binary against the real claudemesh
// binary: a broker process, `claudemesh mcp` started by Claude Code as its MCP
// server, and a scripted model (e2e/fakemodel) in place of the Messages API,
// all on loopback.
//
// The tests read the path of the Claude Code binary from
// CLAUDEMESH_TEST_CLAUDE (scripts/install-claude installs the pinned release
// and prints it; scripts/test does both) and skip without it, except under
// CI=true, where a missing binary fails them.
package e2e
