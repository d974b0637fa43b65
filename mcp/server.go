// Package mcp is the claudemesh MCP server that runs inside each Claude Code
// session (`claudemesh mcp`, spoken to over stdio).
//
// It loads the session's key from the identity keystore, keeps a broker
// client connected, decrypts the DMs the broker pushes into an in-memory
// inbox, and gives the model the tools send_dm, list_peers, inbox,
// clear_inbox, message_status and whoami, each behind a check of its
// arguments against its input schema. A DM is acknowledged to the broker
// only after the inbox tool has returned it, so a DM is never lost between
// the broker and the model. The server never touches the broker's store.
//
// What the server makes of Claude Code is decided here: which session to
// be (following the session the SessionStart hook reports, see rebind),
// what to push into the session and how often, how a pushed DM is framed
// (<claudemesh-dm>), and the run files through which the hooks and the
// server of one claude process talk. How Claude Code works (its hook
// payloads, its process, its messaging socket, its environment) is package
// claudecode's; claudemesh's own environment is package config's.
package mcp

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/history"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// Version is reported to MCP clients.
const Version = "0.1.0"

// Config configures a Server.
type Config struct {
	Home      string // CLAUDEMESH_HOME: keystore and local broker info
	BrokerURL string // explicit broker URL; "" = the local broker
	Mesh      string
	Name      string // display name presented to peers
	// TagName appends to Name a short tag of each identity ("#3f2a", the
	// start of its session UUID), so that two sessions of one user in one
	// project are told apart by name. Set when Name is the default.
	TagName    bool
	ProjectDir string
	// SessionID is the Claude Code session UUID. "" makes the server use an
	// ephemeral key: it works, but DMs queued for it are lost for good when
	// the process exits.
	SessionID string
	// SessionSource names the variable SessionID came from, for whoami.
	SessionSource string
	// SessionStartFile is the SessionStart channel of the Claude Code
	// process running this server (see PublishSessionStart); "" disables
	// following the session the hook reports.
	SessionStartFile string
	// Delivery is DeliveryPush (default), DeliveryInbox or DeliveryOff.
	Delivery string
	// MessagingSocket and MessagingToken are Claude Code's messaging
	// socket of this session: where pushed DMs are written.
	MessagingSocket, MessagingToken string
	// Channel also sends each pushed DM as a claude/channel notification
	// (Claude Code shows those only in sessions started for channels).
	Channel bool
	// UnreadFile is where the server tells the prompt hook about unread
	// DMs; "" for none.
	UnreadFile string
	// ActivityFile is where the prompt and stop hooks report whether the
	// session is working or idle; "" for none.
	ActivityFile string
	// HistoryRetention is how long the session's local history keeps a
	// DM: 0 means history.DefaultRetention, negative keeps none.
	HistoryRetention time.Duration
	// Groups are joined when the server first connects as an identity
	// (CLAUDEMESH_GROUPS).
	Groups []string
	// Member is this machine's member key for the mesh, which attests the
	// session key; nil for a mesh without members.
	Member ed25519.PrivateKey
	Logger *slog.Logger
	// Endpoint overrides how the broker is found (tests); nil means
	// client.LocalEndpoint(Home, BrokerURL).
	Endpoint func() (client.Endpoint, error)
	// MinBackoff and MaxBackoff override the client's reconnect delays.
	MinBackoff, MaxBackoff time.Duration
	// StandbyProbe overrides how often a replaced session checks whether
	// the other process is gone.
	StandbyProbe time.Duration
	// ConnectWait bounds how long a tool waits for a connection attempt in
	// flight when no attempt has failed yet; 0 means 1s. Once an attempt
	// failed, tools answer at once with its reason.
	ConnectWait time.Duration
	// RootCAs verifies a wss:// broker's certificate (CLAUDEMESH_CA); nil
	// means the system's roots.
	RootCAs *x509.CertPool
	// AskProgress is how often a waiting ask sends a progress
	// notification to a client that asked for them; 0 means 5s.
	AskProgress time.Duration
	// AllowPlaintext allows ws:// to a broker that is not on a loopback
	// address (CLAUDEMESH_ALLOW_PLAINTEXT).
	AllowPlaintext bool
}

// sessionStartPoll is how often the server looks at its SessionStart
// channel.
const sessionStartPoll = 200 * time.Millisecond

// leaveWait bounds how long a rebind waits for the old identity's DMs in
// flight to be confirmed.
const leaveWait = 5 * time.Second

// Server is one session's MCP server.
type Server struct {
	cfg Config
	log *slog.Logger
	// endpoint is how the client finds the broker.
	endpoint func() (client.Endpoint, error)
	keystore *identity.Keystore
	inbox    *inbox
	mcp      *server.MCPServer
	pusher   *pusher // nil unless DMs are pushed

	// Lock order: watchMu, then mu.
	mu sync.Mutex
	id *binding // the identity the server speaks as now

	// stop is closed by Close: it stops the SessionStart watcher, and no
	// check of the channel (hence no rebind) starts after it.
	stop      chan struct{}
	watchDone chan struct{}
	// watchMu serialises checkSessionStart, from the watcher and from tool
	// calls, rebind included; Close takes it to wait for one in progress.
	watchMu sync.Mutex
	seen    os.FileInfo // the SessionStart event last acted on
	// Used by the watcher goroutine only.
	activitySeen os.FileInfo // the activity report last told to the broker
	// dnd: the session is in do-not-disturb; DMs are not pushed.
	dnd atomic.Bool
	// Until the watcher has learnt from the broker whether an identity is
	// in do-not-disturb (settle), DMs to push wait here, so that a new
	// process of a dnd session pushes nothing.
	settleMu  sync.Mutex
	settled   *binding  // the identity whose groups and availability are settled
	held      []Message // DMs to push once settled
	closeOnce sync.Once
	// waiters are the ask calls waiting for answers.
	waiters askWaiters
	// hist is the history of the identity bound now (s.id.hist), read
	// without s.mu by publishUnread, which runs under it.
	hist atomic.Pointer[history.DB]
}

// binding is one identity of the server and its broker connection. A
// rebind (the session changed under Claude Code) replaces it.
type binding struct {
	key    *identity.Key
	boxes  *identity.Boxes // seals and opens this identity's DMs
	name   string          // display name presented to peers
	source string          // where the session id came from
	client *client.Session
	// hist is this identity's local history (in memory for an
	// ephemeral key).
	hist *history.DB
}

// New loads or creates the session key and starts connecting to the
// broker. It does not wait for the connection.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Mesh == "" {
		cfg.Mesh = config.DefaultMesh
	}
	if cfg.Delivery == "" {
		cfg.Delivery = DeliveryPush
	}
	if cfg.ConnectWait <= 0 {
		cfg.ConnectWait = connectWait
	}
	if err := validDelivery(cfg.Delivery); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("mesh", cfg.Mesh),
		keystore:  identity.OpenKeystore(cfg.Home, cfg.Logger),
		inbox:     newInbox(),
		stop:      make(chan struct{}),
		watchDone: make(chan struct{}),
		endpoint:  cfg.Endpoint,
	}
	if s.endpoint == nil {
		s.endpoint = client.LocalEndpoint(cfg.Home, cfg.BrokerURL)
	}
	var key *identity.Key
	var err error
	if cfg.SessionID == "" {
		key, err = identity.NewEphemeral(cfg.Mesh)
		if err == nil {
			s.log.Warn("no session id in " + config.EnvSessionID + " or " + claudecode.EnvSessionID + ": using an ephemeral identity; DMs sent to it are lost when this process exits")
		}
	} else {
		key, err = s.keystore.Load(cfg.Mesh, cfg.SessionID)
	}
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if s.mcp, err = s.newMCPServer(); err != nil {
		return nil, err
	}
	s.inbox.changed = s.publishUnread
	if cfg.Delivery == DeliveryPush && (cfg.MessagingSocket != "" || cfg.Channel) {
		var channel func(Message)
		if cfg.Channel {
			channel = s.notifyChannel
		}
		s.pusher = newPusher(cfg.MessagingSocket, cfg.MessagingToken, s.log, s.pushed, channel)
	}
	s.log.Debug("delivery", "mode", cfg.Delivery, "socket", cfg.MessagingSocket != "", "channel", cfg.Channel)
	s.mu.Lock()
	err = s.bind(key, cfg.SessionSource)
	s.mu.Unlock()
	if err != nil {
		if s.pusher != nil {
			s.pusher.close()
		}
		return nil, err
	}
	s.publishUnread()
	go s.watchSessionStart()
	return s, nil
}

// bind makes key the server's identity with a new broker client. s.mu must
// be held; client.Dial does not block.
func (s *Server) bind(key *identity.Key, source string) error {
	b := &binding{key: key, boxes: identity.NewBoxes(key.Private, peerBoxes), source: source, name: s.nameFor(key)}
	hist, err := s.openHistory(key)
	if err != nil {
		return err
	}
	b.hist = hist
	log := s.log.With("session", key.SessionID, "key_id", key.ID())
	c, err := client.Dial(client.Config{
		Endpoint:     s.endpoint,
		Key:          key,
		Name:         b.name,
		ProjectDir:   s.cfg.ProjectDir,
		OnDM:         func(dm wire.DM) { s.receive(b, dm) },
		Logger:       log,
		MinBackoff:   s.cfg.MinBackoff,
		MaxBackoff:   s.cfg.MaxBackoff,
		StandbyProbe: s.cfg.StandbyProbe,
		Member:       s.cfg.Member,
		// How the connection is secured (CLAUDEMESH_CA,
		// CLAUDEMESH_ALLOW_PLAINTEXT).
		RootCAs:        s.cfg.RootCAs,
		AllowPlaintext: s.cfg.AllowPlaintext,
	})
	if err != nil {
		hist.Close()
		return err
	}
	b.client = c
	s.id = b
	s.hist.Store(b.hist)
	return nil
}

// peerBoxes is how many peers' shared keys an identity keeps.
const peerBoxes = 256

// nameFor returns the display name identity key presents.
func (s *Server) nameFor(key *identity.Key) string {
	if !s.cfg.TagName {
		return s.cfg.Name
	}
	return TaggedName(s.cfg.Name, key)
}

// TaggedName returns name with the tag of key: "#" and the first four hex
// digits of its session UUID (of its key id when it has none), cutting
// name so that the whole fits wire.MaxNameLen.
func TaggedName(name string, key *identity.Key) string {
	tag := key.ID()
	if key.SessionID != "" {
		tag = key.SessionID
	}
	tag = "#" + tag[:4]
	if len(name) > wire.MaxNameLen-len(tag) {
		name = strings.ToValidUTF8(name[:wire.MaxNameLen-len(tag)], "")
	}
	return name + tag
}

// current returns the identity the server speaks as now, after following
// a session change the SessionStart hook reported.
func (s *Server) current() *binding {
	s.checkSessionStart()
	return s.bound()
}

// bound returns the identity the server speaks as now.
func (s *Server) bound() *binding {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Key returns the session key the server presents.
func (s *Server) Key() *identity.Key { return s.bound().key }

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

// Close says bye to the broker (the session is offline at once, not in
// grace) and disconnects. DMs received but not yet returned by the inbox
// tool are not acknowledged, so the broker delivers them again to the next
// process of this session. A rebind in progress, from the watcher or from
// a tool call, ends first (the identity it leaves has left when Close
// returns); none starts after Close.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.watchDone
		// Wait for a check that a tool call started before stop; any
		// later one sees stop and does nothing.
		s.watchMu.Lock()
		s.watchMu.Unlock()
		b := s.bound()
		if s.pusher != nil {
			s.pusher.close()
		}
		b.client.Close()
		b.hist.Close()
		if s.cfg.UnreadFile != "" {
			os.Remove(s.cfg.UnreadFile)
		}
	})
	return nil
}

// receive handles a DM pushed to binding b: decrypt, keep, and re-ack a DM
// that was already returned to the model. A DM for an identity the server
// has left is dropped unacknowledged: the broker keeps it for that
// identity.
func (s *Server) receive(b *binding, dm wire.DM) {
	if s.bound() != b {
		return
	}
	m, l := open(dm, b.boxes)
	if m.Error != "" {
		s.log.Warn("DM could not be opened", "msg_id", dm.ID, "from", m.FromKeyID, "err", m.Error)
	} else {
		s.converse(b, dm, l, &m)
	}
	if !dm.PushedAt.IsZero() {
		// Pushed by an earlier process of this session: not again.
		m.Status, m.PushedAt = statusPushed, dm.PushedAt.UTC().Format(time.RFC3339)
	}
	r := s.inbox.add(m)
	s.log.Debug("DM received", "msg_id", dm.ID, "from", m.FromKeyID, "result", r, "status", m.Status)
	switch r {
	case alreadyReturned:
		if err := b.client.Ack([]string{dm.ID}); err != nil {
			s.log.Debug("re-ack DM", "msg_id", dm.ID, "err", err)
		}
	case alreadyCleared:
		if err := b.client.Clear([]string{dm.ID}); err != nil {
			s.log.Debug("re-clear DM", "msg_id", dm.ID, "err", err)
		}
	case added:
		if err := b.client.Receipt([]string{dm.ID}, wire.ReceiptReceived); err != nil {
			s.log.Debug("receipt", "msg_id", dm.ID, "err", err)
		}
		// An answer that an ask call waits for is returned by that call.
		if s.pusher != nil && m.Status == statusNew && m.Error == "" && !m.claimed {
			s.offer(b, m)
		}
	}
}

// pushed records that m was written into the session: the inbox marks it,
// and the broker learns it for the sender's message_status and for the
// next process of this session.
func (s *Server) pushed(m Message, at time.Time) {
	s.inbox.markPushed(m.ID, at)
	if err := s.bound().client.Receipt([]string{m.ID}, wire.ReceiptPushed); err != nil {
		s.log.Debug("receipt", "msg_id", m.ID, "err", err)
	}
	s.log.Info("DM pushed into the session", "msg_id", m.ID, "from", m.FromKeyID)
}

// notifyChannel sends m as a claude/channel notification. Claude Code drops
// it unless the session was started for channels; it is never the only
// path.
func (s *Server) notifyChannel(m Message) {
	err := s.mcp.SendNotificationToSpecificClient("stdio", "notifications/claude/channel", map[string]any{
		"content": framePush(m),
		"meta":    map[string]string{"message_id": m.ID, "from_key_id": m.FromKeyID, "sent_at": m.SentAt},
	})
	if err != nil {
		s.log.Debug("channel notification", "msg_id", m.ID, "err", err)
	}
}

// publishUnread tells the prompt hook how many DMs wait unshown.
func (s *Server) publishUnread() {
	if s.cfg.UnreadFile == "" || s.cfg.Delivery == DeliveryOff {
		return
	}
	n, from := s.inbox.summary()
	if err := writeUnread(s.cfg.UnreadFile, unreadState{New: n, From: from, Delivery: s.cfg.Delivery, Asks: s.askNotes()}); err != nil {
		s.log.Warn("write the unread file for the prompt hook", "path", s.cfg.UnreadFile, "err", err)
	}
}

// watchSessionStart follows the session Claude Code's SessionStart hook
// reports for this server's claude process; it also joins the start
// groups of each identity and reports the activity the hooks write.
func (s *Server) watchSessionStart() {
	defer close(s.watchDone)
	if s.cfg.SessionStartFile == "" && s.cfg.ActivityFile == "" && len(s.cfg.Groups) == 0 && s.pusher == nil {
		return // nothing to watch or settle
	}
	tick := time.NewTicker(sessionStartPoll)
	defer tick.Stop()
	for {
		s.checkSessionStart()
		s.settle()
		s.checkActivity()
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// checkSessionStart rebinds when the SessionStart channel reports a
// session other than the one in use. Tool calls run it too, so that a tool
// called right after the hook already speaks as the right session. Once
// Close has begun it does nothing.
func (s *Server) checkSessionStart() {
	path := s.cfg.SessionStartFile
	if path == "" {
		return
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	select {
	case <-s.stop:
		return // closed: the server stays as Close left it
	default:
	}
	fi, err := os.Stat(path)
	if err != nil || (s.seen != nil && fi.ModTime().Equal(s.seen.ModTime()) && fi.Size() == s.seen.Size()) {
		return
	}
	s.seen = fi
	ev, ok, err := readSessionStart(path)
	switch {
	case err != nil:
		s.log.Warn("unreadable SessionStart event", "path", path, "err", err)
	case ok:
		if err := s.rebind(ev); err != nil {
			s.log.Error("switch to the session reported by the SessionStart hook", "session", ev.SessionID, "err", err)
		}
	}
}

// rebind switches the server to the session ev names: it loads (or
// creates) that session's key, connects as it — receiving what is queued
// for it — and leaves the old identity. The old identity is forgotten by
// the broker when it was never a real conversation (an ephemeral key, or a
// session id with no transcript, as under --continue), so it leaves no
// trace in list_peers; otherwise (after /clear) it is just offline, and
// DMs sent to it wait for it to be resumed. Unread DMs of the old identity
// are dropped from the inbox unacknowledged: the broker keeps them for it.
func (s *Server) rebind(ev claudecode.SessionStart) error {
	old := s.bound()
	if ev.SessionID == old.key.SessionID {
		return nil
	}
	key, err := s.keystore.Load(s.cfg.Mesh, ev.SessionID)
	if err != nil {
		return fmt.Errorf("session key: %w", err)
	}
	s.mu.Lock()
	err = s.bind(key, "SessionStart hook ("+cmp.Or(ev.Source, "unknown")+")")
	if err == nil {
		// Before the new identity's first DM can be received (receive
		// waits for s.mu): nothing of the new identity is dropped.
		s.inbox.reset()
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	forget := old.key.Ephemeral || !claudecode.TranscriptExists(ev.TranscriptPath, old.key.SessionID)
	s.log.Info("switched to the session reported by the SessionStart hook",
		"from_session", old.key.SessionID, "from_key_id", old.key.ID(), "session", key.SessionID, "key_id", key.ID(),
		"source", ev.Source, "forget_old", forget)
	ctx, cancel := context.WithTimeout(context.Background(), leaveWait)
	defer cancel()
	err = old.client.Leave(ctx, forget)
	old.hist.Close()
	return err
}

// slogWriter adapts mcp-go's error logger to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Error("mcp transport", "err", string(p))
	return len(p), nil
}
