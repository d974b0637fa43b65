package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sync"
	"text/tabwriter"
	"time"
)

// tally counts a run's DMs and their latencies.
type tally struct {
	mu          sync.Mutex
	attempted   map[string]bool // ids handed to Send → delivered yet
	delivered   int
	sentOK      int
	dup         int
	corrupt     int
	sendErrs    int
	firstErr    error
	e2e         []time.Duration
	sendToSent  []time.Duration
	delivery    []time.Duration // reconnect: since deliveryFrom
	connect     []time.Duration
	from        time.Time // start of the measured span
	deliverFrom time.Time
	last        time.Time     // last delivery
	wake        chan struct{} // closed and replaced on every delivery
}

func newTally() *tally {
	return &tally{attempted: make(map[string]bool), wake: make(chan struct{})}
}

func (t *tally) attempt(id string) {
	t.mu.Lock()
	t.attempted[id] = false
	t.mu.Unlock()
}

func (t *tally) sent(took time.Duration) {
	t.mu.Lock()
	t.sentOK++
	t.sendToSent = append(t.sendToSent, took)
	t.mu.Unlock()
}

func (t *tally) sendFailed(err error) {
	t.mu.Lock()
	t.sendErrs++
	if t.firstErr == nil {
		t.firstErr = err
	}
	t.mu.Unlock()
}

// received counts a DM that arrived at now; ok is false when it did not
// open or its sealed id was another.
func (t *tally) received(id string, sentAt, now time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	done, known := t.attempted[id]
	switch {
	case !ok || !known:
		// A DM this run did not send is as wrong as one that does not
		// open: the mesh is the run's own.
		t.corrupt++
		return
	case done:
		t.dup++
		return
	}
	t.attempted[id] = true
	t.delivered++
	t.e2e = append(t.e2e, now.Sub(sentAt))
	if !t.deliverFrom.IsZero() {
		t.delivery = append(t.delivery, now.Sub(t.deliverFrom))
	}
	t.last = now
	close(t.wake)
	t.wake = make(chan struct{})
}

// changed returns a channel closed at the next delivery.
func (t *tally) changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wake
}

func (t *tally) allDelivered() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.delivered == len(t.attempted)
}

func (t *tally) counts() (attempted, sent, delivered int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.attempted), t.sentOK, t.delivered
}

// span starts the measured span now; with delivery, each DM's delivery
// time is also measured from now (reconnect).
func (t *tally) span(delivery bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.from = time.Now()
	if delivery {
		t.deliverFrom = t.from
	}
}

// fill writes the counts and percentiles into res.
func (t *tally) fill(res *Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	res.Attempted, res.Sent, res.Delivered = len(t.attempted), t.sentOK, t.delivered
	res.Lost = res.Attempted - res.Delivered
	res.Duplicated, res.Corrupt, res.SendErrors = t.dup, t.corrupt, t.sendErrs
	if t.firstErr != nil {
		res.FirstError = t.firstErr.Error()
	}
	if res.Seconds == 0 && !t.from.IsZero() && t.last.After(t.from) {
		res.Seconds = t.last.Sub(t.from).Seconds()
	}
	if res.Seconds > 0 && res.Delivered > 0 {
		res.Rate = float64(res.Delivered) / res.Seconds
	}
	res.EndToEnd = percentiles(t.e2e)
	res.SendToSent = percentiles(t.sendToSent)
	res.Delivery = percentiles(t.delivery)
	res.Connect = percentiles(t.connect)
}

// Percentiles summarize latencies, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles returns the nearest-rank percentiles of ds, or nil for none.
func percentiles(ds []time.Duration) *Percentiles {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p int) float64 {
		i := (p*len(s) + 99) / 100 // nearest rank, 1-based
		return ms(s[max(i, 1)-1])
	}
	return &Percentiles{N: len(s), P50: at(50), P90: at(90), P99: at(99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteTable writes res for a person: the counts, then one row per
// latency measured.
func (res *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s (mesh %s)\n", res.Scenario, res.Mesh)
	switch res.Scenario {
	case Idle, Reconnect:
		fmt.Fprintf(tw, "sessions\t%d\n", res.Sessions)
	default:
		fmt.Fprintf(tw, "sessions\tsenders %d → recipients %d, window %d, ack batch %d, texts of %d bytes\n",
			res.Senders, res.Recipients, max(res.Window, 1), max(res.AckBatch, 1), res.Size)
	}
	if res.Scenario != Idle {
		fmt.Fprintf(tw, "DMs\t%d attempted, %d sent, %d delivered, %d lost, %d duplicated, %d corrupt, %d send errors\n",
			res.Attempted, res.Sent, res.Delivered, res.Lost, res.Duplicated, res.Corrupt, res.SendErrors)
	}
	if res.FirstError != "" {
		fmt.Fprintf(tw, "first error\t%s\n", res.FirstError)
	}
	if res.TimedOut {
		fmt.Fprintf(tw, "deadline\treached before everything arrived\n")
	}
	if res.Rate > 0 {
		fmt.Fprintf(tw, "rate\t%.0f DMs/s delivered (%.2fs)\n", res.Rate, res.Seconds)
	} else if res.Seconds > 0 {
		fmt.Fprintf(tw, "took\t%.2fs\n", res.Seconds)
	}
	if res.MemoryWhat != "" {
		fmt.Fprintf(tw, "memory\t%.1f KiB per session once connected (%s)\n", res.MemoryPerSession/1024, res.MemoryWhat)
		if res.Settled > 0 {
			fmt.Fprintf(tw, "\t%.1f KiB per session %gs later\n", res.MemorySettled/1024, res.Settled)
		}
	}
	rows := []struct {
		name string
		p    *Percentiles
	}{
		{"end to end", res.EndToEnd},
		{"send → sent", res.SendToSent},
		{"storm → delivered", res.Delivery},
		{"dial → connected", res.Connect},
	}
	if slices.ContainsFunc(rows, func(r struct {
		name string
		p    *Percentiles
	}) bool {
		return r.p != nil
	}) {
		fmt.Fprintf(tw, "\nlatency (ms)\tn\tp50\tp90\tp99\tmax\n")
		for _, r := range rows {
			if r.p != nil {
				fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\n", r.name, r.p.N, r.p.P50, r.p.P90, r.p.P99, r.p.Max)
			}
		}
	}
	return tw.Flush()
}

// progress prints a line to w every second until the returned stop is
// called.
func (r *run) progress(w io.Writer) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		prev := 0
		for {
			select {
			case <-tick.C:
			case <-quit:
				return
			}
			attempted, sent, delivered := r.t.counts()
			phase, _ := r.phase.Load().(string)
			fmt.Fprintf(w, "%3.0fs %s: %d connected, %d sent of %d attempted, %d delivered (%d/s)\n",
				time.Since(start).Seconds(), cmp.Or(phase, r.cfg.Scenario), r.connected.Load(), sent, attempted, delivered, delivered-prev)
			prev = delivered
		}
	}()
	return func() { close(quit); <-done }
}
