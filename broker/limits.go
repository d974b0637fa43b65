package broker

import (
	"context"
	"maps"
	"time"

	"github.com/claudemesh/claudemesh/internal/rate"
)

type memberKey struct {
	mesh   string
	member string // member public key bytes
}

// allowSend takes a token from the sending member's bucket (sessions
// without a member have none).
func (s *Server) allowSend(mesh string, member []byte, now time.Time) bool {
	if len(member) == 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memberKey{mesh, string(member)}
	b := s.memberRates[k]
	if b == nil {
		b = bucketFor(s.cfg.MemberSendRate)
		s.memberRates[k] = b
	}
	return b.Allow(now)
}

// bucketFor allows perSecond events a second with bursts of twice as many.
func bucketFor(perSecond float64) *rate.Bucket {
	return &rate.Bucket{Burst: max(1, int(2*perSecond)), Every: time.Duration(float64(time.Second) / perSecond)}
}

// queueEstimate is an upper bound of what waits for a recipient (from
// one sender, or from all): the store's count when it was read, plus every
// DM accepted for it since. Acks only lower the truth, so while the bound
// is under the caps no store read is needed; it is read again when the
// bound reaches a cap or is queueRecount old.
type queueEstimate struct {
	n     int
	bytes int64
	at    time.Time
}

// queueKey names a queue estimate: what waits for a recipient from sender,
// or from everyone when sender is "".
type queueKey struct {
	to     presenceKey
	sender string
}

// queueRecount is how long a queue estimate is trusted; queueCapRecount
// how long one that a DM does not fit is.
const (
	queueRecount    = time.Second
	queueCapRecount = 100 * time.Millisecond
)

// queueRoom reports whether one more DM of size bytes from sender fits in
// the queue of `to`, both in all that waits for it and in what this
// sender left waiting; it counts the DM in when it does. Otherwise it
// says which cap the DM would pass.
func (s *Server) queueRoom(ctx context.Context, mesh string, to, sender []byte, size int64, now time.Time) (*queueFull, error) {
	type limit struct {
		key      queueKey
		sender   []byte
		maxN     int
		maxBytes int64
	}
	limits := [2]limit{
		{queueKey{keyOf(mesh, to), ""}, nil, s.cfg.MaxQueued, s.cfg.MaxQueuedBytes},
		{queueKey{keyOf(mesh, to), string(sender)}, sender, s.cfg.MaxQueuedPerSender, s.cfg.MaxQueuedBytesPerSender},
	}
	fits := func(l limit, e *queueEstimate) bool {
		return e != nil && e.n < l.maxN && e.bytes+size <= l.maxBytes
	}
	// takeLocked counts the DM in when every estimate is fresh and fits; it
	// reports the first limit that does not. s.mu must be held.
	takeLocked := func(fresh func(*queueEstimate) bool) (failed int) {
		for i, l := range limits {
			if e := s.queues[l.key]; !fresh(e) || !fits(l, e) {
				return i
			}
		}
		for _, l := range limits {
			e := s.queues[l.key]
			e.n, e.bytes = e.n+1, e.bytes+size
		}
		return -1
	}
	// An estimate is read again when it is queueRecount old, or when the
	// DM does not fit it and it is queueCapRecount old: acks may have made
	// room since. A DM that does not fit a younger one is refused without
	// a store read, so that senders pressing on a full queue do not count
	// it over and over.
	s.mu.Lock()
	recount, full := false, -1
	for i, l := range limits {
		e := s.queues[l.key]
		switch {
		case e == nil || now.Sub(e.at) >= queueRecount:
			recount = true
		case !fits(l, e) && now.Sub(e.at) >= queueCapRecount:
			recount = true
		case !fits(l, e) && full < 0:
			full = i
		}
	}
	if !recount {
		defer s.mu.Unlock()
		if full < 0 {
			takeLocked(func(*queueEstimate) bool { return true })
			return nil, nil
		}
		e := s.queues[limits[full].key]
		return &queueFull{perSender: full == 1, n: e.n, bytes: e.bytes}, nil
	}
	s.mu.Unlock()
	// Count again from the store.
	counted := make(map[queueKey]*queueEstimate, len(limits))
	for _, l := range limits {
		n, bytes, err := s.cfg.Store.QueueStats(ctx, mesh, to, l.sender, now)
		if err != nil {
			return nil, err
		}
		counted[l.key] = &queueEstimate{n: n, bytes: bytes, at: now}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(s.queues, counted)
	failed := takeLocked(func(*queueEstimate) bool { return true })
	if failed < 0 {
		return nil, nil
	}
	e := s.queues[limits[failed].key]
	return &queueFull{perSender: failed == 1, n: e.n, bytes: e.bytes}, nil
}

// queueFull says which cap a DM would pass: all that waits for the
// recipient, or what its sender left waiting (perSender), and how much
// waits.
type queueFull struct {
	perSender bool
	n         int
	bytes     int64
}
