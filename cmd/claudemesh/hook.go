package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/mcp"
)

const hookHelp = `usage: claudemesh hook session-start|prompt

Runs a Claude Code hook, with the hook's JSON on stdin; 'claudemesh install'
registers both:
  session-start   (SessionStart) tells the claudemesh MCP server of the same
                  claude process which session it is really in
  prompt          (UserPromptSubmit) adds one line to the prompt's context
                  while DMs wait unshown; nothing otherwise
`

// runHook runs a Claude Code hook command. What a hook prints on stdout
// goes into Claude's context, so it prints nothing there; problems go to
// stderr and the exit status. Claude Code takes exit status 2 from a hook
// as "block" (a UserPromptSubmit hook's prompt is dropped), so only a
// command line that names no hook of ours exits with it: the hooks
// themselves fail with 1 at most, and the prompt hook never fails.
func runHook(args []string, stdin io.Reader, stdout io.Writer) error {
	sub, args, err := subcommand("hook", args, "session-start", "prompt")
	if err != nil {
		return err
	}
	if _, err := newCmdLine(strings.TrimSpace("hook "+sub), hookHelp, stdout).parse(args); err != nil {
		return err
	}
	if sub == "session-start" {
		return hookSessionStart(stdin)
	}
	return hookPrompt(stdin, stdout)
}

// hookPrompt runs on UserPromptSubmit: when DMs wait unshown it prints one
// line, which Claude Code adds to the context of the prompt; otherwise
// nothing. It never blocks the prompt: a problem is only reported on
// stderr.
func hookPrompt(stdin io.Reader, stdout io.Writer) error {
	io.Copy(io.Discard, io.LimitReader(stdin, 1<<20)) // the prompt itself is not needed
	home, err := config.Home(os.Getenv)
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
	home, err := config.Home(os.Getenv)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(stdin, claudecode.MaxHookInput+1))
	if err != nil {
		return fmt.Errorf("hook session-start: read stdin: %w", err)
	}
	ev, err := claudecode.ParseSessionStart(data)
	if err != nil {
		return fmt.Errorf("hook session-start: %w", err)
	}
	if _, err := mcp.PublishSessionStart(home, ev); err != nil {
		return fmt.Errorf("hook session-start: %w", err)
	}
	return nil
}
