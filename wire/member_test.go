package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestAttestation(t *testing.T) {
	_, member := newTestKey(t)
	session, _ := newTestKey(t)
	other, _ := newTestKey(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	good := Attest(member, "team", Key(session), now.Add(time.Hour))
	if err := good.Verify("team", Key(session), now); err != nil {
		t.Fatalf("valid attestation refused: %v", err)
	}
	tests := []struct {
		name    string
		a       *Attestation
		mesh    string
		session Key
		now     time.Time
		want    error
	}{
		{"other mesh", good, "other", Key(session), now, ErrAttestationSig},
		{"other session", good, "team", Key(other), now, ErrAttestationSig},
		{"expired", good, "team", Key(session), now.Add(time.Hour), ErrAttestationExpired},
		{"too long", Attest(member, "team", Key(session), now.Add(MaxAttestation+time.Second)), "team", Key(session), now, ErrAttestationTooLong},
		{"expiry changed", &Attestation{Member: good.Member, Expires: good.Expires.Add(time.Hour), Sig: good.Sig}, "team", Key(session), now, ErrAttestationSig},
		{"member swapped", &Attestation{Member: Key(other), Expires: good.Expires, Sig: good.Sig}, "team", Key(session), now, ErrAttestationSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.a.Verify(tt.mesh, tt.session, tt.now); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestInviteCode(t *testing.T) {
	raw := bytes.Repeat([]byte{0xa5}, InviteCodeSize)
	code := FormatInviteCode(raw)
	if !strings.HasPrefix(code, "cm1-") || len(code) > 40 {
		t.Errorf("code %q", code)
	}
	for _, variant := range []string{code, strings.ToUpper(code), " " + code + "\n", "cm1-" + strings.ReplaceAll(strings.TrimPrefix(code, "cm1-"), "-", "")} {
		got, err := ParseInviteCode(variant)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("ParseInviteCode(%q) = %x, %v", variant, got, err)
		}
	}
	for _, bad := range []string{"", "cm1-", "cm2-" + code[4:], code + "a", code[:len(code)-2], "cm1-!!!!!", strings.Repeat("a", 100)} {
		if _, err := ParseInviteCode(bad); err == nil {
			t.Errorf("ParseInviteCode(%q) accepted", bad)
		}
	}
}

func TestMemberFramesRoundTrip(t *testing.T) {
	pub, priv := newTestKey(t)
	code := FormatInviteCode(make([]byte, InviteCodeSize))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	frames := []Frame{
		MemberHello{Version: Version, Mesh: "team", Key: Key(pub), Name: "alice", Token: "t", Sig: []byte{1}},
		Join{Version: Version, Code: code, Key: Key(pub), Name: "bob", Sig: []byte{1}},
		Joined{Mesh: "team", KeyID: "0707"},
		MeshCreate{Req: 1},
		InviteCreate{Req: 2, Uses: 3, ExpiresAt: now},
		Invite{Req: 2, Code: code, Mesh: "team", Uses: 3, ExpiresAt: now},
		InviteRevoke{Req: 3, Code: code},
		MemberList{Req: 4},
		Members{Req: 4, Members: []MemberInfo{{Key: Key(pub), KeyID: "07", Name: "alice", Role: RoleOwner, JoinedAt: now, Sessions: 2}}},
		MemberRemove{Req: 5, Name: "bob"},
		OK{Req: 5},
		Hello{Version: Version, Mesh: "team", Key: Key(pub), Name: "a", Sig: []byte{1}, Attestation: Attest(priv, "team", Key(pub), now)},
	}
	for _, f := range frames {
		b, err := Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		want, _ := json.Marshal(f)
		again, _ := json.Marshal(got)
		if !bytes.Equal(want, again) {
			t.Errorf("round trip of %s:\n got %s\nwant %s", f.Type(), again, want)
		}
	}
	bad := map[string]string{
		"join bad code":      `{"type":"join","v":1,"code":"nope","key":"` + Key(pub).String() + `","name":"bob","sig":"AA=="}`,
		"join bad name":      `{"type":"join","v":1,"code":"` + code + `","key":"` + Key(pub).String() + `","name":"../x","sig":"AA=="}`,
		"invite zero uses":   `{"type":"invite_create","req":1,"uses":0,"expires_at":"2030-01-01T00:00:00Z"}`,
		"hello short attest": `{"type":"hello","v":1,"mesh":"m","key":"` + Key(pub).String() + `","name":"a","sig":"AA==","attestation":{"member":"` + Key(pub).String() + `","expires":"2030-01-01T00:00:00Z","sig":"AA=="}}`,
	}
	for name, data := range bad {
		if _, err := Decode([]byte(data)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestHelloTranscriptBindsAttestation(t *testing.T) {
	pub, priv := newTestKey(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	h := Hello{Version: Version, Mesh: "team", Key: Key(pub), Name: "a"}
	without := HelloTranscript([]byte("c"), h)
	h.Attestation = Attest(priv, "team", Key(pub), now)
	with := HelloTranscript([]byte("c"), h)
	if bytes.Equal(with, without) {
		t.Error("the attestation does not change the hello transcript")
	}
	h.Attestation = Attest(priv, "team", Key(pub), now.Add(time.Second))
	if bytes.Equal(HelloTranscript([]byte("c"), h), with) {
		t.Error("the attestation's expiry does not change the hello transcript")
	}
}

func TestMemberFuzzCorporaPresent(t *testing.T) {
	for _, name := range []string{"FuzzParseInviteCode", "FuzzVerifyAttestation"} {
		entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(entries) == 0 {
			t.Errorf("seed corpus of %s is empty (%v)", name, err)
		}
	}
}

func FuzzParseInviteCode(f *testing.F) {
	f.Add(FormatInviteCode(make([]byte, InviteCodeSize)))
	f.Fuzz(func(t *testing.T, code string) {
		raw, err := ParseInviteCode(code)
		if err != nil {
			return
		}
		if len(raw) != InviteCodeSize {
			t.Fatalf("parsed %q to %d bytes", code, len(raw))
		}
		again, err := ParseInviteCode(FormatInviteCode(raw))
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("format/parse of %x: %x, %v", raw, again, err)
		}
	})
}

// FuzzVerifyAttestation feeds arbitrary hello frames to the decoder and the
// attestation check: it must never panic, and must accept only an
// attestation that really signs the hello's mesh and session key.
func FuzzVerifyAttestation(f *testing.F) {
	f.Add([]byte(`{"type":"hello","v":1,"mesh":"team","key":"` + strings.Repeat("07", 32) + `","name":"a","sig":"AA==","attestation":{"member":"` + strings.Repeat("07", 32) + `","expires":"2030-01-01T00:00:00Z","sig":"` + strings.Repeat("A", 86) + `=="}}`))
	now := time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := Decode(data)
		if err != nil {
			return
		}
		h, ok := fr.(Hello)
		if !ok || h.Attestation == nil {
			return
		}
		if err := h.Attestation.Verify(h.Mesh, h.Key, now); err == nil {
			// Only a real signature verifies; random input never has one.
			if !ed25519.Verify(ed25519.PublicKey(h.Attestation.Member), AttestationTranscript(h.Mesh, h.Key, h.Attestation.Expires), h.Attestation.Sig) {
				t.Fatalf("Verify accepted an attestation whose signature does not verify")
			}
		}
	})
}
