package rate

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	b := Bucket{Burst: 3, Every: time.Second}
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !b.Allow(now) {
			t.Fatalf("take %d of a fresh bucket of 3 refused", i)
		}
	}
	if b.Allow(now) {
		t.Fatal("fourth take at once allowed")
	}
	if b.Allow(now.Add(999 * time.Millisecond)) {
		t.Fatal("take before a token was back allowed")
	}
	if !b.Allow(now.Add(2 * time.Second)) {
		t.Fatal("take after refill refused")
	}
	// A clock that steps back never mints tokens.
	if b.Allow(now) && b.Allow(now) {
		t.Fatal("a clock going back refilled the bucket")
	}
}
