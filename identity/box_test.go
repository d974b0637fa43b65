package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/nacl/box"
)

// hexBytes is a byte string written as hex in vectors.json.
type hexBytes []byte

func (h *hexBytes) UnmarshalText(text []byte) error {
	b, err := hex.DecodeString(string(text))
	*h = b
	return err
}

// vectors is testdata/libsodium/vectors.json, written by gen.c with libsodium.
type vectors struct {
	Version  string `json:"libsodium_version"`
	Keypairs []struct {
		Seed     hexBytes `json:"seed"`
		EdPublic hexBytes `json:"ed25519_pk"`
		EdSecret hexBytes `json:"ed25519_sk"`
		XPublic  hexBytes `json:"x25519_pk"`
		XSecret  hexBytes `json:"x25519_sk"`
	} `json:"keypairs"`
	Boxes []struct {
		Sender    int      `json:"sender"`
		Recipient int      `json:"recipient"`
		Nonce     hexBytes `json:"nonce"`
		Plaintext hexBytes `json:"plaintext"`
		Box       hexBytes `json:"box"`
	} `json:"boxes"`
	PublicKeys []struct {
		Name     string   `json:"name"`
		EdPublic hexBytes `json:"ed25519_pk"`
		Accepted bool     `json:"accepted"`
		XPublic  hexBytes `json:"x25519_pk"`
	} `json:"public_keys"`
}

func readVectors(t *testing.T) *vectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "libsodium", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := new(vectors)
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
	if len(v.Keypairs) < 40 || len(v.Boxes) < 10 || len(v.PublicKeys) < 100 {
		t.Fatalf("vectors.json has %d keypairs, %d boxes, %d public keys; regenerate it with gen.c",
			len(v.Keypairs), len(v.Boxes), len(v.PublicKeys))
	}
	return v
}

func TestLibsodiumVectors(t *testing.T) {
	v := readVectors(t)
	t.Logf("vectors from libsodium %s", v.Version)

	t.Run("keypairs", func(t *testing.T) {
		for i, kp := range v.Keypairs {
			priv := ed25519.NewKeyFromSeed(kp.Seed)
			if !bytes.Equal(priv, kp.EdSecret) || !bytes.Equal(priv[32:], kp.EdPublic) {
				t.Fatalf("keypair %d: ed25519 key from seed differs from libsodium's", i)
			}
			xpub, err := X25519PublicKey(ed25519.PublicKey(kp.EdPublic))
			if err != nil {
				t.Fatalf("keypair %d: %v", i, err)
			}
			if !bytes.Equal(xpub[:], kp.XPublic) {
				t.Errorf("keypair %d: X25519PublicKey = %x, libsodium %x", i, xpub[:], kp.XPublic)
			}
			xpriv := X25519PrivateKey(ed25519.PrivateKey(kp.EdSecret))
			if !bytes.Equal(xpriv[:], kp.XSecret) {
				t.Errorf("keypair %d: X25519PrivateKey differs from libsodium's", i)
			}
			// The two conversions give the two halves of one X25519 keypair.
			ecdhPriv, err := ecdh.X25519().NewPrivateKey(xpriv[:])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ecdhPriv.PublicKey().Bytes(), xpub[:]) {
				t.Errorf("keypair %d: converted private key does not match converted public key", i)
			}
		}
	})

	t.Run("boxes", func(t *testing.T) {
		for i, b := range v.Boxes {
			from, to := v.Keypairs[b.Sender], v.Keypairs[b.Recipient]
			nonce := [24]byte(b.Nonce)
			got, err := Open(b.Box, nonce, ed25519.PublicKey(from.EdPublic), ed25519.PrivateKey(to.EdSecret))
			if err != nil || !bytes.Equal(got, b.Plaintext) {
				t.Errorf("box %d: Open = %x, %v; want %x", i, got, err, b.Plaintext)
			}
			// x/crypto's box with libsodium's keys and nonce makes
			// exactly libsodium's crypto_box_easy output.
			sealed := box.Seal(nil, b.Plaintext, &nonce,
				(*[32]byte)(to.XPublic), X25519PrivateKey(ed25519.PrivateKey(from.EdSecret)))
			if !bytes.Equal(sealed, b.Box) {
				t.Errorf("box %d: box.Seal = %x, libsodium %x", i, sealed, b.Box)
			}
			// Seal's output opens with libsodium's X25519 keys.
			n2, sealed2, err := Seal(b.Plaintext, ed25519.PublicKey(to.EdPublic), ed25519.PrivateKey(from.EdSecret))
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := box.Open(nil, sealed2, &n2, (*[32]byte)(from.XPublic), (*[32]byte)(to.XSecret)); !ok || !bytes.Equal(got, b.Plaintext) {
				t.Errorf("box %d: Seal output does not open with libsodium's keys", i)
			}
		}
	})

	t.Run("public keys", func(t *testing.T) {
		for _, c := range v.PublicKeys {
			xpub, err := X25519PublicKey(ed25519.PublicKey(c.EdPublic))
			switch {
			case c.Accepted && err != nil:
				t.Errorf("%s (%x): libsodium accepts it, X25519PublicKey: %v", c.Name, []byte(c.EdPublic), err)
			case c.Accepted && !bytes.Equal(xpub[:], c.XPublic):
				t.Errorf("%s (%x): X25519PublicKey = %x, libsodium %x", c.Name, []byte(c.EdPublic), xpub[:], c.XPublic)
			case !c.Accepted && err == nil:
				t.Errorf("%s (%x): libsodium rejects it, X25519PublicKey accepts it", c.Name, []byte(c.EdPublic))
			case !c.Accepted && !errors.Is(err, ErrBadPublicKey):
				t.Errorf("%s: error %v does not match ErrBadPublicKey", c.Name, err)
			}
		}
	})

	// The candidates must exercise every reason for refusal, or the
	// comparison above proves less than it seems.
	t.Run("coverage", func(t *testing.T) {
		var accepted, offCurve, smallOrder, torsion, nonCanonical, torsionOrder2 int
		for _, c := range v.PublicKeys {
			if c.Accepted {
				accepted++
			}
			if isNonCanonicalY(c.EdPublic) {
				nonCanonical++
			}
			p, err := new(edwards25519.Point).SetBytes(c.EdPublic)
			if err != nil {
				offCurve++
				continue
			}
			if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
				smallOrder++
				continue
			}
			if !c.Accepted {
				torsion++
				// p - T2 for the order-2 point T2 = (0, -1) is (-x, -y):
				// prime order iff p has exactly an order-2 component, which
				// libsodium releases before the CVE-2025-69277 fix accept.
				if _, err := X25519PublicKey(negateXY(t, p)); err == nil {
					torsionOrder2++
				}
			}
		}
		t.Logf("%d accepted, %d off the curve, %d small order, %d with torsion (%d of order 2), %d non-canonical y",
			accepted, offCurve, smallOrder, torsion, torsionOrder2, nonCanonical)
		if accepted < 8 || offCurve == 0 || smallOrder < 8 || torsion == 0 || torsionOrder2 == 0 || nonCanonical == 0 {
			t.Fatal("vectors.json misses a kind of public key")
		}
	})
}

// isNonCanonicalY reports whether the y coordinate in enc is at least p = 2^255-19.
func isNonCanonicalY(enc []byte) bool {
	if enc[31]&0x7f != 0x7f || enc[0] < 0xed {
		return false
	}
	for _, b := range enc[1:31] {
		if b != 0xff {
			return false
		}
	}
	return true
}

// negateXY returns the encoding of (-x, -y) for p = (x, y), that is p plus the
// point of order 2.
func negateXY(t *testing.T, p *edwards25519.Point) ed25519.PublicKey {
	t.Helper()
	var order2 [32]byte
	copy(order2[:], bytes.Repeat([]byte{0xff}, 32))
	order2[0], order2[31] = 0xec, 0x7f // y = p-1 = -1, x = 0
	t2, err := new(edwards25519.Point).SetBytes(order2[:])
	if err != nil {
		t.Fatal(err)
	}
	return new(edwards25519.Point).Add(p, t2).Bytes()
}

func TestSealOpen(t *testing.T) {
	alice, bob, carol := testKey(t, "alice"), testKey(t, "bob"), testKey(t, "carol")
	msg := []byte("meet in #release at 10")

	nonce, sealed, err := Seal(msg, bob.Public, alice.Private)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(sealed, nonce, alice.Public, bob.Private)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v; want %q", got, err, msg)
	}
	if bytes.Contains(sealed, msg) {
		t.Fatal("box contains the plaintext")
	}
	nonce2, sealed2, err := Seal(msg, bob.Public, alice.Private)
	if err != nil {
		t.Fatal(err)
	}
	if nonce2 == nonce || bytes.Equal(sealed2, sealed) {
		t.Fatal("two seals used the same nonce")
	}

	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	otherNonce := nonce
	otherNonce[0] ^= 1
	tests := []struct {
		name  string
		box   []byte
		nonce [24]byte
		from  ed25519.PublicKey
		to    ed25519.PrivateKey
	}{
		{"other recipient", sealed, nonce, alice.Public, carol.Private},
		{"other sender", sealed, nonce, carol.Public, bob.Private},
		{"sender's own key", sealed, nonce, alice.Public, alice.Private},
		{"tag altered", flip(0), nonce, alice.Public, bob.Private},
		{"ciphertext altered", flip(len(sealed) - 1), nonce, alice.Public, bob.Private},
		{"truncated", sealed[:len(sealed)-1], nonce, alice.Public, bob.Private},
		{"shorter than a tag", sealed[:box.Overhead-1], nonce, alice.Public, bob.Private},
		{"other nonce", sealed, otherNonce, alice.Public, bob.Private},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(tt.box, tt.nonce, tt.from, tt.to)
			if !errors.Is(err, ErrOpen) || got != nil {
				t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
			}
		})
	}
}

func TestBadPublicKeys(t *testing.T) {
	bob := testKey(t, "bob")
	identity := make(ed25519.PublicKey, 32)
	identity[0] = 1
	bad := map[string]ed25519.PublicKey{
		"identity":   identity,
		"all zero":   make(ed25519.PublicKey, 32),
		"too short":  bob.Public[:31],
		"empty":      nil,
		"with order": negateXY(t, mustPoint(t, bob.Public)),
	}
	for name, pub := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := X25519PublicKey(pub); !errors.Is(err, ErrBadPublicKey) {
				t.Errorf("X25519PublicKey: %v, want ErrBadPublicKey", err)
			}
			if _, _, err := Seal([]byte("x"), pub, bob.Private); !errors.Is(err, ErrBadPublicKey) {
				t.Errorf("Seal: %v, want ErrBadPublicKey", err)
			}
			var nonce [24]byte
			if _, err := Open(make([]byte, 40), nonce, pub, bob.Private); !errors.Is(err, ErrBadPublicKey) {
				t.Errorf("Open: %v, want ErrBadPublicKey", err)
			}
		})
	}
}

func mustPoint(t *testing.T, pub ed25519.PublicKey) *edwards25519.Point {
	t.Helper()
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func BenchmarkX25519PublicKey(b *testing.B) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := X25519PublicKey(pub); err != nil {
			b.Fatal(err)
		}
	}
}
