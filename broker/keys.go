package broker

import (
	"crypto/ed25519"
	"sync"

	"github.com/claudemesh/claudemesh/identity"
)

// validKeysMax bounds how many recipient keys validKeys remembers; when it
// is full it starts over.
const validKeysMax = 4096

// validKeys remembers recipient keys already found valid session keys, so
// that a DM does not convert its recipient's key again (a curve operation
// of tens of microseconds). Only valid keys are remembered: an invalid one
// is refused every time, and a hostile sender cannot grow the set with
// keys that fail.
type validKeys struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

// valid reports whether key is an ed25519 public key that converts to an
// X25519 key of the prime-order subgroup, as a session's key must.
func (v *validKeys) valid(key []byte) bool {
	v.mu.Lock()
	_, ok := v.keys[string(key)]
	v.mu.Unlock()
	if ok {
		return true
	}
	if _, err := identity.X25519PublicKey(ed25519.PublicKey(key)); err != nil {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys == nil || len(v.keys) >= validKeysMax {
		v.keys = make(map[string]struct{})
	}
	v.keys[string(key)] = struct{}{}
	return true
}
