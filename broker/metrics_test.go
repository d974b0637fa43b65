package broker_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/claudemesh/claudemesh/bench"
	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/store/sqlite"
	"github.com/claudemesh/claudemesh/wire"
)

// scrape reads the metrics at url over HTTP, as Prometheus does, into a
// map from each sample's name and labels (as written: name{k="v"}) to its
// value.
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: line %q: %v", url, line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// metricsBroker is a broker whose metrics, and its SQLite store's commits,
// are served on a loopback HTTP server of their own.
func metricsBroker(t *testing.T, cfg broker.Config) (*testBroker, string) {
	t.Helper()
	m := broker.NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "broker.db"), sqlite.Config{Synchronous: "NORMAL", OnCommit: m.ObserveCommit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Metrics = m
	tb := serveStore(t, st, cfg)
	ts := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(ts.Close)
	return tb, ts.URL + "/metrics"
}

// The metrics scraped after a load add up to what the load generator and
// the clients did: every DM sent is counted stored, delivered (reported
// received), acknowledged and pushed once; refusals are counted by code,
// exactly as the clients were refused; what waits is in the queue gauges;
// and no label carries a key, a name, a mesh or an id.
func TestMetricsAddUp(t *testing.T) {
	const (
		n     = 200 // DMs of the load
		burst = 40  // a session's burst: twice SendRate
	)
	tb, url := metricsBroker(t, broker.Config{SendRate: burst / 2, MemberSendRate: 1e9})
	before := scrape(t, url)
	if before["claudemesh_dms_stored_total"] != 0 || before[`claudemesh_sessions{state="online"}`] != 0 {
		t.Fatalf("a fresh broker's metrics: %v", before)
	}

	// The load: 8 senders, 25 DMs each (within their burst), to one
	// recipient that reports each received and acks it.
	res, err := bench.Run(t.Context(), bench.Config{
		Scenario: bench.FanIn, Endpoint: tb.endpoint(), Senders: 8, Count: n, Window: 4, Timeout: waitTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Sent != n || res.Delivered != n {
		t.Fatalf("load: %+v", res)
	}
	// The recipient's last acks are recorded as it leaves.
	eventually(t, "every DM of the load acknowledged", func() bool {
		return scrape(t, url)[`claudemesh_dms_acknowledged_total{as="read"}`] == n
	})
	got := scrape(t, url)
	for name, want := range map[string]float64{
		"claudemesh_dms_stored_total":                     n,
		"claudemesh_dms_delivered_total":                  n,
		`claudemesh_dms_acknowledged_total{as="read"}`:    n,
		`claudemesh_dms_acknowledged_total{as="cleared"}`: 0,
		"claudemesh_dms_expired_total":                    0,
		"claudemesh_queue_dms":                            0,
		"claudemesh_queue_bytes":                          0,
		`claudemesh_dm_pushes_total{outcome="closed"}`:    0,
	} {
		if got[name] != want {
			t.Errorf("after the load %s = %v, want %v", name, got[name], want)
		}
	}
	if p := got[`claudemesh_dm_pushes_total{outcome="handoff"}`] + got[`claudemesh_dm_pushes_total{outcome="store"}`]; p != n {
		t.Errorf("pushes after the load: %v, want %d (each DM pushed once)", p, n)
	}
	// Every session of the load said hello on a connection of its own.
	if a := got["claudemesh_connections_accepted_total"]; a < 9 {
		t.Errorf("connections accepted: %v, want at least 9", a)
	}
	// Each DM stored, and each frame of receipts or acks, is a write of
	// some commit; commits carry several when they come together.
	if c, w := got["claudemesh_store_commit_seconds_count"], got["claudemesh_store_commit_writes_sum"]; c == 0 || w < n+2 || c != got["claudemesh_store_commit_writes_count"] {
		t.Errorf("commits %v carrying %v writes; want at least the %d DMs, a receipt and an ack", c, w, n)
	}
	t.Logf("%v commits carried %v writes", got["claudemesh_store_commit_seconds_count"], got["claudemesh_store_commit_writes_sum"])
	for k := range got {
		if strings.Contains(k, res.Mesh) || strings.Contains(k, "sender-") || strings.Contains(k, "recipient-") {
			t.Errorf("a label names the load's mesh or sessions: %s", k)
		}
	}

	// Refusals, counted by code: DMs to a key nobody has seen, and DMs
	// past the sender's rate, to a session that is away (so they wait).
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	away := offlineRecipient(t, tb, alice, "away")
	const unknown = 3
	for range unknown {
		stranger := newKey(t, testMesh)
		nonce, box := seal(t, "who?", alice.key, stranger)
		_, err := alice.Send(waitCtx(t), uuid.NewString(), stranger.Public, nonce, box)
		if code := wireError(t, err).Code; code != wire.CodeUnknownPeer {
			t.Fatalf("DM to a stranger refused with %s", code)
		}
	}
	var stored, limited int
	var bytes float64
	for i := range burst + 10 {
		nonce, box := seal(t, fmt.Sprintf("dm %d", i), alice.key, away)
		_, err := alice.Send(waitCtx(t), uuid.NewString(), away.Public, nonce, box)
		switch {
		case err == nil:
			stored++
			bytes += float64(len(box))
		case wireError(t, err).Code == wire.CodeRateLimited:
			limited++
		default:
			t.Fatalf("dm %d: %v", i, err)
		}
	}
	if limited == 0 {
		t.Fatalf("%d DMs sent at once, none rate limited", burst+10)
	}
	got = scrape(t, url)
	for name, want := range map[string]float64{
		`claudemesh_refusals_total{code="unknown_peer"}`: unknown,
		`claudemesh_refusals_total{code="rate_limited"}`: float64(limited),
		"claudemesh_dms_stored_total":                    float64(n + stored),
		"claudemesh_queue_dms":                           float64(stored),
		"claudemesh_queue_bytes":                         bytes,
		`claudemesh_sessions{state="online"}`:            1, // alice
		"claudemesh_connections":                         1,
	} {
		if got[name] != want {
			t.Errorf("after the refusals %s = %v, want %v", name, got[name], want)
		}
	}
}
