package client

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/claudemesh/claudemesh/wire"
)

// ReadLocalInfo reads what the local broker published under home.
func ReadLocalInfo(home string) (wire.LocalInfo, error) {
	var info wire.LocalInfo
	path := filepath.Join(home, wire.LocalFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read local broker info: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("read local broker info %s: %w", path, err)
	}
	return info, nil
}

// LocalEndpoint resolves the broker a local client talks to. override is
// an explicit URL (CLAUDEMESH_BROKER); "" means the broker published under
// home, or wire.DefaultURL. The local credential is only ever sent to the broker
// the local broker published (the same scheme, host and port: a ws://
// override never gets the credential of a wss:// broker) or to a loopback
// address, never to a remote broker.
func LocalEndpoint(home, override string) func() (Endpoint, error) {
	return func() (Endpoint, error) {
		info, infoErr := ReadLocalInfo(home)
		if override == "" {
			if infoErr != nil || info.URL == "" {
				// No broker has run here yet; try the default so the client
				// connects once one starts.
				return Endpoint{URL: wire.DefaultURL, Token: info.Token}, nil
			}
			return Endpoint{URL: info.URL, Token: info.Token}, nil
		}
		ep := Endpoint{URL: override}
		if infoErr == nil && (sameOrigin(override, info.URL) || isLoopbackURL(override)) {
			ep.Token = info.Token
		}
		return ep, nil
	}
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && isLoopbackHost(u.Hostname())
}

// sameOrigin reports whether two WebSocket URLs reach the same server:
// the same scheme, host (any case) and port (the scheme's default when
// none is written).
func sameOrigin(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil || ua.Hostname() == "" {
		return false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		switch strings.ToLower(u.Scheme) {
		case "ws":
			return "80"
		case "wss":
			return "443"
		}
		return ""
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Hostname(), ub.Hostname()) &&
		port(ua) == port(ub)
}
