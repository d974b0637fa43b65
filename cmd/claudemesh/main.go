// Command claudemesh is the claudemesh binary: the broker, the MCP server
// that Claude Code starts for each session, and tools around them.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/mcp"
	"github.com/claudemesh/claudemesh/store/sqlite"
)

const usage = `usage: claudemesh <command> [flags]

commands:
  broker    run a broker (embedded SQLite store; loopback by default)
  mcp       run the MCP stdio server for one Claude Code session
  install   register claudemesh with Claude Code (user, or --project)
  uninstall remove what install registered
  launch    start claude with a session id claudemesh sees from the start
  hook      run a Claude Code hook (session-start, prompt)
  mesh      mesh create NAME: a mesh with members, you its owner (on the broker's machine)
  invite    print an invite code for your mesh (invite revoke CODE to cancel one)
  join      join BROKER_URL CODE: enroll this machine in a mesh
  member    member list | remove NAME
  version   print the version

Run 'claudemesh <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "claudemesh:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "broker":
		return runBroker(ctx, args[1:], stderr)
	case "mcp":
		return runMCP(ctx, args[1:], stdin, stdout, stderr)
	case "mesh":
		return runMesh(ctx, args[1:], stdout, stderr)
	case "invite":
		return runInvite(ctx, args[1:], stdout, stderr)
	case "join":
		return runJoin(ctx, args[1:], stdout, stderr)
	case "member":
		return runMember(ctx, args[1:], stdout, stderr)
	case "hook":
		return runHook(args[1:], stdin, stdout)
	case "install":
		return runInstall(args[1:], stdout, stderr)
	case "uninstall":
		return runUninstall(args[1:], stdout, stderr)
	case "launch":
		return runLaunch(args[1:], stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "claudemesh", mcp.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: %w", level, err)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runBroker(ctx context.Context, args []string, stderr io.Writer) error {
	home, err := mcp.HomeFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", broker.DefaultListen, "address to listen on (host:port; port 0 picks a free one); a non-loopback address needs --tls-cert or --allow-plaintext")
	data := fs.String("data", filepath.Join(home, "broker"), "directory of the broker's database and credential")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long an undelivered DM is kept")
	grace := fs.Duration("grace", 90*time.Second, "how long a session whose connection dropped stays reserved (listed as reconnecting) before it is offline")
	liveness := fs.Duration("liveness", 75*time.Second, "close a connection from which nothing, not even a pong, arrived for this long")
	syncMode := fs.String("sync", "full", "SQLite durability: full (survives power loss) or normal (survives process crashes; faster)")
	logLevel := fs.String("log-level", os.Getenv("CLAUDEMESH_LOG_LEVEL"), "debug, info, warn or error")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain to serve wss:// with (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	var limits broker.Config
	fs.Float64Var(&limits.SendRate, "rate", 20, "DMs per second one session may send (bursts of twice as many)")
	fs.Float64Var(&limits.MemberSendRate, "member-rate", 50, "DMs per second all sessions of one member may send together")
	fs.IntVar(&limits.MaxQueued, "max-queued", 10000, "DMs that may wait for one recipient")
	fs.Int64Var(&limits.MaxQueuedBytes, "max-queued-bytes", 64<<20, "bytes of DMs that may wait for one recipient")
	fs.IntVar(&limits.MaxMemberConns, "max-member-conns", 32, "connections one member may have open")
	fs.DurationVar(&limits.HandshakeTimeout, "handshake-timeout", 10*time.Second, "time a new connection has to say hello")
	fs.IntVar(&limits.MaxFrameSize, "max-frame", 1<<20, "largest frame a client may send, in bytes (at most 1 MiB)")
	allowPlaintext := fs.Bool("allow-plaintext", false, "allow --listen on a non-loopback address without TLS: the credential and message metadata cross the network unencrypted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("broker: unexpected argument %q", fs.Arg(0))
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("broker: --tls-cert and --tls-key go together")
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
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
	url := "ws://" + dialable(ln.Addr()) + broker.Path
	if tlsConfig != nil {
		leaf := tlsConfig.Certificates[0].Leaf
		host, ok := broker.TLSHost(ln.Addr(), leaf)
		if !ok {
			log.Warn("the TLS certificate names no address of this broker: local sessions will refuse it", "host", host, "dns_names", leaf.DNSNames, "ip_addresses", leaf.IPAddresses)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		url = "wss://" + net.JoinHostPort(host, port) + broker.Path
		ln = tls.NewListener(ln, tlsConfig)
	} else if a, _ := ln.Addr().(*net.TCPAddr); a == nil || !a.IP.IsLoopback() {
		if !*allowPlaintext {
			return fmt.Errorf("broker: refusing to listen on %s without TLS: it is not a loopback address, and the credential and message metadata would cross the network unencrypted; "+
				"give --tls-cert and --tls-key, or --allow-plaintext if the network is trusted", *listen)
		}
		log.Warn("PLAINTEXT: the broker listens without TLS on a non-loopback address; anyone on the network path can read the credential, names and message metadata (DMs stay end-to-end encrypted)", "addr", ln.Addr().String())
	}

	// One broker per data directory and per home, for its whole life:
	// before anything is written to either.
	lock, err := broker.LockLocal(home, *data, broker.Holder{PID: os.Getpid(), URL: url, StartedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer lock.Close()
	token, err := broker.LoadOrCreateToken(*data)
	if err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, filepath.Join(*data, "claudemesh.db"), sqlite.Config{
		Logger:      log,
		Synchronous: strings.ToUpper(*syncMode),
	})
	if err != nil {
		return err
	}
	defer st.Close()
	cfg := limits
	cfg.Store, cfg.Token, cfg.Logger = st, token, log
	cfg.QueueTTL, cfg.Grace, cfg.PongTimeout = *ttl, *grace, *liveness
	srv, err := broker.NewServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	if err := lock.Publish(broker.LocalInfo{URL: url, Token: token, PID: os.Getpid(), StartedAt: time.Now().UTC()}); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(broker.Path, srv)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	hs := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	srv.ConfigureHTTPServer(hs) // --handshake-timeout from accept to hello, HTTP request included
	log.Info("broker listening", "url", url, "data", *data)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	log.Info("broker stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx) // stops accepting; does not wait for WebSockets
	srv.Close()       // closes the WebSockets and waits for their goroutines
	if err == nil {
		err = <-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
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

func runMCP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := fs.String("log-level", os.Getenv("CLAUDEMESH_LOG_LEVEL"), "debug, info, warn or error (logs go to stderr)")
	delivery := fs.String("delivery", "", "how arriving DMs surface: push, inbox or off (default $"+mcp.EnvDelivery+", else push)")
	channel := fs.Bool("channel", false, "also send pushed DMs as claude/channel notifications (or $"+mcp.EnvChannel+"=1)")
	if err := fs.Parse(args); err != nil {
		return err
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
	if *delivery != "" {
		cfg.Delivery = *delivery
	}
	cfg.Channel = cfg.Channel || *channel
	s, err := mcp.New(cfg)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	defer s.Close()
	log.Info("claudemesh MCP server started", "name", cfg.Name, "mesh", cfg.Mesh, "key_id", s.Key().ID(), "session", cfg.SessionID)
	return s.Serve(ctx, stdin, stdout)
}
