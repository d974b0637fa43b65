package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mark3labs/mcp-go/server"

	"github.com/claudemesh/claudemesh/claudecode"
)

// One MCP server per Claude Code process. claudemesh can be registered
// twice for one session — by `claudemesh install` (user or project) and by
// the claudemesh plugin — and Claude Code then starts two servers, which
// would present the same session twice. The first to start takes a lock
// named after the claude process,
//
//	$CLAUDEMESH_HOME/run/mcp-<claude pid>-<claude start time>.json
//
// held for its whole life (the kernel drops it when the process ends); a
// second server that finds it held serves nothing but instructions saying
// why (ServeDuplicate), and never connects to the broker.

const mcpLockKind = "mcp"

// ErrDuplicate reports that another claudemesh MCP server runs under the
// same Claude Code process.
var ErrDuplicate = errors.New("another claudemesh MCP server runs under this Claude Code process")

// ClaimProcess takes the place of the one claudemesh MCP server of the
// Claude Code process that runs the caller. It returns a release function,
// or an error matching ErrDuplicate when another server holds the place.
// Where there is no Claude Code process to find, it claims nothing and
// succeeds.
func ClaimProcess(home string) (release func(), err error) {
	proc, err := claudecode.FindProcess()
	if err != nil {
		return func() {}, nil
	}
	dir := filepath.Join(home, runDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("claim the MCP server's place: %w", err)
	}
	claudecode.RemoveGone(dir, mcpLockKind)
	path := filepath.Join(dir, proc.FileName(mcpLockKind))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("claim the MCP server's place: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (claude pid %d, lock %s)", ErrDuplicate, proc.PID, path)
		}
		return nil, fmt.Errorf("claim the MCP server's place: lock %s: %w", path, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "{\"pid\":%d}\n", os.Getpid())
	// The file stays while its claude process lives (removing it would
	// let two servers lock two different files); RemoveGone deletes it
	// after.
	return func() { f.Close() }, nil
}

// duplicateInstructions is all that a duplicate server tells the model.
const duplicateInstructions = `This claudemesh server is a duplicate and offers no tools: claudemesh is registered twice for this session (by 'claudemesh install' and by the claudemesh plugin, or in two settings files), and another claudemesh server of this session is the active one. Use that server's tools. To remove the duplicate, keep one registration: 'claudemesh uninstall' (and 'claudemesh uninstall --project' in a project that has it) when the plugin is installed, or 'claude plugin uninstall claudemesh'. 'claudemesh doctor' lists the registrations.`

// ServeDuplicate speaks MCP over in and out as a server with no tools whose
// instructions explain that it is a duplicate, until in ends or ctx is
// cancelled. It touches no broker and no key.
func ServeDuplicate(ctx context.Context, in io.Reader, out io.Writer, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := server.NewMCPServer("claudemesh", Version, server.WithToolCapabilities(false), server.WithInstructions(duplicateInstructions), server.WithRecovery())
	stdio := server.NewStdioServer(m)
	stdio.SetErrorLogger(log.New(slogWriter{logger}, "", 0))
	err := stdio.Listen(ctx, in, out)
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
