package broker_test

import (
	"testing"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/wire"
)

func TestLocalEndpointTLS(t *testing.T) {
	t.Parallel()
	endpoint := func(published, override string) client.Endpoint {
		home := t.TempDir()
		if err := broker.WriteLocalInfo(home, wire.LocalInfo{URL: published, Token: "local-secret"}); err != nil {
			t.Fatal(err)
		}
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
