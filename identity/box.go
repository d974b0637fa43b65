package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/nacl/box"
)

var (
	// ErrBadPublicKey reports an ed25519 public key that libsodium would not
	// convert to X25519: not a point on the curve, of small order, or outside
	// the prime-order subgroup.
	ErrBadPublicKey = errors.New("bad public key")

	// ErrOpen reports a box that does not open: it was not sealed by the
	// given sender to the given recipient, or it was altered.
	ErrOpen = errors.New("box does not open")
)

// lMinusOne is L-1, -1 as a Scalar; zero is 0.
var (
	zero      = edwards25519.NewScalar()
	lMinusOne = func() *edwards25519.Scalar {
		var b [32]byte
		b[0] = 1
		one, _ := edwards25519.NewScalar().SetCanonicalBytes(b[:]) // 1 < L: cannot fail
		return edwards25519.NewScalar().Negate(one)
	}()
)

// X25519PublicKey converts an ed25519 public key to the X25519 public key of
// the same keypair, as libsodium's crypto_sign_ed25519_pk_to_curve25519 does.
// Like libsodium it refuses, with an error matching ErrBadPublicKey, keys that
// are not points on the curve, points of small order, and points outside the
// prime-order subgroup. Like libsodium it accepts a y coordinate encoded
// without reduction modulo 2^255-19, but no such encoding names a point of
// prime order.
func X25519PublicKey(edPub ed25519.PublicKey) (*[32]byte, error) {
	if len(edPub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("convert public key: length %d: %w", len(edPub), ErrBadPublicKey)
	}
	p, err := new(edwards25519.Point).SetBytes(edPub)
	if err != nil {
		return nil, fmt.Errorf("convert public key %x: not a curve point: %w", []byte(edPub), ErrBadPublicKey)
	}
	identity := edwards25519.NewIdentityPoint()
	if new(edwards25519.Point).MultByCofactor(p).Equal(identity) == 1 {
		return nil, fmt.Errorf("convert public key %x: small order: %w", []byte(edPub), ErrBadPublicKey)
	}
	// p lies in the prime-order subgroup iff [L]p is the identity. L is 0 as a
	// Scalar, so check [L-1]p == -p instead, in variable time: the key is
	// public.
	if new(edwards25519.Point).VarTimeDoubleScalarBaseMult(lMinusOne, p, zero).Equal(new(edwards25519.Point).Negate(p)) != 1 {
		return nil, fmt.Errorf("convert public key %x: not in the prime-order subgroup: %w", []byte(edPub), ErrBadPublicKey)
	}
	out := new([32]byte)
	copy(out[:], p.BytesMontgomery())
	return out, nil
}

// X25519PrivateKey converts an ed25519 private key to the X25519 private key
// of the same keypair, as libsodium's crypto_sign_ed25519_sk_to_curve25519
// does: the first 32 bytes of SHA-512 of the seed, clamped. It panics if
// edPriv is not 64 bytes long, like ed25519.Sign.
func X25519PrivateKey(edPriv ed25519.PrivateKey) *[32]byte {
	if len(edPriv) != ed25519.PrivateKeySize {
		panic(fmt.Sprintf("identity: bad ed25519 private key length %d", len(edPriv)))
	}
	h := sha512.Sum512(edPriv[:ed25519.SeedSize])
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	out := new([32]byte)
	copy(out[:], h[:32])
	clear(h[:])
	return out
}

// Seal encrypts and authenticates plaintext from the holder of from to the
// holder of to, with a fresh random nonce. The box is libsodium's
// crypto_box_easy format: a 16-byte tag followed by the ciphertext.
func Seal(plaintext []byte, to ed25519.PublicKey, from ed25519.PrivateKey) (nonce [24]byte, sealed []byte, err error) {
	if len(from) != ed25519.PrivateKeySize {
		return nonce, nil, fmt.Errorf("seal: private key length %d", len(from))
	}
	pub, err := X25519PublicKey(to)
	if err != nil {
		return nonce, nil, fmt.Errorf("seal: %w", err)
	}
	rand.Read(nonce[:]) // never fails
	return nonce, box.Seal(nil, plaintext, &nonce, pub, X25519PrivateKey(from)), nil
}

// Open authenticates and decrypts a box sealed by the holder of from to the
// holder of to. It returns an error matching ErrOpen if the box does not
// open, and one matching ErrBadPublicKey if from is not a usable key.
func Open(sealed []byte, nonce [24]byte, from ed25519.PublicKey, to ed25519.PrivateKey) ([]byte, error) {
	if len(to) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("open box: private key length %d", len(to))
	}
	pub, err := X25519PublicKey(from)
	if err != nil {
		return nil, fmt.Errorf("open box: %w", err)
	}
	plaintext, ok := box.Open(nil, sealed, &nonce, pub, X25519PrivateKey(to))
	if !ok {
		return nil, fmt.Errorf("open box from %s: %w", KeyID(from), ErrOpen)
	}
	return plaintext, nil
}
