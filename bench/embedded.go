package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/store/sqlite"
	"github.com/claudemesh/claudemesh/wire"
)

// Embedded is a throwaway broker in this process on a loopback port, with
// its SQLite store in a directory of the caller's, and the limits against
// runaway clients lifted so that they do not shape the measurement.
type Embedded struct {
	URL   string
	Token string

	srv  *broker.Server
	st   *sqlite.Store
	hs   *http.Server
	errc chan error
}

// StartEmbedded starts a broker whose store is dir/bench.db with SQLite's
// synchronous mode sync ("full" or "normal").
func StartEmbedded(ctx context.Context, dir, sync string) (*Embedded, error) {
	st, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"), sqlite.Config{Synchronous: strings.ToUpper(sync)})
	if err != nil {
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	srv, err := broker.NewServer(broker.Config{
		Store:              st,
		Token:              hex.EncodeToString(tok),
		Logger:             slog.New(slog.DiscardHandler),
		SendRate:           1e9,
		MemberSendRate:     1e9,
		MaxQueued:          1 << 30,
		MaxQueuedBytes:     1 << 50,
		MaxQueuedPerSender: 1 << 30,
		// A reconnect storm of thousands of hellos on a small machine
		// may take longer than the default.
		HandshakeTimeout:        time.Minute,
		MaxQueuedBytesPerSender: 1 << 50,
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		st.Close()
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, srv)
	hs := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)}
	srv.ConfigureHTTPServer(hs)
	e := &Embedded{
		URL:   "ws://" + ln.Addr().String() + wire.Path,
		Token: hex.EncodeToString(tok),
		srv:   srv, st: st, hs: hs,
		errc: make(chan error, 1),
	}
	go func() { e.errc <- hs.Serve(ln) }()
	return e, nil
}

// Endpoint is how clients reach the broker.
func (e *Embedded) Endpoint() func() (client.Endpoint, error) {
	return func() (client.Endpoint, error) { return client.Endpoint{URL: e.URL, Token: e.Token}, nil }
}

// Close stops the broker, waits for its goroutines and closes its store.
func (e *Embedded) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.hs.Shutdown(ctx) // stops accepting; does not wait for WebSockets
	err := e.srv.Close()
	if serr := <-e.errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, e.st.Close())
}
