package client

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// CheckDial says how to check that a broker would let a session in
// (Check): the broker and credential a session would use, and the member
// key that would attest it in a mesh with members.
type CheckDial struct {
	URL            string
	Token          string
	Mesh           string
	Member         ed25519.PrivateKey // nil for a mesh without members
	RootCAs        *x509.CertPool
	AllowPlaintext bool
	Timeout        time.Duration // the whole check; default 10s
}

// CheckResult is what a broker answered a checking hello.
type CheckResult struct {
	KeyID      string    // the throwaway key's id, as the broker computed it
	ServerTime time.Time // the broker's clock when it answered
	Sent, Got  time.Time // this machine's clock when the hello went and the welcome came
}

// Check says a checking hello (wire.Hello.Check) to the broker with a
// throwaway session key: the broker verifies it as it would a session's,
// answers, and records nothing. The error is the broker's refusal (a
// *wire.Error), or why it could not be reached.
func Check(ctx context.Context, d CheckDial) (CheckResult, error) {
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	key, err := identity.NewEphemeral(d.Mesh)
	if err != nil {
		return CheckResult{}, err
	}
	md := MemberDial{URL: d.URL, RootCAs: d.RootCAs, AllowPlaintext: d.AllowPlaintext, Timeout: d.Timeout}
	ws, challenge, err := md.dial(ctx)
	if err != nil {
		return CheckResult{}, err
	}
	defer ws.Close()
	h := wire.Hello{
		Version: wire.Version,
		Mesh:    d.Mesh,
		Key:     wire.Key(key.Public),
		Name:    "claudemesh-doctor",
		Token:   d.Token,
		Check:   true,
	}
	if d.Member != nil {
		h.Attestation = wire.Attest(d.Member, d.Mesh, h.Key, time.Now().Add(time.Hour))
	}
	h.Sig = ed25519.Sign(key.Private, wire.HelloTranscript(challenge, h))
	r := CheckResult{Sent: time.Now()}
	if err := writeFrame(ws, h, d.Timeout); err != nil {
		return CheckResult{}, fmt.Errorf("send hello to %s: %w", d.URL, err)
	}
	f, err := readFrame(ws)
	r.Got = time.Now()
	if err != nil {
		return CheckResult{}, err
	}
	w, ok := f.(wire.Welcome)
	if !ok {
		return CheckResult{}, fmt.Errorf("broker %s sent %s instead of welcome", d.URL, f.Type())
	}
	r.KeyID, r.ServerTime = w.KeyID, w.ServerTime
	return r, nil
}
