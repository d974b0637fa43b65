package client

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

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
// an explicit URL (CLAUDEMESH_BROKER), or several separated by commas — the
// brokers of one cluster: each connection attempt takes the next, starting
// from a random one, so a client fails over to another broker when its
// broker goes away, and comes back when the others do. "" means the broker
// published under home, or wire.DefaultURL. The local credential is only
// ever sent to the broker the local broker published (the same scheme,
// host and port: a ws:// override never gets the credential of a wss://
// broker) or to a loopback address, never to a remote broker.
func LocalEndpoint(home, override string) func() (Endpoint, error) {
	urls := SplitURLs(override)
	var next atomic.Uint64
	if len(urls) > 1 {
		next.Store(rand.Uint64N(uint64(len(urls))))
	}
	return func() (Endpoint, error) {
		info, infoErr := ReadLocalInfo(home)
		if len(urls) == 0 {
			if infoErr != nil || info.URL == "" {
				// No broker has run here yet; try the default so the client
				// connects once one starts.
				return Endpoint{URL: wire.DefaultURL, Token: info.Token}, nil
			}
			return Endpoint{URL: info.URL, Token: info.Token}, nil
		}
		ep := Endpoint{URL: urls[(next.Add(1)-1)%uint64(len(urls))]}
		if infoErr == nil && (sameOrigin(ep.URL, info.URL) || isLoopbackURL(ep.URL)) {
			ep.Token = info.Token
		}
		return ep, nil
	}
}

// SplitURLs returns the broker URLs of a comma-separated list, without
// blanks.
func SplitURLs(list string) []string {
	var out []string
	for u := range strings.SplitSeq(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
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
