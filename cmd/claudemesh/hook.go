package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/mcp"
	"github.com/claudemesh/claudemesh/wire"
)

const hookHelp = `usage: claudemesh hook session-start|prompt|stop

Runs a Claude Code hook, with the hook's JSON on stdin; 'claudemesh install'
registers all three:
  session-start   (SessionStart) tells the claudemesh MCP server of the same
                  claude process which session it is really in
  prompt          (UserPromptSubmit) adds one line to the prompt's context
                  while DMs wait unshown, nothing otherwise; and tells peers
                  the session is working
  stop            (Stop) tells peers the session is idle
`

// runHook runs a Claude Code hook command. What a hook prints on stdout
// goes into Claude's context, so it prints nothing there; problems go to
// stderr and the exit status. Claude Code takes exit status 2 from a hook
// as "block" (a UserPromptSubmit hook's prompt is dropped), so only a
// command line that names no hook of ours exits with it: the hooks
// themselves fail with 1 at most, and the prompt hook never fails.
func runHook(args []string, stdin io.Reader, stdout io.Writer) error {
	sub, args, err := subcommand("hook", args, "session-start", "prompt", "stop")
	if err != nil {
		return err
	}
	if _, err := newCmdLine(strings.TrimSpace("hook "+sub), hookHelp, stdout).parse(args); err != nil {
		return err
	}
	switch sub {
	case "session-start":
		return hookSessionStart(stdin)
	case "stop":
		return hookStop(stdin)
	}
	return hookPrompt(stdin, stdout)
}

// hookStop runs on Stop: the turn ended, so the session is idle. Like the
// prompt hook it never fails the turn: a problem goes to stderr.
func hookStop(stdin io.Reader) error {
	io.Copy(io.Discard, io.LimitReader(stdin, 1<<20))
	publishActivity(wire.Idle, "stop")
	return nil
}

// publishActivity tells the MCP server of this claude process that the
// session is working or idle; problems go to stderr only.
func publishActivity(activity, hook string) {
	home, err := config.Home(os.Getenv)
	if err == nil {
		err = mcp.PublishActivity(home, activity)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "claudemesh hook %s: %v\n", hook, err)
	}
}

// hookPrompt runs on UserPromptSubmit: when DMs wait unshown it prints one
// line, which Claude Code adds to the context of the prompt; otherwise
// nothing. It never blocks the prompt: a problem is only reported on
// stderr.
func hookPrompt(stdin io.Reader, stdout io.Writer) error {
	io.Copy(io.Discard, io.LimitReader(stdin, 1<<20)) // the prompt itself is not needed
	publishActivity(wire.Working, "prompt")
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
