package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Exit statuses: a mistake in the command line is told apart from a
// failure of the work itself, so that scripts can tell them apart too.
const (
	exitFailure = 1
	exitUsage   = 2
)

// overview is what `claudemesh help` prints.
const overview = `usage: claudemesh COMMAND [ARGUMENTS] [FLAGS]

commands:
  broker                      run a broker (embedded SQLite store, or --store postgres://... shared by several)
  store copy --to URL         move an embedded broker's data into PostgreSQL
  store backup --to DIR       back up an embedded broker's data, while it runs
  mcp                         run the MCP stdio server of one Claude Code session (Claude Code starts it)
  install                     register claudemesh with Claude Code (for the user, or --project)
  uninstall                   remove what install registered
  doctor [--json]             check what a session here needs: binary, home, broker, registration, hooks
  launch [-- CLAUDE_ARGS]     start claude with a session id claudemesh sees from the start
  hook EVENT                  run a Claude Code hook: session-start, prompt or stop (Claude Code runs it)
  mesh create NAME            create a mesh with members, you its owner (on the broker's machine)
  invite                      print an invite code to your mesh
  invite revoke CODE          cancel an invite code
  join BROKER_URL CODE        enroll this machine in a mesh
  member list                 list the members of your mesh
  member remove NAME          remove a member and close its sessions
  peers                       list the mesh's sessions and people, from this terminal
  send TO [MESSAGE | -]       send a DM from this terminal (the message from stdin without MESSAGE)
  inbox [--follow]            print the DMs sent to this terminal (--follow: as they arrive)
  status ID                   what became of a DM sent from this terminal
  forget SESSION              delete a session's key and its local history of DMs
  bench [SCENARIO]            drive a broker with simulated sessions: DMs/s, latency, memory, reconnects
  help [COMMAND]              print this, or a command's usage
  version                     print the version

Run 'claudemesh help COMMAND' or 'claudemesh COMMAND -h' for a command's arguments and flags.
`

// usageError is a mistake in the command line: an unknown command or flag,
// a missing or bad argument, a flag value out of range. main prints it
// with a hint and exits with exitUsage; every other error is a failure of
// the work (exitFailure).
type usageError struct {
	cmd string // the command as typed after "claudemesh" ("invite revoke"); "" for none
	msg string
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.msg
	}
	return e.cmd + ": " + e.msg
}

func usageErrorf(cmd, format string, a ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, a...)}
}

// report prints err to w and returns the exit status for it: 0 for none,
// exitUsage for a usage error (one line naming the problem, one pointing
// to the usage), exitFailure for anything else.
func report(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		name := strings.TrimSpace("claudemesh " + ue.cmd)
		fmt.Fprintf(w, "%s: %s\nrun '%s -h' for usage\n", name, ue.msg, name)
		return exitUsage
	}
	fmt.Fprintln(w, "claudemesh:", err)
	return exitFailure
}

// cmdLine reads one command's command line. Its help (-h, --help) goes to
// stdout, and parse returns flag.ErrHelp after printing it; a mistake is
// returned as a usageError, never printed here.
type cmdLine struct {
	*flag.FlagSet
	help   string // usage lines and what the command does; the flags are listed after it
	stdout io.Writer
}

// newCmdLine returns the command line of the command name, as typed after
// "claudemesh".
func newCmdLine(name, help string, stdout io.Writer) *cmdLine {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints its errors and the usage to Output on every
	// mistake: silence it, report returns them instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdLine{FlagSet: fs, help: help, stdout: stdout}
}

// parseFlags parses flags up to the first argument that is not one.
func (c *cmdLine) parseFlags(args []string) error {
	err := c.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.printHelp()
		return flag.ErrHelp
	}
	if err != nil {
		return &usageError{cmd: c.Name(), msg: err.Error()}
	}
	return nil
}

// parse parses flags wherever they stand among the positional arguments
// (up to a "--") and checks that the positional arguments are exactly
// the ones named, which it returns in order.
func (c *cmdLine) parse(args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := c.parseFlags(args); err != nil {
			return nil, err
		}
		rest := c.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) > len(names):
		return nil, usageErrorf(c.Name(), "unexpected argument %q", pos[len(names)])
	case len(pos) < len(names):
		return nil, usageErrorf(c.Name(), "missing %s", strings.Join(names[len(pos):], " "))
	}
	return pos, nil
}

// printHelp prints the command's help and its flags with their defaults.
func (c *cmdLine) printHelp() {
	fmt.Fprint(c.stdout, c.help)
	first := true
	c.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(c.stdout, "\nflags:")
			first = false
		}
		arg, usage := flag.UnquoteUsage(f)
		if a, ok := f.Value.(interface{ argName() string }); ok {
			arg = a.argName()
		}
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(c.stdout, "%s\n        %s\n", line, usage)
	})
}

// subcommand splits off the subcommand of a command that has several
// (member list, member remove). A help flag in its place is left in args
// and "" returned, for the command to print the usage of them all.
func subcommand(cmd string, args []string, known ...string) (string, []string, error) {
	want := strings.Join(known, " or ")
	switch {
	case len(args) == 0:
		return "", nil, usageErrorf(cmd, "missing subcommand: %s", want)
	case isHelp(args[0]):
		return "", args, nil
	case !slices.Contains(known, args[0]):
		return "", nil, usageErrorf(cmd, "unknown subcommand %q: want %s", args[0], want)
	}
	return args[0], args[1:], nil
}

// isHelp reports whether arg asks for help, as the flag package takes it.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--h" || arg == "-help" || arg == "--help"
}
