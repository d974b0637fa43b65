package broker

import (
	"context"
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
		return e.n < l.maxN && e.bytes+size <= l.maxBytes
	}
	// An estimate is read again from the store when it is missing or
	// queueRecount old, or when the DM does not fit it and it is
	// queueCapRecount old: acks may have made room since. Only those are
	// read: the recipient's whole queue is not counted again for every
	// sender whose own estimate is stale. A DM that does not fit a younger
	// estimate is refused without a store read, so that senders pressing
	// on a full queue do not count it over and over, and one sender at a
	// time counts a stale estimate. A second look after the reads finds
	// every estimate fresh (unless a sweep took one meanwhile, hence the
	// bound).
	for tries := 0; ; tries++ {
		var recount []int
		full := -1
		s.mu.Lock()
		for i, l := range limits {
			e := s.queues[l.key]
			switch {
			case e == nil:
				recount = append(recount, i)
			case now.Sub(e.at) >= queueRecount || !fits(l, e) && now.Sub(e.at) >= queueCapRecount && tries == 0:
				// This sender counts it; meanwhile the others go on
				// with the estimate, an upper bound still.
				e.at = now
				recount = append(recount, i)
			case !fits(l, e) && full < 0:
				full = i
			}
		}
		if full >= 0 {
			e := s.queues[limits[full].key]
			s.mu.Unlock()
			return &queueFull{perSender: full == 1, n: e.n, bytes: e.bytes}, nil
		}
		if len(recount) == 0 || tries == 2 {
			for _, l := range limits {
				if e := s.queues[l.key]; e != nil {
					e.n, e.bytes = e.n+1, e.bytes+size
				}
			}
			s.mu.Unlock()
			return nil, nil
		}
		s.mu.Unlock()
		for _, i := range recount {
			l := limits[i]
			n, bytes, err := s.cfg.Store.QueueStats(ctx, mesh, to, l.sender, now)
			if err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.queues[l.key] = &queueEstimate{n: n, bytes: bytes, at: now}
			s.mu.Unlock()
		}
	}
}

// queueFull says which cap a DM would pass: all that waits for the
// recipient, or what its sender left waiting (perSender), and how much
// waits.
type queueFull struct {
	perSender bool
	n         int
	bytes     int64
}
