package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh/bench"
)

func TestBenchEmbeddedJSON(t *testing.T) {
	inProcess(t)
	for _, args := range [][]string{
		{"bench", "fanin", "--embedded", "--sync", "normal", "--senders", "4", "--count", "50", "--window", "2", "--json"},
		{"bench", "--scenario", "latency", "--embedded", "--count", "20", "--json"},
	} {
		t.Run(args[1], func(t *testing.T) {
			out, errOut, err := runIn(t.Context(), args...)
			if err != nil {
				t.Fatalf("%v\nstderr: %s", err, errOut)
			}
			if errOut != "" {
				t.Errorf("progress without a terminal or --progress: %q", errOut)
			}
			var res bench.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			want := 50
			if res.Scenario == bench.Latency {
				want = 20
			}
			if !res.OK() || res.Delivered != want || res.Lost != 0 || res.Duplicated != 0 || res.EndToEnd == nil || res.EndToEnd.N != want {
				t.Errorf("result: %s", out)
			}
			if !strings.HasPrefix(res.Mesh, "bench-") {
				t.Errorf("mesh %q, want a fresh bench-... mesh", res.Mesh)
			}
		})
	}
}

func TestBenchUsage(t *testing.T) {
	inProcess(t)
	tests := [][]string{
		{"bench", "nosuch", "--embedded"},
		{"bench", "--sync", "normal"},
		{"bench", "--embedded", "--broker", "ws://127.0.0.1:1/ws"},
		{"bench", "latency", "--scenario", "idle", "--embedded"},
		{"bench", "--embedded", "--count", "0"},
		{"bench", "idle", "extra", "--embedded"},
	}
	for _, args := range tests {
		_, _, err := runIn(canceled(t), args...)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// A run cut short by its deadline still prints its result, and fails: a
// script sees the DMs it did not get.
func TestBenchFailsWhenDMsAreLost(t *testing.T) {
	inProcess(t)
	out, _, err := runIn(t.Context(), "bench", "--embedded", "--sync", "normal", "--senders", "2", "--count", "100000000", "--timeout", "1s", "--json")
	var ue *usageError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("err = %v, want a failure that counts the lost DMs", err)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if res.OK() || !res.TimedOut {
		t.Errorf("result: %s", out)
	}
}

// --cpuprofile writes a profile that go tool pprof reads (it starts with
// gzip's magic bytes).
func TestBenchCPUProfile(t *testing.T) {
	inProcess(t)
	path := filepath.Join(t.TempDir(), "cpu.prof")
	if _, errOut, err := runIn(t.Context(), "bench", "latency", "--embedded", "--count", "20", "--json", "--cpuprofile", path); err != nil {
		t.Fatalf("%v\nstderr: %s", err, errOut)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("profile %s: %d bytes, %v; want a gzipped profile", path, len(b), err)
	}
}
