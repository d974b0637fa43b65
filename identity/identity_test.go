package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestValidateMesh(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"default", true},
		{"team-1_dev.eu", true},
		{strings.Repeat("m", 64), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a..b", false},
		{".hidden", false},
		{"-flag", false},
		{"_x", false},
		{"Mesh", false},
		{"a/b", false},
		{`a\b`, false},
		{"a b", false},
		{"a\x00b", false},
		{strings.Repeat("m", 65), false},
		{"m\u0435sh", false}, // Cyrillic "е"
		{"\uff4d", false},    // fullwidth "ｍ"
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			err := ValidateMesh(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateMesh(%q) = %v, want ok=%t", tt.name, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "mesh name") {
				t.Errorf("error %q does not say what was wrong", err)
			}
		})
	}
}

func TestParseSessionID(t *testing.T) {
	const canonical = "3f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6b"
	tests := []struct {
		in, want string // want "" means refused
	}{
		{canonical, canonical},
		{strings.ToUpper(canonical), canonical},
		{"3F2b8C1e-7A4d-4E6f-9B0a-1C2d3E4f5A6b", canonical},
		{"urn:uuid:" + canonical, ""},
		{"{" + canonical + "}", ""},
		{strings.ReplaceAll(canonical, "-", ""), ""},
		{canonical + "\n", ""},
		{" " + canonical, ""},
		{"3f2b8c1e/7a4d-4e6f-9b0a-1c2d3e4f5a6b", ""},
		{"3f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6g", ""},
		{"00000000-0000-0000-0000-000000000000", ""},
		{"../../../../../../../../etc/passwd00", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseSessionID(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseSessionID(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSessionID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	k := testKey(t, "key id")
	id := k.ID()
	if len(id) != 12 || !strings.HasPrefix(hex.EncodeToString(k.Public), id) {
		t.Fatalf("ID() = %q, want the first 12 hex digits of %x", id, k.Public)
	}
	if id != KeyID(k.Public) || id != strings.ToLower(id) {
		t.Fatalf("ID() = %q, KeyID = %q", id, KeyID(k.Public))
	}
}

func TestNewEphemeral(t *testing.T) {
	a, err := NewEphemeral("default")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEphemeral("default")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Key{a, b} {
		if !k.Ephemeral || k.SessionID != "" || k.Mesh != "default" || k.CreatedAt.IsZero() {
			t.Errorf("ephemeral key %v not flagged as such", k)
		}
		if !bytes.Equal(k.Private.Public().(ed25519.PublicKey), k.Public) {
			t.Errorf("ephemeral key %v: public key does not match private key", k)
		}
	}
	if a.Public.Equal(b.Public) {
		t.Fatal("two ephemeral keys are equal")
	}
	if _, err := NewEphemeral("../x"); err == nil {
		t.Fatal("NewEphemeral accepted an invalid mesh name")
	}
}

// testKey returns a deterministic key derived from label.
func testKey(t *testing.T, label string) *Key {
	t.Helper()
	seed := sha256.Sum256([]byte(label))
	priv := ed25519.NewKeyFromSeed(seed[:])
	return &Key{
		Mesh:      "default",
		SessionID: "3f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6b",
		Public:    priv.Public().(ed25519.PublicKey),
		Private:   priv,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

// secretForms returns spellings of k's private key that must never appear in
// output.
func secretForms(k *Key) []string {
	seed := k.Private.Seed()
	dec := fmt.Sprint(seed[:6])
	return []string{
		hex.EncodeToString(seed),
		strings.ToUpper(hex.EncodeToString(seed)),
		hex.EncodeToString(seed[:8]),
		base64.StdEncoding.EncodeToString(k.Private)[:16],
		dec[1 : len(dec)-1], // "12 34 56 ..." as %v prints bytes
		fmt.Sprintf("%#x", seed[:4]),
	}
}

func assertNoSecret(t *testing.T, what, out string, k *Key) {
	t.Helper()
	for _, s := range secretForms(k) {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks the private key (%q) in %q", what, s, out)
		}
	}
}

func TestKeyRedaction(t *testing.T) {
	k := testKey(t, "redaction")
	type holder struct{ K Key }
	values := map[string]any{"Key": *k, "*Key": k, "struct holding Key": holder{*k}}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q"} {
			t.Run(name+" "+verb, func(t *testing.T) {
				out := fmt.Sprintf(verb, v)
				assertNoSecret(t, verb, out, k)
				if !strings.Contains(out, k.ID()) || !strings.Contains(out, "REDACTED") {
					t.Errorf("%s of %s = %q, want the key id and REDACTED", verb, name, out)
				}
			})
		}
	}
	t.Run("json", func(t *testing.T) {
		out, err := json.Marshal(map[string]any{"value": *k, "pointer": k})
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecret(t, "json", string(out), k)
		if !strings.Contains(string(out), hex.EncodeToString(k.Public)) {
			t.Errorf("json %s lacks the public key", out)
		}
	})
}

func TestKeyLogValue(t *testing.T) {
	k := testKey(t, "log value")
	for _, tt := range []struct {
		name string
		h    func(*bytes.Buffer) slog.Handler
	}{
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(tt.h(&buf)).Info("loaded", "key", k, "value", *k)
			out := buf.String()
			assertNoSecret(t, tt.name, out, k)
			for _, want := range []string{"mesh", "default", "session", k.SessionID, "key_id", k.ID(), "ephemeral"} {
				if !strings.Contains(out, want) {
					t.Errorf("log %q lacks %q", out, want)
				}
			}
		})
	}
	v := k.LogValue()
	if v.Kind() != slog.KindGroup {
		t.Fatalf("LogValue kind = %v, want a group", v.Kind())
	}
	var keys []string
	for _, a := range v.Group() {
		keys = append(keys, a.Key)
	}
	if got, want := strings.Join(keys, ","), "mesh,session,key_id,ephemeral"; got != want {
		t.Fatalf("LogValue keys = %s, want %s", got, want)
	}
}
