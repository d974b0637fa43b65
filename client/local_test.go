package client_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/wire"
)

// lockHome takes the lock a local broker takes on home (and on a data
// directory in it), as the only writer of what it publishes there.
func lockHome(t *testing.T, home string) *broker.Lock {
	t.Helper()
	l, err := broker.LockLocal(home, filepath.Join(home, "broker"), broker.Holder{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// publish writes info where a local broker publishes it.
func publish(t *testing.T, l *broker.Lock, info wire.LocalInfo) {
	t.Helper()
	if err := l.Publish(info); err != nil {
		t.Fatal(err)
	}
}

// ReadLocalInfo reads what the local broker published, the latest of it;
// nothing published and a damaged file are errors.
func TestReadLocalInfo(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home") // does not exist yet
	if _, err := client.ReadLocalInfo(home); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read before any broker published: %v, want %v", err, fs.ErrNotExist)
	}
	want := wire.LocalInfo{
		URL:       "ws://127.0.0.1:40000/v1/ws",
		Token:     "secret-token",
		PID:       4242,
		StartedAt: time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	lock := lockHome(t, home)
	for _, info := range []wire.LocalInfo{{URL: "ws://127.0.0.1:1/v1/ws", Token: "old"}, want} {
		publish(t, lock, info)
	}
	got, err := client.ReadLocalInfo(home)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != want.URL || got.Token != want.Token || got.PID != want.PID || !got.StartedAt.Equal(want.StartedAt) {
		t.Errorf("read %+v, want %+v", got, want)
	}

	if err := os.WriteFile(filepath.Join(home, wire.LocalFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ReadLocalInfo(home); err == nil {
		t.Error("read a corrupt file without error")
	}
}

func TestLocalEndpoint(t *testing.T) {
	t.Parallel()
	const published = "ws://127.0.0.1:40000/v1/ws"
	home := t.TempDir()
	lock := lockHome(t, home)
	publish(t, lock, wire.LocalInfo{URL: published, Token: "local-secret"})
	empty := t.TempDir()

	tests := []struct {
		name     string
		home     string
		override string
		want     client.Endpoint
	}{
		{"published", home, "", client.Endpoint{URL: published, Token: "local-secret"}},
		{"nothing published", empty, "", client.Endpoint{URL: wire.DefaultURL}},
		{"override is the published URL", home, published, client.Endpoint{URL: published, Token: "local-secret"}},
		{"loopback override", home, "ws://127.0.0.1:7000/v1/ws", client.Endpoint{URL: "ws://127.0.0.1:7000/v1/ws", Token: "local-secret"}},
		{"other loopback address", home, "ws://127.9.9.9:7000/v1/ws", client.Endpoint{URL: "ws://127.9.9.9:7000/v1/ws", Token: "local-secret"}},
		{"IPv6 loopback override", home, "ws://[::1]:7000/v1/ws", client.Endpoint{URL: "ws://[::1]:7000/v1/ws", Token: "local-secret"}},
		{"localhost override", home, "ws://localhost:7000/v1/ws", client.Endpoint{URL: "ws://localhost:7000/v1/ws", Token: "local-secret"}},
		{"remote override", home, "ws://example.invalid/v1/ws", client.Endpoint{URL: "ws://example.invalid/v1/ws"}},
		{"remote override with a loopback-looking name", home, "ws://127.0.0.1.example.invalid/v1/ws", client.Endpoint{URL: "ws://127.0.0.1.example.invalid/v1/ws"}},
		{"remote override named after localhost", home, "wss://localhost.example.invalid/v1/ws", client.Endpoint{URL: "wss://localhost.example.invalid/v1/ws"}},
		{"remote override with loopback credentials in the URL", home, "ws://127.0.0.1@example.invalid/v1/ws", client.Endpoint{URL: "ws://127.0.0.1@example.invalid/v1/ws"}},
		{"any-address override", home, "ws://0.0.0.0:7733/v1/ws", client.Endpoint{URL: "ws://0.0.0.0:7733/v1/ws"}},
		{"loopback override, nothing published", empty, "ws://127.0.0.1:7000/v1/ws", client.Endpoint{URL: "ws://127.0.0.1:7000/v1/ws"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.LocalEndpoint(tt.home, tt.override)()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("endpoint %+v, want %+v", got, tt.want)
			}
		})
	}

	// The endpoint is resolved on every call: a broker that restarts on
	// another port is followed.
	ep := client.LocalEndpoint(home, "")
	const moved = "ws://127.0.0.1:40001/v1/ws"
	publish(t, lock, wire.LocalInfo{URL: moved, Token: "new-secret"})
	if got, err := ep(); err != nil || got != (client.Endpoint{URL: moved, Token: "new-secret"}) {
		t.Errorf("after the broker moved: %+v, %v", got, err)
	}
}

func TestLocalEndpointTLS(t *testing.T) {
	t.Parallel()
	endpoint := func(published, override string) client.Endpoint {
		home := t.TempDir()
		publish(t, lockHome(t, home), wire.LocalInfo{URL: published, Token: "local-secret"})
		ep, err := client.LocalEndpoint(home, override)()
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
	const published = "wss://broker.example.invalid:7733/v1/ws"
	tests := []struct {
		name, published, override string
		token                     bool
	}{
		{"published", published, "", true},
		{"the published URL", published, published, true},
		{"the published URL spelt otherwise", published, "WSS://Broker.Example.Invalid:7733/v1/ws/", true},
		{"default port written out", "wss://broker.example.invalid/v1/ws", "wss://broker.example.invalid:443/v1/ws", true},
		{"wss to loopback", published, "wss://127.0.0.1:7733/v1/ws", true},
		{"plaintext to the published host", published, "ws://broker.example.invalid:7733/v1/ws", false},
		{"another port", published, "wss://broker.example.invalid:7734/v1/ws", false},
		{"default port instead of the published one", published, "wss://broker.example.invalid/v1/ws", false},
		{"another host", published, "wss://other.example.invalid:7733/v1/ws", false},
		{"a name that ends like the published host", published, "wss://broker.example.invalid.example.com:7733/v1/ws", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := endpoint(tt.published, tt.override)
			if got := ep.Token == "local-secret"; got != tt.token {
				t.Errorf("endpoint %+v: credential sent %v, want %v", ep, got, tt.token)
			}
		})
	}
}

// CLAUDEMESH_BROKER may list the brokers of a cluster: each attempt takes
// the next, so a client whose broker went away tries the others and comes
// back round; the local credential still goes only to the local broker or
// a loopback address.
func TestLocalEndpointRotatesThroughAList(t *testing.T) {
	home := t.TempDir()
	publish(t, lockHome(t, home), wire.LocalInfo{URL: "wss://node-a.example:7733/v1/ws", Token: "local-token"})
	list := " wss://node-a.example:7733/v1/ws , ws://127.0.0.1:7801/v1/ws,,wss://node-c.example:7733/v1/ws "
	ep := client.LocalEndpoint(home, list)
	tokens := map[string]string{
		"wss://node-a.example:7733/v1/ws": "local-token", // the local broker's own URL
		"ws://127.0.0.1:7801/v1/ws":       "local-token", // loopback
		"wss://node-c.example:7733/v1/ws": "",            // another machine
	}
	var order []string
	for range 6 {
		e, err := ep()
		if err != nil {
			t.Fatal(err)
		}
		want, ok := tokens[e.URL]
		if !ok {
			t.Fatalf("endpoint %q is not one of the list", e.URL)
		}
		if e.Token != want {
			t.Errorf("%s got credential %q, want %q", e.URL, e.Token, want)
		}
		order = append(order, e.URL)
	}
	for i := range 3 {
		if order[i] != order[i+3] {
			t.Errorf("attempts went %v, want the list's order round and round", order)
			break
		}
	}
	if order[0] == order[1] || order[1] == order[2] || order[0] == order[2] {
		t.Errorf("three attempts went %v, want each broker once", order[:3])
	}
}
