package mcp

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/identity"
)

// twoKeysOnePrefix returns two session keys whose key ids start with the
// same four hex digits: what anyone can grind in a moment to pose under a
// short key prefix.
func twoKeysOnePrefix(t *testing.T) (a, b ed25519.PrivateKey) {
	t.Helper()
	seen := make(map[string]ed25519.PrivateKey)
	for range 100000 {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p := identity.KeyID(k.Public().(ed25519.PublicKey))[:4]
		if o, ok := seen[p]; ok {
			return o, k
		}
		seen[p] = k
	}
	t.Fatal("no two keys share a prefix")
	return nil, nil
}

// plantKey writes key as the session key of (mesh, id) in home, as the
// keystore would have made it.
func plantKey(t *testing.T, home, mesh, id string, key ed25519.PrivateKey) {
	t.Helper()
	path, err := identity.OpenKeystore(home, nil).Path(mesh, id)
	if err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf(`{"version":1,"mesh":%q,"session_id":%q,"public_key":%q,"secret_key":%q,"created_at":%q}`,
		mesh, id, hex.EncodeToString(key.Public().(ed25519.PublicKey)), hex.EncodeToString(key), time.Now().UTC().Format(time.RFC3339Nano))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// members makes mesh a mesh with members amy (its owner), ben and cid on
// tb, and returns their member keys.
func members(t *testing.T, tb *testBroker, mesh string) map[string]ed25519.PrivateKey {
	t.Helper()
	keys := make(map[string]ed25519.PrivateKey)
	for _, n := range []string{"amy", "ben", "cid"} {
		k, err := identity.NewMemberKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = k
	}
	owner, err := client.DialMember(waitCtx(t), client.MemberDial{URL: tb.url, Mesh: mesh, Key: keys["amy"], Name: "amy", Token: tb.token})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if err := owner.CreateMesh(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	inv, err := owner.Invite(waitCtx(t), 2, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ben", "cid"} {
		if _, err := client.Join(waitCtx(t), client.MemberDial{URL: tb.url, Key: keys[n], Name: n}, inv.Code); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// While amy's session is away, ben poses as it — under its display name,
// its session UUID, or a key sharing its key id's first digits — and cid
// sends amy a DM addressed in that form. Ben must never get it: the name
// and the prefix are refused as ambiguous (listing both sessions with key
// id, state and member, and how to pick one), the UUID is refused to ben at
// the broker and reaches amy's queue. Amy, back, gets exactly what was sent
// to her.
func TestImpostorOfAwayPeer(t *testing.T) {
	for _, withMembers := range []bool{false, true} {
		for _, form := range []string{"name", "session id", "key prefix"} {
			mesh := config.DefaultMesh
			if withMembers {
				mesh = "team"
			}
			t.Run(mesh+"/"+form, func(t *testing.T) {
				tb := startBroker(t)
				var keys map[string]ed25519.PrivateKey
				if withMembers {
					keys = members(t, tb, mesh)
				}
				as := func(who string) func(*Config) {
					return func(c *Config) { c.Mesh, c.Member = mesh, keys[who] }
				}
				amyHome, amyID := t.TempDir(), uuid.NewString()
				benHome, benID := t.TempDir(), uuid.NewString()
				if form == "key prefix" {
					a, b := twoKeysOnePrefix(t)
					plantKey(t, amyHome, mesh, amyID, a)
					plantKey(t, benHome, mesh, benID, b)
				}
				amyCfg := func(c *Config) { c.Home, c.SessionID = amyHome, amyID }
				amy := startSession(t, tb, "amy-laptop", as("amy"), amyCfg)
				amy.waitConnected(t)
				amyKey := amy.keyID()
				cid := startSession(t, tb, "cid", as("cid"))
				cid.waitConnected(t)
				amy.srv.Close() // amy's session ends: away
				eventually(t, "amy is away", func() bool {
					for _, p := range mustCall[PeersResult](t, cid, "list_peers", nil).Peers {
						if p.KeyID == amyKey {
							return p.State == "away"
						}
					}
					return false
				})

				benName, to := "amy-laptop", "amy-laptop"
				switch form {
				case "session id":
					benID, to = amyID, amyID
				case "key prefix":
					benName, to = "ben", amyKey[:4]
				}
				ben := startSession(t, tb, benName, as("ben"), func(c *Config) { c.Home, c.SessionID = benHome, benID })

				if form == "session id" {
					eventually(t, "ben is refused", func() bool { return ben.srv.bound().client.State().Refused })
				} else {
					ben.waitConnected(t)
				}
				res, text := cid.call(t, "send_dm", map[string]any{"to": to, "message": "the deploy key is in the vault"})
				if form == "session id" {
					if _, btext := ben.call(t, "list_peers", nil); !strings.Contains(btext, "session_id_taken") || !strings.Contains(btext, "registered in mesh") {
						t.Errorf("ben's tools after the refusal: %q", btext)
					}
					if res.IsError || !strings.Contains(text, "queued") || !strings.Contains(text, amyKey) {
						t.Fatalf("send_dm to amy's session id: isError=%v %q, want queued for amy (%s)", res.IsError, text, amyKey)
					}
					if withMembers && !strings.Contains(text, "member amy") {
						t.Errorf("send_dm result %q does not say that member amy vouches for the recipient", text)
					}
				} else {
					benKey := ben.keyID()
					want := []string{
						fmt.Sprintf("%q matches 2 sessions", to), "Nothing was sent",
						"key id " + amyKey + ", away", "key id " + benKey + ", online", "by its key id",
					}
					if withMembers {
						want = append(want, "member amy", "member ben")
					}
					for _, w := range want {
						if !res.IsError || !strings.Contains(text, w) {
							t.Errorf("send_dm to %q: isError=%v %q, want it to say %q", to, res.IsError, text, w)
						}
					}
					if withMembers {
						for _, p := range mustCall[PeersResult](t, cid, "list_peers", nil).Peers {
							if wantMember := map[string]string{amyKey: "amy", benKey: "ben"}[p.KeyID]; p.Member != wantMember {
								t.Errorf("list_peers row %s (%s) says member %q, want %q", p.Name, p.KeyID, p.Member, wantMember)
							}
						}
					}
					ben.barrier(t)
					if got := ben.unreadIDs(); len(got) != 0 {
						t.Errorf("ben received %v", got)
					}
					// The key id picks amy.
					if res, text = cid.call(t, "send_dm", map[string]any{"to": amyKey, "message": "the deploy key is in the vault"}); res.IsError {
						t.Fatalf("send_dm to amy's key id: %q", text)
					}
				}
				var sent SendResult
				if b, err := json.Marshal(res.StructuredContent); err != nil || json.Unmarshal(b, &sent) != nil {
					t.Fatalf("send_dm result %v", res.StructuredContent)
				}
				if sent.ToKeyID != amyKey || sent.Status != "queued" {
					t.Fatalf("DM for amy: %+v, want queued for %s", sent, amyKey)
				}

				back := startSession(t, tb, "amy-laptop", as("amy"), amyCfg)
				back.waitConnected(t)
				eventually(t, "amy has her DM", func() bool { return len(back.unreadIDs()) == 1 })
				in := mustCall[InboxResult](t, back, "inbox", nil)
				if len(in.Messages) != 1 || in.Messages[0].ID != sent.ID || in.Messages[0].Text != "the deploy key is in the vault" {
					t.Errorf("amy's inbox: %+v, want only %s", in.Messages, sent.ID)
				}
				if form != "session id" {
					ben.barrier(t)
					if got := ben.unreadIDs(); len(got) != 0 {
						t.Errorf("ben received %v", got)
					}
				}
			})
		}
	}
}
