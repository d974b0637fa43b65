package client

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/wire"
)

// MemberDial says how to open a member connection (DialMember) or join a
// mesh (Join).
type MemberDial struct {
	URL  string
	Mesh string // the mesh to manage; ignored by Join
	Key  ed25519.PrivateKey
	Name string // member name
	// Token is the broker's operator credential: needed only to create a
	// mesh, and only sent to the local broker.
	Token          string
	RootCAs        *x509.CertPool
	AllowPlaintext bool
	Timeout        time.Duration // each step; default 15s
}

// MemberConn is a member connection: synchronous requests, one at a time.
type MemberConn struct {
	ws      *websocket.Conn
	timeout time.Duration
	next    uint64
}

// dial connects and reads the broker's challenge.
func (d MemberDial) dial(ctx context.Context) (*websocket.Conn, []byte, error) {
	if d.Timeout <= 0 {
		d.Timeout = 15 * time.Second
	}
	dialer, err := newDialer(d.URL, d.Timeout, d.RootCAs, d.AllowPlaintext)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	ws, _, err := dialer.DialContext(ctx, d.URL, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", d.URL, err)
	}
	ws.SetReadLimit(wire.MaxFrameSize)
	ws.SetReadDeadline(time.Now().Add(d.Timeout))
	f, err := readFrame(ws)
	if err != nil {
		ws.Close()
		return nil, nil, fmt.Errorf("read challenge from %s: %w", d.URL, err)
	}
	ch, ok := f.(wire.Challenge)
	if !ok {
		ws.Close()
		return nil, nil, fmt.Errorf("broker %s sent %s before its challenge", d.URL, f.Type())
	}
	return ws, ch.Nonce, nil
}

func writeFrame(ws *websocket.Conn, f wire.Frame, timeout time.Duration) error {
	b, err := wire.Encode(f)
	if err != nil {
		return err
	}
	ws.SetWriteDeadline(time.Now().Add(timeout))
	return ws.WriteMessage(websocket.TextMessage, b)
}

// DialMember opens a member connection for d.Key in d.Mesh.
func DialMember(ctx context.Context, d MemberDial) (*MemberConn, error) {
	ws, challenge, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	h := wire.MemberHello{Version: wire.Version, Mesh: d.Mesh, Key: wire.Key(d.Key.Public().(ed25519.PublicKey)), Name: d.Name, Token: d.Token}
	h.Sig = ed25519.Sign(d.Key, wire.MemberHelloTranscript(challenge, h))
	m := &MemberConn{ws: ws, timeout: d.Timeout}
	if m.timeout <= 0 {
		m.timeout = 15 * time.Second
	}
	if err := writeFrame(ws, h, m.timeout); err != nil {
		ws.Close()
		return nil, fmt.Errorf("send member hello: %w", err)
	}
	f, err := readFrame(ws)
	if err != nil {
		ws.Close()
		return nil, err
	}
	if _, ok := f.(wire.Welcome); !ok {
		ws.Close()
		return nil, fmt.Errorf("broker sent %s instead of welcome", f.Type())
	}
	return m, nil
}

// Close ends the member connection.
func (m *MemberConn) Close() error {
	writeFrame(m.ws, wire.Bye{}, time.Second)
	return m.ws.Close()
}

// request sends f (whose req is m.next) and returns the answer.
func (m *MemberConn) request(ctx context.Context, f wire.Frame, req uint64) (wire.Frame, error) {
	if dl, ok := ctx.Deadline(); ok {
		m.ws.SetReadDeadline(dl)
	} else {
		m.ws.SetReadDeadline(time.Now().Add(m.timeout))
	}
	if err := writeFrame(m.ws, f, m.timeout); err != nil {
		return nil, err
	}
	ref := strconv.FormatUint(req, 10)
	for {
		a, err := readFrame(m.ws)
		if we, ok := errors.AsType[*wire.Error](err); ok && we.Ref != ref && we.Ref != "" {
			continue // answers another request
		}
		if err != nil {
			return nil, err
		}
		if reqOf(a) == req {
			return a, nil
		}
	}
}

func reqOf(f wire.Frame) uint64 {
	switch f := f.(type) {
	case wire.OK:
		return f.Req
	case wire.Invite:
		return f.Req
	case wire.Members:
		return f.Req
	}
	return 0
}

func (m *MemberConn) req() uint64 {
	m.next++
	return m.next
}

// CreateMesh creates the connection's mesh with its key as owner. The
// connection needs the operator token.
func (m *MemberConn) CreateMesh(ctx context.Context) error {
	r := m.req()
	_, err := m.request(ctx, wire.MeshCreate{Req: r}, r)
	return err
}

// Invite asks for an invite code good for uses joins until expires.
func (m *MemberConn) Invite(ctx context.Context, uses int, expires time.Time) (wire.Invite, error) {
	r := m.req()
	a, err := m.request(ctx, wire.InviteCreate{Req: r, Uses: uses, ExpiresAt: expires}, r)
	if err != nil {
		return wire.Invite{}, err
	}
	return a.(wire.Invite), nil
}

// RevokeInvite makes code worthless.
func (m *MemberConn) RevokeInvite(ctx context.Context, code string) error {
	r := m.req()
	_, err := m.request(ctx, wire.InviteRevoke{Req: r, Code: code}, r)
	return err
}

// Members lists the mesh's members.
func (m *MemberConn) Members(ctx context.Context) ([]wire.MemberInfo, error) {
	r := m.req()
	a, err := m.request(ctx, wire.MemberList{Req: r}, r)
	if err != nil {
		return nil, err
	}
	return a.(wire.Members).Members, nil
}

// Remove removes the member named name (or with that key id).
func (m *MemberConn) Remove(ctx context.Context, name string) error {
	r := m.req()
	_, err := m.request(ctx, wire.MemberRemove{Req: r, Name: name}, r)
	return err
}

// Join enrolls d.Key as member d.Name with an invite code and returns the
// mesh it joined.
func Join(ctx context.Context, d MemberDial, code string) (wire.Joined, error) {
	ws, challenge, err := d.dial(ctx)
	if err != nil {
		return wire.Joined{}, err
	}
	defer ws.Close()
	j := wire.Join{Version: wire.Version, Code: code, Key: wire.Key(d.Key.Public().(ed25519.PublicKey)), Name: d.Name}
	j.Sig = ed25519.Sign(d.Key, wire.JoinTranscript(challenge, j))
	if err := writeFrame(ws, j, 15*time.Second); err != nil {
		return wire.Joined{}, fmt.Errorf("send join: %w", err)
	}
	f, err := readFrame(ws)
	if err != nil {
		return wire.Joined{}, err
	}
	joined, ok := f.(wire.Joined)
	if !ok {
		return wire.Joined{}, fmt.Errorf("broker sent %s instead of joined", f.Type())
	}
	return joined, nil
}
