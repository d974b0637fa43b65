package main

// The broker's transport: wss:// with a certificate, plain ws:// on
// loopback only unless both ends opt in.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/internal/testca"
)

// waitLastError waits until whoami reports a last error containing every
// one of want while not connected, and returns it.
func (s *session) waitLastError(t *testing.T, want ...string) string {
	t.Helper()
	var w whoamiResult
	waitFor(t, waitLong, fmt.Sprintf("%s to report an error saying %q", s.name, want), func() (bool, error) {
		w = s.whoami(t)
		if w.Connection == "connected" {
			return false, fmt.Errorf("connected to %s, want a failure", w.Broker)
		}
		for _, x := range want {
			if !strings.Contains(w.LastError, x) {
				return false, nil
			}
		}
		return true, nil
	})
	return w.LastError
}

func TestBrokerServesTLS(t *testing.T) {
	t.Parallel()
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1", "::1", "localhost")
	caFile := ca.File(t)
	root := t.TempDir()
	home := filepath.Join(root, "home")
	b := startBrokerWith(t, home, filepath.Join(root, "data"), "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(b.url, "wss://127.0.0.1:") || !strings.HasSuffix(b.url, "/v1/ws") {
		t.Fatalf("published URL %q, want wss://127.0.0.1:PORT/v1/ws", b.url)
	}

	join := func(name string, extra ...string) *session {
		return startSession(t, sessionConfig{home: home, sessionID: uuid.NewString(), name: name, env: extra})
	}
	alice := join("alice", "CLAUDEMESH_CA="+caFile)
	bob := join("bob", "CLAUDEMESH_CA="+caFile)
	carol := join("carol") // trusts only the system's roots
	if w := alice.waitConnected(t); w.Broker != b.url {
		t.Errorf("alice's broker %q, want the published %q", w.Broker, b.url)
	}
	bw := bob.waitConnected(t)
	alice.waitPeer(t, bw.KeyID, "online")
	sent := alice.send(t, "bob", "hello over TLS")
	if got := bob.waitInbox(t, 1); got[0].ID != sent.ID || got[0].Text != "hello over TLS" {
		t.Errorf("bob received %+v, want %s: hello over TLS", got, sent.ID)
	}

	carol.waitLastError(t, "certificate", "CLAUDEMESH_CA")
	for _, p := range alice.peers(t).Peers {
		if p.Name == "carol" {
			t.Errorf("carol, who does not trust the broker's certificate, is listed: %+v", p)
		}
	}
	b.stop(t)
}

func TestBrokerRefusesPlaintextBeyondLoopback(t *testing.T) {
	t.Parallel()
	certFile, keyFile := testca.New(t).Issue(t, "127.0.0.1")
	tests := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"all interfaces", []string{"--listen", "0.0.0.0:0"}, []string{"without TLS", "--tls-cert", "--allow-plaintext"}},
		{"all interfaces, no host", []string{"--listen", ":0"}, []string{"without TLS", "--allow-plaintext"}},
		{"certificate without key", []string{"--listen", "0.0.0.0:0", "--tls-cert", certFile}, []string{"--tls-cert and --tls-key"}},
		{"key that is no certificate", []string{"--tls-cert", keyFile, "--tls-key", keyFile}, []string{"TLS certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home, data := t.TempDir(), filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(t.Context(), waitLong)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary(t), append([]string{"broker", "--data", data}, tt.args...)...)
			cmd.Env = env(t, home)
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("broker %v: %v (%v), want it to exit with an error; output:\n%s", tt.args, err, ctx.Err(), out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("broker %v said %q, want it to say %q", tt.args, out, w)
				}
			}
			// Refused before it touched anything: no URL published, no
			// database or credential made.
			for _, path := range []string{filepath.Join(home, "broker.json"), data} {
				if _, err := os.Stat(path); err == nil {
					t.Errorf("%s exists after the broker refused to start", path)
				}
			}
		})
	}
}

func TestBrokerAllowPlaintext(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	home := filepath.Join(root, "home")
	b := startBrokerWith(t, home, filepath.Join(root, "data"), "--listen", "0.0.0.0:0", "--allow-plaintext")
	if !strings.HasPrefix(b.url, "ws://127.0.0.1:") {
		t.Errorf("published URL %q, want ws://127.0.0.1:PORT/v1/ws", b.url)
	}
	waitFor(t, waitLong, "the plaintext warning", func() (bool, error) {
		return strings.Contains(b.log.String(), "PLAINTEXT"), nil
	})

	// Local sessions reach it over loopback as usual.
	alice := startSession(t, sessionConfig{home: home, sessionID: uuid.NewString(), name: "alice"})
	alice.waitConnected(t)

	// A session told to use a non-loopback ws:// URL refuses it unless it
	// opts in too; then it dials, and the broker turns it away because the
	// local credential only goes to the published URL or loopback.
	_, port, _ := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(b.url, "/v1/ws"), "ws://"), ":")
	remote := "ws://" + net.JoinHostPort(nonLoopbackIPv4(t), port) + "/v1/ws"
	careful := startSession(t, sessionConfig{home: home, sessionID: uuid.NewString(), name: "careful", env: []string{"CLAUDEMESH_BROKER=" + remote}})
	careful.waitLastError(t, "plaintext", "CLAUDEMESH_ALLOW_PLAINTEXT=1", "wss://")
	trusting := startSession(t, sessionConfig{home: home, sessionID: uuid.NewString(), name: "trusting",
		env: []string{"CLAUDEMESH_BROKER=" + remote, "CLAUDEMESH_ALLOW_PLAINTEXT=1"}})
	trusting.waitLastError(t, "unauthorized")
	b.stop(t)
}

// nonLoopbackIPv4 returns an IPv4 address of this machine that is not
// loopback, or skips the test.
func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("list interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}
