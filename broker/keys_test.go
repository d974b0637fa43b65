package broker

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

func TestValidKeysRemembersOnlyValidKeysAndStaysBounded(t *testing.T) {
	var v validKeys
	smallOrder := make([]byte, ed25519.PublicKeySize) // the identity point
	smallOrder[0] = 1
	for range 2 {
		if v.check(smallOrder) == nil {
			t.Fatal("a small-order key passed")
		}
		if v.check([]byte("short")) == nil {
			t.Fatal("a short key passed")
		}
	}
	if len(v.keys) != 0 {
		t.Fatalf("%d invalid keys remembered", len(v.keys))
	}
	for i := range validKeysMax + 10 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if v.check(pub) != nil || v.check(pub) != nil {
			t.Fatalf("valid key %d refused", i)
		}
		if _, ok := v.keys[string(pub)]; !ok {
			t.Fatalf("valid key %d not remembered", i)
		}
		if len(v.keys) > validKeysMax {
			t.Fatalf("%d keys remembered, bound %d", len(v.keys), validKeysMax)
		}
	}
}
