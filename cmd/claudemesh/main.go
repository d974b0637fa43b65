// Command claudemesh is the claudemesh binary: the broker, the MCP server
// that Claude Code starts for each session, and tools around them.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/mcp"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/postgres"
	"github.com/claudemesh/claudemesh/store/sqlite"
	"github.com/claudemesh/claudemesh/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(report(os.Stderr, err))
}

// run runs the command in args. Help goes to stdout and returns nil; a
// mistake in the command line returns a *usageError.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "help" || isHelp(args[0])) {
		if len(args) == 1 || args[0] != "help" || args[1] == "help" || isHelp(args[1]) {
			fmt.Fprint(stdout, overview)
			return nil
		}
		// help CMD [SUB] is CMD [SUB] -h.
		args = append(slices.Clone(args[1:]), "-h")
	}
	err := dispatch(ctx, args, stdin, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the help is printed
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("", "no command given")
	}
	switch args[0] {
	case "broker":
		return runBroker(ctx, args[1:], stdout, stderr)
	case "mcp":
		return runMCP(ctx, args[1:], stdin, stdout, stderr)
	case "mesh":
		return runMesh(ctx, args[1:], stdout, stderr)
	case "invite":
		return runInvite(ctx, args[1:], stdout, stderr)
	case "join":
		return runJoin(ctx, args[1:], stdout)
	case "member":
		return runMember(ctx, args[1:], stdout)
	case "hook":
		return runHook(args[1:], stdin, stdout)
	case "install":
		return runInstall(args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(ctx, args[1:], stdout)
	case "uninstall":
		return runUninstall(args[1:], stdout)
	case "launch":
		return runLaunch(args[1:], stdout, stderr)
	case "store":
		return runStore(ctx, args[1:], stdout)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "peers":
		return runPeers(ctx, args[1:], stdout, stderr)
	case "send":
		return runSend(ctx, args[1:], stdin, stdout, stderr)
	case "inbox":
		return runInbox(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "forget":
		return runForget(args[1:], stdout)
	case "version", "--version":
		return runVersion(args[1:], stdout)
	}
	return usageErrorf("", "unknown command %q", args[0])
}

// logFlag defines --log-level; its default is $CLAUDEMESH_LOG_LEVEL.
func logFlag(c *cmdLine, usage string) *string {
	level := new(string)
	choiceVar(c.FlagSet, level, "log-level", "", []string{"debug", "info", "warn", "error"}, usage+" (default $"+config.EnvLogLevel+", else info)")
	return level
}

// newLogger returns a logger to w at level, or where that is "" at the
// level $CLAUDEMESH_LOG_LEVEL names.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	from := "--log-level"
	if level == "" {
		level, from = os.Getenv(config.EnvLogLevel), config.EnvLogLevel
	}
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("%s %q: want debug, info, warn or error", from, level)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

const brokerHelp = `usage: claudemesh broker [FLAGS]

Runs a broker in the foreground until interrupted: the WebSocket server that
routes the DMs of a mesh's sessions, with its SQLite store in --data, or
with --store postgres://... on PostgreSQL, which any number of brokers (the
nodes of a cluster, each named by --node) share and serve as one. It
writes $CLAUDEMESH_HOME/broker.json (its URL and credential) so that the
sessions of this machine find it and are let in.

Durations are written like 90s, 10m, 36h, 7d or 1d12h (d is 24 hours).
`

// sqliteFile is the embedded store's database in the data directory.
const sqliteFile = "claudemesh.db"

// Bounds of the broker's flags. Each refuses what would leave the broker
// unusable rather than replacing it with a default.
const (
	// minFrameSize is the smallest --max-frame: a send frame carrying the
	// largest DM (a box of wire.MaxBoxSize bytes, base64 in the JSON) fits
	// in it, so that no client that keeps to the protocol is cut off.
	minFrameSize = 512 << 10
	// minQueuedBytes is the smallest --max-queued-bytes: one DM of the
	// largest size can always wait.
	minQueuedBytes = wire.MaxBoxSize
)

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCmdLine("broker", brokerHelp, stdout)
	listen := c.String("listen", wire.DefaultListen, "`ADDR` to listen on (host:port; port 0 picks a free one); a non-loopback address needs --tls-cert or --allow-plaintext")
	data := c.String("data", "", "directory `DIR` of the broker's database and credential (default $CLAUDEMESH_HOME/broker)")
	storeURL := c.String("store", "", "keep everything in PostgreSQL at `URL` (postgres://USER@HOST:PORT/DB?...), shared with the other brokers of the cluster, instead of SQLite in --data")
	node := c.String("node", "", "`NAME` of this broker among the nodes of its cluster (default HOST-PORT)")
	var pg postgres.Config
	var lapse time.Duration
	durationVar(c.FlagSet, &lapse, "node-lapse", 5*time.Second, time.Second, 10*time.Minute, "with --store: a node not heard from for this long is dead to the others; its sessions go to grace")
	numberVar(c.FlagSet, &pg.MaxConns, "pg-max-conns", 16, 2, 1000, "", "with --store: connections to PostgreSQL this broker may open")
	durationVar(c.FlagSet, &pg.StatementTimeout, "pg-statement-timeout", 10*time.Second, 100*time.Millisecond, 10*time.Minute, "with --store: longest a statement may run on PostgreSQL")
	var ttl, grace, liveness time.Duration
	durationVar(c.FlagSet, &ttl, "ttl", 7*day, time.Minute, 3650*day, "how long an undelivered DM, and a session not seen, is kept")
	durationVar(c.FlagSet, &grace, "grace", 90*time.Second, time.Second, day, "how long a session whose connection dropped stays reserved (listed as reconnecting) before it is away")
	durationVar(c.FlagSet, &liveness, "liveness", 75*time.Second, 3*time.Second, time.Hour, "close a connection from which nothing, not even a pong, arrived for this long")
	var syncMode string
	choiceVar(c.FlagSet, &syncMode, "sync", "full", []string{"full", "normal"}, "SQLite durability: full (survives power loss) or normal (survives process crashes; faster)")
	logLevel := logFlag(c, "debug, info, warn or error")
	tlsCert := c.String("tls-cert", "", "PEM certificate chain `FILE` to serve wss:// with (with --tls-key)")
	tlsKey := c.String("tls-key", "", "PEM private key `FILE` of --tls-cert")
	var limits broker.Config
	numberVar(c.FlagSet, &limits.SendRate, "rate", 20, 0.01, 1e6, "", "DMs per second one session may send (bursts of twice as many)")
	numberVar(c.FlagSet, &limits.MemberSendRate, "member-rate", 50, 0.01, 1e6, "", "DMs per second all sessions of one member may send together")
	numberVar(c.FlagSet, &limits.MaxQueued, "max-queued", 10000, 1, math.MaxInt, "", "DMs that may wait for one recipient")
	numberVar(c.FlagSet, &limits.MaxQueuedBytes, "max-queued-bytes", 64<<20, minQueuedBytes, math.MaxInt64, "(bytes; 256 KiB, the largest DM)", "bytes of DMs that may wait for one recipient")
	numberVar(c.FlagSet, &limits.MaxQueuedPerSender, "max-queued-per-sender", 1000, 1, math.MaxInt, "", "DMs one sender (a member, or a session without one) may leave waiting for one recipient")
	numberVar(c.FlagSet, &limits.MaxQueuedBytesPerSender, "max-queued-bytes-per-sender", 8<<20, minQueuedBytes, math.MaxInt64, "(bytes; 256 KiB, the largest DM)", "bytes of DMs one sender may leave waiting for one recipient")
	numberVar(c.FlagSet, &limits.MaxMemberConns, "max-member-conns", 32, 1, math.MaxInt, "", "connections one member may have open")
	durationVar(c.FlagSet, &limits.HandshakeTimeout, "handshake-timeout", 10*time.Second, time.Second, 10*time.Minute, "time a new connection has to say hello")
	numberVar(c.FlagSet, &limits.MaxFrameSize, "max-frame", wire.MaxFrameSize, minFrameSize, wire.MaxFrameSize, "(bytes: 512 KiB to 1 MiB)", "largest frame a client may send, in bytes")
	numberVar(c.FlagSet, &limits.MaxGroup, "max-group", 100, 1, wire.MaxBoxes, "", "recipients one DM to a group or to @all may reach; a larger group is refused")
	numberVar(c.FlagSet, &limits.BroadcastBurst, "broadcast-burst", 3, 1, 1000, "", "DMs to @all one session may send at once (then one per --broadcast-every)")
	durationVar(c.FlagSet, &limits.BroadcastEvery, "broadcast-every", 30*time.Second, time.Second, day, "after the burst, one DM to @all per session per this long")
	numberVar(c.FlagSet, &limits.MaxBroadcastBox, "max-broadcast-bytes", 16<<10, 256, wire.MaxBoxSize, "(bytes)", "largest sealed DM to @all, in bytes of each recipient's box")
	allowPlaintext := c.Bool("allow-plaintext", false, "allow --listen on a non-loopback address without TLS: the credential and message metadata cross the network unencrypted")
	metricsListen := c.String("metrics-listen", "", "serve Prometheus metrics at /metrics on `ADDR` (host:port), apart from --listen (default off)")
	pprofOn := c.Bool("pprof", false, "with --metrics-listen: also serve Go's profiler at /debug/pprof/ on that address")
	var drainTimeout time.Duration
	durationVar(c.FlagSet, &drainTimeout, "drain-timeout", 10*time.Second, time.Second, 10*time.Minute, "on SIGTERM or Ctrl-C: how long connections get to finish what they are doing before they are cut")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *pprofOn && *metricsListen == "" {
		return usageErrorf(c.Name(), "--pprof needs --metrics-listen")
	}
	if *storeURL != "" && !isPostgresURL(*storeURL) {
		return usageErrorf(c.Name(), "--store wants a postgres:// or postgresql:// URL")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageErrorf(c.Name(), "--tls-cert and --tls-key go together")
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	home, err := config.Home(os.Getenv)
	if err != nil {
		return err
	}
	if *data == "" {
		*data = filepath.Join(home, "broker")
	}
	var tlsConfig *tls.Config
	if *tlsCert != "" {
		if tlsConfig, err = broker.ServerTLSConfig(*tlsCert, *tlsKey); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}

	// Listen first: a refused address leaves nothing behind on disk.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		if running := broker.RunningOn(*data); running != nil {
			return fmt.Errorf("broker: %w: %w", err, running)
		}
		return fmt.Errorf("broker: %w", err)
	}
	defer ln.Close()
	var metrics *opsServer
	if *metricsListen != "" {
		if metrics, err = listenOps(*metricsListen, *pprofOn, log); err != nil {
			return fmt.Errorf("broker: metrics: %w", err)
		}
		defer metrics.Close()
	}
	url := "ws://" + dialable(ln.Addr()) + wire.Path
	if tlsConfig != nil {
		leaf := tlsConfig.Certificates[0].Leaf
		host, ok := broker.TLSHost(ln.Addr(), leaf)
		if !ok {
			log.Warn("the TLS certificate names no address of this broker: local sessions will refuse it", "host", host, "dns_names", leaf.DNSNames, "ip_addresses", leaf.IPAddresses)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		url = "wss://" + net.JoinHostPort(host, port) + wire.Path
		ln = tls.NewListener(ln, tlsConfig)
	} else if a, _ := ln.Addr().(*net.TCPAddr); a == nil || !a.IP.IsLoopback() {
		if !*allowPlaintext {
			return fmt.Errorf("broker: refusing to listen on %s without TLS: it is not a loopback address, and the credential and message metadata would cross the network unencrypted; "+
				"give --tls-cert and --tls-key, or --allow-plaintext if the network is trusted", *listen)
		}
		log.Warn("PLAINTEXT: the broker listens without TLS on a non-loopback address; anyone on the network path can read the credential, names and message metadata (DMs stay end-to-end encrypted)", "addr", ln.Addr().String())
	}

	if err := checkDataDir(*data); err != nil {
		return err
	}
	// One broker per data directory and per home, for its whole life:
	// before anything is written to either.
	lock, err := broker.LockLocal(home, *data, broker.Holder{PID: os.Getpid(), URL: url, StartedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer lock.Close()
	cfg := limits
	cfg.Logger = log
	cfg.Metrics = metrics.brokerMetrics()
	var st store.Store
	if *storeURL != "" {
		pg.Logger, pg.OnCommit = log, metrics.commitObserver()
		ps, err := postgres.Open(ctx, *storeURL, pg)
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		defer ps.Close()
		if cfg.Token, err = ps.Token(ctx); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		host, _ := os.Hostname()
		st, cfg.Cluster, cfg.Node, cfg.NodeLapse = ps, ps, cmp.Or(*node, host+"-"+port), lapse
	} else {
		if cfg.Token, err = broker.LoadOrCreateToken(*data); err != nil {
			return err
		}
		ss, err := sqlite.Open(ctx, filepath.Join(*data, sqliteFile), sqlite.Config{
			Logger:      log,
			Synchronous: strings.ToUpper(syncMode),
			OnCommit:    metrics.commitObserver(),
		})
		if err != nil {
			return err
		}
		defer ss.Close()
		st = ss
	}
	cfg.Store = st
	cfg.QueueTTL, cfg.Grace, cfg.PongTimeout = ttl, grace, liveness
	srv, err := broker.NewServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	metrics.serve()

	if err := lock.Publish(wire.LocalInfo{URL: url, Token: cfg.Token, PID: os.Getpid(), StartedAt: time.Now().UTC()}); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, srv)
	mux.Handle("/healthz", broker.HealthHandler())
	mux.Handle("/readyz", srv.ReadyHandler())
	hs := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	srv.ConfigureHTTPServer(hs) // --handshake-timeout from accept to hello, HTTP request included
	where := []any{"data", *data}
	if *storeURL != "" {
		where = []any{"store", postgres.Redact(*storeURL), "node", cfg.Node}
	}
	log.Info("broker listening", append(append([]any{"url", url}, where...), "ttl", ttl, "grace", grace, "liveness", liveness)...)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	givingBack, stopGivingBack := context.WithCancel(ctx)
	gaveBack := make(chan struct{})
	go func() {
		defer close(gaveBack)
		giveBackAfterBursts(givingBack, srv.Accepted)
	}()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	stopGivingBack()
	<-gaveBack
	drain(hs, srv, drainTimeout, log)
	if err == nil {
		err = <-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// drain stops the broker within bound: the listener stops accepting,
// every session is told to reconnect elsewhere (shutting_down) and its
// connection gets until bound to finish what it is doing — the DMs being
// stored are stored — before it is cut. The store, closed after, commits
// the writes queued by then.
func drain(hs *http.Server, srv *broker.Server, bound time.Duration, log *slog.Logger) {
	start := time.Now()
	log.Info("broker draining: sessions are told to reconnect elsewhere", "bound", bound)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if hs.Shutdown(ctx) != nil { // stops accepting; does not wait for WebSockets
			hs.Close()
		}
	}()
	srv.Shutdown(ctx) // closes the WebSockets and waits for their goroutines
	<-stopped
	log.Info("broker drained", "took", time.Since(start).Round(time.Millisecond))
}

// dialable turns a listen address into one a local client can dial: an
// unspecified host becomes loopback.
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// checkDataDir makes the broker's data directory if need be and checks
// that the broker can write in it, so that a directory it cannot use is
// reported as such, before the store or the credential try to write in it.
func checkDataDir(dir string) error {
	if info, err := os.Stat(dir); err == nil && !info.IsDir() {
		return fmt.Errorf("broker data directory %s is not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("broker data directory %s cannot be made: %s", dir, pathProblem(dir, err))
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("broker data directory %s is not writable: %s", dir, pathProblem(dir, err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// pathProblem says what went wrong with a path in or at dir, naming the
// path only when it is not dir or a file in it.
func pathProblem(dir string, err error) string {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	if p := filepath.Clean(pe.Path); p == filepath.Clean(dir) || filepath.Dir(p) == filepath.Clean(dir) {
		return pe.Err.Error()
	}
	return pe.Path + ": " + pe.Err.Error()
}

const mcpHelp = `usage: claudemesh mcp [FLAGS]

Runs the MCP stdio server of one Claude Code session. Claude Code starts it
('claudemesh install' registers it); its stdout carries JSON-RPC only, its
logs go to stderr. The session, mesh, name and broker come from the
environment (CLAUDE_CODE_SESSION_ID, CLAUDEMESH_MESH, ...: see the README).
`

func runMCP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newCmdLine("mcp", mcpHelp, stdout)
	logLevel := logFlag(c, "debug, info, warn or error")
	var delivery string
	choiceVar(c.FlagSet, &delivery, "delivery", "", []string{mcp.DeliveryPush, mcp.DeliveryInbox, mcp.DeliveryOff}, "how arriving DMs surface (default $"+config.EnvDelivery+", else push)")
	channel := c.Bool("channel", false, "also send pushed DMs as claude/channel notifications (or $"+config.EnvChannel+"=1)")
	keep := c.String("history", "", "how long the session's local history keeps a DM: a `DURATION` such as 90d, or off (default $"+config.EnvHistory+", else 90d)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	var retention time.Duration
	if *keep != "" {
		var err error
		if retention, err = mcp.ParseHistoryRetention(*keep); err != nil {
			return usageErrorf("mcp", "--history: %v", err)
		}
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := mcp.ConfigFromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	cfg.Logger = log
	if delivery != "" {
		cfg.Delivery = delivery
	}
	cfg.Channel = cfg.Channel || *channel
	if *keep != "" {
		cfg.HistoryRetention = retention
	}
	if os.Getenv(claudecode.EnvClaudeCode) == "1" {
		// Registered twice (install and plugin): one server per session.
		release, err := mcp.ClaimProcess(cfg.Home)
		if errors.Is(err, mcp.ErrDuplicate) {
			log.Warn("claudemesh is registered twice for this session; this server stays idle and offers no tools: keep one registration ('claudemesh doctor' lists them)", "err", err)
			return mcp.ServeDuplicate(ctx, stdin, stdout, log)
		}
		if err != nil {
			return fmt.Errorf("mcp: %w", err)
		}
		defer release()
	}
	s, err := mcp.New(cfg)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	defer s.Close()
	log.Info("claudemesh MCP server started", "name", cfg.Name, "mesh", cfg.Mesh, "key_id", s.Key().ID(), "session", cfg.SessionID)
	return s.Serve(ctx, stdin, stdout)
}
