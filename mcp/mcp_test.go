package mcp

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// peerKey returns a 32-byte key starting with the given hex digits; resolve
// only compares keys as text, so it need not be a curve point.
func peerKey(t *testing.T, prefix string) wire.Key {
	t.Helper()
	b, err := hex.DecodeString(prefix + strings.Repeat("0", 64-len(prefix)))
	if err != nil {
		t.Fatal(err)
	}
	return wire.Key(b)
}

func testPeer(t *testing.T, name, keyPrefix, sessionID string, online bool) wire.Peer {
	t.Helper()
	k := peerKey(t, keyPrefix)
	state := wire.PeerOffline
	if online {
		state = wire.PeerOnline
	}
	return wire.Peer{Key: k, KeyID: identity.KeyID(ed25519.PublicKey(k)), Name: name, SessionID: sessionID, State: state}
}

func TestResolve(t *testing.T) {
	const erinSession = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	alice := testPeer(t, "alice", "a11ce0", "", true)
	bobOnline := testPeer(t, "bob", "b0b001", "", true)
	bobAway := testPeer(t, "bob", "b0b002", "", false)
	carol1 := testPeer(t, "carol", "ca201001", "", true)
	carol2 := testPeer(t, "carol", "ca202002", "", true)
	dave1 := testPeer(t, "dave", "da7e01", "", false)
	dave2 := testPeer(t, "dave", "da7e02", "", false)
	erin := testPeer(t, "erin", "e41a00", erinSession, true)
	e41a := testPeer(t, "e41a", "fa4e00", "", true)
	peers := []wire.Peer{alice, bobOnline, bobAway, carol1, carol2, dave1, dave2, erin, e41a}

	for _, tc := range []struct {
		to   string
		want wire.Peer
	}{
		{"alice", alice},
		{"ALICE", alice},
		{"@alice", alice},
		{"  alice ", alice},
		{"a11c", alice}, // key id prefix, at least 4 hex digits
		{"A11CE0", alice},
		{alice.KeyID, alice},
		{alice.Key.String(), alice},
		{"ca201", carol1},
		{"ca202002", carol2},
		{"b0b002", bobAway}, // a key id reaches an away session too
		{erinSession, erin},
		{strings.ToUpper(erinSession), erin},
	} {
		got, err := resolve(tc.to, peers)
		if err != nil {
			t.Errorf("resolve(%q): %v", tc.to, err)
		} else if got.KeyID != tc.want.KeyID {
			t.Errorf("resolve(%q) = %s (%s), want %s (%s)", tc.to, got.Name, got.KeyID, tc.want.Name, tc.want.KeyID)
		}
	}

	for _, tc := range []struct {
		to       string
		contains []string
		excludes []string
	}{
		// Two online sessions share the name: the model must pick by key id.
		{"carol", []string{`"carol" matches 2 sessions`, carol1.KeyID, carol2.KeyID, "key id", "Nothing was sent"}, []string{alice.KeyID}},
		{"ca20", []string{"matches 2 sessions", carol1.KeyID, carol2.KeyID}, nil},
		// Two away sessions: neither is preferred.
		{"dave", []string{"matches 2 sessions", dave1.KeyID, dave2.KeyID}, nil},
		// An online and an away session: the online one is not preferred
		// either (it may pose as the away one); each is listed with its
		// state.
		{"bob", []string{`"bob" matches 2 sessions`, "key id " + bobOnline.KeyID + ", online", "key id " + bobAway.KeyID + ", away"}, nil},
		// A name matching one session and a key prefix matching another.
		{"e41a", []string{"matches 2 sessions", erin.KeyID, e41a.KeyID}, nil},
		// Three hex digits are too few to be a key prefix.
		{"a11", []string{`no peer named "a11"`}, nil},
		{"zed", []string{`no peer named "zed"`, "Online: alice (a11ce0000000), bob (b0b001000000)", "Away: bob (b0b002000000)"}, nil},
		// Nothing left to match: not every session without a session id.
		{"", []string{"no peer named"}, nil},
		{"@", []string{"no peer named"}, nil},
	} {
		_, err := resolve(tc.to, peers)
		if err == nil {
			t.Errorf("resolve(%q) succeeded, want an error", tc.to)
			continue
		}
		for _, s := range tc.contains {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("resolve(%q) error %q does not contain %q", tc.to, err, s)
			}
		}
		for _, s := range tc.excludes {
			if strings.Contains(err.Error(), s) {
				t.Errorf("resolve(%q) error %q names %q, which does not match", tc.to, err, s)
			}
		}
	}

	// A key is matched by a prefix of 4 hex digits or more, never fewer.
	for n := 1; n <= len(alice.Key.String()); n++ {
		got, err := resolve(alice.Key.String()[:n], []wire.Peer{alice})
		if n >= 4 && (err != nil || got.KeyID != alice.KeyID) {
			t.Errorf("resolve of a %d-digit key prefix: %s, %v", n, got.KeyID, err)
		}
		if n < 4 && err == nil {
			t.Errorf("resolve of a %d-digit key prefix matched %s", n, got.KeyID)
		}
	}

	_, err := resolve("bob", nil)
	if err == nil || !strings.Contains(err.Error(), "No other session is in this mesh yet") {
		t.Errorf("resolve in an empty mesh: %v", err)
	}
	_, err = resolve("bob", []wire.Peer{bobAway})
	if err != nil {
		t.Errorf("resolve of the only, away, bob: %v", err)
	}
	_, err = resolve("zed", []wire.Peer{bobAway})
	if err == nil || !strings.Contains(err.Error(), "No peer is online. Away: bob") {
		t.Errorf("resolve with nobody online: %v", err)
	}
}

func msg(id string) Message { return Message{ID: id, Text: "text of " + id} }

func ids(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestInbox(t *testing.T) {
	b := newInbox()
	if got, remaining := b.take(10); len(got) != 0 || got == nil || remaining != 0 {
		t.Errorf("take from an empty inbox = %v (nil %v), %d", got, got == nil, remaining)
	}
	for _, id := range []string{"1", "2", "3"} {
		if r := b.add(msg(id)); r != added {
			t.Fatalf("add(%s) = %v, want added", id, r)
		}
	}
	// The broker delivers again what was not acked yet: kept once.
	if r := b.add(msg("2")); r != duplicate {
		t.Errorf("add of an unread id = %v, want duplicate", r)
	}
	if n := b.count(); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}

	got, remaining := b.take(2)
	if fmt.Sprint(ids(got)) != "[1 2]" || remaining != 1 {
		t.Errorf("take(2) = %v, %d remaining; want [1 2], 1", ids(got), remaining)
	}
	// A DM returned once is never returned again, even if delivered again.
	for _, id := range []string{"1", "2"} {
		if r := b.add(msg(id)); r != alreadyReturned {
			t.Errorf("add of returned %s = %v, want alreadyReturned", id, r)
		}
	}
	b.add(msg("4"))
	got, remaining = b.take(10)
	if fmt.Sprint(ids(got)) != "[3 4]" || remaining != 0 {
		t.Errorf("take(10) = %v, %d remaining; want [3 4], 0", ids(got), remaining)
	}
	if got, _ := b.take(10); len(got) != 0 {
		t.Errorf("a third take returned %v", ids(got))
	}
	if n := b.count(); n != 0 {
		t.Errorf("count = %d, want 0", n)
	}

	// The memory of returned ids is bounded: the oldest are forgotten.
	for i := range returnedMemory {
		b.add(msg(fmt.Sprint("m", i)))
	}
	b.take(returnedMemory)
	if r := b.add(msg("1")); r != added {
		t.Errorf("add of an id returned %d DMs ago = %v, want added (forgotten)", returnedMemory, r)
	}
	if r := b.add(msg(fmt.Sprint("m", returnedMemory-1))); r != alreadyReturned {
		t.Errorf("add of the latest returned id = %v, want alreadyReturned", r)
	}
}

// A DM the broker delivers again after its ack or clear was lost is
// acknowledged the way it left the inbox: read if inbox returned it,
// cleared if clear_inbox discarded it.
func TestInboxRemembersHowADMLeft(t *testing.T) {
	b := newInbox()
	for _, id := range []string{"read", "c1", "c2"} {
		b.add(msg(id))
	}
	if got, _ := b.take(1); fmt.Sprint(ids(got)) != "[read]" {
		t.Fatalf("take(1) = %v", ids(got))
	}
	if got := b.clear(); fmt.Sprint(ids(got)) != "[c1 c2]" {
		t.Fatalf("clear = %v, want [c1 c2]", ids(got))
	}
	if n := b.count(); n != 0 {
		t.Errorf("%d DMs left after clear", n)
	}
	for id, want := range map[string]addResult{"read": alreadyReturned, "c1": alreadyCleared, "c2": alreadyCleared, "new": added} {
		if r := b.add(msg(id)); r != want {
			t.Errorf("add(%s) after it left = %v, want %v", id, r, want)
		}
	}
}

// Pushed DMs stay unread, marked, and no longer count as unseen.
func TestInboxPushedStayUntilRead(t *testing.T) {
	b := newInbox()
	changes := 0
	b.changed = func() { changes++ }
	a1, a2, c1 := msg("a1"), msg("a2"), msg("c1")
	a1.From, a2.From, c1.From = "alice", "alice", "carol"
	for _, m := range []Message{a1, a2, c1} {
		b.add(m)
	}
	if n, from := b.summary(); n != 3 || fmt.Sprint(from) != "[alice carol]" {
		t.Errorf("summary = %d %v, want 3 [alice carol]", n, from)
	}
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	b.markPushed("a1", at)
	b.markPushed("c1", at)
	b.markPushed("nope", at)
	if n, from := b.summary(); n != 1 || fmt.Sprint(from) != "[alice]" {
		t.Errorf("summary after pushes = %d %v, want 1 [alice]", n, from)
	}
	got, _ := b.take(10)
	if len(got) != 3 || got[0].Status != statusPushed || got[0].PushedAt != "2026-11-25T09:00:00Z" || got[1].Status != statusNew {
		t.Errorf("take = %+v, want all three, a1 and c1 pushed", got)
	}
	if changes != 6 {
		t.Errorf("%d change notifications, want 6 (3 adds, 2 pushes, 1 take)", changes)
	}
}

func newKey(t *testing.T, mesh string) *identity.Key {
	t.Helper()
	k, err := identity.NewEphemeral(mesh)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealedDM is the DM the broker would deliver for a sealed letter.
func sealedDM(t *testing.T, id, text string, sentAt time.Time, from *identity.Key, to ed25519.PublicKey) wire.DM {
	t.Helper()
	nonce, box, err := client.Seal(id, text, sentAt, to, identity.NewBoxes(from.Private, 4))
	if err != nil {
		t.Fatal(err)
	}
	return wire.DM{ID: id, From: wire.Key(from.Public), FromName: "alice", FromSession: "s", Nonce: nonce[:], Box: box, SentAt: time.Now()}
}

func TestOpen(t *testing.T) {
	alice, bob, carol := newKey(t, "default"), newKey(t, "default"), newKey(t, "default")
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	sentAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	t.Run("good", func(t *testing.T) {
		text := "héllo <b>&</b> \"bob\"\n\x01"
		m, _ := open(sealedDM(t, id, text, sentAt, alice, bob.Public), identity.NewBoxes(bob.Private, 4))
		want := Message{ID: id, From: "alice", FromKeyID: alice.ID(), FromSession: "s", SentAt: "2026-01-02T03:04:05Z", Text: text, Status: statusNew}
		if m != want {
			t.Errorf("open = %+v, want %+v", m, want)
		}
	})
	for _, tc := range []struct {
		name  string
		dm    func() wire.DM
		error string
	}{
		{"sealed to another key", func() wire.DM { return sealedDM(t, id, "for carol", sentAt, alice, carol.Public) }, "could not decrypt"},
		{"claimed sender is not the sealer", func() wire.DM {
			dm := sealedDM(t, id, "from alice", sentAt, alice, bob.Public)
			dm.From = wire.Key(carol.Public)
			return dm
		}, "could not decrypt"},
		{"tampered box", func() wire.DM {
			dm := sealedDM(t, id, "from alice", sentAt, alice, bob.Public)
			dm.Box[len(dm.Box)-1] ^= 1
			return dm
		}, "could not decrypt"},
		{"replayed under another id", func() wire.DM {
			dm := sealedDM(t, id, "once", sentAt, alice, bob.Public)
			dm.ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
			return dm
		}, "possible replay"},
		{"not a letter", func() wire.DM { return rawDM(t, []byte("just text"), alice, bob) }, "not a claudemesh DM"},
		{"unknown letter version", func() wire.DM {
			return rawDM(t, []byte(`{"v":2,"id":"`+id+`","text":"future","sent_at":"2026-01-02T03:04:05Z"}`), alice, bob)
		}, "not a claudemesh DM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := open(tc.dm(), identity.NewBoxes(bob.Private, 4))
			if !strings.Contains(m.Error, tc.error) {
				t.Errorf("Error = %q, want it to contain %q", m.Error, tc.error)
			}
			if m.Text != "" {
				t.Errorf("Text = %q, want none for a DM that does not open", m.Text)
			}
			// It is still shown, with who sent it.
			if m.ID == "" || m.FromKeyID == "" || m.From != "alice" {
				t.Errorf("open = %+v, want the id and sender kept", m)
			}
		})
	}
}

func rawDM(t *testing.T, plain []byte, from, to *identity.Key) wire.DM {
	t.Helper()
	nonce, box, err := identity.Seal(plain, to.Public, from.Private)
	if err != nil {
		t.Fatal(err)
	}
	return wire.DM{ID: "0f8fad5b-d9cb-469f-a165-70867728950e", From: wire.Key(from.Public), FromName: "alice", Nonce: nonce[:], Box: box, SentAt: time.Now()}
}

func TestSealSize(t *testing.T) {
	alice, bob := newKey(t, "default"), newKey(t, "default")
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	// The largest text send_dm accepts fits whatever characters it holds
	// that JSON may escape as HTML.
	for _, text := range []string{
		strings.Repeat("<&>", MaxText/3),
		strings.Repeat(`"\`, MaxText/2),
		strings.Repeat("\n", MaxText),
		strings.Repeat("é", MaxText/2),
	} {
		m, _ := open(sealedDM(t, id, text, time.Now(), alice, bob.Public), identity.NewBoxes(bob.Private, 4))
		if m.Error != "" || m.Text != text {
			t.Errorf("%d bytes of %q: open = error %q, %d bytes", len(text), text[:2], m.Error, len(m.Text))
		}
	}
	_, _, err := client.Seal(id, strings.Repeat("\x01", MaxText), time.Now(), bob.Public, identity.NewBoxes(alice.Private, 4))
	if !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("seal of %d control characters: %v, want client.ErrTooLarge", MaxText, err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	const (
		ours   = "0f8fad5b-d9cb-469f-a165-70867728950e"
		claude = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	)
	home := t.TempDir()
	base := map[string]string{config.EnvHome: home, config.EnvName: "alice", claudecode.EnvProjectDir: "/p"}
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}

	for _, tc := range []struct {
		name                      string
		getenv                    func(string) string
		session, source, mesh, nm string
	}{
		{"ours over Claude Code's", env(config.EnvSessionID, ours, claudecode.EnvSessionID, claude), ours, config.EnvSessionID, config.DefaultMesh, "alice"},
		{"Claude Code's", env(claudecode.EnvSessionID, claude), claude, claudecode.EnvSessionID, config.DefaultMesh, "alice"},
		{"canonical form", env(claudecode.EnvSessionID, strings.ToUpper(claude)), claude, claudecode.EnvSessionID, config.DefaultMesh, "alice"},
		{"none", env(), "", "", config.DefaultMesh, "alice"},
		{"mesh", env(config.EnvMesh, "team-a.1"), "", "", "team-a.1", "alice"},
		{"name trimmed", env(config.EnvName, "  bob \n"), "", "", config.DefaultMesh, "bob"},
		{"default name", env(config.EnvName, "", "USER", "carol"), "", "", config.DefaultMesh, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(tc.getenv)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.SessionID != tc.session || cfg.SessionSource != tc.source || cfg.Mesh != tc.mesh {
				t.Errorf("session %q from %q, mesh %q; want %q from %q, mesh %q", cfg.SessionID, cfg.SessionSource, cfg.Mesh, tc.session, tc.source, tc.mesh)
			}
			switch {
			case tc.nm != "" && cfg.Name != tc.nm:
				t.Errorf("name %q, want %q", cfg.Name, tc.nm)
			case tc.nm == "" && !strings.HasPrefix(cfg.Name, "carol@"):
				t.Errorf("name %q, want a default name for carol", cfg.Name)
			}
			if cfg.Home != home || cfg.ProjectDir != "/p" || cfg.Logger != nil {
				t.Errorf("home %q, project %q, logger %v", cfg.Home, cfg.ProjectDir, cfg.Logger)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		getenv func(string) string
		want   string
	}{
		{"bad mesh", env(config.EnvMesh, "Team"), config.EnvMesh},
		{"mesh path", env(config.EnvMesh, "../x"), config.EnvMesh},
		{"bad session id", env(config.EnvSessionID, "../../etc/passwd"), config.EnvSessionID},
		// An explicit id that is wrong is an error, never a silent fallback
		// to Claude Code's.
		{"bad ours, good Claude Code's", env(config.EnvSessionID, "nope", claudecode.EnvSessionID, claude), config.EnvSessionID},
		{"bad Claude Code's", env(claudecode.EnvSessionID, "00000000-0000-0000-0000-000000000000"), claudecode.EnvSessionID},
		{"control characters in name", env(config.EnvName, "al\x1bice"), config.EnvName},
		{"long name", env(config.EnvName, strings.Repeat("n", wire.MaxNameLen+1)), config.EnvName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(tc.getenv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ConfigFromEnv = %+v, %v; want an error naming %s", cfg, err, tc.want)
			}
		})
	}

	// A relative home is made absolute, so that the keystore does not move
	// with the working directory.
	cfg, err := ConfigFromEnv(env(config.EnvHome, "rel/home"))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(cfg.Home) || !strings.HasSuffix(cfg.Home, filepath.Join("rel", "home")) {
		t.Errorf("home = %q, want an absolute path ending in rel/home", cfg.Home)
	}
}

// Two sessions of one user in one project get default names that differ:
// each carries a tag of its own identity, stable across restarts of the
// session.
func TestDefaultNamesOfTwoSessionsDoNotCollide(t *testing.T) {
	a, err := identity.NewEphemeral("default")
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	a.SessionID, b.SessionID = "3f2a0000-0000-4000-8000-000000000000", "9c1d0000-0000-4000-8000-000000000000"
	if got, want := TaggedName("amy@laptop/api", a), "amy@laptop/api#3f2a"; got != want {
		t.Errorf("TaggedName = %q, want %q", got, want)
	}
	if TaggedName("amy@laptop/api", a) == TaggedName("amy@laptop/api", &b) {
		t.Error("two sessions of one project got the same default name")
	}
	eph, err := identity.NewEphemeral("default")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := TaggedName("amy", eph), "amy#"+eph.ID()[:4]; got != want {
		t.Errorf("ephemeral: TaggedName = %q, want %q", got, want)
	}
	long := TaggedName(strings.Repeat("é", wire.MaxNameLen), a)
	if len(long) > wire.MaxNameLen || !strings.HasSuffix(long, "#3f2a") || validName(long) != nil || !utf8.ValidString(long) {
		t.Errorf("a long default name tagged: %q (%d bytes)", long, len(long))
	}
}

// The tools say online, reconnecting and away for the broker's online,
// grace and offline, and away for a state they do not know.
func TestPresence(t *testing.T) {
	for state, want := range map[string]string{
		wire.PeerOnline: "online", wire.PeerGrace: "reconnecting", wire.PeerOffline: "away", "": "away", "later": "away",
	} {
		if got := presence(state); got != want {
			t.Errorf("presence(%q) = %q, want %q", state, got, want)
		}
	}
	online := testPeer(t, "alice", "a11ce0", "", true)
	back := testPeer(t, "bob", "b0b001", "", false)
	back.State = wire.PeerGrace
	away := testPeer(t, "carol", "ca201001", "", false)
	for _, tc := range []struct {
		peers []wire.Peer
		want  string
	}{
		{nil, "No other session is in this mesh yet."},
		{[]wire.Peer{away, back, online}, "Online: alice (a11ce0000000). Reconnecting: bob (b0b001000000). Away: carol (ca2010010000)."},
		{[]wire.Peer{back}, "No peer is online. Reconnecting: bob (b0b001000000)."},
	} {
		if got := describePeers(tc.peers); got != tc.want {
			t.Errorf("describePeers = %q, want %q", got, tc.want)
		}
	}
}
