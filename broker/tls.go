package broker

// Transport security. A broker serves wss:// when given a certificate and
// plain ws:// otherwise; plain ws:// is for loopback only unless both ends
// opt in, because the hello carries the broker credential, and names,
// project directories and who talks to whom travel in every frame (the DMs
// themselves stay end-to-end encrypted either way).

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
)

// ServerTLSConfig loads a PEM certificate chain and its private key into
// the TLS configuration a broker serves wss:// with: TLS 1.2 or newer, and
// HTTP/1.1 only, which the WebSocket upgrade needs. The leaf certificate is
// parsed (Certificates[0].Leaf) so that the caller can see which names it
// covers (see TLSHost).
func ServerTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("load TLS certificate %s: %w", certFile, err)
		}
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}

// TLSHost returns the host a client on this machine dials to reach a
// broker that listens on addr with the certificate leaf, so that the host
// matches a name of the certificate: the listen address itself; for a
// broker on all interfaces or on loopback, a loopback name the certificate
// lists; and for one on all interfaces or a specific address, the
// certificate's first DNS name (a broker serving a public name is reached
// by it). ok is false when the certificate names none of these: host is
// then the listen address, which clients will refuse.
func TLSHost(addr net.Addr, leaf *x509.Certificate) (host string, ok bool) {
	h, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		h = addr.String()
	}
	ip := net.ParseIP(h)
	var candidates []string
	switch {
	case ip == nil || ip.IsUnspecified():
		candidates = []string{"127.0.0.1", "localhost", "::1"}
	case ip.IsLoopback():
		candidates = []string{ip.String(), "localhost"}
	default:
		candidates = []string{ip.String()}
	}
	if ip == nil || !ip.IsLoopback() {
		for _, name := range leaf.DNSNames {
			if !strings.Contains(name, "*") {
				candidates = append(candidates, name)
			}
		}
	}
	for _, c := range candidates {
		if leaf.VerifyHostname(c) == nil {
			return c, true
		}
	}
	return candidates[0], false
}
