// Package bench is claudemesh's load generator. It drives a broker with
// simulated sessions that do what real ones do: each says the signed hello
// of its own ephemeral key (client.Session), seals every DM to its
// recipient's key, opens every DM it receives and checks the sealed id,
// then reports it received and acks it in batches, as a session's inbox
// does. Every run uses a fresh mesh, so runs against one broker do not see
// each other, and every run is bounded by a count of DMs and a deadline.
//
// Scenarios: throughput (many senders to a few recipients; fanin and
// fanout are its many→1 and 1→many forms), latency (one pair in
// lockstep), idle (connected sessions that do nothing: what each costs the
// broker) and reconnect (sessions that come back all at once to a queued
// DM each).
package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// Scenarios.
const (
	Throughput = "throughput" // Senders → Recipients
	FanIn      = "fanin"      // many senders → one recipient
	FanOut     = "fanout"     // one sender → many recipients
	Latency    = "latency"    // one pair in lockstep
	Idle       = "idle"       // Sessions connected, doing nothing
	Reconnect  = "reconnect"  // Sessions reconnecting at once to a queued DM each
)

// Scenarios lists the scenarios Run knows.
var Scenarios = []string{Throughput, FanIn, FanOut, Latency, Idle, Reconnect}

// Config describes one run. Endpoint is required; zero values elsewhere
// take the defaults of the scenario (see Defaults).
type Config struct {
	Scenario string
	// Endpoint is where the simulated sessions connect.
	Endpoint       func() (client.Endpoint, error)
	RootCAs        *x509.CertPool
	AllowPlaintext bool
	// Mesh is the mesh of the run; "" picks bench-<random>.
	Mesh string
	// Senders and Recipients are the sessions of the throughput family.
	Senders, Recipients int
	// Sessions is the number of sessions of idle and reconnect.
	Sessions int
	// Count is the number of DMs to send (throughput family, latency).
	Count int
	// Duration, when set, stops sending new DMs after that long; DMs sent
	// by then are still waited for.
	Duration time.Duration
	// Timeout is the deadline of the whole run. What has not arrived by
	// then is lost.
	Timeout time.Duration
	// Window is the number of DMs each sender keeps in flight: 1 waits for
	// the broker's answer to each DM before sending the next.
	Window int
	// AckBatch is the most DMs a recipient reports received and acks in
	// one frame; it acks what has arrived, up to that many, at once.
	AckBatch int
	// Size is the length of each DM's text in bytes.
	Size int
	// Progress receives a progress line every second; nil for none.
	Progress io.Writer
	// Memory reports the memory the broker holds now, and MemoryWhat says
	// what it measures; nil when it cannot be measured (idle).
	Memory     func() (uint64, error)
	MemoryWhat string
	// Settle is how long idle waits, its sessions connected, before it
	// measures the broker's memory a second time: a broker keeps what the
	// handshakes allocated until it collects and gives memory back.
	Settle time.Duration
}

// Defaults returns cfg with the defaults of its scenario filled in.
func Defaults(cfg Config) Config {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	switch cfg.Scenario {
	case "", Throughput, FanIn:
		def(&cfg.Senders, 100)
		def(&cfg.Recipients, 1)
	case FanOut:
		def(&cfg.Senders, 1)
		def(&cfg.Recipients, 100)
	case Latency:
		cfg.Senders, cfg.Recipients, cfg.Window = 1, 1, 1
	}
	if cfg.Scenario == "" {
		cfg.Scenario = Throughput
	}
	switch cfg.Scenario {
	case Latency:
		def(&cfg.Count, 1000)
	case Idle, Reconnect:
		def(&cfg.Sessions, 1000)
	default:
		def(&cfg.Count, 10000)
	}
	def(&cfg.Window, 1)
	def(&cfg.AckBatch, 64)
	def(&cfg.Size, 100)
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	return cfg
}

// Result is what a run measured. Latencies are in milliseconds.
type Result struct {
	Scenario   string `json:"scenario"`
	Mesh       string `json:"mesh"`
	Senders    int    `json:"senders,omitempty"`
	Recipients int    `json:"recipients,omitempty"`
	Sessions   int    `json:"sessions,omitempty"`
	Window     int    `json:"window,omitempty"`
	AckBatch   int    `json:"ack_batch,omitempty"`
	Size       int    `json:"size,omitempty"`

	// Attempted counts the DMs handed to Send; Sent those the broker
	// confirmed; Delivered the distinct DMs their recipient received,
	// opened and found sealed under their own id.
	Attempted int `json:"attempted"`
	Sent      int `json:"sent"`
	Delivered int `json:"delivered"`
	// Lost counts DMs attempted but not delivered by the deadline;
	// Duplicated the deliveries of a DM already delivered; Corrupt the
	// DMs that did not open or were sealed under another id.
	Lost       int    `json:"lost"`
	Duplicated int    `json:"duplicated"`
	Corrupt    int    `json:"corrupt"`
	SendErrors int    `json:"send_errors"`
	FirstError string `json:"first_error,omitempty"`
	TimedOut   bool   `json:"timed_out,omitempty"`

	// Seconds is the measured span: from the first send (or the start of
	// the reconnect storm, or of the connections) to the last delivery
	// (or connection). Rate is Delivered over it.
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"dms_per_second,omitempty"`

	// EndToEnd is from the time sealed in the DM to its receipt;
	// SendToSent the time Send took (the broker's confirmation);
	// Delivery, in reconnect, from the start of the storm to each DM's
	// receipt; Connect, in idle and reconnect, from dialing to connected.
	EndToEnd   *Percentiles `json:"end_to_end_ms,omitempty"`
	SendToSent *Percentiles `json:"send_to_sent_ms,omitempty"`
	Delivery   *Percentiles `json:"delivery_ms,omitempty"`
	Connect    *Percentiles `json:"connect_ms,omitempty"`

	// MemoryPerSession is the broker's memory growth per idle session, in
	// bytes, as MemoryWhat measures it.
	MemoryPerSession float64 `json:"memory_per_session_bytes,omitempty"`
	MemoryWhat       string  `json:"memory_measured,omitempty"`
	// MemorySettled is the same after Settle, and Settled how long that was.
	MemorySettled float64 `json:"memory_settled_per_session_bytes,omitempty"`
	Settled       float64 `json:"settled_s,omitempty"`
}

// OK reports whether every DM arrived exactly once, intact.
func (r *Result) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Corrupt == 0 && r.SendErrors == 0 && !r.TimedOut
}

// letter is the plaintext of a DM, as a session seals it.
type letter struct {
	Version int       `json:"v"`
	ID      string    `json:"id"`
	Text    string    `json:"text"`
	SentAt  time.Time `json:"sent_at"`
}

// Run runs the scenario cfg describes and returns what it measured. An
// error means the run could not take place (no broker, sessions that did
// not connect); DMs lost or duplicated are in the Result (see OK).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = Defaults(cfg)
	if cfg.Endpoint == nil {
		return nil, errors.New("bench: no broker endpoint")
	}
	if cfg.Mesh == "" {
		b := make([]byte, 4)
		rand.Read(b)
		cfg.Mesh = "bench-" + hex.EncodeToString(b)
	}
	if err := identity.ValidateMesh(cfg.Mesh); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := &run{cfg: cfg, ctx: ctx, t: newTally(), text: strings.Repeat("x", cfg.Size)}
	defer r.closeAll()
	if cfg.Progress != nil {
		stop := r.progress(cfg.Progress)
		defer stop()
	}
	res := &Result{Scenario: cfg.Scenario, Mesh: cfg.Mesh}
	var err error
	switch cfg.Scenario {
	case Throughput, FanIn, FanOut:
		res.Senders, res.Recipients, res.Window, res.AckBatch, res.Size = cfg.Senders, cfg.Recipients, cfg.Window, cfg.AckBatch, cfg.Size
		err = r.throughput(res)
	case Latency:
		res.Senders, res.Recipients, res.Size = 1, 1, cfg.Size
		err = r.latency(res)
	case Idle:
		res.Sessions = cfg.Sessions
		err = r.idle(res)
	case Reconnect:
		res.Sessions, res.AckBatch, res.Size = cfg.Sessions, cfg.AckBatch, cfg.Size
		err = r.reconnect(res)
	default:
		return nil, fmt.Errorf("bench: unknown scenario %q: want %s", cfg.Scenario, strings.Join(Scenarios, ", "))
	}
	if err != nil {
		return nil, err
	}
	r.t.fill(res)
	return res, nil
}

// run is the state of one Run.
type run struct {
	cfg  Config
	ctx  context.Context
	t    *tally
	text string

	mu       sync.Mutex
	sessions []*session

	phase     atomic.Value // string
	connected atomic.Int64
}

// session is one simulated session.
type session struct {
	key   *identity.Key
	boxes *identity.Boxes // seals and opens its DMs, keeping each peer's shared key
	c     *client.Session
	acks  chan string // ids to report received and ack; nil when acked by the caller
	got   chan string // ids received, for lockstep; nil otherwise
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// newSession makes a simulated session with a fresh key (or key, when
// given); it does not dial.
func (r *run) newSession(key *identity.Key) (*session, error) {
	if key == nil {
		var err error
		if key, err = identity.NewEphemeral(r.cfg.Mesh); err != nil {
			return nil, err
		}
	}
	// As the MCP server does, each session keeps its peers' shared keys.
	return &session{key: key, boxes: identity.NewBoxes(key.Private, 256)}, nil
}

// dial connects s and starts its acker; onDM is the DM handler. It waits
// until s is connected and returns how long that took.
func (r *run) dial(s *session, name string) (time.Duration, error) {
	start := time.Now()
	if s.acks != nil {
		s.quit, s.done = make(chan struct{}), make(chan struct{})
	}
	c, err := client.Dial(client.Config{
		Endpoint:       r.cfg.Endpoint,
		Key:            s.key,
		Name:           name,
		OnDM:           func(dm wire.DM) { r.receive(s, dm) },
		RootCAs:        r.cfg.RootCAs,
		AllowPlaintext: r.cfg.AllowPlaintext,
	})
	if err != nil {
		return 0, err
	}
	s.c = c
	r.mu.Lock()
	r.sessions = append(r.sessions, s)
	r.mu.Unlock()
	if s.acks != nil {
		go r.acker(s)
	}
	if err := c.WaitConnected(r.ctx); err != nil {
		st := c.State()
		if st.LastError != nil {
			err = fmt.Errorf("%w (last error: %v)", err, st.LastError)
		}
		return 0, fmt.Errorf("bench: session %s did not connect: %w", name, err)
	}
	r.connected.Add(1)
	return time.Since(start), nil
}

// dialAll connects every session at once and returns the time each took.
func (r *run) dialAll(ss []*session, prefix string) ([]time.Duration, error) {
	took := make([]time.Duration, len(ss))
	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() { took[i], errs[i] = r.dial(s, fmt.Sprintf("%s%d", prefix, i)) })
	}
	wg.Wait()
	return took, errors.Join(errs...)
}

// closeSession stops the session's acker, which acks what has arrived,
// then says bye: the broker records the acks before the session leaves.
func closeSession(s *session) {
	s.once.Do(func() {
		if s.quit != nil {
			close(s.quit)
			<-s.done
		}
		if s.c != nil {
			s.c.Close()
		}
	})
}

// closeAll closes every session still open, all at once.
func (r *run) closeAll() {
	r.mu.Lock()
	ss := r.sessions
	r.sessions = nil
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { closeSession(s) })
	}
	wg.Wait()
}

// receive handles a DM pushed to s, on s's connection goroutine: open it,
// check it, count it, and hand its id to whoever acks it.
func (r *run) receive(s *session, dm wire.DM) {
	now := time.Now()
	var nonce [wire.NonceSize]byte
	copy(nonce[:], dm.Nonce)
	var l letter
	plain, err := s.boxes.Open(dm.Box, nonce, ed25519.PublicKey(dm.From))
	ok := err == nil && json.Unmarshal(plain, &l) == nil && l.Version == 1 && l.ID == dm.ID
	r.t.received(dm.ID, l.SentAt, now, ok)
	switch {
	case s.acks != nil:
		select {
		case s.acks <- dm.ID:
		case <-s.quit:
		}
	case s.got != nil:
		select {
		case s.got <- dm.ID:
		default: // a repeat the lockstep loop is not waiting for
		}
	}
}

// acker reports received and acks what has arrived for s, up to AckBatch
// ids per frame, as a session's inbox does.
func (r *run) acker(s *session) {
	defer close(s.done)
	for {
		var batch []string
		select {
		case id := <-s.acks:
			batch = append(batch, id)
		case <-s.quit:
			// The session leaves: ack what has arrived first, as an
			// inbox's last call does.
			for {
				select {
				case id := <-s.acks:
					batch = append(batch, id)
					continue
				default:
				}
				break
			}
			for len(batch) > 0 {
				n := min(len(batch), r.cfg.AckBatch)
				_ = s.c.Receipt(batch[:n], wire.ReceiptReceived)
				_ = s.c.Ack(batch[:n])
				batch = batch[n:]
			}
			return
		}
	more:
		for len(batch) < r.cfg.AckBatch {
			select {
			case id := <-s.acks:
				batch = append(batch, id)
			default:
				break more
			}
		}
		// Without a connection the broker delivers these again on the next
		// one, which the tally counts as repeats.
		_ = s.c.Receipt(batch, wire.ReceiptReceived)
		_ = s.c.Ack(batch)
	}
}

// seal makes the sealed letter of a new DM to to, stamped now.
func (r *run) seal(from *session, to ed25519.PublicKey) (id string, nonce [wire.NonceSize]byte, box []byte, err error) {
	id = uuid.NewString()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err = enc.Encode(letter{Version: 1, ID: id, Text: r.text, SentAt: time.Now().UTC()}); err != nil {
		return
	}
	nonce, box, err = from.boxes.Seal(bytes.TrimSuffix(b.Bytes(), []byte("\n")), to)
	return
}

// send seals and sends one DM from s to to, counts it and returns its id
// ("" when it could not be sealed).
func (r *run) send(s *session, to ed25519.PublicKey) string {
	id, nonce, box, err := r.seal(s, to)
	if err != nil {
		r.t.sendFailed(err)
		return ""
	}
	r.t.attempt(id)
	start := time.Now()
	if _, err := s.c.Send(r.ctx, id, to, nonce, box); err != nil {
		r.t.sendFailed(err)
		return id
	}
	r.t.sent(time.Since(start))
	return id
}

// waitDelivered waits until every DM attempted has been delivered, or the
// deadline.
func (r *run) waitDelivered(res *Result) {
	for {
		ch := r.t.changed()
		if r.t.allDelivered() {
			return
		}
		select {
		case <-ch:
		case <-r.ctx.Done():
			res.TimedOut = true
			return
		}
	}
}
