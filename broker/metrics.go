package broker

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claudemesh/claudemesh/store"
)

// Metrics are a broker's Prometheus metrics. Register them with a
// prometheus.Registerer and give them to one Server (Config.Metrics); a
// store's commits are observed through ObserveCommit. Counters count what
// this broker did since it started; in a cluster each node counts its
// own, while the queue gauges are the whole store's. No label carries a
// key, a name, a mesh or any content: only wire error codes and fixed
// words.
type Metrics struct {
	stored    prometheus.Counter
	delivered prometheus.Counter
	acked     *prometheus.CounterVec // as: read, cleared
	expired   prometheus.Counter
	refusals  *prometheus.CounterVec // code: a wire error code
	pushes    *prometheus.CounterVec // outcome
	accepted  prometheus.Counter

	commitSeconds prometheus.Histogram
	commitWrites  prometheus.Histogram

	// The children of the labelled counters counted on every DM, looked
	// up once.
	ackedAs  map[bool]prometheus.Counter   // cleared?
	pushedAs map[string]prometheus.Counter // outcome

	sessions   *prometheus.Desc
	conns      *prometheus.Desc
	queueDMs   *prometheus.Desc
	queueBytes *prometheus.Desc
	draining   *prometheus.Desc

	srv atomic.Pointer[Server]
}

// Outcomes of a push, the label of claudemesh_dm_pushes_total.
const (
	pushHandoff = "handoff" // handed over by its sender after its commit
	pushStore   = "store"   // read from the store's queue
	pushClosed  = "closed"  // not sent: the connection was closing
)

// NewMetrics returns a broker's metrics, not yet registered.
func NewMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		stored:    counter("claudemesh_dms_stored_total", "DMs stored for their recipient (a resend of a stored DM is not counted again)."),
		delivered: counter("claudemesh_dms_delivered_total", "DMs whose recipient reported them received, each once."),
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudemesh_dms_acknowledged_total",
			Help: "DMs their recipient acknowledged, each once: as read, or cleared unread.",
		}, []string{"as"}),
		expired: counter("claudemesh_dms_expired_total", "DMs that expired unread (their payload dropped)."),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudemesh_refusals_total",
			Help: "Error frames sent to clients, by wire error code: a refused request, or why a connection was closed.",
		}, []string{"code"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudemesh_dm_pushes_total",
			Help: "DMs pushed to recipients' connections, by outcome: handoff (straight from its sender), store (read from the queue), closed (not sent: the connection was closing).",
		}, []string{"outcome"}),
		accepted: counter("claudemesh_connections_accepted_total", "WebSocket connections accepted."),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "claudemesh_store_commit_seconds",
			Help:    "Time of one store transaction, from its begin to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms to 3.3 s
		}),
		commitWrites: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "claudemesh_store_commit_writes",
			Help:    "Writes (DMs stored, acks, receipts, ...) carried by one store transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		sessions:   prometheus.NewDesc("claudemesh_sessions", "Sessions of this broker by lease state: online, or grace (connection dropped, place kept).", []string{"state"}, nil),
		conns:      prometheus.NewDesc("claudemesh_connections", "WebSocket connections open now.", nil, nil),
		queueDMs:   prometheus.NewDesc("claudemesh_queue_dms", "DMs waiting for their recipients in the store (unread, unexpired).", nil, nil),
		queueBytes: prometheus.NewDesc("claudemesh_queue_bytes", "Bytes of the DMs waiting in the store.", nil, nil),
		draining:   prometheus.NewDesc("claudemesh_draining", "1 once the broker stopped accepting connections to shut down.", nil, nil),
	}
	m.ackedAs = map[bool]prometheus.Counter{false: m.acked.WithLabelValues("read"), true: m.acked.WithLabelValues("cleared")}
	m.pushedAs = make(map[string]prometheus.Counter)
	for _, o := range []string{pushHandoff, pushStore, pushClosed} {
		m.pushedAs[o] = m.pushes.WithLabelValues(o)
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.stored, m.delivered, m.acked, m.expired, m.refusals, m.pushes, m.accepted, m.commitSeconds, m.commitWrites}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{m.sessions, m.conns, m.queueDMs, m.queueBytes, m.draining} {
		ch <- d
	}
}

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 5 * time.Second

// Collect implements prometheus.Collector. The gauges are read from the
// Server (and its store) at each scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
	s := m.srv.Load()
	if s == nil {
		return
	}
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(st.Online), "online")
	ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(st.Grace), "grace")
	s.mu.Lock()
	conns, closed := len(s.conns), s.closed
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.conns, prometheus.GaugeValue, float64(conns))
	ch <- prometheus.MustNewConstMetric(m.draining, prometheus.GaugeValue, bool01(closed))
	if t, ok := s.cfg.Store.(store.Totals); ok {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		n, size, err := t.QueueTotals(ctx, s.cfg.Now())
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(m.queueDMs, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(m.queueDMs, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(m.queueBytes, prometheus.GaugeValue, float64(size))
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ObserveCommit is a store.CommitObserver: give it to the store.
func (m *Metrics) ObserveCommit(writes int, took time.Duration) {
	m.commitSeconds.Observe(took.Seconds())
	m.commitWrites.Observe(float64(writes))
}

// The Server counts through these; each does nothing on nil Metrics.

func (m *Metrics) dmStored() {
	if m != nil {
		m.stored.Inc()
	}
}

func (m *Metrics) dmsDelivered(n int) {
	if m != nil && n > 0 {
		m.delivered.Add(float64(n))
	}
}

func (m *Metrics) dmsAcked(n int, cleared bool) {
	if m != nil && n > 0 {
		m.ackedAs[cleared].Add(float64(n))
	}
}

func (m *Metrics) dmsExpired(n int) {
	if m != nil && n > 0 {
		m.expired.Add(float64(n))
	}
}

func (m *Metrics) refused(code string) {
	if m != nil {
		m.refusals.WithLabelValues(code).Inc()
	}
}

func (m *Metrics) pushed(outcome string) {
	if m != nil {
		m.pushedAs[outcome].Inc()
	}
}

func (m *Metrics) connAccepted() {
	if m != nil {
		m.accepted.Inc()
	}
}
