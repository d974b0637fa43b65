package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claudemesh/claudemesh/wire"
)

// throughput has Senders send Count DMs round-robin to Recipients, each
// sender with Window DMs in flight, and waits for all to arrive.
func (r *run) throughput(res *Result) error {
	r.phase.Store("connecting")
	recips, err := r.sessionsOf(r.cfg.Recipients, true)
	if err != nil {
		return err
	}
	senders, err := r.sessionsOf(r.cfg.Senders, false)
	if err != nil {
		return err
	}
	if _, err := r.dialAll(recips, "recipient-"); err != nil {
		return err
	}
	if _, err := r.dialAll(senders, "sender-"); err != nil {
		return err
	}
	r.phase.Store("sending")
	sendCtx := r.ctx
	if r.cfg.Duration > 0 {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithTimeout(r.ctx, r.cfg.Duration)
		defer cancel()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	r.t.span(false)
	for _, s := range senders {
		for range r.cfg.Window {
			wg.Go(func() {
				for sendCtx.Err() == nil {
					n := next.Add(1)
					if n > int64(r.cfg.Count) {
						return
					}
					r.send(s, recips[int(n-1)%len(recips)].key.Public)
				}
			})
		}
	}
	wg.Wait()
	if r.ctx.Err() != nil {
		res.TimedOut = true // the deadline, not --duration, ended the sending
	}
	r.phase.Store("draining")
	r.waitDelivered(res)
	return nil
}

// latency sends Count DMs from one session to another one at a time: the
// next DM leaves once the last has arrived and been acked.
func (r *run) latency(res *Result) error {
	r.phase.Store("connecting")
	a, err := r.newSession(nil)
	if err != nil {
		return err
	}
	b, err := r.newSession(nil)
	if err != nil {
		return err
	}
	b.got = make(chan string, 1)
	if _, err := r.dialAll([]*session{a, b}, "pair-"); err != nil {
		return err
	}
	r.phase.Store("lockstep")
	r.t.span(false)
	for range r.cfg.Count {
		id := r.send(a, b.key.Public)
		if id == "" {
			return nil // counted as a send error
		}
		for got := ""; got != id; {
			select {
			case got = <-b.got:
			case <-r.ctx.Done():
				res.TimedOut = true
				return nil
			}
		}
		_ = b.c.Receipt([]string{id}, wire.ReceiptReceived)
		_ = b.c.Ack([]string{id})
	}
	return nil
}

// idle connects Sessions sessions that do nothing and measures what they
// cost the broker.
func (r *run) idle(res *Result) error {
	before, err := r.memory()
	if err != nil {
		return err
	}
	ss, err := r.sessionsOf(r.cfg.Sessions, false)
	if err != nil {
		return err
	}
	r.phase.Store("connecting")
	start := time.Now()
	took, err := r.dialAll(ss, "idle-")
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	r.t.connect = took
	after, err := r.memory()
	if err != nil {
		return err
	}
	if r.cfg.Memory == nil {
		return nil
	}
	perSession := func(m uint64) float64 { return (float64(m) - float64(before)) / float64(len(ss)) }
	res.MemoryPerSession, res.MemoryWhat = perSession(after), r.cfg.MemoryWhat
	if r.cfg.Settle <= 0 {
		return nil
	}
	r.phase.Store("settling")
	select {
	case <-time.After(r.cfg.Settle):
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	settled, err := r.memory()
	if err != nil {
		return err
	}
	res.MemorySettled, res.Settled = perSession(settled), r.cfg.Settle.Seconds()
	return nil
}

func (r *run) memory() (uint64, error) {
	if r.cfg.Memory == nil {
		return 0, nil
	}
	m, err := r.cfg.Memory()
	if err != nil {
		return 0, fmt.Errorf("bench: measure the broker's memory: %w", err)
	}
	return m, nil
}

// reconnect makes Sessions sessions known to the broker, sends each one DM
// while it is away, then brings them all back at once.
func (r *run) reconnect(res *Result) error {
	r.phase.Store("introducing")
	first, err := r.sessionsOf(r.cfg.Sessions, false)
	if err != nil {
		return err
	}
	if _, err := r.dialAll(first, "storm-"); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, s := range first {
		wg.Go(func() { closeSession(s) })
	}
	wg.Wait()
	r.connected.Store(0)

	r.phase.Store("queueing")
	sender, err := r.newSession(nil)
	if err != nil {
		return err
	}
	if _, err := r.dial(sender, "storm-sender"); err != nil {
		return err
	}
	var next atomic.Int64
	for range 32 {
		wg.Go(func() {
			for r.ctx.Err() == nil {
				n := next.Add(1)
				if n > int64(len(first)) {
					return
				}
				r.send(sender, first[n-1].key.Public)
			}
		})
	}
	wg.Wait()

	r.phase.Store("storm")
	again := make([]*session, len(first))
	for i, s := range first {
		again[i] = &session{key: s.key, boxes: s.boxes, acks: make(chan string, 16)}
	}
	r.t.span(true)
	took, err := r.dialAll(again, "storm-")
	r.t.connect = took
	if err != nil {
		return err
	}
	r.waitDelivered(res)
	return nil
}

// sessionsOf makes n sessions with fresh keys; withAcks gives each an
// acker.
func (r *run) sessionsOf(n int, withAcks bool) ([]*session, error) {
	ss := make([]*session, n)
	for i := range ss {
		s, err := r.newSession(nil)
		if err != nil {
			return nil, err
		}
		if withAcks {
			s.acks = make(chan string, 4096)
		}
		ss[i] = s
	}
	return ss, nil
}

// HeapMemory measures this process after a garbage collection: the heap
// in use and the goroutine stacks. For an embedded broker it includes the
// simulated sessions' side of each connection too.
func HeapMemory() (uint64, error) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse, nil
}

// ProcessMemory returns a function that reads the resident memory of
// process pid from /proc (Linux).
func ProcessMemory(pid int) func() (uint64, error) {
	return func() (uint64, error) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("read VmRSS of process %d: %w", pid, err)
				}
				return kb << 10, nil
			}
		}
		if err := sc.Err(); err != nil {
			return 0, err
		}
		return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
}
