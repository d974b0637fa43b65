package broker_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
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
	since  time.Time           // when its client's connection began
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
	v.since = v.State().Since
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
	if st := v.State(); !st.Connected || st.Replaced || st.Refused || !st.Since.Equal(v.since) {
		t.Errorf("victim in %s: client state %+v, want connected on its first connection (since %v)", mesh, st, v.since)
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

// The attacks that cases are made of.

// victimHello answers the challenge of a new connection with a hello
// for v's own session key, after edit.
func victimHello(v func(*scene) *victim, edit func(s *scene, h *wire.Hello)) func(t *testing.T, s *scene) target {
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
func impostorHello(v func(*scene) *victim, by func(*scene) ed25519.PrivateKey) func(t *testing.T, s *scene) target {
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

// inTeam and inCrew pick the victim of each mesh.
func inTeam(s *scene) *victim { return s.vt }
func inCrew(s *scene) *victim { return s.vc }

// answerChallenge answers the challenge with data of type typ.
func answerChallenge(typ int, data func(s *scene, challenge []byte) []byte) func(t *testing.T, s *scene) target {
	return func(t *testing.T, s *scene) target {
		rc, ch := s.dial(t)
		writeRaw(t, rc, typ, data(s, ch))
		return session(rc)
	}
}

// challengeText is data that is str.
func challengeText(str string) func(*scene, []byte) []byte {
	return func(*scene, []byte) []byte { return []byte(str) }
}

// afterHello says a valid hello as a fresh session of team, then
// writes data of type typ.
func afterHello(typ int, data func(t *testing.T, s *scene) []byte) func(t *testing.T, s *scene) target {
	return func(t *testing.T, s *scene) target {
		rc, _ := s.session(t, s.team, nil)
		writeRaw(t, rc, typ, data(t, s))
		return session(rc)
	}
}

// frameText is data that is str.
func frameText(str string) func(*testing.T, *scene) []byte {
	return func(*testing.T, *scene) []byte { return []byte(str) }
}

// joinWith says a join with the code that code returns.
func joinWith(code func(t *testing.T, s *scene) string) func(t *testing.T, s *scene) target {
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

// hostilePhases are the cases, phase by phase of a connection's life.
var hostilePhases = []struct {
	name  string
	cases func() []hostileCase
}{
	{"before the hello", hostileBeforeHello},
	{"hellos", hostileHellos},
	{"joins", hostileJoins},
	{"member connections", hostileMemberConns},
	{"after the hello", hostileAfterHello},
	{"limits", hostileLimits},
	{"groups", hostileGroups},
}

// TestHostileInput is not parallel with other tests: its cases run in
// parallel with each other and load the machine enough to starve tests
// with deadlines.
func TestHostileInput(t *testing.T) {
	shared := newHostileBroker(t, broker.Config{})
	n := 0 // numbers each case's meshes
	t.Run("cases", func(t *testing.T) {
		for _, phase := range hostilePhases {
			cases, first := phase.cases(), n
			n += len(cases)
			t.Run(phase.name, func(t *testing.T) {
				t.Parallel()
				for i, tt := range cases {
					t.Run(tt.name, func(t *testing.T) {
						t.Parallel()
						runHostileCase(t, shared, first+i, tt)
					})
				}
			})
		}
	})

	// After all of that the shared broker still serves newcomers.
	t.Run("broker still serves", func(t *testing.T) {
		s := newScene(t, shared, n)
		s.unchanged(t)
		shared.healthy(t)
	})
}

// runHostileCase runs case tt as the n-th case, on the shared broker
// unless it asks for one of its own.
func runHostileCase(t *testing.T, shared *hostileBroker, n int, tt hostileCase) {
	t.Helper()
	hb := shared
	if tt.cfg != nil {
		var cfg broker.Config
		tt.cfg(&cfg)
		hb = newHostileBroker(t, cfg)
	}
	s := newScene(t, hb, n)
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
		// Replacements are counted for the whole broker: checked once
		// every case is over.
		hb.noPanics(t)
	} else {
		hb.healthy(t)
	}
}

func TestHostileCasesCovered(t *testing.T) {
	var cases []hostileCase
	for _, phase := range hostilePhases {
		cases = append(cases, phase.cases()...)
	}
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
		wire.CodeBadGroup, wire.CodeGroupChanged, wire.CodeGroupTooLarge,
	} {
		if !codes[code] {
			t.Errorf("no hostile case answered with %s", code)
		}
	}
}
