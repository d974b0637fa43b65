package main

// The terminal's commands: a person messaging the mesh's sessions without
// a Claude Code session of their own (peers, send, inbox, status). They
// speak as one stable identity per mesh and home (identity.LoadHuman),
// which says hello as wire.KindHuman, and use the same client, sealing and
// acknowledgements as the MCP server.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/atomicfile"
	"github.com/claudemesh/claudemesh/wire"
)

// Bounds of the terminal's commands.
const (
	// terminalConnectWait bounds the wait for the first connection; a
	// failed attempt ends it at once with its reason.
	terminalConnectWait = 10 * time.Second
	// terminalRequestWait bounds one request (peers, status) and the
	// broker's confirmation of a sent DM.
	terminalRequestWait = 15 * time.Second
	// inboxSettle is how long `inbox` waits, once connected, for another
	// DM before it ends: the broker hands over what waits at once, one
	// DM after the other.
	inboxSettle = 500 * time.Millisecond
	// followProbe is how often `inbox --follow` asks for its identity
	// back after another terminal command took it over for a moment.
	followProbe = time.Second
)

// terminalFlags are the flags every terminal command takes.
type terminalFlags struct {
	mesh, name *string
	json       *bool
}

func addTerminalFlags(c *cmdLine) terminalFlags {
	return terminalFlags{
		mesh: c.String("mesh", "", "the `MESH` (default $"+config.EnvMesh+", else "+config.DefaultMesh+")"),
		name: c.String("name", "", "your display `NAME` to peers, kept for the commands after this one (default: the last one given, else user@host (terminal))"),
		json: c.Bool("json", false, "print JSON instead of a table"),
	}
}

// terminal is the person's identity on a mesh and its broker connection.
type terminal struct {
	mesh   string
	name   string
	key    *identity.Key
	boxes  *identity.Boxes
	client *client.Session
	url    func() string // the broker the client talks to, for errors
}

// terminalOptions are what differs between the commands' connections.
type terminalOptions struct {
	onDM  func(wire.DM) // nil: DMs pushed to this connection are left alone
	probe time.Duration // client.Config.StandbyProbe; 0 for the default
}

// openTerminal finds the mesh, the broker, the credential or membership
// and the terminal's key as `claudemesh mcp` does for a session, connects,
// and waits for the connection. The caller closes the client.
func openTerminal(ctx context.Context, cmd string, f terminalFlags, stderr io.Writer, opt terminalOptions) (*terminal, error) {
	getenv := os.Getenv
	home, err := config.Home(getenv)
	if err != nil {
		return nil, err
	}
	mesh := *f.mesh
	if mesh == "" {
		mesh = getenv(config.EnvMesh)
	}
	if mesh == "" {
		mesh = config.DefaultMesh
	}
	if err := identity.ValidateMesh(mesh); err != nil {
		return nil, usageErrorf(cmd, "mesh: %v", err)
	}
	// A name given once is kept for the commands after it.
	nameFile := filepath.Join(home, "humans", mesh+".name")
	name := strings.TrimSpace(*f.name)
	if name != "" {
		if err := validDisplayName(name); err != nil {
			return nil, usageErrorf(cmd, "--name: %v", err)
		}
	} else if b, err := os.ReadFile(nameFile); err == nil && validDisplayName(strings.TrimSpace(string(b))) == nil {
		name = strings.TrimSpace(string(b))
	} else {
		name = defaultTerminalName()
	}
	brokerURL := getenv(config.EnvBroker)
	var member ed25519.PrivateKey
	switch m, err := identity.LoadMembership(home, mesh); {
	case err == nil:
		member = m.Key
		if brokerURL == "" {
			brokerURL = m.Broker
		}
	case !errors.Is(err, identity.ErrNoMembership):
		return nil, err
	}
	roots, plaintext, err := config.Transport(getenv)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv(config.EnvLogLevel) != "" {
		if log, err = newLogger(stderr, ""); err != nil {
			return nil, err
		}
	}
	key, err := identity.OpenKeystore(home, log).LoadHuman(mesh)
	if err != nil {
		return nil, err
	}
	if *f.name != "" {
		if err := atomicfile.Write(nameFile, []byte(name+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("keep the terminal's name: %w", err)
		}
	}
	endpoint := client.LocalEndpoint(home, brokerURL)
	t := &terminal{mesh: mesh, name: name, key: key, boxes: identity.NewBoxes(key.Private, 64)}
	t.url = func() string {
		if u := t.client.State().URL; u != "" {
			return u
		}
		if ep, err := endpoint(); err == nil {
			return ep.URL
		}
		return wire.DefaultURL
	}
	t.client, err = client.Dial(client.Config{
		Endpoint:       endpoint,
		Key:            key,
		Name:           name,
		Kind:           wire.KindHuman,
		OnDM:           opt.onDM,
		Logger:         log,
		StandbyProbe:   opt.probe,
		Member:         member,
		RootCAs:        roots,
		AllowPlaintext: plaintext,
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, terminalConnectWait)
	defer cancel()
	if err := t.client.Ready(wctx); err != nil {
		t.client.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, t.notConnected(err)
	}
	return t, nil
}

// notConnected explains why the terminal has no connection, with what to
// do about it.
func (t *terminal) notConnected(err error) error {
	st := t.client.State()
	switch {
	case st.Unauthorized:
		return fmt.Errorf("the broker at %s refused the credential (%v): run this as the broker's user with its %s, or join a mesh on it (claudemesh join)", t.url(), st.LastError, config.EnvHome)
	case st.Refused:
		return fmt.Errorf("the broker at %s refuses this terminal in mesh %s: %v (claudemesh join BROKER_URL CODE with an invite from the mesh's owner)", t.url(), t.mesh, st.LastError)
	}
	if st.LastError != nil {
		err = st.LastError
	}
	return fmt.Errorf("cannot reach the claudemesh broker at %s (%v): start it with `claudemesh broker`, or set %s", t.url(), err, config.EnvBroker)
}

// requestError explains a failed request to the broker.
func (t *terminal) requestError(op string, err error) error {
	if errors.Is(err, client.ErrNotConnected) {
		return fmt.Errorf("%s: %w", op, t.notConnected(err))
	}
	if we, ok := errors.AsType[*wire.Error](err); ok {
		return fmt.Errorf("%s: the broker refused: %s (%s)", op, we.Message, we.Code)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// peers returns the other peers of the mesh.
func (t *terminal) peers(ctx context.Context) ([]wire.Peer, error) {
	ctx, cancel := context.WithTimeout(ctx, terminalRequestWait)
	defer cancel()
	all, err := t.client.Peers(ctx)
	if err != nil {
		return nil, t.requestError("list peers", err)
	}
	peers := all[:0]
	for _, p := range all {
		if !bytes.Equal(p.Key, t.key.Public) {
			peers = append(peers, p)
		}
	}
	return peers, nil
}

// defaultTerminalName is "user@host (terminal)".
func defaultTerminalName() string {
	name := userAtHost(func(r rune) bool { return !unicode.IsControl(r) && !unicode.IsSpace(r) })
	const suffix = " (terminal)"
	if len(name) > wire.MaxNameLen-len(suffix) {
		name = strings.ToValidUTF8(name[:wire.MaxNameLen-len(suffix)], "")
	}
	return name + suffix
}

// validDisplayName checks a display name as the broker does.
func validDisplayName(name string) error {
	if name == "" || len(name) > wire.MaxNameLen {
		return fmt.Errorf("a display name is 1 to %d bytes", wire.MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return errors.New("the display name is not UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("display name %q contains control characters", name)
		}
	}
	return nil
}

// presenceWord names a peer's lease state as list_peers does.
func presenceWord(state string) string {
	switch state {
	case wire.PeerOnline:
		return "online"
	case wire.PeerGrace:
		return "reconnecting"
	}
	return "away"
}

// kindWord names what speaks for a peer as list_peers does.
func kindWord(p wire.Peer) string {
	if p.Kind == wire.KindHuman {
		return "human"
	}
	return "session"
}

// stampOf formats a time for JSON: RFC 3339 in UTC, "" for none.
func stampOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// localStamp formats a time for a table.
func localStamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

const peersHelp = `usage: claudemesh peers [--mesh MESH] [--json]

Lists the peers of the mesh as a session's list_peers does: the sessions
and terminals online, reconnecting or recently away, with their names, key
ids and kinds (session or human). You take part as the terminal's own
identity (a human peer; see 'claudemesh send').
`

// peerJSON is one row of `peers --json`.
type peerJSON struct {
	Name           string `json:"name"`
	KeyID          string `json:"key_id"`
	Key            string `json:"key"`
	Kind           string `json:"kind"`
	State          string `json:"state"`
	SessionID      string `json:"session_id,omitempty"`
	ProjectDir     string `json:"project_dir,omitempty"`
	ConnectedSince string `json:"connected_since,omitempty"`
	LastSeen       string `json:"last_seen,omitempty"`
	Member         string `json:"member,omitempty"`
}

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCmdLine("peers", peersHelp, stdout)
	f := addTerminalFlags(c)
	if _, err := c.parse(args); err != nil {
		return err
	}
	t, err := openTerminal(ctx, c.Name(), f, stderr, terminalOptions{})
	if err != nil {
		return err
	}
	defer t.client.Close()
	peers, err := t.peers(ctx)
	if err != nil {
		return err
	}
	if *f.json {
		out := struct {
			Mesh  string     `json:"mesh"`
			You   peerJSON   `json:"you"`
			Peers []peerJSON `json:"peers"`
		}{Mesh: t.mesh, Peers: []peerJSON{},
			You: peerJSON{Name: t.name, KeyID: t.key.ID(), Key: wire.Key(t.key.Public).String(), Kind: "human", State: "online", SessionID: t.key.SessionID}}
		for _, p := range peers {
			row := peerJSON{Name: p.Name, KeyID: p.KeyID, Key: p.Key.String(), Kind: kindWord(p), State: presenceWord(p.State),
				SessionID: p.SessionID, ProjectDir: p.ProjectDir, Member: p.Member}
			if p.State == wire.PeerOnline {
				row.ConnectedSince = stampOf(p.ConnectedSince)
			} else {
				row.LastSeen = stampOf(p.LastSeen)
			}
			out.Peers = append(out.Peers, row)
		}
		return writeJSON(stdout, out)
	}
	if len(peers) == 0 {
		fmt.Fprintf(stdout, "No other peer is in mesh %s yet. You are %s (key %s).\n", t.mesh, t.name, t.key.ID())
		return nil
	}
	members := false
	for _, p := range peers {
		members = members || p.Member != ""
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	head := "NAME\tKIND\tKEY\tSTATE\tSINCE/LAST SEEN\tPROJECT"
	if members {
		head += "\tMEMBER"
	}
	fmt.Fprintln(tw, head)
	for _, p := range peers {
		when := p.LastSeen
		if p.State == wire.PeerOnline {
			when = p.ConnectedSince
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", p.Name, kindWord(p), p.KeyID, presenceWord(p.State), localStamp(when), orDash(p.ProjectDir))
		if members {
			line += "\t" + orDash(p.Member)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const sendHelp = `usage: claudemesh send TO [MESSAGE | -] [--mesh MESH] [--name NAME] [--json]

Sends MESSAGE as an end-to-end encrypted DM to the peer TO: a display name,
a key id (or a prefix of the key, at least 4 hex digits) or a session UUID,
as 'claudemesh peers' lists them. Without MESSAGE, or with -, the message is
read from stdin. It is sealed, queued and acknowledged as a session's
send_dm does; a TO that matches several peers sends nothing and lists them.
Prints the message id, for 'claudemesh status ID'.
`

func runSend(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newCmdLine("send", sendHelp, stdout)
	f := addTerminalFlags(c)
	pos, err := c.parse(args, "TO", "MESSAGE")
	if ue, ok := errors.AsType[*usageError](err); ok && ue.msg == "missing MESSAGE" {
		pos, err = c.parse(args, "TO")
		pos = append(pos, "-")
	}
	if err != nil {
		return err
	}
	to, text := strings.TrimSpace(pos[0]), pos[1]
	if to == "" {
		return usageErrorf(c.Name(), "TO is empty: give a peer's name or key id (claudemesh peers)")
	}
	if text == "-" {
		if file, ok := stdin.(*os.File); ok {
			if fi, err := file.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprintln(stderr, "claudemesh send: reading the message from the terminal; end it with Ctrl-D")
			}
		}
		b, err := io.ReadAll(io.LimitReader(stdin, client.MaxText+2))
		if err != nil {
			return fmt.Errorf("send: read the message from stdin: %w", err)
		}
		// The newline that ends the last line is not part of the message.
		text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	switch {
	case strings.TrimSpace(text) == "":
		return errors.New("send: the message is empty; nothing was sent")
	case len(text) > client.MaxText:
		return fmt.Errorf("send: the message is longer than %d bytes (%d KiB, counted in bytes of UTF-8); nothing was sent: split it into several DMs", client.MaxText, client.MaxText>>10)
	case !utf8.ValidString(text):
		return errors.New("send: the message is not UTF-8 text; nothing was sent")
	}
	t, err := openTerminal(ctx, c.Name(), f, stderr, terminalOptions{})
	if err != nil {
		return fmt.Errorf("send: %w; nothing was sent", err)
	}
	defer t.client.Close()
	peers, err := t.peers(ctx)
	if err != nil {
		return fmt.Errorf("send: %w; nothing was sent", err)
	}
	p, err := pickPeer(to, peers, t.mesh)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	id := uuid.NewString()
	nonce, box, err := client.Seal(id, text, time.Now(), ed25519.PublicKey(p.Key), t.boxes)
	if errors.Is(err, client.ErrTooLarge) {
		return fmt.Errorf("send: %v; nothing was sent: control characters count 6 bytes each once encoded; split it into several DMs", err)
	}
	if err != nil {
		return fmt.Errorf("send: seal: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, terminalRequestWait)
	defer cancel()
	status, err := t.client.Send(sctx, id, ed25519.PublicKey(p.Key), nonce, box)
	if errors.Is(err, client.ErrUnconfirmed) {
		return fmt.Errorf("send: the broker did not confirm DM %s in time; it may have been stored: see claudemesh status %s", id, id)
	}
	if err != nil {
		return fmt.Errorf("send: %w; nothing was sent", t.requestError("send DM", err))
	}
	if *f.json {
		return writeJSON(stdout, struct {
			ID       string `json:"id"`
			To       string `json:"to"`
			ToKeyID  string `json:"to_key_id"`
			ToKind   string `json:"to_kind"`
			ToMember string `json:"to_member,omitempty"`
			Status   string `json:"status"`
		}{id, p.Name, p.KeyID, kindWord(p), p.Member, status})
	}
	note := "delivered (the peer is online)"
	if status == wire.StatusQueued {
		note = "queued (the peer is away and gets it when it returns)"
	}
	fmt.Fprintf(stdout, "%s\n", id)
	fmt.Fprintf(stderr, "DM to %s (key %s): %s. Its status: claudemesh status %s\n", p.Name, p.KeyID, note, id)
	return nil
}

// pickPeer finds the one peer `to` names, by the rule of send_dm: never a
// guess between several.
func pickPeer(to string, peers []wire.Peer, mesh string) (wire.Peer, error) {
	matches := client.Match(to, peers)
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		if len(peers) == 0 {
			return wire.Peer{}, fmt.Errorf("no peer named %q: no other peer is in mesh %s yet; nothing was sent", to, mesh)
		}
		names := make([]string, len(peers))
		for i, p := range peers {
			names[i] = fmt.Sprintf("%s (%s, %s)", p.Name, p.KeyID, presenceWord(p.State))
		}
		return wire.Peer{}, fmt.Errorf("no peer named %q in mesh %s; nothing was sent. Peers: %s", to, mesh, strings.Join(names, ", "))
	}
	parts := make([]string, len(matches))
	for i, p := range matches {
		parts[i] = fmt.Sprintf("%s (key id %s, %s, %s", p.Name, p.KeyID, kindWord(p), presenceWord(p.State))
		if p.Member != "" {
			parts[i] += ", member " + p.Member
		}
		parts[i] += ")"
	}
	return wire.Peer{}, fmt.Errorf("%q matches %d peers: %s; nothing was sent. Send to one of them by its key id, e.g. claudemesh send %s ...",
		to, len(matches), strings.Join(parts, "; "), matches[0].KeyID)
}

const inboxHelp = `usage: claudemesh inbox [--follow] [--mesh MESH] [--name NAME] [--json]

Prints the DMs sent to this terminal's identity that wait unread, oldest
first, and marks them read: each is printed once, and its sender sees it
read. With --follow it goes on printing DMs as they arrive until
interrupted (Ctrl-C), acknowledging only what it printed. --json prints one
JSON object per DM and line.
`

// dmJSON is one line of `inbox --json`.
type dmJSON struct {
	ID          string `json:"id"`
	From        string `json:"from"`
	FromKeyID   string `json:"from_key_id"`
	FromSession string `json:"from_session,omitempty"`
	SentAt      string `json:"sent_at"`
	Text        string `json:"text"`
	Error       string `json:"error,omitempty"`
}

func runInbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCmdLine("inbox", inboxHelp, stdout)
	f := addTerminalFlags(c)
	follow := c.Bool("follow", false, "keep printing DMs as they arrive, until interrupted")
	if _, err := c.parse(args); err != nil {
		return err
	}
	// The client's goroutine hands DMs over; this one prints them. The
	// channel is large enough for a page of the broker's pushes, and the
	// client's connection waits while it is full.
	dms := make(chan wire.DM, 256)
	done := make(chan struct{})
	opt := terminalOptions{onDM: func(dm wire.DM) {
		select {
		case dms <- dm:
		case <-done:
		}
	}}
	if *follow {
		opt.probe = followProbe
	}
	t, err := openTerminal(ctx, c.Name(), f, stderr, opt)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	defer t.client.Close()
	defer close(done) // first: an OnDM waiting for room gives up, so Close does not wait for it
	printed := make(map[string]bool)
	show := func(dm wire.DM) error {
		if printed[dm.ID] {
			// Printed before; its ack was lost on a connection that
			// ended: acknowledge it again, print it not again.
			t.client.Ack([]string{dm.ID})
			return nil
		}
		if err := printDM(stdout, dm, t.boxes, *f.json); err != nil {
			return err // stdout is gone: do not acknowledge what was not shown
		}
		printed[dm.ID] = true
		// An ack that cannot be sent now (the connection dropped) is
		// sent when the broker delivers the DM again.
		t.client.Ack([]string{dm.ID})
		return nil
	}
	if *follow {
		for {
			select {
			case <-ctx.Done():
				return nil // interrupted: everything printed is acknowledged
			case dm := <-dms:
				if err := show(dm); err != nil {
					return err
				}
			}
		}
	}
	quiet := time.NewTimer(inboxSettle)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // interrupted: what was printed is acknowledged, the rest waits
		case dm := <-dms:
			if err := show(dm); err != nil {
				return err
			}
			quiet.Reset(inboxSettle)
		case <-quiet.C:
			if len(printed) == 0 && !*f.json {
				fmt.Fprintf(stderr, "No unread DMs for %s (key %s) in mesh %s.\n", t.name, t.key.ID(), t.mesh)
			}
			return nil
		}
	}
}

// printDM writes one DM: as a block of text, or as a line of JSON.
func printDM(w io.Writer, dm wire.DM, boxes *identity.Boxes, asJSON bool) error {
	row := dmJSON{ID: dm.ID, From: dm.FromName, FromKeyID: identity.KeyID(ed25519.PublicKey(dm.From)),
		FromSession: dm.FromSession, SentAt: stampOf(dm.SentAt)}
	sent := dm.SentAt
	if l, err := client.Open(dm, boxes); err != nil {
		row.Error = err.Error()
	} else {
		row.Text, row.SentAt, sent = l.Text, stampOf(l.SentAt), l.SentAt
	}
	if asJSON {
		return writeJSON(w, row)
	}
	var err error
	if row.Error != "" {
		_, err = fmt.Fprintf(w, "--- DM %s from %s (%s) at %s could not be read: %s\n\n", row.ID, row.From, row.FromKeyID, localStamp(sent), row.Error)
	} else {
		_, err = fmt.Fprintf(w, "--- DM %s from %s (%s) at %s\n%s\n\n", row.ID, row.From, row.FromKeyID, localStamp(sent), row.Text)
	}
	return err
}

const statusHelp = `usage: claudemesh status ID [--mesh MESH] [--json]

Says what became of a DM this terminal sent (the id 'claudemesh send'
printed), as a session's message_status does: queued, delivered, pushed
(shown in the recipient's session, not read yet), read, cleared (dismissed
unread), expired, or unknown.
`

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCmdLine("status", statusHelp, stdout)
	f := addTerminalFlags(c)
	pos, err := c.parse(args, "ID")
	if err != nil {
		return err
	}
	id := strings.ToLower(strings.TrimSpace(pos[0]))
	if err := uuid.Validate(id); err != nil || len(id) != 36 {
		return usageErrorf(c.Name(), "%q is not a message id: use the id claudemesh send printed", pos[0])
	}
	t, err := openTerminal(ctx, c.Name(), f, stderr, terminalOptions{})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer t.client.Close()
	sctx, cancel := context.WithTimeout(ctx, terminalRequestWait)
	defer cancel()
	sts, err := t.client.Status(sctx, []string{id})
	if err != nil {
		return t.requestError("status", err)
	}
	if len(sts) != 1 {
		return fmt.Errorf("status: the broker answered %d statuses for 1 id", len(sts))
	}
	st := sts[0]
	state := st.State
	switch state {
	case wire.StateQueued, wire.StateDelivered, wire.StatePushed, wire.StateRead, wire.StateCleared, wire.StateExpired:
	default:
		state = wire.StateUnknown
	}
	res := struct {
		ID         string `json:"id"`
		To         string `json:"to,omitempty"`
		ToKeyID    string `json:"to_key_id,omitempty"`
		State      string `json:"state"`
		SentAt     string `json:"sent_at,omitempty"`
		ReceivedAt string `json:"received_at,omitempty"`
		PushedAt   string `json:"pushed_at,omitempty"`
		ReadAt     string `json:"read_at,omitempty"`
		ExpiresAt  string `json:"expires_at,omitempty"`
	}{ID: id, To: st.ToName, State: state, SentAt: stampOf(st.CreatedAt), ReceivedAt: stampOf(st.ReceivedAt),
		PushedAt: stampOf(st.PushedAt), ReadAt: stampOf(st.ReadAt), ExpiresAt: stampOf(st.ExpiresAt)}
	if len(st.To) > 0 {
		res.ToKeyID = identity.KeyID(ed25519.PublicKey(st.To))
	}
	if *f.json {
		return writeJSON(stdout, res)
	}
	if state == wire.StateUnknown {
		fmt.Fprintf(stdout, "%s unknown: no DM with this id was sent from this terminal in mesh %s, or it expired and was forgotten\n", id, t.mesh)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTO\tSTATE\tSENT\tRECEIVED\tPUSHED\tREAD\tEXPIRES")
	fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\t%s\t%s\t%s\t%s\n", id, orDash(st.ToName), orDash(res.ToKeyID), state,
		localStamp(st.CreatedAt), localStamp(st.ReceivedAt), localStamp(st.PushedAt), localStamp(st.ReadAt), localStamp(st.ExpiresAt))
	return tw.Flush()
}
