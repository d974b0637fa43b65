package main

// What an operator relies on, with the built binary: /healthz and /readyz
// on the broker's listener, metrics and the profiler on their own, the
// drain on SIGTERM (nothing acknowledged lost, sessions back on another
// node, the exit within its bound) and a backup taken while the broker
// runs that a broker restores from.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/bench"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/internal/testpg"
	"github.com/claudemesh/claudemesh/wire"
)

// httpBase is the http:// address of a broker's WebSocket URL.
func httpBase(wsURL string) string {
	return "http://" + strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), wire.Path)
}

// httpGet returns the status and body of a GET of url; status 0 when the
// request failed.
func httpGet(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var metricsURL = regexp.MustCompile(`msg="metrics listening" url=(\S+)`)

// metricsOf returns the metrics URL a broker logged.
func metricsOf(t *testing.T, b *brokerProc) string {
	t.Helper()
	var url string
	waitFor(t, waitLong, "the broker to log its metrics URL", func() (bool, error) {
		m := metricsURL.FindStringSubmatch(b.log.String())
		if m != nil {
			url = m[1]
		}
		return m != nil, nil
	})
	return url
}

// /readyz fails while the broker's PostgreSQL is stopped and recovers when
// it is back; /healthz says ok throughout.
func TestReadyzFollowsTheStore(t *testing.T) {
	t.Parallel()
	pgs := testpg.Private(t)
	n := startNode(t, pgs.URL, "a")
	base := httpBase(n.url)
	status := func(path string) func() (bool, error) {
		return func() (bool, error) {
			code, _ := httpGet(base + path)
			return code == http.StatusOK, nil
		}
	}
	waitFor(t, waitLong, "readyz ok", status("/readyz"))

	pgs.Stop(t)
	var body string
	waitFor(t, waitLong, "readyz failing with the store stopped", func() (bool, error) {
		var code int
		code, body = httpGet(base + "/readyz")
		return code == http.StatusServiceUnavailable, nil
	})
	if body != "not ready: store unreachable\n" {
		t.Errorf("readyz with the store stopped said %q", body)
	}
	if strings.Contains(body, pgs.URL) || strings.Contains(body, "127.0.0.1") {
		t.Errorf("readyz tells the world where the database is: %q", body)
	}
	if code, body := httpGet(base + "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz with the store stopped: %d %q", code, body)
	}

	pgs.Start(t)
	waitFor(t, 3*waitLong, "readyz ok again once the store is back", status("/readyz"))
	if code, body := httpGet(base + "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz after the store came back: %d %q", code, body)
	}
}

// localInfo reads what a broker published in home/broker.json.
func localInfo(t *testing.T, home string) wire.LocalInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, wire.LocalFile))
	if err != nil {
		t.Fatal(err)
	}
	var info wire.LocalInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// SIGTERM to one of two brokers on one PostgreSQL while DMs flow through
// it: it stops within its --drain-timeout with status 0, every DM
// acknowledged to its sender arrives, each once in an inbox, and the
// sessions it served are back on the other node.
func TestSIGTERMDrainsToAnotherNode(t *testing.T) {
	t.Parallel()
	const drainTimeout = 3 * time.Second
	pg := testpg.URL(t)
	args := []string{"--rate", "10000", "--member-rate", "10000", "--drain-timeout", drainTimeout.String(), "--metrics-listen", "127.0.0.1:0"}
	a, b := startNode(t, pg, "a", args...), startNode(t, pg, "b", args...)

	// Two MCP sessions that know both nodes, each starting on either; the
	// node that the recipient is on is drained (a), the other stays (b).
	sender := a.sessionOn(t, "sender", uuid.NewString(), a.url, b.url)
	recv := a.sessionOn(t, "recv", uuid.NewString(), a.url, b.url)
	sender.waitConnected(t)
	if recv.waitConnected(t).Broker == b.url {
		a, b = b, a
	}
	recvKey := recv.whoami(t).KeyID
	sender.waitPeer(t, recvKey, "online")

	// Load besides: simulated sessions spread over both nodes, sending
	// for loadFor, through the drain.
	const loadFor = 4 * time.Second
	info := localInfo(t, a.home)
	loadStart := time.Now()
	var next atomic.Uint64
	urls := []string{a.url, b.url}
	load := make(chan *bench.Result, 1)
	go func() {
		res, err := bench.Run(context.Background(), bench.Config{
			Scenario: bench.FanIn,
			Endpoint: func() (client.Endpoint, error) {
				return client.Endpoint{URL: urls[next.Add(1)%2], Token: info.Token}, nil
			},
			Senders: 4, Count: 1e6, Duration: loadFor, Window: 2, Timeout: 3 * waitLong,
		})
		if err != nil {
			t.Errorf("load: %v", err)
		}
		load <- res
	}()
	waitFor(t, waitLong, "the load flowing through a", func() (bool, error) {
		code, body := httpGet(metricsOf(t, a.brokerProc))
		return code == http.StatusOK && !strings.Contains(body, "\nclaudemesh_dms_stored_total 0\n") &&
			strings.Contains(body, "\nclaudemesh_draining 0\n"), nil
	})

	const total = 20
	var ids []string
	var exited chan time.Duration
	for i := range total {
		if i == total/3 {
			exited = make(chan time.Duration, 1)
			start := time.Now()
			if start.Sub(loadStart) > loadFor-time.Second {
				t.Fatalf("the load had nearly ended when a was stopped: the machine is too slow for this test")
			}
			a.cmd.Process.Signal(syscall.SIGTERM)
			go func() {
				<-a.done
				exited <- time.Since(start)
			}()
		}
		res := sender.send(t, recvKey, fmt.Sprintf("dm %d", i))
		switch res.Status {
		case "delivered", "queued", "pending":
		default:
			t.Errorf("dm %d: status %q", i, res.Status)
		}
		ids = append(ids, res.ID)
	}
	select {
	case took := <-exited:
		// The bound, plus the store's close and the process's exit.
		if took > drainTimeout+2*time.Second {
			t.Errorf("a exited %v after SIGTERM, its drain bound is %v", took, drainTimeout)
		}
		t.Logf("a exited %v after SIGTERM", took.Round(time.Millisecond))
	case <-time.After(drainTimeout + exitWait):
		t.Fatalf("a still runs %v after SIGTERM", drainTimeout+exitWait)
	}
	if st := a.cmd.ProcessState; !st.Success() {
		t.Errorf("a ended with %v after SIGTERM", st)
	}
	if !strings.Contains(a.log.String(), `msg="broker drained"`) {
		t.Errorf("a did not say it drained:\n%s", a.log)
	}

	recv.waitEachOnce(t, ids)
	recv.assertInboxEmpty(t)
	for _, s := range []*session{sender, recv} {
		if w := s.waitConnected(t); w.Broker != b.url {
			t.Errorf("%s after the drain: on %s, want %s", s.name, w.Broker, b.url)
		}
	}

	res := <-load
	if res == nil {
		return
	}
	// A DM pushed whose ack the draining node did not read is pushed again
	// by the other node: the load counts it as a repeat (an MCP session's
	// inbox shows it once, as above). None may be lost or corrupt.
	t.Logf("load through the drain: %d sent, %d delivered, %d repeats, %d lost, %d send errors (%s)",
		res.Sent, res.Delivered, res.Duplicated, res.Lost, res.SendErrors, res.FirstError)
	if res.Lost != 0 || res.Corrupt != 0 || res.SendErrors != 0 || res.Delivered != res.Attempted {
		t.Errorf("load through the drain: %+v", res)
	}
}

// A backup taken with `claudemesh store backup` while the broker runs and
// DMs wait in it restores: a broker started on the backup lets the
// session in and delivers them. The broker also serves its metrics and the
// profiler on the address given.
func TestBackupWhileRunningRestores(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	m := &mesh{home: filepath.Join(root, "home"), data: filepath.Join(root, "data")}
	m.broker = startBrokerWith(t, m.home, m.data, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--pprof")
	awayID, awayKey, sender, ids := m.queueForAway(t, 3)
	metrics := metricsOf(t, m.broker)
	if code, body := httpGet(metrics); code != http.StatusOK || !strings.Contains(body, "\nclaudemesh_queue_dms 3\n") {
		t.Errorf("metrics: %d\n%s", code, body)
	}
	if code, _ := httpGet(strings.TrimSuffix(metrics, "/metrics") + "/debug/pprof/"); code != http.StatusOK {
		t.Errorf("pprof with --pprof: %d", code)
	}
	if code, _ := httpGet(httpBase(m.broker.url) + "/metrics"); code != http.StatusNotFound {
		t.Errorf("metrics on the broker's own listener: %d, want 404", code)
	}

	backup := filepath.Join(root, "backup")
	out, _ := claudemesh(t, m.home, true, "store", "backup", "--data", m.data, "--to", backup)
	if !strings.Contains(out, "backed up") {
		t.Errorf("store backup said %q", out)
	}
	// Into a directory that is not empty: refused, nothing touched.
	if _, errOut := claudemesh(t, m.home, false, "store", "backup", "--data", m.data, "--to", backup); !strings.Contains(errOut, "not empty") {
		t.Errorf("a second backup into the same directory: %q", errOut)
	}
	for _, f := range []string{"claudemesh.db", "credential"} {
		fi, err := os.Stat(filepath.Join(backup, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// The broker kept running through the backup.
	if r := sender.send(t, awayKey, "after the backup"); r.Status != "queued" {
		t.Errorf("DM after the backup: %s", r.Status)
	}
	sender.stop(t)
	m.broker.stop(t)

	// Restore: a broker on the backup, with the same home.
	startBrokerWith(t, m.home, backup, "--listen", "127.0.0.1:0")
	back := m.join(t, "away", awayID)
	got := back.waitInbox(t, 3)
	if len(got) != 3 {
		t.Fatalf("restored broker delivered %d DMs, want the 3 queued at the backup: %+v", len(got), got)
	}
	for i, msg := range got {
		if msg.ID != ids[i] || msg.Text != fmt.Sprintf("queued %d", i) {
			t.Errorf("DM %d from the backup: %+v, want %s", i, msg, ids[i])
		}
	}
	back.assertInboxEmpty(t)
}

// The operator's flags refuse mistakes as usage errors (exit 2) before
// anything starts or is written.
func TestOpsUsageErrors(t *testing.T) {
	home := inProcess(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"broker", "--listen", "127.0.0.1:0", "--pprof"}, "--pprof needs --metrics-listen"},
		{[]string{"broker", "--listen", "127.0.0.1:0", "--drain-timeout", "0"}, "drain-timeout"},
		{[]string{"broker", "--listen", "127.0.0.1:0", "--drain-timeout", "11m"}, "drain-timeout"},
		{[]string{"store", "backup"}, "--to is required"},
		{[]string{"store", "backup", "--to", filepath.Join(home, "b"), "extra"}, "extra"},
		{[]string{"store", "nope"}, "want a subcommand: copy or backup"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, err := runIn(canceled(t), tt.args...)
			if code := report(io.Discard, err); code != exitUsage {
				t.Fatalf("exit status %d (%v), want %d", code, err, exitUsage)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("refusal %q, want it to say %q", err, tt.want)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("printed %q, %q; the refusal is printed once, by main", stdout, stderr)
			}
			if entries, _ := os.ReadDir(home); len(entries) != 0 {
				t.Errorf("the refusal left %d files in CLAUDEMESH_HOME", len(entries))
			}
		})
	}
}
