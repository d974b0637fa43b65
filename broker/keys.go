package broker

import (
	"crypto/ed25519"
	"sync"

	"github.com/claudemesh/claudemesh/identity"
)

// validKeysMax bounds how many keys validKeys remembers (about 100 bytes
// each); when it is full it starts over.
const validKeysMax = 1 << 16

// validKeys remembers keys already found valid session keys, so that a
// hello or a DM does not convert the same key again (a curve operation of
// tens of microseconds: a storm of reconnecting sessions would spend most
// of its handshakes on it). Only valid keys are remembered: an invalid one
// is refused every time, and a hostile client cannot grow the set with
// keys that fail.
type validKeys struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

// check returns nil when key is an ed25519 public key that converts to an
// X25519 key of the prime-order subgroup, as a session's key must, else
// why not.
func (v *validKeys) check(key []byte) error {
	v.mu.Lock()
	_, ok := v.keys[string(key)]
	v.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := identity.X25519PublicKey(ed25519.PublicKey(key)); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys == nil || len(v.keys) >= validKeysMax {
		v.keys = make(map[string]struct{})
	}
	v.keys[string(key)] = struct{}{}
	return nil
}
