package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// ErrDraining reports a broker that has stopped accepting connections
// (Shutdown or Close began).
var ErrDraining = errors.New("broker is draining: it accepts no new sessions")

// Ready returns nil when the broker accepts sessions: it is not draining
// and its store answers (store.Pinger; a store that cannot be asked is
// taken as answering).
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrDraining
	}
	if p, ok := s.cfg.Store.(store.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("store unreachable: %w", err)
		}
	}
	return nil
}

// readyTimeout bounds one readiness check.
const readyTimeout = 2 * time.Second

// HealthHandler answers 200 "ok" for as long as the process serves HTTP:
// for /healthz, whether the broker is alive.
func HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
}

// ReadyHandler answers 200 "ready" when Ready returns nil, else 503 with
// the reason, draining or store unreachable (the store's own error, which
// may name the database's address, goes to the log only): for /readyz,
// whether to send sessions to this broker.
func (s *Server) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := s.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			if errors.Is(err, ErrDraining) {
				io.WriteString(w, "not ready: draining\n")
				return
			}
			s.log.Warn("not ready", "err", err)
			io.WriteString(w, "not ready: store unreachable\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
}
