package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"

	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/salsa20/salsa"
)

// Boxes seals and opens DMs between one key and its peers as Seal and Open
// do, byte for byte, but keeps each peer's precomputed shared key: the
// conversion of the peer's key (with its subgroup check) and the
// Diffie-Hellman happen once per peer instead of once per DM. It holds at
// most max peers and then starts over. It is safe for concurrent use.
type Boxes struct {
	mu     sync.Mutex
	priv   *ecdh.PrivateKey // made once: making one computes its public key
	max    int
	shared map[[ed25519.PublicKeySize]byte]*[32]byte
}

// NewBoxes returns the Boxes of the key me, remembering up to most peers
// (at least 1). It panics if me is not 64 bytes long, like ed25519.Sign.
func NewBoxes(me ed25519.PrivateKey, most int) *Boxes {
	priv, err := ecdh.X25519().NewPrivateKey(X25519PrivateKey(me)[:])
	if err != nil {
		panic(err) // 32 bytes: cannot fail
	}
	return &Boxes{priv: priv, max: max(most, 1), shared: make(map[[ed25519.PublicKeySize]byte]*[32]byte)}
}

// sharedKey returns the precomputed key with peer, or an error matching
// ErrBadPublicKey when peer is not a usable key (never remembered).
func (b *Boxes) sharedKey(peer ed25519.PublicKey) (*[32]byte, error) {
	if len(peer) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("peer key: length %d: %w", len(peer), ErrBadPublicKey)
	}
	k := [ed25519.PublicKeySize]byte(peer)
	b.mu.Lock()
	s := b.shared[k]
	b.mu.Unlock()
	if s != nil {
		return s, nil
	}
	pub, err := X25519PublicKey(peer)
	if err != nil {
		return nil, err
	}
	s, err = precompute(b.priv, pub)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if len(b.shared) >= b.max {
		clear(b.shared)
	}
	b.shared[k] = s
	b.mu.Unlock()
	return s, nil
}

// Seal is Seal from this Boxes' key to the holder of to.
func (b *Boxes) Seal(plaintext []byte, to ed25519.PublicKey) (nonce [24]byte, sealed []byte, err error) {
	s, err := b.sharedKey(to)
	if err != nil {
		return nonce, nil, fmt.Errorf("seal: %w", err)
	}
	rand.Read(nonce[:]) // never fails
	return nonce, box.SealAfterPrecomputation(nil, plaintext, &nonce, s), nil
}

// Open is Open of a box sealed by the holder of from to this Boxes' key.
func (b *Boxes) Open(sealed []byte, nonce [24]byte, from ed25519.PublicKey) ([]byte, error) {
	s, err := b.sharedKey(from)
	if err != nil {
		return nil, fmt.Errorf("open box: %w", err)
	}
	plaintext, ok := box.OpenAfterPrecomputation(nil, sealed, &nonce, s)
	if !ok {
		return nil, fmt.Errorf("open box from %s: %w", KeyID(from), ErrOpen)
	}
	return plaintext, nil
}

// precompute is box.Precompute with the private key made once: the X25519
// of priv and pub, then HSalsa20 of it, as NaCl derives a box's key.
func precompute(priv *ecdh.PrivateKey, pub *[32]byte) (*[32]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return nil, fmt.Errorf("peer key: %w", ErrBadPublicKey)
	}
	dh, err := priv.ECDH(p)
	if err != nil { // a point of small order, which X25519PublicKey refuses first
		return nil, fmt.Errorf("peer key: %v: %w", err, ErrBadPublicKey)
	}
	var in, key [32]byte
	copy(in[:], dh)
	var zeros [16]byte
	salsa.HSalsa20(&key, &zeros, &in, &salsa.Sigma)
	return &key, nil
}
