package main

// Several brokers on one PostgreSQL, as processes: sessions spread over
// the nodes, a node killed, one session on two nodes, a member removed on
// one node, an embedded broker moved to PostgreSQL. Each test has a
// PostgreSQL schema of its own (internal/testpg).

import (
	"fmt"
	"path/filepath"
	"strings"

	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/internal/testpg"
)

// clusterGrace is the grace of the nodes in these tests: short, so that a
// session of a dead node is seen going offline within the test.
const clusterGrace = 4 * time.Second

// node is a broker of a cluster with its own home (whose broker.json names
// this node and the cluster's credential).
type node struct {
	*brokerProc
	name string
}

func startNode(t *testing.T, pg, name string, extra ...string) *node {
	t.Helper()
	root := t.TempDir()
	args := append([]string{"--listen", "127.0.0.1:0", "--store", pg, "--node", name, "--node-lapse", "1s",
		"--grace", clusterGrace.String()}, extra...)
	b := startBrokerWith(t, filepath.Join(root, "home"), filepath.Join(root, "data"), args...)
	return &node{brokerProc: b, name: name}
}

// sessionOn starts a session whose broker list is urls, with the home of
// node n (for the cluster's credential).
func (n *node) sessionOn(t *testing.T, name, sessionID string, urls ...string) *session {
	t.Helper()
	return startSession(t, sessionConfig{home: n.home, sessionID: sessionID, name: name,
		env: []string{"CLAUDEMESH_BROKER=" + strings.Join(urls, ",")}})
}

// Three brokers on one PostgreSQL serve as one: sessions on different
// nodes see the same peers, DMs in every direction arrive once and
// decrypt, and each sender learns each DM's fate from its own node.
func TestClusterDMsInEveryDirection(t *testing.T) {
	t.Parallel()
	pg := testpg.URL(t)
	nodes := []*node{startNode(t, pg, "n1"), startNode(t, pg, "n2"), startNode(t, pg, "n3")}
	var sessions []*session
	keys := map[*session]string{}
	for i := range 6 {
		n := nodes[i%3]
		s := n.sessionOn(t, fmt.Sprintf("s%d-on-%s", i, n.name), uuid.NewString(), n.url)
		keys[s] = s.waitConnected(t).KeyID
		sessions = append(sessions, s)
	}
	// Every node lists every session online.
	for _, s := range sessions {
		for _, o := range sessions {
			if o != s {
				s.waitPeer(t, keys[o], "online")
			}
		}
	}
	sent := map[*session][]sendResult{}
	for _, from := range sessions {
		for _, to := range sessions {
			if from == to {
				continue
			}
			r := from.send(t, keys[to], fmt.Sprintf("from %s to %s", from.name, to.name))
			if r.Status != "delivered" {
				t.Errorf("%s → %s: %s, want delivered (the recipient is online on some node)", from.name, to.name, r.Status)
			}
			sent[from] = append(sent[from], r)
		}
	}
	for _, to := range sessions {
		got := to.waitInbox(t, len(sessions)-1)
		seen := map[string]bool{}
		for _, m := range got {
			if seen[m.ID] {
				t.Errorf("%s received %s twice", to.name, m.ID)
			}
			seen[m.ID] = true
			if m.Error != "" || !strings.HasSuffix(m.Text, "to "+to.name) || !strings.HasPrefix(m.Text, "from "+m.From) {
				t.Errorf("%s received %+v", to.name, m)
			}
		}
		if len(seen) != len(sessions)-1 {
			t.Errorf("%s received %d distinct DMs, want %d", to.name, len(seen), len(sessions)-1)
		}
	}
	for from, rs := range sent {
		for _, r := range rs {
			waitFor(t, waitLong, "status read", func() (bool, error) {
				st := mustCall[statusResult](t, from, "message_status", map[string]any{"id": r.ID})
				return st.State == "read", nil
			})
		}
	}
}

// A node dies (SIGKILL) while DMs flow. Its sessions that know another
// broker fail over to it: nothing acknowledged is lost, nothing arrives
// twice, and no session is ever listed online twice. A session that only
// knew the dead node is reconnecting on every other node from its last
// heartbeat, and away a grace later.
func TestClusterNodeKilled(t *testing.T) {
	t.Parallel()
	pg := testpg.URL(t)
	a, b, c := startNode(t, pg, "a"), startNode(t, pg, "b"), startNode(t, pg, "c")
	sender := a.sessionOn(t, "sender", uuid.NewString(), a.url)
	// mover knows b and c, and starts on one of them (at random): that one
	// dies.
	mover := b.sessionOn(t, "mover", uuid.NewString(), b.url, c.url)
	moverKey := mover.waitConnected(t).KeyID
	dying, survivor := b, c
	if mover.whoami(t).Broker == c.url {
		dying, survivor = c, b
	}
	pinned := dying.sessionOn(t, "pinned", uuid.NewString(), dying.url)
	watcher := survivor.sessionOn(t, "watcher", uuid.NewString(), survivor.url)
	sender.waitConnected(t)
	watcher.waitConnected(t)
	pinnedKey := pinned.waitConnected(t).KeyID
	watcher.waitPeer(t, moverKey, "online")
	watcher.waitPeer(t, pinnedKey, "online")

	const total = 30
	var ids []string
	for i := range total {
		if i == total/3 {
			dying.kill()
		}
		r := sender.send(t, moverKey, fmt.Sprintf("dm %d", i))
		if r.Status == "pending" {
			t.Errorf("dm %d pending: the sender's node is alive", i)
		}
		ids = append(ids, r.ID)
		// Never online twice, on any node.
		rows := 0
		for _, p := range watcher.peers(t).Peers {
			if p.KeyID == moverKey {
				rows++
			}
		}
		if rows > 1 {
			t.Errorf("mover listed %d times", rows)
		}
	}
	mover.waitEachOnce(t, ids)
	if w := mover.whoami(t); w.Broker != survivor.url || w.Connection != "connected" {
		t.Errorf("mover after the kill: %+v, want connected to another node", w)
	}
	// The pinned session: reconnecting, then away.
	p := watcher.waitPeer(t, pinnedKey, "reconnecting")
	until, err := time.Parse(time.RFC3339, p.ReconnectingUntil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(until); d > clusterGrace {
		t.Errorf("the dead node's session reconnecting until %v, more than a grace from now", until)
	}
	for _, s := range []*session{sender, watcher} {
		s.waitPeer(t, pinnedKey, "away")
	}
}

// One session started on two nodes: exactly one process holds it, the
// other stands by, and it stays that way (no reconnect war across nodes).
func TestClusterSameSessionOnTwoNodes(t *testing.T) {
	t.Parallel()
	pg := testpg.URL(t)
	a, b := startNode(t, pg, "a"), startNode(t, pg, "b")
	id := uuid.NewString()
	first := a.sessionOn(t, "twice", id, a.url)
	first.waitConnected(t)
	second := startSession(t, sessionConfig{home: a.home, sessionID: id, name: "twice",
		env: []string{"CLAUDEMESH_BROKER=" + b.url}})
	second.waitConnected(t)
	waitFor(t, waitLong, "the first process to stand by", func() (bool, error) {
		return first.whoami(t).Connection == "standby", nil
	})
	// Past a standby probe, nothing changes.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if w := first.whoami(t); w.Connection != "standby" {
			t.Fatalf("first process: %s, want standby", w.Connection)
		}
		if w := second.whoami(t); w.Connection != "connected" {
			t.Fatalf("second process: %s, want connected", w.Connection)
		}
		time.Sleep(200 * time.Millisecond) // sampling a steady state, not synchronising
	}
	if n := strings.Count(a.log.String(), "session replaced by a connection on another node"); n != 1 {
		t.Errorf("node a replaced the session %d times, want once", n)
	}
}

// member remove on one node cuts the member's session on another node at
// once, and its new sessions are refused there.
func TestClusterMemberRemovedEverywhere(t *testing.T) {
	t.Parallel()
	pg := testpg.URL(t)
	a, b := startNode(t, pg, "a"), startNode(t, pg, "b")
	claudemesh(t, a.home, true, "mesh", "create", "team", "--name", "olga")
	alice := t.TempDir()
	claudemesh(t, alice, true, "join", a.url, invite(t, a.home, "team"), "--name", "alice")
	s := startSession(t, sessionConfig{home: alice, sessionID: uuid.NewString(), name: "alice", mesh: "team",
		env: []string{"CLAUDEMESH_BROKER=" + b.url}})
	s.waitConnected(t)
	start := time.Now()
	claudemesh(t, a.home, true, "member", "remove", "alice", "--mesh", "team")
	waitFor(t, waitLong, "alice's session on node b to be cut", func() (bool, error) {
		return strings.Contains(s.whoami(t).LastError, "member_removed"), nil
	})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cut %v after the removal on another node (the CLI run included), want about a second", d)
	}
}

// queueForAway has a session "away" say hello and leave, and a session
// "sender" queue n DMs for it. It returns the away session's id and key id,
// the sender, still connected, and the DMs' ids.
func (m *mesh) queueForAway(t *testing.T, n int) (awayID, awayKey string, sender *session, ids []string) {
	t.Helper()
	away := m.join(t, "away", uuid.NewString())
	awayKey = away.waitConnected(t).KeyID
	awayID = away.whoami(t).SessionID
	away.stop(t)
	sender = m.join(t, "sender", uuid.NewString())
	sender.waitConnected(t)
	for i := range n {
		r := sender.send(t, awayKey, fmt.Sprintf("queued %d", i))
		if r.Status != "queued" {
			t.Fatalf("DM to the away session: %s", r.Status)
		}
		ids = append(ids, r.ID)
	}
	return awayID, awayKey, sender, ids
}

// An embedded broker moves to PostgreSQL: DMs queued for an away session,
// and the local credential, survive the move.
func TestStoreCopyKeepsQueuedDMs(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	awayID, _, sender, ids := m.queueForAway(t, 3)
	// While the broker runs, the copy is refused.
	pg := testpg.URL(t)
	if _, errOut := claudemesh(t, m.home, false, "store", "copy", "--to", pg, "--data", m.data); !strings.Contains(errOut, "another broker") {
		t.Errorf("copy while the broker runs: %s", errOut)
	}
	sender.stop(t)
	m.broker.stop(t)
	out, _ := claudemesh(t, m.home, true, "store", "copy", "--to", pg, "--data", m.data)
	if !strings.Contains(out, "(3 waiting)") {
		t.Errorf("store copy said %q", out)
	}
	// The same home, now on PostgreSQL: the session returns and gets them.
	b := startBrokerWith(t, m.home, m.data, "--listen", "127.0.0.1:0", "--store", pg)
	_ = b
	back := m.join(t, "away", awayID)
	got := back.waitInbox(t, 3)
	for i, msg := range got {
		if msg.ID != ids[i] || msg.Text != fmt.Sprintf("queued %d", i) {
			t.Errorf("DM %d after the move: %+v, want %s", i, msg, ids[i])
		}
	}
}

// PostgreSQL restarts while DMs flow between two nodes. No DM is reported
// sent that was not stored: each send_dm answers delivered or queued (the
// DM is stored) or pending (the client resends it with the same id), and
// afterwards every DM arrives, once.
func TestClusterSurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	pgs := testpg.Private(t)
	a, b := startNode(t, pgs.URL, "a"), startNode(t, pgs.URL, "b")
	sender := a.sessionOn(t, "sender", uuid.NewString(), a.url, b.url)
	recv := b.sessionOn(t, "recv", uuid.NewString(), b.url, a.url)
	sender.waitConnected(t)
	recvKey := recv.waitConnected(t).KeyID
	sender.waitPeer(t, recvKey, "online")

	const total = 24
	restarted := make(chan struct{})
	var ids []string
	outcomes := map[string]int{}
	for i := range total {
		if i == total/3 {
			go func() {
				defer close(restarted)
				pgs.Restart(t, 2*time.Second)
			}()
		}
		res, text, isError := call[sendResult](t, sender, "send_dm", map[string]any{"to": recvKey, "message": fmt.Sprintf("dm %d", i)})
		if isError {
			// Refused before anything was sent (the peers could not be
			// listed): nothing to deliver, and the model may retry.
			if strings.Contains(text, "sent") && !strings.Contains(text, "Nothing was sent") {
				t.Errorf("dm %d: %q", i, text)
			}
			outcomes["refused before sending"]++
			continue
		}
		switch res.Status {
		case "delivered", "queued", "pending":
		default:
			t.Errorf("dm %d: status %q", i, res.Status)
		}
		outcomes[res.Status]++
		ids = append(ids, res.ID)
	}
	<-restarted
	t.Logf("send_dm outcomes across the restart: %v", outcomes)
	recv.waitEachOnce(t, ids)
	// The brokers recover by themselves: sending works again.
	waitFor(t, 3*waitLong, "a DM accepted after the restart", func() (bool, error) {
		res, _, isError := call[sendResult](t, sender, "send_dm", map[string]any{"to": recvKey, "message": "after the restart"})
		if !isError {
			ids = append(ids, res.ID)
		}
		return !isError, nil
	})
	if got := recv.waitInbox(t, 1); got[0].ID != ids[len(ids)-1] {
		t.Errorf("after the restart %s arrived, want %s", got[0].ID, ids[len(ids)-1])
	}
}
