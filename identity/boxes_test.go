package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

// Boxes seals and opens exactly as Seal and Open do, both ways, for peers
// it remembers and after it forgot them; it refuses what they refuse and
// never remembers a bad key.
func TestBoxesAgreeWithSealAndOpen(t *testing.T) {
	gen := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	pubOf := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	alice := gen()
	ab := NewBoxes(alice, 2)
	for round := range 3 { // 3 peers through a cache of 2: forgotten and computed again
		for _, bob := range []ed25519.PrivateKey{gen(), gen(), gen()} {
			msg := []byte("round " + string(rune('0'+round)))
			nonce, sealed, err := ab.Seal(msg, pubOf(bob))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := Open(sealed, nonce, pubOf(alice), bob); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("Open of a Boxes box: %q, %v", got, err)
			}
			nonce, sealed, err = Seal(msg, pubOf(alice), bob)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ab.Open(sealed, nonce, pubOf(bob)); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("Boxes.Open of a Seal box: %q, %v", got, err)
			}
			sealed[len(sealed)-1] ^= 1
			if _, err := ab.Open(sealed, nonce, pubOf(bob)); !errors.Is(err, ErrOpen) {
				t.Errorf("a tampered box: %v, want ErrOpen", err)
			}
		}
		if n := len(ab.shared); n > 2 {
			t.Fatalf("Boxes remembers %d peers, more than its 2", n)
		}
	}
	var small [32]byte // the identity point: small order
	small[0] = 1
	for _, bad := range []ed25519.PublicKey{small[:], pubOf(alice)[:31]} {
		if _, _, err := ab.Seal([]byte("x"), bad); !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("Seal to a bad key: %v, want ErrBadPublicKey", err)
		}
		if _, err := ab.Open([]byte("0123456789abcdef0"), [24]byte{}, bad); !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("Open from a bad key: %v, want ErrBadPublicKey", err)
		}
	}
	for k := range ab.shared {
		if bytes.Equal(k[:], small[:]) {
			t.Error("a bad key was remembered")
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	_, alice, _ := ed25519.GenerateKey(rand.Reader)
	_, bob, _ := ed25519.GenerateKey(rand.Reader)
	alicePub := alice.Public().(ed25519.PublicKey)
	nonce, sealed, err := Seal([]byte("a DM of a typical length, a line or two of text"), bob.Public().(ed25519.PublicKey), alice)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			if _, err := Open(sealed, nonce, alicePub, bob); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Boxes", func(b *testing.B) {
		bb := NewBoxes(bob, 16)
		for b.Loop() {
			if _, err := bb.Open(sealed, nonce, alicePub); err != nil {
				b.Fatal(err)
			}
		}
	})
}
