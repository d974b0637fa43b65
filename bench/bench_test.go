package bench_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/bench"
)

// embedded starts a throwaway broker for the test.
func embedded(t *testing.T, sync string) *bench.Embedded {
	t.Helper()
	e, err := bench.StartEmbedded(t.Context(), t.TempDir(), sync)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// checkOrdered fails unless p's percentiles are in order and it counts n.
func checkOrdered(t *testing.T, name string, p *bench.Percentiles, n int) {
	t.Helper()
	if p == nil {
		t.Fatalf("%s: no latencies", name)
	}
	if p.N != n {
		t.Errorf("%s: %d latencies, want %d", name, p.N, n)
	}
	if !(0 <= p.P50 && p.P50 <= p.P90 && p.P90 <= p.P99 && p.P99 <= p.Max) {
		t.Errorf("%s: percentiles out of order: %+v", name, p)
	}
}

// checkAccounting fails unless every DM of res arrived once, intact, and
// its JSON and table come out.
func checkAccounting(t *testing.T, res *bench.Result, want int) {
	t.Helper()
	if !res.OK() || res.Attempted != want || res.Sent != want || res.Delivered != want ||
		res.Lost != 0 || res.Duplicated != 0 || res.Corrupt != 0 {
		t.Errorf("accounting: %+v, want %d attempted, sent and delivered, none lost", res, want)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back bench.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Delivered != res.Delivered || back.Scenario != res.Scenario {
		t.Errorf("JSON round trip: %s", b)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil || !strings.Contains(table.String(), res.Scenario) {
		t.Errorf("table: %v\n%s", err, table.String())
	}
}

func TestThroughputScenarios(t *testing.T) {
	e := embedded(t, "normal")
	tests := []struct {
		scenario            string
		senders, recipients int
		window              int
	}{
		{bench.Throughput, 4, 2, 1},
		{bench.FanIn, 4, 1, 4},
		{bench.FanOut, 1, 4, 2},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			res, err := bench.Run(t.Context(), bench.Config{
				Scenario: tt.scenario, Endpoint: e.Endpoint(),
				Senders: tt.senders, Recipients: tt.recipients, Window: tt.window,
				Count: 50, AckBatch: 8, Timeout: 30 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, res, 50)
			if res.Senders != tt.senders || res.Recipients != tt.recipients {
				t.Errorf("ran %d → %d, want %d → %d", res.Senders, res.Recipients, tt.senders, tt.recipients)
			}
			checkOrdered(t, "end to end", res.EndToEnd, 50)
			checkOrdered(t, "send → sent", res.SendToSent, 50)
			if res.Rate <= 0 || res.Seconds <= 0 {
				t.Errorf("rate %v over %vs", res.Rate, res.Seconds)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	e := embedded(t, "normal")
	res, err := bench.Run(t.Context(), bench.Config{Scenario: bench.Latency, Endpoint: e.Endpoint(), Count: 50, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res, 50)
	checkOrdered(t, "one way", res.EndToEnd, 50)
}

func TestIdle(t *testing.T) {
	e := embedded(t, "normal")
	res, err := bench.Run(t.Context(), bench.Config{
		Scenario: bench.Idle, Endpoint: e.Endpoint(), Sessions: 20, Timeout: 30 * time.Second,
		Memory: bench.HeapMemory, MemoryWhat: "heap and stacks of this process",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res, 0)
	checkOrdered(t, "connect", res.Connect, 20)
	// Twenty connections, each with goroutines and buffers on both ends,
	// cannot cost nothing.
	if res.MemoryPerSession <= 0 || res.MemoryWhat == "" {
		t.Errorf("memory per session %v (%q)", res.MemoryPerSession, res.MemoryWhat)
	}
}

func TestReconnect(t *testing.T) {
	e := embedded(t, "normal")
	res, err := bench.Run(t.Context(), bench.Config{
		Scenario: bench.Reconnect, Endpoint: e.Endpoint(), Sessions: 20, AckBatch: 4, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res, 20)
	checkOrdered(t, "storm → delivered", res.Delivery, 20)
	checkOrdered(t, "connect", res.Connect, 20)
	if res.Seconds <= 0 {
		t.Errorf("storm took %vs", res.Seconds)
	}
}

// A run whose deadline passes before its DMs could arrive says so, and
// counts them lost, instead of hanging or reporting success.
func TestDeadlineCountsLost(t *testing.T) {
	e := embedded(t, "normal")
	res, err := bench.Run(t.Context(), bench.Config{
		Scenario: bench.Throughput, Endpoint: e.Endpoint(), Senders: 2, Count: 1 << 30, Duration: time.Hour,
		Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || !res.TimedOut {
		t.Errorf("a run cut by its deadline reported %+v", res)
	}
}

// --duration ends the sending, not the run: what was sent by then is
// waited for and nothing counts as lost.
func TestDurationStopsSending(t *testing.T) {
	e := embedded(t, "normal")
	res, err := bench.Run(t.Context(), bench.Config{
		Scenario: bench.Throughput, Endpoint: e.Endpoint(), Senders: 2, Window: 2,
		Count: 1 << 30, Duration: 300 * time.Millisecond, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempted == 0 || res.Attempted >= 1<<30 {
		t.Fatalf("attempted %d DMs", res.Attempted)
	}
	checkAccounting(t, res, res.Attempted)
}
