package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/bench"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/config"
)

const benchHelp = `usage: claudemesh bench [SCENARIO] [--embedded [--sync full|normal] | --broker URL [--broker-pid PID]] [FLAGS]

Drives a broker with simulated sessions and reports how fast DMs go through
it and what it costs. Each simulated session says the hello of its own
ephemeral key, in a fresh mesh bench-<random>, seals each DM to its
recipient's key, opens and checks each DM it receives, reports it received
and acks it in batches, as a session does. It exits with status 1 when a DM
was lost (not delivered by --timeout), duplicated or corrupt.

The broker is the local one (as sessions find it: $CLAUDEMESH_BROKER, else
$CLAUDEMESH_HOME/broker.json, with its credential), the one at --broker, or
with --embedded a throwaway broker in this process on SQLite in a temporary
directory, without rate or queue limits. A broker of your own limits each
session to --rate DMs per second: start it with a high --rate and
--member-rate to measure it.

scenarios:
  throughput   --senders (100) send --count DMs round-robin to --recipients (1),
               each with --window DMs in flight (1: wait for each to be sent)
  fanin        throughput from many senders to one recipient
  fanout       throughput from one sender to --recipients (100)
  latency      one pair in lockstep: a DM, its receipt and ack, then the next
  idle         --sessions (1000) connected sessions; with --embedded or
               --broker-pid, the broker's memory per session (with
               --broker-pid, once connected and --settle later)
  reconnect    --sessions (1000) sessions, each with one DM queued while it was
               away, reconnect at once: time until all are delivered

A progress line goes to stderr every second when it is a terminal (or with
--progress); the result goes to stdout, as a table or with --json as JSON.
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCmdLine("bench", benchHelp, stdout)
	var cfg bench.Config
	var scenario, syncMode string
	choiceVar(c.FlagSet, &scenario, "scenario", "", bench.Scenarios, "the scenario, instead of SCENARIO (default throughput)")
	embedded := c.Bool("embedded", false, "start a throwaway broker in this process instead of using a running one")
	choiceVar(c.FlagSet, &syncMode, "sync", "full", []string{"full", "normal"}, "with --embedded: SQLite durability, as the broker's --sync")
	brokerURL := c.String("broker", "", "`URL` of the broker (default $"+config.EnvBroker+", else the local broker)")
	var pid int
	numberVar(c.FlagSet, &pid, "broker-pid", 0, 0, math.MaxInt32, "", "process id of the broker, for idle to read its resident memory from /proc (Linux), once connected and --settle later; start the broker afresh for it: its memory, once grown, is not promptly given back")
	durationVar(c.FlagSet, &cfg.Settle, "settle", 5*time.Second, 0, 10*time.Minute, "with --broker-pid: how long idle waits, its sessions connected, before it reads the broker's memory again")
	numberVar(c.FlagSet, &cfg.Senders, "senders", 0, 1, 100000, "", "sending sessions (default 100; fanout 1)")
	numberVar(c.FlagSet, &cfg.Recipients, "recipients", 0, 1, 100000, "", "receiving sessions (default 1; fanout 100)")
	numberVar(c.FlagSet, &cfg.Sessions, "sessions", 0, 1, 100000, "", "sessions of idle and reconnect (default 1000)")
	numberVar(c.FlagSet, &cfg.Count, "count", 0, 1, 100000000, "", "DMs to send (default 10000; latency 1000)")
	durationVar(c.FlagSet, &cfg.Duration, "duration", 0, 0, day, "stop sending after this long (0: when --count are sent)")
	durationVar(c.FlagSet, &cfg.Timeout, "timeout", time.Minute, time.Second, day, "deadline of the whole run; what has not arrived by then is lost")
	numberVar(c.FlagSet, &cfg.Window, "window", 1, 1, 10000, "", "DMs each sender keeps in flight")
	numberVar(c.FlagSet, &cfg.AckBatch, "ack-batch", 64, 1, 10000, "", "most DMs a recipient reports received and acks in one frame")
	numberVar(c.FlagSet, &cfg.Size, "size", 100, 0, 60000, "(bytes)", "length of each DM's text")
	// Defaults that depend on the scenario are written in the usage.
	for _, name := range []string{"broker-pid", "senders", "recipients", "sessions", "count", "duration"} {
		c.Lookup(name).DefValue = ""
	}
	asJSON := c.Bool("json", false, "print the result as JSON")
	progress := c.Bool("progress", false, "print progress to stderr even when it is not a terminal")
	cpuProfile := c.String("cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof); with --embedded it holds the broker too")

	var pos []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = args[:1], args[1:]
	}
	if _, err := c.parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	c.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case len(pos) == 1 && set["scenario"]:
		return usageErrorf(c.Name(), "give the scenario as SCENARIO or --scenario, not both")
	case len(pos) == 1 && !slices.Contains(bench.Scenarios, pos[0]):
		return usageErrorf(c.Name(), "unknown scenario %q: want %s", pos[0], strings.Join(bench.Scenarios, ", "))
	case len(pos) == 1:
		scenario = pos[0]
	}
	if *embedded && (*brokerURL != "" || pid != 0) {
		return usageErrorf(c.Name(), "--embedded starts its own broker: no --broker or --broker-pid with it")
	}
	if !*embedded && set["sync"] {
		return usageErrorf(c.Name(), "--sync is for --embedded; a running broker has its own")
	}
	cfg.Scenario = scenario
	if *progress || isTerminal(stderr) {
		cfg.Progress = stderr
	}

	if *embedded {
		dir, err := os.MkdirTemp("", "claudemesh-bench-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		e, err := bench.StartEmbedded(ctx, dir, syncMode)
		if err != nil {
			return err
		}
		defer e.Close()
		cfg.Endpoint = e.Endpoint()
		cfg.Memory, cfg.Settle = bench.HeapMemory, 0 // after a collection: nothing to settle
		cfg.MemoryWhat = "Go heap and stacks of this process after GC: the broker and the sessions' end of each connection"
	} else {
		home, err := config.Home(os.Getenv)
		if err != nil {
			return err
		}
		roots, plaintext, err := config.Transport(os.Getenv)
		if err != nil {
			return err
		}
		override := *brokerURL
		if override == "" {
			override = os.Getenv(config.EnvBroker)
		}
		cfg.Endpoint = client.LocalEndpoint(home, override)
		cfg.RootCAs, cfg.AllowPlaintext = roots, plaintext
		if pid == 0 {
			cfg.Settle = 0
		} else {
			cfg.Memory = bench.ProcessMemory(pid)
			cfg.MemoryWhat = fmt.Sprintf("resident memory of process %d", pid)
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := res.WriteTable(stdout); err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("bench: %d of %d DMs lost, %d duplicated, %d corrupt, %d send errors%s",
			res.Lost, res.Attempted, res.Duplicated, res.Corrupt, res.SendErrors, map[bool]string{true: " (deadline reached)"}[res.TimedOut])
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
