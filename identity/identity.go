// Package identity gives each Claude Code session on a mesh its own key and
// encrypts direct messages between session keys.
//
// A session is named by the UUID Claude Code gives it. The MCP server resolves
// the session's key from (mesh, session UUID): ParseSessionID and
// ValidateMesh check and canonicalise both names, and Keystore.Load reads the
// ed25519 keypair kept at $CLAUDEMESH_HOME/sessions/<mesh>/<uuid>.json,
// creating it exactly once, even when several processes start the same
// session at the same time. A relaunched or resumed session therefore comes
// back with the same key. A session with no UUID gets a key from NewEphemeral
// that lives only as long as the process.
//
// Direct messages are NaCl boxes (X25519, XSalsa20-Poly1305) sealed to the
// recipient's session key. The X25519 keys are derived from the ed25519 keys
// exactly as libsodium's crypto_sign_ed25519_pk_to_curve25519 and
// crypto_sign_ed25519_sk_to_curve25519 do, including the rejection of public
// keys of small order or outside the prime-order subgroup, so boxes made here
// and by libsodium open on either side.
//
// The package touches only the local file system: it has no network access and
// imports no other package of the project but internal/atomicfile, through
// which it writes key files.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Key is a session keypair.
//
// Formatting a Key with fmt, logging it with slog or encoding it as JSON shows
// only public information; the private key is never printed.
type Key struct {
	Mesh      string
	SessionID string // canonical lowercase UUID; "" for an ephemeral key
	Public    ed25519.PublicKey
	Private   ed25519.PrivateKey // 64 bytes: seed followed by the public key
	CreatedAt time.Time
	Ephemeral bool
}

// ID returns the short identifier of the key's public key; see KeyID.
func (k Key) ID() string { return KeyID(k.Public) }

// LogValue describes the key for logs without its private part.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mesh", k.Mesh),
		slog.String("session", k.SessionID),
		slog.String("key_id", k.ID()),
		slog.Bool("ephemeral", k.Ephemeral),
	)
}

// String returns a redacted description of the key.
func (k Key) String() string {
	return fmt.Sprintf("identity.Key{mesh=%s, session=%s, id=%s, ephemeral=%t, private=REDACTED}",
		k.Mesh, k.SessionID, k.ID(), k.Ephemeral)
}

// GoString is used for %#v; it is as redacted as String.
func (k Key) GoString() string { return k.String() }

// Format makes every fmt verb, not only %v and %s, print the redacted form.
func (k Key) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, k.String())
}

// MarshalJSON encodes the public description of the key, never the private key.
func (k Key) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Mesh      string `json:"mesh"`
		Session   string `json:"session"`
		KeyID     string `json:"key_id"`
		Public    string `json:"public_key"`
		Ephemeral bool   `json:"ephemeral"`
	}{k.Mesh, k.SessionID, k.ID(), hex.EncodeToString(k.Public), k.Ephemeral})
}

// KeyID returns the first 12 lowercase hex characters of the public key, so a
// key ID is a prefix of the key's hex encoding.
func KeyID(pub ed25519.PublicKey) string {
	return hex.EncodeToString(pub[:min(len(pub), 6)])
}

const maxMeshLen = 64

// ValidateMesh reports whether name can be used as a mesh name: 1 to 64
// characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit,
// and without "..". A valid name is safe as a single path element.
func ValidateMesh(name string) error {
	fail := func(rule string) error { return fmt.Errorf("invalid mesh name %q: %s", name, rule) }
	switch {
	case name == "":
		return fail("must not be empty")
	case len(name) > maxMeshLen:
		return fail(fmt.Sprintf("must be at most %d characters", maxMeshLen))
	case !isLowerAlnum(name[0]):
		return fail("must start with a lowercase letter or digit")
	case strings.Contains(name, ".."):
		return fail(`must not contain ".."`)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fail("may contain only lowercase letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// ParseSessionID checks that s is a Claude Code session ID, a UUID in its
// 36-character form (8-4-4-4-12 hex digits, either case), and returns it in
// canonical lowercase form. Other UUID spellings (urn:uuid:, braces, 32 hex
// digits) and the nil UUID are refused.
func ParseSessionID(s string) (string, error) {
	if len(s) != 36 {
		return "", fmt.Errorf("invalid session id %q: must be a UUID of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid session id %q: %w", s, err)
	}
	if u == uuid.Nil {
		return "", fmt.Errorf("invalid session id %q: the nil UUID names no session", s)
	}
	return u.String(), nil
}

// NewEphemeral returns a fresh random key for a session that has no UUID. It
// is never stored.
func NewEphemeral(mesh string) (*Key, error) {
	if err := ValidateMesh(mesh); err != nil {
		return nil, fmt.Errorf("new ephemeral key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new ephemeral key: %w", err)
	}
	return &Key{Mesh: mesh, Public: pub, Private: priv, CreatedAt: time.Now(), Ephemeral: true}, nil
}
