package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/wire"
)

// A checking hello is answered as a session's hello would be, and leaves
// no trace: no session in list_peers (not even away), nothing to list
// afterwards.
func TestCheckRecordsNothing(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	watcher := tb.dial(t, newKey(t, testMesh), "watcher")

	before := time.Now()
	r, err := client.Check(waitCtx(t), client.CheckDial{URL: tb.url, Token: tb.token, Mesh: testMesh})
	if err != nil {
		t.Fatalf("check with the right credential: %v", err)
	}
	if r.KeyID == "" || r.ServerTime.Before(before.Add(-time.Second)) || r.ServerTime.After(time.Now().Add(time.Second)) {
		t.Errorf("check result %+v: want a key id and the broker's time, now", r)
	}

	_, err = client.Check(waitCtx(t), client.CheckDial{URL: tb.url, Token: "wrong", Mesh: testMesh})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnauthorized {
		t.Errorf("check with a wrong credential: %v, want %s", err, wire.CodeUnauthorized)
	}

	peers, err := watcher.Peers(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.Name == "claudemesh-doctor" || p.KeyID == r.KeyID {
			t.Errorf("list_peers shows the checking hello's key: %+v", p)
		}
	}
	// The watcher's connection was not disturbed.
	if s := watcher.State(); !s.Connected {
		t.Errorf("watcher lost its connection during the checks: %+v", s)
	}
}
