// Package mcp is the claudemesh MCP server that runs inside each Claude Code
// session (`claudemesh mcp`, spoken to over stdio).
//
// It loads the session's key from the identity keystore, keeps a broker
// client connected, decrypts the DMs the broker pushes into an in-memory
// inbox, and gives the model the tools send_dm, list_peers, inbox and
// whoami. A DM is acknowledged to the broker only after the inbox tool has
// returned it, so a DM is never lost between the broker and the model. The
// server never touches the broker's store.
package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// Version is reported to MCP clients.
const Version = "0.1.0"

// Config configures a Server.
type Config struct {
	Home       string // CLAUDEMESH_HOME: keystore and local broker info
	BrokerURL  string // explicit broker URL; "" = the local broker
	Mesh       string
	Name       string // display name presented to peers
	ProjectDir string
	// SessionID is the Claude Code session UUID. "" makes the server use an
	// ephemeral key: it works, but DMs queued for it are lost for good when
	// the process exits.
	SessionID string
	// SessionSource names the variable SessionID came from, for whoami.
	SessionSource string
	Logger        *slog.Logger
	// Endpoint overrides how the broker is found (tests); nil means
	// broker.LocalEndpoint(Home, BrokerURL).
	Endpoint func() (broker.Endpoint, error)
	// MinBackoff and MaxBackoff override the client's reconnect delays.
	MinBackoff, MaxBackoff time.Duration
}

// Server is one session's MCP server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	key    *identity.Key
	client *broker.Client
	// endpoint is how the client finds the broker.
	endpoint func() (broker.Endpoint, error)
	inbox    *inbox
	mcp      *server.MCPServer

	closeOnce sync.Once
}

// New loads or creates the session key and starts connecting to the
// broker. It does not wait for the connection.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Mesh == "" {
		cfg.Mesh = DefaultMesh
	}
	s := &Server{cfg: cfg, log: cfg.Logger, inbox: newInbox()}
	var err error
	if cfg.SessionID == "" {
		s.key, err = identity.NewEphemeral(cfg.Mesh)
		if err == nil {
			s.log.Warn("no session id in " + EnvSessionID + " or " + EnvClaudeID + ": using an ephemeral identity; DMs sent to it are lost when this process exits")
		}
	} else {
		s.key, err = identity.OpenKeystore(cfg.Home, cfg.Logger).Load(cfg.Mesh, cfg.SessionID)
	}
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	s.log = s.log.With("session", s.key.SessionID, "mesh", cfg.Mesh, "key_id", s.key.ID())
	s.endpoint = cfg.Endpoint
	if s.endpoint == nil {
		s.endpoint = broker.LocalEndpoint(cfg.Home, cfg.BrokerURL)
	}
	s.client, err = broker.Dial(broker.ClientConfig{
		Endpoint:   s.endpoint,
		Key:        s.key,
		Name:       cfg.Name,
		ProjectDir: cfg.ProjectDir,
		OnDM:       s.receive,
		Logger:     s.log,
		MinBackoff: cfg.MinBackoff,
		MaxBackoff: cfg.MaxBackoff,
	})
	if err != nil {
		return nil, err
	}
	s.mcp = s.newMCPServer()
	return s, nil
}

// Key returns the session key the server presents.
func (s *Server) Key() *identity.Key { return s.key }

// Serve speaks MCP over in and out until in ends or ctx is cancelled. out
// carries JSON-RPC only.
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	stdio := server.NewStdioServer(s.mcp)
	stdio.SetErrorLogger(log.New(slogWriter{s.log}, "", 0))
	err := stdio.Listen(ctx, in, out)
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close disconnects from the broker. DMs received but not yet returned by
// the inbox tool are not acknowledged, so the broker delivers them again to
// the next process of this session.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.client.Close() })
	return nil
}

// receive handles a DM pushed by the broker: decrypt, keep, and re-ack a
// DM that was already returned to the model.
func (s *Server) receive(dm wire.DM) {
	m := open(dm, s.key)
	if m.Error != "" {
		s.log.Warn("DM could not be opened", "msg_id", dm.ID, "from", m.FromKeyID, "err", m.Error)
	}
	if s.inbox.add(m) == alreadyReturned {
		if err := s.client.Ack([]string{dm.ID}); err != nil {
			s.log.Debug("re-ack DM", "msg_id", dm.ID, "err", err)
		}
	}
}

// slogWriter adapts mcp-go's error logger to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Error("mcp transport", "err", string(p))
	return len(p), nil
}
