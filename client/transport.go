package client

// Transport security. A broker serves wss:// when given a certificate and
// plain ws:// otherwise; plain ws:// is for loopback only unless both ends
// opt in, because the hello carries the broker credential, and names,
// project directories and who talks to whom travel in every frame (the DMs
// themselves stay end-to-end encrypted either way).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// ErrPlaintext is why a client refuses a ws:// URL whose host is not a
// loopback address (see Config.AllowPlaintext).
var ErrPlaintext = errors.New("plaintext ws:// to a broker that is not on a loopback address")

// LoadRootCAs returns the system's trusted roots plus the PEM certificates
// in file: what a client verifies a broker's certificate against when the
// broker's CA is a private one (CLAUDEMESH_CA).
func LoadRootCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load CA certificates: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots here: the file's alone
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("load CA certificates: no PEM certificate in %s", file)
	}
	return pool, nil
}

// isLoopbackHost reports whether host (a URL's host without port or
// brackets) is localhost or a loopback IP address (127.0.0.0/8, ::1).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dialer returns the WebSocket dialer for the broker URL raw, or why the
// client refuses to dial it: a ws:// URL must name a loopback host unless
// AllowPlaintext; a wss:// URL gets TLS 1.2 or newer, verified against
// RootCAs (nil: the system roots).
func (c *Session) dialer(raw string) (*websocket.Dialer, error) {
	return newDialer(raw, c.cfg.DialTimeout, c.cfg.RootCAs, c.cfg.AllowPlaintext)
}

func newDialer(raw string, timeout time.Duration, roots *x509.CertPool, allowPlaintext bool) (*websocket.Dialer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("broker URL %q: %w", raw, err)
	}
	d := &websocket.Dialer{HandshakeTimeout: timeout}
	switch u.Scheme {
	case "ws":
		if !allowPlaintext && !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("connect to %s: %w: the broker credential and message metadata would cross the network unencrypted; "+
				"use the wss:// URL of a broker started with --tls-cert and --tls-key, "+
				"or set CLAUDEMESH_ALLOW_PLAINTEXT=1 if the network is trusted", raw, ErrPlaintext)
		}
	case "wss":
		td := &tls.Dialer{Config: &tls.Config{
			RootCAs:    roots,
			ServerName: u.Hostname(),
			MinVersion: tls.VersionTLS12,
		}}
		d.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := td.DialContext(ctx, network, addr)
			if err != nil {
				return nil, explainTLS(err, u.Hostname())
			}
			return conn, nil
		}
	default:
		return nil, fmt.Errorf("broker URL %s: the scheme must be ws or wss", raw)
	}
	return d, nil
}

// explainTLS adds what to do to a certificate verification error.
func explainTLS(err error, host string) error {
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("%w; the broker's certificate is signed by a CA this machine does not trust: "+
			"set CLAUDEMESH_CA to a PEM file holding that CA's certificate", err)
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return fmt.Errorf("%w; the broker's certificate does not name %s: connect by a name it lists", err, host)
	}
	return err
}
