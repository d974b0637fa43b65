package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/claudemesh/claudemesh/mcp"
)

// runHook runs a Claude Code hook command. What a hook prints on stdout
// goes into Claude's context, so it prints nothing there; problems go to
// stderr and the exit status.
func runHook(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: claudemesh hook session-start|prompt (run by Claude Code with the hook's JSON on stdin)")
	}
	switch args[0] {
	case "session-start":
		return hookSessionStart(stdin)
	case "prompt":
		return hookPrompt(stdin, stdout)
	}
	return fmt.Errorf("hook: unknown hook %q (known: session-start, prompt)", args[0])
}

// hookPrompt runs on UserPromptSubmit: when DMs wait unshown it prints one
// line, which Claude Code adds to the context of the prompt; otherwise
// nothing. It never blocks the prompt: a problem is only reported on
// stderr.
func hookPrompt(stdin io.Reader, stdout io.Writer) error {
	io.Copy(io.Discard, io.LimitReader(stdin, 1<<20)) // the prompt itself is not needed
	home, err := mcp.HomeFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "claudemesh hook prompt:", err)
		return nil
	}
	line, err := mcp.Nudge(home)
	if err != nil {
		fmt.Fprintln(os.Stderr, "claudemesh hook prompt:", err)
		return nil
	}
	if line != "" {
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// hookSessionStart hands the session id Claude Code reports to the
// claudemesh MCP server running under the same claude process, which
// switches to that session's identity.
func hookSessionStart(stdin io.Reader) error {
	home, err := mcp.HomeFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(stdin, 1<<20+1))
	if err != nil {
		return fmt.Errorf("hook session-start: read stdin: %w", err)
	}
	ev, err := mcp.ParseSessionStart(data)
	if err != nil {
		return fmt.Errorf("hook session-start: %w", err)
	}
	if _, err := mcp.PublishSessionStart(home, ev); err != nil {
		return fmt.Errorf("hook session-start: %w", err)
	}
	return nil
}
