// Package rate is a token bucket, shared by the broker (DMs per session and
// per member) and the MCP server (pushes per sender).
package rate

import "time"

// Bucket allows bursts of Burst events and one more every Every. The zero
// value of its state starts full. It is not safe for concurrent use.
type Bucket struct {
	Burst int
	Every time.Duration

	tokens float64
	last   time.Time
}

// Allow takes a token at now, reporting false when there is none.
func (b *Bucket) Allow(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = float64(b.Burst)
	} else if now.After(b.last) {
		b.tokens = min(float64(b.Burst), b.tokens+float64(now.Sub(b.last))/float64(b.Every))
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
