package broker_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// This file throws hostile input at a real broker: frames that are not
// frames, hellos that must not open a session, members who overstep, and
// clients that exceed a limit. Every case checks the broker's answer (the
// error code, and whether the connection is closed or still serving) and
// that the sessions of bystanders, the victims, are untouched: still
// listed once and online on their first connection, their queued DM still
// pending and unchanged, nothing new queued for them, and each DM received
// exactly once.

// hostileBroker is a broker on loopback whose handler records panics
// instead of letting net/http swallow them. (A panic in a connection's
// writer or pump goroutine crashes the test binary by itself.)
type hostileBroker struct {
	*testBroker
	clk *clock

	mu     sync.Mutex
	panics []string
}

// newHostileBroker starts a broker on a fresh SQLite store with cfg. Its
// clock stands still, so rate limits never refill during a case; it
// starts at the real time because clients date their attestations with
// the real clock.
func newHostileBroker(t *testing.T, cfg broker.Config) *hostileBroker {
	t.Helper()
	hb := &hostileBroker{clk: &clock{now: time.Now().UTC().Truncate(time.Millisecond)}}
	st := openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL")
	tb := &testBroker{st: st, logs: new(logs), accepted: make(chan struct{}, 1)}
	cfg.Store, cfg.Now, cfg.Logger = st, hb.clk.Now, tb.logs.logger()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	tb.token = cfg.Token
	srv, err := broker.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tb.srv = srv
	mux := http.NewServeMux()
	mux.Handle(wire.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				hb.mu.Lock()
				hb.panics = append(hb.panics, fmt.Sprintf("%v\n%s", v, debug.Stack()))
				hb.mu.Unlock()
			}
		}()
		srv.ServeHTTP(w, r)
	}))
	ts := httptest.NewServer(mux)
	tb.url = "ws" + strings.TrimPrefix(ts.URL, "http") + wire.Path
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", tb.logs)
		}
	})
	hb.testBroker = tb
	return hb
}

// healthy fails the test if a connection handler panicked or a session
// was taken from its connection.
func (hb *hostileBroker) healthy(t *testing.T) {
	t.Helper()
	hb.noPanics(t)
	if n := hb.srv.Stats().Replacements; n != 0 {
		t.Errorf("broker replaced %d sessions, want none", n)
	}
}

// noPanics fails the test if a connection handler panicked.
func (hb *hostileBroker) noPanics(t *testing.T) {
	t.Helper()
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for _, p := range hb.panics {
		t.Errorf("broker panicked: %s", p)
	}
}

// victim is a bystander session with a DM queued for it: pushed on its
// connection and not acknowledged, so it stays pending in the store.
type victim struct {
	*peer
	sender *peer              // the third party that queued the DM
	member ed25519.PrivateKey // the member that attests it; nil in a mesh without members
	dm     wire.DM
	listed wire.Peer           // as its sender listed it before the case
	status store.MessageStatus // the DM's status as its sender saw it before the case
}

// scene is what a case attacks: a mesh without members (team, behind the
// broker's credential) and a mesh with members (crew: owner and vic), each
// with a victim.
type scene struct {
	hb         *hostileBroker
	team, crew string
	ownerKey   ed25519.PrivateKey // crew's owner
	vicKey     ed25519.PrivateKey // crew's member that runs the victim session
	owner      *client.MemberConn
	vt, vc     *victim // the victims in team and in crew
}

func newMemberKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := identity.NewMemberKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubOf(k ed25519.PrivateKey) wire.Key { return wire.Key(k.Public().(ed25519.PublicKey)) }

func attestedBy(member ed25519.PrivateKey) func(*client.Config) {
	return func(c *client.Config) { c.Member = member }
}

// newScene sets up the meshes of case n on hb and queues a DM for each
// victim.
func newScene(t *testing.T, hb *hostileBroker, n int) *scene {
	t.Helper()
	s := &scene{hb: hb, team: fmt.Sprintf("team-%02d", n), crew: fmt.Sprintf("crew-%02d", n)}
	s.ownerKey, s.vicKey = newMemberKey(t), newMemberKey(t)
	owner, err := client.DialMember(waitCtx(t), client.MemberDial{URL: hb.url, Mesh: s.crew, Key: s.ownerKey, Name: "owner", Token: hb.token})
	if err != nil {
		t.Fatalf("owner: %v", err)
	}
	t.Cleanup(func() { owner.Close() })
	s.owner = owner
	if err := owner.CreateMesh(waitCtx(t)); err != nil {
		t.Fatalf("create mesh: %v", err)
	}
	s.joinAs(t, s.vicKey, "vic", s.invite(t, 1))
	s.vt = s.victim(t, s.team, nil, nil)
	s.vc = s.victim(t, s.crew, s.vicKey, s.ownerKey)
	return s
}

// victim connects a session in mesh (attested by member, if any) and a
// third party (attested by senderMember), which queues a DM for it.
func (s *scene) victim(t *testing.T, mesh string, member, senderMember ed25519.PrivateKey) *victim {
	t.Helper()
	v := &victim{member: member}
	v.sender = s.hb.dial(t, newKey(t, mesh), "sender", attestedBy(senderMember))
	key := newKey(t, mesh)
	key.SessionID = uuid.NewString()
	v.peer = s.hb.dial(t, key, "victim", attestedBy(member))
	id, _ := sendText(t, v.sender, v.key, "for the victim only")
	v.dm = v.in.wait(t, id)
	v.listed = wantState(t, v.sender, v.key.ID(), wire.PeerOnline)
	sts, err := s.hb.st.Status(t.Context(), mesh, v.sender.key.Public, []string{id}, s.hb.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	v.status = sts[0]
	return v
}

// invite returns a code for uses joins of crew, valid for an hour.
func (s *scene) invite(t *testing.T, uses int) string {
	t.Helper()
	inv, err := s.owner.Invite(waitCtx(t), uses, s.hb.clk.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("create invite: %v", err)
	}
	return inv.Code
}

// joinAs enrolls key as member name with code.
func (s *scene) joinAs(t *testing.T, key ed25519.PrivateKey, name, code string) {
	t.Helper()
	if _, err := client.Join(waitCtx(t), client.MemberDial{URL: s.hb.url, Key: key, Name: name}, code); err != nil {
		t.Fatalf("join as %s: %v", name, err)
	}
}

// dial opens a raw connection and returns it with its challenge.
func (s *scene) dial(t *testing.T) (*rawConn, []byte) {
	t.Helper()
	rc := s.hb.dialRaw(t)
	return rc, rc.challenge(t)
}

// hello returns the hello that key's own client would answer challenge
// with: attested for an hour by member in a mesh with members, carrying
// the broker's credential otherwise. edit changes it before it is signed.
func (s *scene) hello(challenge []byte, key *identity.Key, member ed25519.PrivateKey, edit func(*wire.Hello)) wire.Hello {
	h := wire.Hello{Version: wire.Version, Mesh: key.Mesh, Key: wire.Key(key.Public), Name: "intruder", Instance: uuid.NewString()}
	if member != nil {
		h.Attestation = wire.Attest(member, key.Mesh, h.Key, s.hb.clk.Now().Add(time.Hour))
	} else {
		h.Token = s.hb.token
	}
	if edit != nil {
		edit(&h)
	}
	h.Sig = ed25519.Sign(key.Private, wire.HelloTranscript(challenge, h))
	return h
}

// session returns a raw connection of a fresh session of mesh whose hello
// was welcomed: attested by member, or with the credential when member is
// nil.
func (s *scene) session(t *testing.T, mesh string, member ed25519.PrivateKey) (*rawConn, *identity.Key) {
	t.Helper()
	key := newKey(t, mesh)
	rc, ch := s.dial(t)
	rc.write(t, s.hello(ch, key, member, nil))
	if f := rc.frame(t); f.Type() != wire.TypeWelcome {
		t.Fatalf("hello of a fresh session answered with %+v, want a welcome", f)
	}
	return rc, key
}

// memberConn returns a raw member connection of key to crew whose member
// hello was welcomed.
func (s *scene) memberConn(t *testing.T, key ed25519.PrivateKey, name string) *rawConn {
	t.Helper()
	rc, ch := s.dial(t)
	rc.write(t, memberHello(ch, s.crew, key, name, ""))
	if f := rc.frame(t); f.Type() != wire.TypeWelcome {
		t.Fatalf("member hello of %s answered with %+v, want a welcome", name, f)
	}
	return rc
}

func memberHello(challenge []byte, mesh string, key ed25519.PrivateKey, name, token string) wire.MemberHello {
	h := wire.MemberHello{Version: wire.Version, Mesh: mesh, Key: pubOf(key), Name: name, Token: token}
	h.Sig = ed25519.Sign(key, wire.MemberHelloTranscript(challenge, h))
	return h
}

func joinFrame(challenge []byte, code string, key ed25519.PrivateKey, name string) wire.Join {
	j := wire.Join{Version: wire.Version, Code: code, Key: pubOf(key), Name: name}
	j.Sig = ed25519.Sign(key, wire.JoinTranscript(challenge, j))
	return j
}

// sendFrame is a send of a sealed-looking box of n random bytes.
func sendFrame(id string, to []byte, n int) wire.Send {
	box := make([]byte, n)
	rand.Read(box)
	nonce := make([]byte, wire.NonceSize)
	rand.Read(nonce)
	return wire.Send{ID: id, To: to, Nonce: nonce, Box: box}
}

// writeRaw writes one message as it is.
func writeRaw(t *testing.T, rc *rawConn, typ int, data []byte) {
	t.Helper()
	if err := rc.WriteMessage(typ, data); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// writeOversized writes a text message over the frame limit from a
// goroutine: the broker stops reading it, so the write may only end when
// the connection does.
func writeOversized(t *testing.T, rc *rawConn, prefix string) {
	t.Helper()
	data := []byte(prefix + `,"pad":"` + strings.Repeat("x", wire.MaxFrameSize) + `"}`)
	done := make(chan error, 1)
	go func() { done <- rc.WriteMessage(websocket.TextMessage, data) }()
	t.Cleanup(func() {
		rc.Close()
		<-done
	})
}

// isMember reports whether key is a member of mesh in the store.
func (s *scene) isMember(t *testing.T, mesh string, key ed25519.PrivateKey) bool {
	t.Helper()
	_, err := s.hb.st.Member(t.Context(), mesh, pubOf(key))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// pending returns the ids of the DMs waiting for key in mesh.
func (s *scene) pending(t *testing.T, mesh string, key []byte) []string {
	t.Helper()
	msgs, err := s.hb.st.Pending(t.Context(), mesh, key, s.hb.clk.Now(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

// unchanged checks that nothing the case did reached the victims or the
// crew's membership, and that each victim still gets new DMs, once.
func (s *scene) unchanged(t *testing.T) {
	t.Helper()
	if !s.isMember(t, s.crew, s.ownerKey) || !s.isMember(t, s.crew, s.vicKey) {
		t.Errorf("crew lost a member: owner %t, vic %t", s.isMember(t, s.crew, s.ownerKey), s.isMember(t, s.crew, s.vicKey))
	}
	fresh := s.hb.dial(t, newKey(t, s.team), "fresh")
	if p := fresh.peers(t)[fresh.key.ID()]; !p.Online() {
		t.Errorf("a fresh session is listed as %+v, want online", p)
	}
	s.vt.unchanged(t, s, fresh)
	s.vc.unchanged(t, s, s.vc.sender)
}

func (v *victim) unchanged(t *testing.T, s *scene, syncFrom *peer) {
	t.Helper()
	ctx, mesh, now := t.Context(), v.key.Mesh, s.hb.clk.Now()
	// Listed once (peers fails on a duplicate), on the same connection.
	got, ok := v.sender.peers(t)[v.key.ID()]
	if !ok || got.State != wire.PeerOnline || !got.ConnectedSince.Equal(v.listed.ConnectedSince) || got.Name != v.listed.Name {
		t.Errorf("victim in %s listed as %+v (listed: %t), want it as before: %+v", mesh, got, ok, v.listed)
	}
	if st := v.State(); !st.Connected || st.Replaced || st.Refused {
		t.Errorf("victim in %s: client state %+v, want connected", mesh, st)
	}
	if n := v.logs.count("connected to broker"); n != 1 {
		t.Errorf("victim in %s connected %d times, want once", mesh, n)
	}
	// Its DM still waits, as it was, and nothing else does.
	msgs, err := s.hb.st.Pending(ctx, mesh, v.key.Public, now, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != v.dm.ID || !bytes.Equal(msgs[0].Box, v.dm.Box) || !bytes.Equal(msgs[0].Nonce, v.dm.Nonce) || !bytes.Equal(msgs[0].From, v.dm.From) {
		t.Errorf("victim in %s has %d DMs pending (%+v), want only its DM %s unchanged", mesh, len(msgs), msgs, v.dm.ID)
	}
	if n, size, err := s.hb.st.QueueStats(ctx, mesh, v.key.Public, nil, now); err != nil || n != 1 || size != int64(len(v.dm.Box)) {
		t.Errorf("victim in %s: queue of %d DMs, %d bytes (%v), want 1 DM of %d bytes", mesh, n, size, err, len(v.dm.Box))
	}
	sts, err := s.hb.st.Status(ctx, mesh, v.sender.key.Public, []string{v.dm.ID}, now)
	if err != nil {
		t.Fatal(err)
	}
	if st := sts[0]; st.State != v.status.State || !st.ReceivedAt.Equal(v.status.ReceivedAt) || !st.PushedAt.Equal(v.status.PushedAt) || !st.ReadAt.Equal(v.status.ReadAt) {
		t.Errorf("victim's DM in %s: status %+v, want %+v", mesh, st, v.status)
	}
	var member []byte
	if v.member != nil {
		member = pubOf(v.member)
	}
	if sess, err := s.hb.st.Session(ctx, mesh, v.key.Public); err != nil || !bytes.Equal(sess.Member, member) {
		t.Errorf("victim's session in %s: %+v (%v), want it attested by its own member", mesh, sess, err)
	}
	// It still receives: a new DM arrives, after the old one, and each
	// DM arrived exactly once.
	id, _ := sendText(t, syncFrom, v.key, "after the case")
	v.in.wait(t, id)
	var ids []string
	for _, dm := range v.in.all() {
		ids = append(ids, dm.ID)
	}
	if want := []string{v.dm.ID, id}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("victim in %s received %v, want %v", mesh, ids, want)
	}
}

// target is the connection a case expects the broker's answer on.
type target struct {
	rc *rawConn
	// member: a member connection, which shows that it still serves by
	// answering a member_list (a session answers a peers request).
	member bool
	// ref, when set, is the ref the error frame must carry.
	ref string
	// after checks more once the answer was read.
	after func(t *testing.T)
}

func session(rc *rawConn) target { return target{rc: rc} }

// expectClosed reads until the broker closes rc and checks the close
// frame.
func expectClosed(t *testing.T, rc *rawConn, code int, reason string) {
	t.Helper()
	rc.SetReadDeadline(time.Now().Add(waitTimeout))
	_, data, err := rc.ReadMessage()
	var ce *websocket.CloseError
	switch {
	case err == nil:
		t.Fatalf("broker sent %q after the error, want the connection closed", data)
	case !errors.As(err, &ce):
		t.Fatalf("connection ended with %v, want a close frame", err)
	case ce.Code != code || ce.Text != reason:
		t.Errorf("closed with %d %q, want %d %q", ce.Code, ce.Text, code, reason)
	}
}

// expectServing checks that tg still answers requests, and that the next
// frame on it is that answer.
func expectServing(t *testing.T, tg target) {
	t.Helper()
	const req = 4242
	if tg.member {
		tg.rc.write(t, wire.MemberList{Req: req})
		if m, ok := tg.rc.frame(t).(wire.Members); !ok || m.Req != req || len(m.Members) < 2 {
			t.Fatalf("member_list answered with %+v, want the members", m)
		}
		return
	}
	tg.rc.write(t, wire.PeersRequest{Req: req})
	if l, ok := tg.rc.frame(t).(wire.PeerList); !ok || l.Req != req || len(l.Peers) < 2 {
		t.Fatalf("peers request answered with %+v, want the peer list", l)
	}
}

const (
	policy  = websocket.ClosePolicyViolation
	tooLong = websocket.CloseMessageTooBig
)

type hostileCase struct {
	name string
	// cfg, when set, runs the case on a broker of its own with these
	// settings; other cases share one broker.
	cfg func(*broker.Config)
	// attack sends the hostile input. It reads any answers it expects
	// itself, leaving the one the case is about.
	attack func(t *testing.T, s *scene) target
	// code is the error code the broker answers; "" when it answers
	// nothing (the next frame is the answer to a request).
	code string
	// closed is the close code the broker ends the connection with; 0
	// when the connection stays open and serving.
	closed int
}

func hostileCases() []hostileCase {
	// victimHello answers the challenge of a new connection with a hello
	// for v's own session key, after edit.
	victimHello := func(v func(*scene) *victim, edit func(s *scene, h *wire.Hello)) func(t *testing.T, s *scene) target {
		return func(t *testing.T, s *scene) target {
			rc, ch := s.dial(t)
			vic := v(s)
			rc.write(t, s.hello(ch, vic.key, vic.member, func(h *wire.Hello) {
				if edit != nil {
					edit(s, h)
				}
			}))
			return session(rc)
		}
	}
	// impostorHello says a hello of a fresh key with v's session id and
	// name, attested by the member that by returns (nil: the credential).
	impostorHello := func(v func(*scene) *victim, by func(*scene) ed25519.PrivateKey) func(t *testing.T, s *scene) target {
		return func(t *testing.T, s *scene) target {
			vic := v(s)
			key := newKey(t, vic.key.Mesh)
			rc, ch := s.dial(t)
			rc.write(t, s.hello(ch, key, by(s), func(h *wire.Hello) {
				h.SessionID, h.Name, h.ProjectDir = vic.key.SessionID, vic.listed.Name, vic.listed.ProjectDir
			}))
			return target{rc: rc, after: func(t *testing.T) {
				if _, err := s.hb.st.Session(t.Context(), key.Mesh, key.Public); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("the impostor's key was recorded: %v", err)
				}
				for _, p := range vic.sender.peers(t) {
					if p.SessionID == vic.key.SessionID && p.KeyID != vic.key.ID() {
						t.Errorf("the victim's session id is listed under the impostor's key: %+v", p)
					}
				}
			}}
		}
	}
	vt := func(s *scene) *victim { return s.vt }
	vc := func(s *scene) *victim { return s.vc }
	// first answers the challenge with data of type typ.
	first := func(typ int, data func(s *scene, challenge []byte) []byte) func(t *testing.T, s *scene) target {
		return func(t *testing.T, s *scene) target {
			rc, ch := s.dial(t)
			writeRaw(t, rc, typ, data(s, ch))
			return session(rc)
		}
	}
	text := func(str string) func(*scene, []byte) []byte {
		return func(*scene, []byte) []byte { return []byte(str) }
	}
	// after says a valid hello as a fresh session of team, then writes
	// data of type typ.
	after := func(typ int, data func(t *testing.T, s *scene) []byte) func(t *testing.T, s *scene) target {
		return func(t *testing.T, s *scene) target {
			rc, _ := s.session(t, s.team, nil)
			writeRaw(t, rc, typ, data(t, s))
			return session(rc)
		}
	}
	lit := func(str string) func(*testing.T, *scene) []byte {
		return func(*testing.T, *scene) []byte { return []byte(str) }
	}
	// joinWith says a join with the code that code returns.
	joinWith := func(code func(t *testing.T, s *scene) string) func(t *testing.T, s *scene) target {
		return func(t *testing.T, s *scene) target {
			c := code(t, s)
			rc, ch := s.dial(t)
			newbie := newMemberKey(t)
			rc.write(t, joinFrame(ch, c, newbie, "newbie"))
			return target{rc: rc, after: func(t *testing.T) {
				if s.isMember(t, s.crew, newbie) {
					t.Error("a refused join made a member")
				}
			}}
		}
	}

	return []hostileCase{
		// Before the hello.
		{
			name:   "first frame malformed JSON",
			attack: first(websocket.TextMessage, text(`{"type":"hello","v":1,"mesh":`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "first frame not an object",
			attack: first(websocket.TextMessage, text(`"hello"`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name: "first frame binary, the victim's valid hello",
			attack: first(websocket.BinaryMessage, func(s *scene, ch []byte) []byte {
				b, _ := wire.Encode(s.hello(ch, s.vt.key, nil, nil))
				return b
			}),
			code: wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "first frame of an unknown type",
			attack: first(websocket.TextMessage, text(`{"type":"takeover","mesh":"team-00"}`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "first frame without a type",
			attack: first(websocket.TextMessage, text(`{"v":1,"mesh":"team-00","name":"x"}`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name: "first frame over the size limit",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				b, _ := wire.Encode(s.hello(ch, s.vt.key, nil, nil))
				writeOversized(t, rc, string(bytes.TrimSuffix(b, []byte("}"))))
				return session(rc)
			},
			code: wire.CodeTooLarge, closed: tooLong,
		},
		{
			name: "first frame a peers request",
			attack: first(websocket.TextMessage, func(*scene, []byte) []byte {
				return []byte(`{"type":"peers","req":1}`)
			}),
			code: wire.CodeHelloRequired, closed: policy,
		},
		{
			name: "first frame a send to the victim",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.dial(t)
				rc.write(t, sendFrame(uuid.NewString(), s.vt.key.Public, 64))
				return session(rc)
			},
			code: wire.CodeHelloRequired, closed: policy,
		},
		{
			name: "slow handshake",
			cfg:  func(c *broker.Config) { c.HandshakeTimeout = 300 * time.Millisecond },
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.dial(t)
				return session(rc) // and say nothing
			},
			code: wire.CodeHandshakeTimeout, closed: policy,
		},

		// Hellos that must not open a session, most of them for the
		// victim's own key.
		{
			name: "hello with a bad signature for the victim's key",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				h := s.hello(ch, s.vt.key, nil, nil)
				h.Sig[7] ^= 0x40
				rc.write(t, h)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name: "hello signed by another key for the victim's key",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				h := s.hello(ch, s.vt.key, nil, nil)
				h.Sig = ed25519.Sign(newMemberKey(t), wire.HelloTranscript(ch, h))
				rc.write(t, h)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name: "victim's hello captured and replayed on a new connection",
			attack: func(t *testing.T, s *scene) target {
				// The hello is signed over the challenge of a connection
				// it was never said on; the victim's attestation in it
				// is valid.
				earlier, ch := s.dial(t)
				captured := s.hello(ch, s.vc.key, s.vc.member, nil)
				earlier.Close()
				rc, _ := s.dial(t)
				rc.write(t, captured)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name: "hello without a signature",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				h := s.hello(ch, s.vt.key, nil, nil)
				h.Sig = nil
				rc.write(t, h)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name:   "hello of another protocol version",
			attack: victimHello(vt, func(_ *scene, h *wire.Hello) { h.Version = wire.Version + 1 }),
			code:   wire.CodeUnsupportedVersion, closed: policy,
		},
		{
			name:   "mesh name ../x",
			attack: victimHello(vt, func(_ *scene, h *wire.Hello) { h.Mesh = "../x" }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "mesh name with a slash",
			attack: victimHello(vt, func(s *scene, h *wire.Hello) { h.Mesh = s.team + "/x" }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			// An empty mesh is refused like any invalid mesh name.
			name:   "mesh name empty",
			attack: victimHello(vt, func(_ *scene, h *wire.Hello) { h.Mesh = "" }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name: "mesh field missing",
			attack: first(websocket.TextMessage, func(s *scene, ch []byte) []byte {
				b, _ := wire.Encode(s.hello(ch, s.vt.key, nil, func(h *wire.Hello) { h.Mesh = "" }))
				return bytes.Replace(b, []byte(`"mesh":"",`), nil, 1)
			}),
			code: wire.CodeBadMesh, closed: policy,
		},
		{
			name: "member hello with an empty mesh",
			attack: first(websocket.TextMessage, func(s *scene, ch []byte) []byte {
				b, _ := wire.Encode(memberHello(ch, "", s.vicKey, "vic", ""))
				return b
			}),
			code: wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "mesh name in upper case",
			attack: victimHello(vt, func(s *scene, h *wire.Hello) { h.Mesh = strings.ToUpper(s.team) }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "mesh name of 65 characters",
			attack: victimHello(vt, func(_ *scene, h *wire.Hello) { h.Mesh = strings.Repeat("m", 65) }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "session id a path",
			attack: victimHello(vt, func(_ *scene, h *wire.Hello) { h.SessionID = "../../../../../../../../../../pw.key" }),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "hello without the broker credential",
			attack: victimHello(vt, func(_ *scene, h *wire.Hello) { h.Token = "" }),
			code:   wire.CodeUnauthorized, closed: policy,
		},
		{
			name:   "hello with a wrong broker credential",
			attack: victimHello(vt, func(s *scene, h *wire.Hello) { h.Token = strings.ToUpper(s.hb.token) }),
			code:   wire.CodeUnauthorized, closed: policy,
		},
		{
			name:   "standby hello for the victim's session",
			attack: victimHello(vt, func(_ *scene, h *wire.Hello) { h.Standby = true }),
			code:   wire.CodeSessionActive, closed: policy,
		},
		// Impostors: a hello that presents the victim's session UUID
		// (public in peer_list) with a key of its own.
		{
			name:   "the victim's session id and name under another key",
			attack: impostorHello(vt, func(*scene) ed25519.PrivateKey { return nil }),
			code:   wire.CodeSessionIDTaken, closed: policy,
		},
		{
			name:   "another member's session with the victim's session id and name",
			attack: impostorHello(vc, func(s *scene) ed25519.PrivateKey { return s.ownerKey }),
			code:   wire.CodeSessionIDTaken, closed: policy,
		},
		{
			name:   "the victim's own member presenting the victim's session id under a new key",
			attack: impostorHello(vc, func(s *scene) ed25519.PrivateKey { return s.vicKey }),
			code:   wire.CodeSessionIDTaken, closed: policy,
		},
		{
			name: "hello without attestation to a mesh with members",
			attack: victimHello(vc, func(s *scene, h *wire.Hello) {
				h.Attestation, h.Token = nil, s.hb.token // the credential does not stand in for membership
			}),
			code: wire.CodeAttestationRequired, closed: policy,
		},
		{
			name:   "attestation with a bad signature",
			attack: victimHello(vc, func(_ *scene, h *wire.Hello) { h.Attestation.Sig[3] ^= 1 }),
			code:   wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation expired",
			attack: victimHello(vc, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.vicKey, s.crew, h.Key, s.hb.clk.Now().Add(-time.Second))
			}),
			code: wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation valid for too long",
			attack: victimHello(vc, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.vicKey, s.crew, h.Key, s.hb.clk.Now().Add(wire.MaxAttestation+time.Hour))
			}),
			code: wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation for another mesh",
			attack: victimHello(vc, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.vicKey, s.team, h.Key, s.hb.clk.Now().Add(time.Hour))
			}),
			code: wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation by a non-member",
			attack: func(t *testing.T, s *scene) target {
				stranger := newMemberKey(t)
				return victimHello(vc, func(s *scene, h *wire.Hello) {
					h.Attestation = wire.Attest(stranger, s.crew, h.Key, s.hb.clk.Now().Add(time.Hour))
				})(t, s)
			},
			code: wire.CodeNotMember, closed: policy,
		},
		{
			name: "attestation by another member for the victim's session key",
			attack: victimHello(vc, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.ownerKey, s.crew, h.Key, s.hb.clk.Now().Add(time.Hour))
			}),
			code: wire.CodeSessionOwned, closed: policy,
		},
		{
			name: "attestation by a removed member",
			attack: func(t *testing.T, s *scene) target {
				removed := newMemberKey(t)
				s.joinAs(t, removed, "leaver", s.invite(t, 1))
				live, _ := s.session(t, s.crew, removed)
				if err := s.owner.Remove(waitCtx(t), "leaver"); err != nil {
					t.Fatalf("remove member: %v", err)
				}
				// Its live session is closed at once.
				if e, ok := live.frame(t).(*wire.Error); !ok || e.Code != wire.CodeMemberRemoved {
					t.Fatalf("removed member's session got %+v, want %s", e, wire.CodeMemberRemoved)
				}
				expectClosed(t, live, policy, wire.CodeMemberRemoved)
				rc, ch := s.dial(t)
				rc.write(t, s.hello(ch, newKey(t, s.crew), removed, nil))
				return session(rc)
			},
			code: wire.CodeNotMember, closed: policy,
		},

		// Joins that must not make a member.
		{
			name: "join with an unknown invite code",
			attack: joinWith(func(*testing.T, *scene) string {
				raw := make([]byte, wire.InviteCodeSize)
				rand.Read(raw)
				return wire.FormatInviteCode(raw)
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with a used-up invite code",
			attack: joinWith(func(t *testing.T, s *scene) string {
				code := s.invite(t, 1)
				s.joinAs(t, newMemberKey(t), "first", code)
				return code
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with an expired invite code",
			attack: joinWith(func(t *testing.T, s *scene) string {
				raw := make([]byte, wire.InviteCodeSize)
				rand.Read(raw)
				hash := sha256.Sum256(raw)
				now := s.hb.clk.Now()
				if err := s.hb.st.CreateInvite(t.Context(), store.Invite{
					Hash: hash[:], Mesh: s.crew, CreatedBy: pubOf(s.ownerKey), Uses: 5,
					ExpiresAt: now.Add(-time.Minute), CreatedAt: now.Add(-time.Hour),
				}); err != nil {
					t.Fatal(err)
				}
				return wire.FormatInviteCode(raw)
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with a revoked invite code",
			attack: joinWith(func(t *testing.T, s *scene) string {
				code := s.invite(t, 5)
				if err := s.owner.RevokeInvite(waitCtx(t), code); err != nil {
					t.Fatal(err)
				}
				return code
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with a bad signature",
			attack: func(t *testing.T, s *scene) target {
				code := s.invite(t, 1)
				rc, ch := s.dial(t)
				newbie := newMemberKey(t)
				j := joinFrame(ch, code, newbie, "newbie")
				j.Sig = ed25519.Sign(newMemberKey(t), wire.JoinTranscript(ch, j))
				rc.write(t, j)
				return target{rc: rc, after: func(t *testing.T) {
					// The refused join spent no use of the invite.
					s.joinAs(t, newbie, "newbie", code)
				}}
			},
			code: wire.CodeBadSignature, closed: policy,
		},

		// Member connections that overstep.
		{
			name: "member hello by a non-member",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				rc.write(t, memberHello(ch, s.crew, newMemberKey(t), "stranger", ""))
				return session(rc)
			},
			code: wire.CodeNotMember, closed: policy,
		},
		{
			name: "member hello for a new mesh with a wrong operator credential",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				rc.write(t, memberHello(ch, "mine-"+s.crew, newMemberKey(t), "stranger", strings.ToUpper(s.hb.token)))
				return target{rc: rc, after: func(t *testing.T) {
					if ok, err := s.hb.st.MeshExists(t.Context(), "mine-"+s.crew); ok || err != nil {
						t.Errorf("mesh created by a refused member hello (%v)", err)
					}
				}}
			},
			code: wire.CodeNotMember, closed: policy,
		},
		{
			name: "member creating an invite",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.InviteCreate{Req: 3, Uses: 1, ExpiresAt: s.hb.clk.Now().Add(time.Hour)})
				return target{rc: rc, member: true, ref: "3"}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "member revoking an invite",
			attack: func(t *testing.T, s *scene) target {
				code := s.invite(t, 1)
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.InviteRevoke{Req: 4, Code: code})
				return target{rc: rc, member: true, ref: "4", after: func(t *testing.T) {
					s.joinAs(t, newMemberKey(t), "newbie", code) // still good
				}}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "member removing the owner",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.MemberRemove{Req: 5, Name: "owner"})
				return target{rc: rc, member: true, ref: "5"}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "member removing another member",
			attack: func(t *testing.T, s *scene) target {
				other := newMemberKey(t)
				s.joinAs(t, other, "other", s.invite(t, 1))
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.MemberRemove{Req: 6, Name: "other"})
				return target{rc: rc, member: true, ref: "6", after: func(t *testing.T) {
					if !s.isMember(t, s.crew, other) {
						t.Error("a member's remove request removed another member")
					}
				}}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "mesh_create without the operator credential",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.MeshCreate{Req: 7})
				return target{rc: rc, member: true, ref: "7"}
			},
			code: wire.CodeUnauthorized,
		},
		{
			name: "member connection sending a DM",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, sendFrame(uuid.NewString(), s.vc.key.Public, 64))
				return target{rc: rc, member: true}
			},
			code: wire.CodeBadFrame,
		},

		// Frames after the hello.
		{
			name:   "malformed JSON",
			attack: after(websocket.TextMessage, lit(`{"type":"send","id":`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "not an object",
			attack: after(websocket.TextMessage, lit(`[{"type":"peers","req":1}]`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "binary message",
			attack: after(websocket.BinaryMessage, lit(`{"type":"peers","req":1}`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "unknown type",
			attack: after(websocket.TextMessage, lit(`{"type":"drain","to":"everyone"}`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "missing type",
			attack: after(websocket.TextMessage, lit(`{"req":1}`)),
			code:   wire.CodeBadFrame,
		},
		{
			name: "wrong field types in a send",
			attack: after(websocket.TextMessage, func(t *testing.T, s *scene) []byte {
				return []byte(`{"type":"send","id":7,"to":true,"nonce":[1,2],"box":{"a":1}}`)
			}),
			code: wire.CodeBadFrame,
		},
		{
			name: "ack ids as a string naming the victim's DM",
			attack: after(websocket.TextMessage, func(t *testing.T, s *scene) []byte {
				return []byte(`{"type":"ack","ids":"` + s.vt.dm.ID + `"}`)
			}),
			code: wire.CodeBadFrame,
		},
		{
			name: "second hello, for the victim's key",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				rc.write(t, s.hello(ch, newKey(t, s.team), nil, nil))
				if f := rc.frame(t); f.Type() != wire.TypeWelcome {
					t.Fatalf("hello answered with %+v", f)
				}
				rc.write(t, s.hello(ch, s.vt.key, nil, nil))
				return session(rc)
			},
			code: wire.CodeBadFrame,
		},
		{
			name: "frame over the size limit",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				writeOversized(t, rc, `{"type":"send","id":"`+uuid.NewString()+`"`)
				return session(rc)
			},
			code: wire.CodeTooLarge, closed: tooLong,
		},
		{
			name: "box over the limit, to the victim",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				id := uuid.NewString()
				rc.write(t, sendFrame(id, s.vt.key.Public, wire.MaxBoxSize+1))
				return target{rc: rc, ref: id}
			},
			code: wire.CodeTooLarge,
		},
		{
			name: "send to an unknown recipient",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				id, nobody := uuid.NewString(), newKey(t, s.team)
				rc.write(t, sendFrame(id, nobody.Public, 64))
				return target{rc: rc, ref: id, after: func(t *testing.T) {
					if ids := s.pending(t, s.team, nobody.Public); len(ids) != 0 {
						t.Errorf("DMs %v stored for an unknown recipient", ids)
					}
				}}
			},
			code: wire.CodeUnknownPeer,
		},
		{
			name: "send to the victim of another mesh",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				id := uuid.NewString()
				rc.write(t, sendFrame(id, s.vc.key.Public, 64))
				return target{rc: rc, ref: id, after: func(t *testing.T) {
					if ids := s.pending(t, s.team, s.vc.key.Public); len(ids) != 0 {
						t.Errorf("DMs %v stored under the crew victim's key in team", ids)
					}
				}}
			},
			code: wire.CodeUnknownPeer,
		},
		{
			name: "member's session sending to the victim of a mesh without members",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.crew, s.ownerKey)
				id := uuid.NewString()
				rc.write(t, sendFrame(id, s.vt.key.Public, 64))
				return target{rc: rc, ref: id}
			},
			code: wire.CodeUnknownPeer,
		},
		{
			name: "the victim's DM id with other content",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				rc.write(t, sendFrame(s.vt.dm.ID, s.vt.key.Public, len(s.vt.dm.Box)))
				return target{rc: rc, ref: s.vt.dm.ID}
			},
			code: wire.CodeDuplicateID,
		},
		{
			name: "the victim's DM id to another recipient",
			attack: func(t *testing.T, s *scene) target {
				rc, self := s.session(t, s.team, nil)
				rc.write(t, sendFrame(s.vt.dm.ID, self.Public, len(s.vt.dm.Box)))
				return target{rc: rc, ref: s.vt.dm.ID}
			},
			code: wire.CodeDuplicateID,
		},
		{
			name: "acks and clears of the victim's DM by another session and by its sender",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				rc.write(t, wire.Ack{IDs: []string{s.vt.dm.ID}})
				rc.write(t, wire.Ack{IDs: []string{s.vt.dm.ID}, Cleared: true})
				for _, sender := range []*peer{s.vt.sender, s.vc.sender} {
					dm := s.vt.dm.ID
					if sender == s.vc.sender {
						dm = s.vc.dm.ID
					}
					if err := sender.Ack([]string{dm}); err != nil {
						t.Fatal(err)
					}
					if err := sender.Clear([]string{dm}); err != nil {
						t.Fatal(err)
					}
					sender.peers(t) // answered after the broker handled the acks
				}
				return session(rc)
			},
		},
		{
			name: "receipts for the victim's DM by another member's session",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.crew, s.ownerKey)
				for _, state := range []string{wire.ReceiptReceived, wire.ReceiptPushed} {
					rc.write(t, wire.Receipt{IDs: []string{s.vc.dm.ID}, State: state, At: s.hb.clk.Now()})
				}
				return session(rc)
			},
		},
		{
			name: "status of the victim's DM asked by another session",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				rc.write(t, wire.StatusRequest{Req: 8, IDs: []string{s.vt.dm.ID}})
				l, ok := rc.frame(t).(wire.StatusList)
				if !ok || l.Req != 8 || len(l.Statuses) != 1 {
					t.Fatalf("status request answered with %+v", l)
				}
				if st := l.Statuses[0]; st.State != wire.StateUnknown || st.To != nil || !st.CreatedAt.IsZero() {
					t.Errorf("another session learned %+v about the victim's DM, want unknown", st)
				}
				return session(rc)
			},
		},

		// Limits.
		{
			name: "flood of sends beyond the session's rate",
			cfg:  func(c *broker.Config) { c.SendRate = 5 }, // bursts of 10; the clock stands still
			attack: func(t *testing.T, s *scene) target {
				const burst, extra = 10, 5
				sink := newKey(t, s.team)
				s.hb.join(t, sink, websocket.DefaultDialer)
				rc, flooder := s.session(t, s.team, nil)
				ids := make([]string, burst+extra)
				for i := range ids {
					ids[i] = uuid.NewString()
					rc.write(t, sendFrame(ids[i], sink.Public, 64))
				}
				for i, id := range ids[:len(ids)-1] {
					switch f := rc.frame(t).(type) {
					case wire.Sent:
						if i >= burst || f.ID != id {
							t.Fatalf("send %d answered with %+v", i, f)
						}
					case *wire.Error:
						if i < burst || f.Code != wire.CodeRateLimited || f.Ref != id {
							t.Fatalf("send %d answered with %+v", i, f)
						}
					default:
						t.Fatalf("send %d answered with %+v", i, f)
					}
				}
				return target{rc: rc, ref: ids[len(ids)-1], after: func(t *testing.T) {
					if got := s.pending(t, s.team, sink.Public); fmt.Sprint(got) != fmt.Sprint(ids[:burst]) {
						t.Errorf("stored for the flood's recipient: %v, want the first %d: %v", got, burst, ids[:burst])
					}
					sts, err := s.hb.st.Status(t.Context(), s.team, flooder.Public, ids[burst:], s.hb.clk.Now())
					if err != nil {
						t.Fatal(err)
					}
					for _, st := range sts {
						if st.State != store.StateUnknown {
							t.Errorf("refused DM %s is known: %+v", st.ID, st)
						}
					}
				}}
			},
			code: wire.CodeRateLimited,
		},
		{
			name: "recipient's queue over MaxQueued",
			cfg:  func(c *broker.Config) { c.MaxQueued = 3 },
			attack: func(t *testing.T, s *scene) target {
				sink := newKey(t, s.team)
				s.hb.join(t, sink, websocket.DefaultDialer).Close()
				rc, _ := s.session(t, s.team, nil)
				var stored []string
				for range 3 {
					id := uuid.NewString()
					rc.write(t, sendFrame(id, sink.Public, 64))
					if f, ok := rc.frame(t).(wire.Sent); !ok || f.ID != id {
						t.Fatalf("send below the limit answered with %+v", f)
					}
					stored = append(stored, id)
				}
				id := uuid.NewString()
				rc.write(t, sendFrame(id, sink.Public, 64))
				return target{rc: rc, ref: id, after: func(t *testing.T) {
					if got := s.pending(t, s.team, sink.Public); fmt.Sprint(got) != fmt.Sprint(stored) {
						t.Errorf("queued for the full recipient: %v, want %v", got, stored)
					}
				}}
			},
			code: wire.CodeQueueFull,
		},
		{
			name: "one session's DMs waiting for a recipient over MaxQueuedPerSender",
			cfg:  func(c *broker.Config) { c.MaxQueuedPerSender = 2 },
			attack: func(t *testing.T, s *scene) target {
				sink := newKey(t, s.team)
				s.hb.join(t, sink, websocket.DefaultDialer).Close()
				one, _ := s.session(t, s.team, nil)
				return fillPerSender(t, s, sink, 2, func() *rawConn { return one }, func() *rawConn {
					rc, _ := s.session(t, s.team, nil)
					return rc
				})
			},
			code: wire.CodeQueueFull,
		},
		{
			name: "one member's sessions together over MaxQueuedPerSender",
			cfg:  func(c *broker.Config) { c.MaxQueuedPerSender = 2 },
			attack: func(t *testing.T, s *scene) target {
				// The owner's DMs come from two sessions; a DM of vic,
				// another member, still gets through.
				sink := newKey(t, s.crew)
				rc := s.hb.dialRaw(t)
				rc.write(t, s.hello(rc.challenge(t), sink, s.vicKey, nil))
				if f := rc.frame(t); f.Type() != wire.TypeWelcome {
					t.Fatalf("sink hello answered with %+v", f)
				}
				rc.Close()
				return fillPerSender(t, s, sink, 2, func() *rawConn {
					rc, _ := s.session(t, s.crew, s.ownerKey) // a new session for each DM
					return rc
				}, func() *rawConn {
					rc, _ := s.session(t, s.crew, s.vicKey)
					return rc
				})
			},
			code: wire.CodeQueueFull,
		},
		{
			name: "too many connections for one member",
			cfg:  func(c *broker.Config) { c.MaxMemberConns = 3 },
			attack: func(t *testing.T, s *scene) target {
				// vic runs the victim session; two member connections
				// make three.
				s.memberConn(t, s.vicKey, "vic")
				s.memberConn(t, s.vicKey, "vic")
				rc, ch := s.dial(t)
				rc.write(t, s.hello(ch, newKey(t, s.crew), s.vicKey, nil))
				return session(rc)
			},
			code: wire.CodeTooManyConnections, closed: policy,
		},
	}
}

// fillPerSender sends n DMs to sink, each from a connection that sender
// returns, then one more, whose refusal the case reads. After it, a DM from
// another sender (other) still reaches sink: the cap is per sender.
func fillPerSender(t *testing.T, s *scene, sink *identity.Key, n int, sender, other func() *rawConn) target {
	t.Helper()
	var stored []string
	var rc *rawConn
	for range n + 1 {
		rc = sender()
		id := uuid.NewString()
		rc.write(t, sendFrame(id, sink.Public, 64))
		if len(stored) == n {
			return target{rc: rc, ref: id, after: func(t *testing.T) {
				if got := s.pending(t, sink.Mesh, sink.Public); fmt.Sprint(got) != fmt.Sprint(stored) {
					t.Errorf("queued for the recipient: %v, want %v", got, stored)
				}
				o := other()
				oid := uuid.NewString()
				o.write(t, sendFrame(oid, sink.Public, 64))
				if f, ok := o.frame(t).(wire.Sent); !ok || f.ID != oid {
					t.Errorf("another sender's DM to the recipient answered with %+v, want sent", f)
				}
			}}
		}
		if f, ok := rc.frame(t).(wire.Sent); !ok || f.ID != id {
			t.Fatalf("send below the limit answered with %+v", f)
		}
		stored = append(stored, id)
	}
	panic("unreachable")
}

// TestHostileInput is not parallel with other tests: its cases run in
// parallel with each other and load the machine enough to starve tests
// with deadlines.
func TestHostileInput(t *testing.T) {
	shared := newHostileBroker(t, broker.Config{})
	cases := hostileCases()
	t.Run("cases", func(t *testing.T) {
		for i, tt := range cases {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				hb := shared
				if tt.cfg != nil {
					var cfg broker.Config
					tt.cfg(&cfg)
					hb = newHostileBroker(t, cfg)
				}
				s := newScene(t, hb, i)
				tg := tt.attack(t, s)
				if tt.code != "" {
					f := tg.rc.frame(t)
					e, ok := f.(*wire.Error)
					if !ok || e.Code != tt.code {
						t.Fatalf("broker answered %T %+v, want error %s", f, f, tt.code)
					}
					if tg.ref != "" && e.Ref != tg.ref {
						t.Errorf("error %s has ref %q, want %q", e.Code, e.Ref, tg.ref)
					}
				}
				if tt.closed != 0 {
					expectClosed(t, tg.rc, tt.closed, tt.code)
				} else {
					expectServing(t, tg)
				}
				if tg.after != nil {
					tg.after(t)
				}
				s.unchanged(t)
				if hb == shared {
					// Replacements are counted for the whole broker:
					// checked once every case is over.
					hb.noPanics(t)
				} else {
					hb.healthy(t)
				}
			})
		}
	})

	// After all of that the shared broker still serves newcomers.
	t.Run("broker still serves", func(t *testing.T) {
		s := newScene(t, shared, len(cases))
		s.unchanged(t)
		shared.healthy(t)
	})
}

func TestHostileCasesCovered(t *testing.T) {
	cases := hostileCases()
	if len(cases) < 30 {
		t.Errorf("%d hostile cases, want at least 30", len(cases))
	}
	names := make(map[string]bool)
	codes := make(map[string]bool)
	for _, c := range cases {
		if names[c.name] {
			t.Errorf("two cases named %q", c.name)
		}
		names[c.name] = true
		codes[c.code] = true
	}
	// Every refusal a client can provoke has a case.
	for _, code := range []string{
		wire.CodeBadFrame, wire.CodeTooLarge, wire.CodeUnsupportedVersion, wire.CodeHelloRequired,
		wire.CodeHandshakeTimeout, wire.CodeUnauthorized, wire.CodeBadSignature, wire.CodeBadMesh,
		wire.CodeUnknownPeer, wire.CodeDuplicateID, wire.CodeSessionActive, wire.CodeAttestationRequired,
		wire.CodeBadAttestation, wire.CodeNotMember, wire.CodeSessionOwned, wire.CodeSessionIDTaken, wire.CodeNotOwner,
		wire.CodeBadInvite, wire.CodeRateLimited, wire.CodeQueueFull, wire.CodeTooManyConnections,
	} {
		if !codes[code] {
			t.Errorf("no hostile case answered with %s", code)
		}
	}
}
