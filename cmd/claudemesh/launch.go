package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/identity"
)

// launchPlan is how launch runs claude.
type launchPlan struct {
	bin  string   // the binary, as named: "claude" or $CLAUDEMESH_CLAUDE
	argv []string // argv[0] is bin
	env  []string
	note string // the one line printed first
}

// runLaunch replaces this process with claude, so that signals, the
// terminal and the exit status are claude's own.
func runLaunch(args []string, stdout, stderr io.Writer) error {
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	p, err := planLaunch(args, stdout, os.Getenv, os.Environ(), cwd)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(p.bin)
	if err != nil {
		return fmt.Errorf("launch: %w (set %s to Claude Code's binary)", err, config.EnvClaude)
	}
	fmt.Fprintln(stderr, p.note)
	if err := syscall.Exec(path, p.argv, p.env); err != nil {
		return fmt.Errorf("launch: run %s: %w", path, err)
	}
	return nil // not reached
}

// planLaunch works out the claude command line that gives the session its
// identity from the start: claudemesh's MCP server takes the session id
// from CLAUDE_CODE_SESSION_ID, which Claude Code sets to the id that
// --session-id or --resume name. --continue would give the MCP server a
// throwaway id instead, so it is resolved here to the session it would
// continue and passed on as --resume.
const launchHelp = `usage: claudemesh launch [--name N] [--resume ID | --continue] [-- CLAUDE_ARGS...]

Runs Claude Code ($` + config.EnvClaude + ` or claude on the PATH) with a session id that
claudemesh's MCP server sees from the start: a new one, the one of --resume,
or the most recent one of this directory for --continue. CLAUDE_ARGS go to
claude as they are, except the flags that choose the session.
`

func planLaunch(args []string, stdout io.Writer, getenv func(string) string, environ []string, cwd string) (launchPlan, error) {
	c := newCmdLine("launch", launchHelp, stdout)
	name := c.String("name", "", "display `NAME` shown to peers (sets CLAUDEMESH_NAME for the session)")
	resume := c.String("resume", "", "resume the session with this `UUID`")
	cont := c.Bool("continue", false, "continue the most recent session of the current directory")
	if err := c.parseFlags(args); err != nil {
		return launchPlan{}, err
	}
	rest := c.Args()
	if err := checkClaudeArgs(rest); err != nil {
		return launchPlan{}, err
	}
	if *resume != "" && *cont {
		return launchPlan{}, usageErrorf(c.Name(), "--resume and --continue exclude each other")
	}

	sessionFlag, id, note := "--session-id", "", ""
	switch {
	case *resume != "":
		var err error
		if id, err = identity.ParseSessionID(*resume); err != nil {
			return launchPlan{}, usageErrorf(c.Name(), "--resume: %v", err)
		}
		sessionFlag, note = "--resume", "claudemesh: resuming session "+id
	case *cont:
		configDir, err := claudecode.ConfigDir(getenv)
		if err != nil {
			return launchPlan{}, fmt.Errorf("launch: %w", err)
		}
		if id, err = claudecode.LatestSession(configDir, cwd); err != nil {
			return launchPlan{}, fmt.Errorf("launch --continue: %w", err)
		}
		sessionFlag, note = "--resume", "claudemesh: continuing session "+id
	default:
		id = uuid.NewString()
		note = "claudemesh: new session " + id
	}

	bin := getenv(config.EnvClaude)
	if bin == "" {
		bin = "claude"
	}
	return launchPlan{
		bin:  bin,
		argv: append([]string{bin, sessionFlag, id}, rest...),
		env:  launchEnv(environ, *name),
		note: note,
	}, nil
}

// launchEnv is claude's environment: ours with CLAUDEMESH_NAME set to name
// (if given), and without CLAUDEMESH_SESSION_ID. That variable would win
// over the session id Claude Code gives the MCP server; launch never sets
// it, because every claude started from inside the session (a nested
// `claude -p` in a shell command) would inherit it and claim this
// session's identity, and drops an inherited one for the same reason.
func launchEnv(environ []string, name string) []string {
	env := slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		return strings.HasPrefix(kv, config.EnvSessionID+"=") || name != "" && strings.HasPrefix(kv, config.EnvName+"=")
	})
	if name != "" {
		env = append(env, config.EnvName+"="+name)
	}
	return env
}

// sessionFlags are the claude flags that choose the session.
var sessionFlags = []string{"--session-id", "--resume", "-r", "--continue", "-c", "--fork-session"}

// combinedShort matches bundled single-letter flags such as -cp.
var combinedShort = regexp.MustCompile(`^-[a-zA-Z]{2,}$`)

// checkClaudeArgs refuses claude flags that choose the session, which
// launch does itself.
func checkClaudeArgs(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil // what follows is not flags
		}
		name, _, _ := strings.Cut(a, "=")
		switch {
		case slices.Contains(sessionFlags, name):
		case combinedShort.MatchString(a) && strings.ContainsAny(a[1:], "rc"):
		default:
			continue
		}
		return usageErrorf("launch", "claude flag %s chooses the session, which launch does: use 'claudemesh launch --resume ID' or '--continue' instead", a)
	}
	return nil
}
