package broker_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// A session that is away cannot be impersonated: a client presenting its
// session UUID (and name) with another key is refused for good, the away
// session stays listed once under its own key, nothing queued for it moves,
// and when it returns it gets its DMs, once.
func TestImpostorOfAwaySessionIsRefused(t *testing.T) {
	hb := newHostileBroker(t, broker.Config{})
	for i, tc := range []struct {
		name string
		// victim and the member that attests the impostor (nil: the
		// credential of a mesh without members).
		victim func(*scene) *victim
		by     func(*scene) ed25519.PrivateKey
	}{
		{"mesh without members", func(s *scene) *victim { return s.vt }, func(*scene) ed25519.PrivateKey { return nil }},
		{"another member", func(s *scene) *victim { return s.vc }, func(s *scene) ed25519.PrivateKey { return s.ownerKey }},
		{"the victim's own member under a new key", func(s *scene) *victim { return s.vc }, func(s *scene) ed25519.PrivateKey { return s.vicKey }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScene(t, hb, 100+i)
			v := tc.victim(s)
			mesh := v.key.Mesh
			closeWithin(t, "victim", v.peer) // bye: away at once
			waitState(t, v.sender, v.key.ID(), wire.PeerOffline)
			before, err := hb.st.Session(t.Context(), mesh, v.key.Public)
			if err != nil {
				t.Fatal(err)
			}
			queued, _ := sendText(t, v.sender, v.key, "while you were away")

			fake := newKey(t, mesh)
			fake.SessionID = v.key.SessionID
			imp := hb.dialNoWait(t, fake, v.listed.Name, attestedBy(tc.by(s)))
			dialed := imp.State().Since // moves only when a connection begins or ends
			eventually(t, "the impostor is refused for good", func() bool { return imp.State().Refused })
			if st := imp.State(); st.Connected || st.LastError == nil {
				t.Errorf("impostor state %+v, want refused and never connected", st)
			} else if we := wireError(t, st.LastError); we.Code != wire.CodeSessionIDTaken {
				t.Errorf("impostor refused with %s, want %s", we.Code, wire.CodeSessionIDTaken)
			}
			if st := imp.State(); !st.Since.Equal(dialed) {
				t.Errorf("the impostor connected: state %+v, want no connection since it started (%v)", st, dialed)
			}

			// Listed once, under the owner's key, away; the impostor not
			// at all.
			rows := 0
			for _, p := range v.sender.peers(t) {
				if p.SessionID == v.key.SessionID || p.KeyID == fake.ID() {
					rows++
					if p.KeyID != v.key.ID() || p.State != wire.PeerOffline {
						t.Errorf("listed %+v, want the owner's key, offline", p)
					}
				}
			}
			if rows != 1 {
				t.Errorf("the session is listed %d times, want once", rows)
			}
			if _, err := hb.st.Session(t.Context(), mesh, fake.Public); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the impostor's key was recorded: %v", err)
			}
			after, err := hb.st.Session(t.Context(), mesh, v.key.Public)
			if err != nil || after.SessionID != before.SessionID || !after.LastSeen.Equal(before.LastSeen) || after.Name != before.Name {
				t.Errorf("owner's session after the refusal: %+v (%v), want %+v", after, err, before)
			}
			if got := s.pending(t, mesh, v.key.Public); len(got) != 2 || got[0] != v.dm.ID || got[1] != queued {
				t.Errorf("pending for the owner: %v, want its two DMs", got)
			}

			// The owner comes back and gets both DMs, once each.
			back := hb.dial(t, v.key, "victim", attestedBy(v.member))
			exactlyOnce(t, back, v.dm.ID, queued)
			if n := hb.srv.Stats().Replacements; n != 0 {
				t.Errorf("%d replacements, want none", n)
			}
		})
	}
}

// The broker answers a join and then closes the connection: the answer
// must never lose the race with the close, or a member is enrolled without
// knowing it.
func TestJoinAnswerIsNeverLostToTheClose(t *testing.T) {
	hb := newHostileBroker(t, broker.Config{})
	s := newScene(t, hb, 0)
	const n = 40
	code := s.invite(t, n)
	errs := make(chan error, n)
	for i := range n {
		key := newMemberKey(t)
		go func() {
			_, err := client.Join(waitCtx(t), client.MemberDial{URL: hb.url, Key: key, Name: fmt.Sprint("m", i)}, code)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("join: %v", err)
		}
	}
}
