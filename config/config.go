// Package config reads claudemesh's own environment: the CLAUDEMESH_*
// variables that say where this machine keeps claudemesh's files (Home),
// how a session or a command reaches a broker (Transport), and which mesh,
// name, session and delivery mode the MCP server of a session uses. The
// commands (cmd/claudemesh) and the MCP server (mcp.ConfigFromEnv) read
// them through this package, so that each variable means one thing
// everywhere. Claude Code's own variables are named in package claudecode.
//
// Every reader takes getenv (os.Getenv outside tests).
package config

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/claudemesh/claudemesh/client"
)

// claudemesh's environment variables.
const (
	// EnvHome is the directory of claudemesh's files on this machine:
	// session keys, memberships, the local broker's broker.json, the run
	// files of the hooks. Default ~/.claudemesh.
	EnvHome = "CLAUDEMESH_HOME"
	// EnvBroker is the URL of the broker a session connects to; unset, the
	// broker of the mesh this machine joined, else the local broker of
	// broker.json.
	EnvBroker = "CLAUDEMESH_BROKER"
	// EnvMesh is the mesh a session joins and the member commands act on;
	// default DefaultMesh for a session.
	EnvMesh = "CLAUDEMESH_MESH"
	// EnvName is the display name a session presents to its peers.
	EnvName = "CLAUDEMESH_NAME"
	// EnvSessionID pins a session's id, over the one Claude Code gives.
	EnvSessionID = "CLAUDEMESH_SESSION_ID"
	// EnvDelivery is how DMs surface in a session: push, inbox or off.
	EnvDelivery = "CLAUDEMESH_DELIVERY"
	// EnvChannel=1 also sends pushed DMs as claude/channel notifications.
	EnvChannel = "CLAUDEMESH_CHANNEL"
	// EnvGroups lists groups (comma-separated) the session joins when its
	// MCP server starts.
	EnvGroups = "CLAUDEMESH_GROUPS"
	// EnvCA names a PEM file of CA certificates trusted, besides the
	// system's roots, to sign a wss:// broker's certificate.
	EnvCA = "CLAUDEMESH_CA"
	// EnvAllowPlaintext=1 allows ws:// to a broker that is not on a
	// loopback address.
	EnvAllowPlaintext = "CLAUDEMESH_ALLOW_PLAINTEXT"
	// EnvHistory is how long a session keeps its DMs in its local
	// history: a duration (90d, 36h) or off; unset, 90 days.
	EnvHistory = "CLAUDEMESH_HISTORY"
	// EnvLogLevel is the log level of a command run without --log-level.
	EnvLogLevel = "CLAUDEMESH_LOG_LEVEL"
	// EnvClaude is the Claude Code binary `claudemesh launch` runs.
	EnvClaude = "CLAUDEMESH_CLAUDE"
)

// DefaultMesh is the mesh of a session when EnvMesh is unset.
const DefaultMesh = "default"

// defaultHomeDir is the home under the user's home directory.
const defaultHomeDir = ".claudemesh"

// Home returns the absolute path of CLAUDEMESH_HOME, or ~/.claudemesh.
func Home(getenv func(string) string) (string, error) {
	if h := getenv(EnvHome); h != "" {
		return filepath.Abs(h)
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory (set %s): %w", EnvHome, err)
	}
	return filepath.Join(dir, defaultHomeDir), nil
}

// Transport reads how to reach a broker: the extra CA certificates of
// CLAUDEMESH_CA (added to the system's roots; nil when unset) and
// CLAUDEMESH_ALLOW_PLAINTEXT.
func Transport(getenv func(string) string) (roots *x509.CertPool, allowPlaintext bool, err error) {
	if f := getenv(EnvCA); f != "" {
		if roots, err = client.LoadRootCAs(f); err != nil {
			return nil, false, fmt.Errorf("%s: %w", EnvCA, err)
		}
	}
	allowPlaintext, err = Bool(getenv, EnvAllowPlaintext)
	return roots, allowPlaintext, err
}

// Bool reads the yes/no variable name: 1 or true; 0, false or unset.
// Anything else is an error that names the variable.
func Bool(getenv func(string) string, name string) (bool, error) {
	switch v := getenv(name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, fmt.Errorf("%s: %q is not 1 or 0", name, v)
	}
}
