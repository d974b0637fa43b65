package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/store"
)

// opsServer is the broker's metrics listener (--metrics-listen): /metrics,
// and with --pprof Go's profiler. A nil *opsServer is metrics turned off.
type opsServer struct {
	ln      net.Listener
	hs      *http.Server
	metrics *broker.Metrics
	log     *slog.Logger
	errc    chan error
}

// listenOps listens on addr for the metrics; serve starts serving them
// once the broker they describe exists.
func listenOps(addr string, withPprof bool, log *slog.Logger) (*opsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	o := &opsServer{ln: ln, metrics: broker.NewMetrics(), log: log}
	reg := prometheus.NewRegistry()
	reg.MustRegister(o.metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // a store that does not answer leaves out the queue gauges only
	}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	o.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return o, nil
}

func (o *opsServer) brokerMetrics() *broker.Metrics {
	if o == nil {
		return nil
	}
	return o.metrics
}

func (o *opsServer) commitObserver() store.CommitObserver {
	if o == nil {
		return nil
	}
	return o.metrics.ObserveCommit
}

// serve serves the metrics until Close.
func (o *opsServer) serve() {
	if o == nil {
		return
	}
	o.errc = make(chan error, 1)
	go func() { o.errc <- o.hs.Serve(o.ln) }()
	o.log.Info("metrics listening", "url", "http://"+dialable(o.ln.Addr())+"/metrics")
}

// Close stops serving, waiting a moment for a scrape in progress.
func (o *opsServer) Close() error {
	if o == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if o.hs.Shutdown(ctx) != nil {
		o.hs.Close()
	}
	if o.errc == nil {
		return o.ln.Close()
	}
	if err := <-o.errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
