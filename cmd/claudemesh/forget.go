package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/history"
	"github.com/claudemesh/claudemesh/identity"
)

const forgetHelp = `usage: claudemesh forget SESSION [--mesh MESH]

Deletes what this machine keeps of a Claude Code session in a mesh: its key
(the session's identity; a later run of the session gets a new one) and its
local history of DMs and asks. SESSION is the session's UUID. DMs queued for
the session at the broker stay there until they expire. Stop the session
first: a running session keeps its key and history open.
`

func runForget(args []string, stdout io.Writer) error {
	c := newCmdLine("forget", forgetHelp, stdout)
	mesh := c.String("mesh", "", "the `MESH` (default $"+config.EnvMesh+", else "+config.DefaultMesh+")")
	pos, err := c.parse(args, "SESSION")
	if err != nil {
		return err
	}
	*mesh = cmp.Or(*mesh, os.Getenv(config.EnvMesh), config.DefaultMesh)
	// The names are checked before any path is built from them, so that
	// nothing outside the keystore can be named.
	if err := identity.ValidateMesh(*mesh); err != nil {
		return usageErrorf("forget", "--mesh: %v", err)
	}
	id, err := identity.ParseSessionID(pos[0])
	if err != nil {
		return usageErrorf("forget", "SESSION: %v", err)
	}
	home, err := config.Home(os.Getenv)
	if err != nil {
		return err
	}
	keyFile, err := identity.OpenKeystore(home, nil).Path(*mesh, id)
	if err != nil {
		return err
	}
	found := false
	for _, p := range []string{keyFile, filepath.Join(filepath.Dir(keyFile), id+".lock")} {
		switch err := os.Remove(p); {
		case err == nil:
			found = found || p == keyFile
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("forget session %s: %w", id, err)
		}
	}
	hist := history.FileFor(keyFile)
	if _, err := os.Lstat(hist); err == nil {
		found = true
	}
	if err := history.Remove(hist); err != nil {
		return fmt.Errorf("forget session %s: %w", id, err)
	}
	if !found {
		fmt.Fprintf(stdout, "Nothing kept for session %s in mesh %q.\n", id, *mesh)
		return nil
	}
	fmt.Fprintf(stdout, "Forgot session %s in mesh %q: its key and its history are deleted.\n", id, *mesh)
	return nil
}
