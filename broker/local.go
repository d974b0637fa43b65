package broker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// Defaults of a broker on the local machine.
const (
	// DefaultListen is the address `claudemesh broker` listens on.
	DefaultListen = "127.0.0.1:7733"
	// Path is the HTTP path of the WebSocket endpoint.
	Path = "/v1/ws"
	// LocalFile is the file under CLAUDEMESH_HOME in which a local broker
	// publishes its URL and credential to local clients. It is 0600: only
	// the user who runs the broker can read the credential.
	LocalFile = "broker.json"
	// credentialFile holds a broker's credential in its data directory, so
	// the credential outlives restarts and connected clients keep working.
	credentialFile = "credential"
)

// DefaultURL is the WebSocket URL of a broker on DefaultListen.
const DefaultURL = "ws://" + DefaultListen + Path

// LocalInfo is what a local broker publishes in LocalFile.
type LocalInfo struct {
	URL       string    `json:"url"`
	Token     string    `json:"token"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
}

// writeLocalInfo publishes info under home, replacing any earlier file
// atomically. Only the holder of the home's lock calls it (Lock.Publish).
func writeLocalInfo(home string, info LocalInfo) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", LocalFile, err)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(home, LocalFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", LocalFile, err)
	}
	return nil
}

// ReadLocalInfo reads what the local broker published under home.
func ReadLocalInfo(home string) (LocalInfo, error) {
	var info LocalInfo
	path := filepath.Join(home, LocalFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read local broker info: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("read local broker info %s: %w", path, err)
	}
	return info, nil
}

// LoadOrCreateToken returns the broker credential kept in dataDir,
// creating a random one on first use.
func LoadOrCreateToken(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("broker credential: %w", err)
	}
	path := filepath.Join(dataDir, credentialFile)
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			tok := strings.TrimSpace(string(b))
			if len(tok) < 32 {
				return "", fmt.Errorf("broker credential %s is too short; delete it to make a new one", path)
			}
			return tok, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("broker credential: %w", err)
		}
		raw := make([]byte, 32)
		rand.Read(raw)
		tok := hex.EncodeToString(raw)
		// Created complete or not at all (and never replaced), so a
		// broker starting at the same time never reads a half-written one.
		err = atomicfile.Create(path, []byte(tok+"\n"), 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another broker created it first: read theirs
		}
		if err != nil {
			return "", fmt.Errorf("broker credential: %w", err)
		}
		return tok, nil
	}
	return "", fmt.Errorf("broker credential %s: created and removed concurrently", path)
}

// LocalEndpoint resolves the broker a local client talks to. override is
// an explicit URL (CLAUDEMESH_BROKER); "" means the broker published under
// home, or DefaultURL. The local credential is only ever sent to the broker
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
				return Endpoint{URL: DefaultURL, Token: info.Token}, nil
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
