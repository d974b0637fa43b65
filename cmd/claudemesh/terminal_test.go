package main

// End-to-end tests of the terminal's commands (peers, send, inbox, status):
// the built binary against a real broker, talking with real `claudemesh
// mcp` sessions.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/internal/testproc"
)

// The terminal commands' --json output, written out here so that a renamed
// field breaks the test as it would break a script.
type (
	termPeer struct {
		Name      string `json:"name"`
		KeyID     string `json:"key_id"`
		Kind      string `json:"kind"`
		State     string `json:"state"`
		SessionID string `json:"session_id"`
		Member    string `json:"member"`
	}
	termPeers struct {
		Mesh  string     `json:"mesh"`
		You   termPeer   `json:"you"`
		Peers []termPeer `json:"peers"`
	}
	termSent struct {
		ID      string `json:"id"`
		To      string `json:"to"`
		ToKeyID string `json:"to_key_id"`
		ToKind  string `json:"to_kind"`
		Status  string `json:"status"`
	}
	termDM struct {
		ID        string `json:"id"`
		From      string `json:"from"`
		FromKeyID string `json:"from_key_id"`
		SentAt    string `json:"sent_at"`
		Text      string `json:"text"`
		Error     string `json:"error"`
	}
	termStatus struct {
		ID      string `json:"id"`
		To      string `json:"to"`
		ToKeyID string `json:"to_key_id"`
		State   string `json:"state"`
		ReadAt  string `json:"read_at"`
	}
	// sessionPeer is a row of a session's list_peers, with its kind.
	sessionPeer struct {
		Name   string `json:"name"`
		KeyID  string `json:"key_id"`
		Kind   string `json:"kind"`
		State  string `json:"state"`
		Member string `json:"member"`
	}
)

// term runs the binary with CLAUDEMESH_HOME=home and stdin, and returns
// its stdout, stderr and exit status.
func term(t *testing.T, home, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), args...)
	cmd.Env = env(t, home)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("claudemesh %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), 0
}

// termJSON runs a terminal command that must succeed and decodes its JSON.
func termJSON[T any](t *testing.T, home string, args ...string) T {
	t.Helper()
	out, errOut, code := term(t, home, "", args...)
	if code != 0 {
		t.Fatalf("claudemesh %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("claudemesh %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// inboxLines runs `inbox --json` and decodes its lines.
func inboxLines(t *testing.T, home string, args ...string) []termDM {
	t.Helper()
	out, errOut, code := term(t, home, "", append([]string{"inbox", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("inbox: exit %d: %s", code, errOut)
	}
	var dms []termDM
	for line := range strings.Lines(out) {
		var dm termDM
		if err := json.Unmarshal([]byte(line), &dm); err != nil {
			t.Fatalf("inbox line is not JSON: %v: %q", err, line)
		}
		dms = append(dms, dm)
	}
	return dms
}

// sessionPeers is the session's list_peers rows.
func sessionPeers(t *testing.T, s *session) []sessionPeer {
	t.Helper()
	return mustCall[struct {
		Peers []sessionPeer `json:"peers"`
	}](t, s, "list_peers", nil).Peers
}

// waitTermStatus polls `status ID --json` until the DM is in state.
func waitTermStatus(t *testing.T, home, id, state string, args ...string) termStatus {
	t.Helper()
	var st termStatus
	waitFor(t, waitLong, "DM "+id+" "+state, func() (bool, error) {
		st = termJSON[termStatus](t, home, append([]string{"status", id, "--json"}, args...)...)
		return st.State == state, nil
	})
	return st
}

// The terminal and a Claude Code session message each other both ways,
// with receipts: the session sees the terminal as a human peer, the
// terminal sees the session, and each sees its DM read.
func TestTerminalAndSessionExchangeDMs(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	alice := m.join(t, "alice", uuid.NewString())
	aliceKey := alice.waitConnected(t).KeyID

	var peers termPeers
	waitFor(t, waitLong, "the terminal to see alice", func() (bool, error) {
		peers = termJSON[termPeers](t, m.home, "peers", "--json", "--name", "olga (terminal)")
		return len(peers.Peers) == 1 && peers.Peers[0].KeyID == aliceKey && peers.Peers[0].State == "online", nil
	})
	if p := peers.Peers[0]; p.Kind != "session" || p.Name != "alice" {
		t.Errorf("the terminal lists alice as %+v", p)
	}
	me := peers.You
	if me.Kind != "human" || me.Name != "olga (terminal)" || me.SessionID == "" {
		t.Errorf("peers --json says the terminal is %+v", me)
	}
	// The table names the same peer, and its kind.
	if out, _, code := term(t, m.home, "", "peers"); code != 0 || !strings.Contains(out, aliceKey) || !strings.Contains(out, "session") {
		t.Errorf("peers table (exit %d):\n%s", code, out)
	}

	// Terminal → session.
	sent := termJSON[termSent](t, m.home, "send", "alice", "the build is green", "--json", "--name", "olga (terminal)")
	if sent.Status != "delivered" || sent.ToKeyID != aliceKey || sent.ToKind != "session" || uuid.Validate(sent.ID) != nil {
		t.Errorf("send: %+v", sent)
	}
	waitTermStatus(t, m.home, sent.ID, "delivered")
	got := alice.waitInbox(t, 1)
	if got[0].ID != sent.ID || got[0].Text != "the build is green" || got[0].FromKeyID != me.KeyID || got[0].From != "olga (terminal)" {
		t.Errorf("alice's inbox: %+v", got[0])
	}
	if st := waitTermStatus(t, m.home, sent.ID, "read"); st.ReadAt == "" || st.To != "alice" {
		t.Errorf("status: %+v", st)
	}
	// The status table says so too; the same id from another identity
	// is unknown to it.
	if out, _, code := term(t, m.home, "", "status", sent.ID); code != 0 || !strings.Contains(out, "read") {
		t.Errorf("status table (exit %d):\n%s", code, out)
	}
	if st := termJSON[termStatus](t, m.home, "status", sent.ID, "--json", "--mesh", "other"); st.State != "unknown" {
		t.Errorf("status from another mesh's terminal: %+v", st)
	}

	// The session sees a human peer, and the same one each time: the
	// terminal's identity is stable across commands.
	var row sessionPeer
	for _, p := range sessionPeers(t, alice) {
		if p.KeyID == me.KeyID {
			row = p
		}
	}
	if row.Kind != "human" || row.Name != "olga (terminal)" {
		t.Errorf("alice's list_peers shows the terminal as %+v", row)
	}
	for _, p := range sessionPeers(t, alice) {
		if p.KeyID != me.KeyID && p.Kind == "human" {
			t.Errorf("another human peer in alice's list_peers: %+v", p)
		}
	}

	// Session → terminal, by its name and by its key id.
	r1 := alice.send(t, "olga (terminal)", "thanks, deploying")
	r2 := alice.send(t, me.KeyID, "done <ok> & \"quoted\"\nsecond line")
	if r1.ToKeyID != me.KeyID || r2.ToKeyID != me.KeyID {
		t.Errorf("alice sent to %s and %s, want %s", r1.ToKeyID, r2.ToKeyID, me.KeyID)
	}
	dms := inboxLines(t, m.home)
	if len(dms) != 2 || dms[0].ID != r1.ID || dms[0].Text != "thanks, deploying" || dms[1].Text != "done <ok> & \"quoted\"\nsecond line" ||
		dms[0].FromKeyID != aliceKey || dms[0].From != "alice" || dms[0].Error != "" {
		t.Fatalf("terminal inbox: %+v", dms)
	}
	for _, id := range []string{r1.ID, r2.ID} {
		waitFor(t, waitLong, "alice to see "+id+" read", func() (bool, error) {
			return mustCall[statusResult](t, alice, "message_status", map[string]any{"id": id}).State == "read", nil
		})
	}
	// Each DM is printed once.
	if again := inboxLines(t, m.home); len(again) != 0 {
		t.Errorf("second inbox printed %+v, want nothing", again)
	}
	out, errOut, code := term(t, m.home, "", "inbox")
	if code != 0 || out != "" || !strings.Contains(errOut, "No unread DMs") {
		t.Errorf("empty inbox: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// follower is a running `claudemesh inbox --follow --json` whose lines
// are read by one goroutine.
type follower struct {
	*proc
	lines chan termDM
}

func startFollow(t *testing.T, home string) *follower {
	t.Helper()
	log := new(testproc.Buffer)
	cmd := exec.Command(binary(t), "inbox", "--follow", "--json", "--name", "olga (terminal)")
	cmd.Env = env(t, home, "CLAUDEMESH_LOG_LEVEL=debug")
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{lines: make(chan termDM, 16)}
	f.proc = startProc(t, "inbox --follow", cmd, log)
	go func() {
		defer close(f.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var dm termDM
			if err := json.Unmarshal(sc.Bytes(), &dm); err != nil {
				dm.Error = fmt.Sprintf("not JSON: %q", sc.Text())
			}
			f.lines <- dm
		}
	}()
	return f
}

// next waits for the next DM the follower prints.
func (f *follower) next(t *testing.T, within time.Duration) termDM {
	t.Helper()
	select {
	case dm, ok := <-f.lines:
		if !ok {
			t.Fatalf("inbox --follow ended:\n%s", f.log)
		}
		return dm
	case <-time.After(within):
		t.Fatalf("inbox --follow printed nothing within %v:\n%s", within, f.log)
	}
	return termDM{}
}

// `inbox --follow` prints each DM while it follows, also after another
// terminal command took its identity for a moment, and ends with status 0
// on SIGINT having acknowledged what it printed and nothing else.
func TestInboxFollow(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	alice := m.join(t, "alice", uuid.NewString())
	alice.waitConnected(t)
	// What waits before it starts is printed first.
	me := termJSON[termPeers](t, m.home, "peers", "--json", "--name", "olga (terminal)").You
	early := alice.send(t, "olga (terminal)", "before you looked")

	f := startFollow(t, m.home)
	if dm := f.next(t, waitLong); dm.ID != early.ID || dm.Text != "before you looked" {
		t.Fatalf("first line: %+v", dm)
	}
	alice.waitPeer(t, me.KeyID, "online")

	start := time.Now()
	r := alice.send(t, me.KeyID, "live one")
	dm := f.next(t, waitLong)
	t.Logf("send_dm → printed by inbox --follow: %v", time.Since(start))
	if dm.ID != r.ID || dm.Text != "live one" || dm.From != "alice" {
		t.Fatalf("followed DM: %+v", dm)
	}

	// Another terminal command of the same identity takes the connection
	// for a moment; the follower takes it back by itself.
	sent := termJSON[termSent](t, m.home, "send", "alice", "from a second terminal", "--json")
	if sent.Status != "delivered" {
		t.Errorf("send while following: %+v", sent)
	}
	alice.waitPeer(t, me.KeyID, "online")
	r = alice.send(t, me.KeyID, "after the hand-over")
	if dm := f.next(t, waitLong); dm.ID != r.ID || dm.Text != "after the hand-over" {
		t.Fatalf("DM after the hand-over: %+v", dm)
	}

	f.cmd.Process.Signal(syscall.SIGINT)
	f.waitExit(t, "SIGINT")
	// Everything it printed is read, and none of it is printed again.
	for _, id := range []string{early.ID, r.ID} {
		waitFor(t, waitLong, "alice to see "+id+" read", func() (bool, error) {
			return mustCall[statusResult](t, alice, "message_status", map[string]any{"id": id}).State == "read", nil
		})
	}
	later := alice.send(t, me.KeyID, "while nobody follows")
	if dms := inboxLines(t, m.home); len(dms) != 1 || dms[0].ID != later.ID {
		t.Errorf("inbox after the follower ended: %+v, want only %s", dms, later.ID)
	}
}

// Bad input is refused with a clear line and a non-zero exit, and nothing
// is sent: an unknown peer, a name two sessions share, an oversized or
// empty message, a bad message id.
func TestTerminalRefusesBadInput(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	alice := m.join(t, "alice", uuid.NewString())
	bob1 := m.join(t, "bob", uuid.NewString())
	bob2 := m.join(t, "bob", uuid.NewString())
	alice.waitConnected(t)
	k1, k2 := bob1.waitConnected(t).KeyID, bob2.waitConnected(t).KeyID
	waitFor(t, waitLong, "the terminal to see all three", func() (bool, error) {
		return len(termJSON[termPeers](t, m.home, "peers", "--json").Peers) == 3, nil
	})

	tests := []struct {
		name      string
		stdin     string
		args      []string
		code      int
		stderrHas []string
	}{
		{"unknown peer", "", []string{"send", "carol", "hi"}, 1, []string{`no peer named "carol"`, "nothing was sent", "alice"}},
		{"ambiguous name", "", []string{"send", "bob", "hi"}, 1, []string{`"bob" matches 2 peers`, k1, k2, "nothing was sent"}},
		{"oversized", "", []string{"send", "alice", strings.Repeat("x", client.MaxText+1)}, 1, []string{"longer than 65536 bytes", "nothing was sent"}},
		{"oversized on stdin", strings.Repeat("é", client.MaxText/2+1), []string{"send", "alice", "-"}, 1, []string{"longer than 65536 bytes", "nothing was sent"}},
		{"too large once sealed", strings.Repeat("\x01", client.MaxText), []string{"send", "alice"}, 1, []string{"too large once encrypted", "nothing was sent"}},
		{"empty", "", []string{"send", "alice", ""}, 1, []string{"message is empty", "nothing was sent"}},
		{"blank on stdin", " \n\n", []string{"send", "alice"}, 1, []string{"message is empty", "nothing was sent"}},
		{"no recipient", "", []string{"send"}, 2, []string{"missing TO"}},
		{"bad id", "", []string{"status", "not-an-id"}, 2, []string{"not a message id"}},
		{"bad mesh", "", []string{"peers", "--mesh", "Bad/Mesh"}, 2, []string{"mesh"}},
		{"bad name", "", []string{"peers", "--name", "a\x1bb"}, 2, []string{"control characters"}},
	}
	for _, tt := range tests {
		out, errOut, code := term(t, m.home, tt.stdin, tt.args...)
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d\nstderr: %s", tt.name, code, tt.code, errOut)
		}
		if out != "" {
			t.Errorf("%s: printed %q to stdout", tt.name, out)
		}
		for _, s := range tt.stderrHas {
			if !strings.Contains(errOut, s) {
				t.Errorf("%s: stderr %q does not say %q", tt.name, errOut, s)
			}
		}
	}
	// Nothing reached anyone: a DM sent after the refusals is the only
	// one, to alice, and neither bob has any.
	ok := termJSON[termSent](t, m.home, "send", "alice", "the one that counts", "--json")
	if got := alice.waitInbox(t, 1); len(got) != 1 || got[0].ID != ok.ID {
		t.Errorf("alice's inbox: %+v, want only %s", got, ok.ID)
	}
	alice.assertInboxEmpty(t)
	bob1.assertInboxEmpty(t)
	bob2.assertInboxEmpty(t)
	// Sent to one bob by its key id, it reaches that one alone.
	termJSON[termSent](t, m.home, "send", k2, "just you", "--json")
	if got := bob2.waitInbox(t, 1); got[0].Text != "just you" {
		t.Errorf("bob2's inbox: %+v", got)
	}
	bob1.assertInboxEmpty(t)
}

// In a mesh with members the terminal is let in on the machine's
// membership, like the sessions of that machine, and its peers see which
// member vouches for it.
func TestTerminalInMeshWithMembers(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	claudemesh(t, m.home, true, "mesh", "create", "team", "--name", "olga")
	homeA := t.TempDir()
	claudemesh(t, homeA, true, "join", m.broker.url, invite(t, m.home, "team"), "--name", "amy")
	alice := startSession(t, sessionConfig{home: homeA, sessionID: uuid.NewString(), name: "alice", mesh: "team"})
	aliceKey := alice.waitConnected(t).KeyID

	// The broker's machine is a member too (the owner): its terminal is
	// let in on that membership, not on the broker's credential.
	var peers termPeers
	waitFor(t, waitLong, "the owner's terminal to see alice", func() (bool, error) {
		peers = termJSON[termPeers](t, m.home, "peers", "--json", "--mesh", "team")
		return len(peers.Peers) == 1, nil
	})
	if p := peers.Peers[0]; p.KeyID != aliceKey || p.Member != "amy" {
		t.Errorf("the terminal lists %+v", p)
	}
	sent := termJSON[termSent](t, m.home, "send", "alice", "team hello", "--json", "--mesh", "team")
	if got := alice.waitInbox(t, 1); got[0].ID != sent.ID {
		t.Errorf("alice's inbox: %+v", got)
	}
	for _, p := range sessionPeers(t, alice) {
		if p.KeyID == peers.You.KeyID && (p.Kind != "human" || p.Member != "olga") {
			t.Errorf("alice lists the terminal as %+v", p)
		}
	}
	// A machine that is not a member is refused, with what to do.
	cmd := exec.CommandContext(t.Context(), binary(t), "peers", "--mesh", "team")
	cmd.Env = env(t, t.TempDir(), "CLAUDEMESH_BROKER="+m.broker.url)
	errOut, err := cmd.CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 1 || !strings.Contains(string(errOut), "refuses this terminal") ||
		!strings.Contains(string(errOut), "claudemesh join") {
		t.Errorf("a stranger's terminal: %v: %s", err, errOut)
	}
}
