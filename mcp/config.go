package mcp

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvHome      = "CLAUDEMESH_HOME"
	EnvBroker    = "CLAUDEMESH_BROKER"
	EnvMesh      = "CLAUDEMESH_MESH"
	EnvName      = "CLAUDEMESH_NAME"
	EnvSessionID = "CLAUDEMESH_SESSION_ID"
	EnvDelivery  = "CLAUDEMESH_DELIVERY"
	EnvChannel   = "CLAUDEMESH_CHANNEL"
	// EnvCA names a PEM file of CA certificates trusted, besides the
	// system's roots, to sign a wss:// broker's certificate.
	EnvCA = "CLAUDEMESH_CA"
	// EnvAllowPlaintext=1 allows ws:// to a broker that is not on a
	// loopback address.
	EnvAllowPlaintext = "CLAUDEMESH_ALLOW_PLAINTEXT"
	DefaultMesh       = "default"
	defaultHomeDir    = ".claudemesh"
)

// ConfigFromEnv builds a Config from environment variables (getenv is
// os.Getenv outside tests). It validates what it reads; Logger is left nil.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	home, err := HomeFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		Home:       home,
		BrokerURL:  getenv(EnvBroker),
		Mesh:       getenv(EnvMesh),
		Name:       strings.TrimSpace(getenv(EnvName)),
		ProjectDir: getenv(claudecode.EnvProjectDir),
	}
	if cfg.Mesh == "" {
		cfg.Mesh = DefaultMesh
	}
	if err := identity.ValidateMesh(cfg.Mesh); err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvMesh, err)
	}
	if cfg.ProjectDir == "" {
		cfg.ProjectDir, _ = os.Getwd()
	}
	for _, name := range []string{EnvSessionID, claudecode.EnvSessionID} {
		raw := getenv(name)
		if raw == "" {
			continue
		}
		id, err := identity.ParseSessionID(raw)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", name, err)
		}
		cfg.SessionID, cfg.SessionSource = id, name
		break
	}
	// Claude Code's SessionStart hook knows the true session when the
	// environment does not (--continue, /clear); an id the user set
	// explicitly wins over it.
	if cfg.SessionSource != EnvSessionID {
		cfg.SessionStartFile = SessionStartFile(home)
	}
	cfg.Delivery = cmp.Or(getenv(EnvDelivery), DeliveryPush)
	if err := validDelivery(cfg.Delivery); err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvDelivery, err)
	}
	cfg.MessagingSocket, cfg.MessagingToken = getenv(claudecode.EnvMessagingSocket), getenv(claudecode.EnvMessagingToken)
	if cfg.Channel, err = envBool(getenv, EnvChannel); err != nil {
		return Config{}, err
	}
	if cfg.RootCAs, cfg.AllowPlaintext, err = TransportFromEnv(getenv); err != nil {
		return Config{}, err
	}
	// A mesh this machine joined: its member key attests the session, and
	// its broker is the default.
	switch m, err := identity.LoadMembership(home, cfg.Mesh); {
	case err == nil:
		cfg.Member = m.Key
		if cfg.BrokerURL == "" {
			cfg.BrokerURL = m.Broker
		}
	case !errors.Is(err, identity.ErrNoMembership):
		return Config{}, err
	}
	cfg.UnreadFile = UnreadFile(home)
	if cfg.Name == "" {
		cfg.Name, cfg.TagName = DefaultName(getenv, cfg.ProjectDir), true
	}
	if err := validName(cfg.Name); err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvName, err)
	}
	return cfg, nil
}

// TransportFromEnv reads how to reach a broker: the extra CA certificates
// of CLAUDEMESH_CA (added to the system's roots; nil when unset) and
// CLAUDEMESH_ALLOW_PLAINTEXT.
func TransportFromEnv(getenv func(string) string) (roots *x509.CertPool, allowPlaintext bool, err error) {
	if f := getenv(EnvCA); f != "" {
		if roots, err = client.LoadRootCAs(f); err != nil {
			return nil, false, fmt.Errorf("%s: %w", EnvCA, err)
		}
	}
	allowPlaintext, err = envBool(getenv, EnvAllowPlaintext)
	return roots, allowPlaintext, err
}

// envBool reads a yes/no variable: 1 or true, 0, false or unset.
func envBool(getenv func(string) string, name string) (bool, error) {
	switch v := getenv(name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, fmt.Errorf("%s: %q is not 1 or 0", name, v)
	}
}

// HomeFromEnv returns CLAUDEMESH_HOME, or ~/.claudemesh.
func HomeFromEnv(getenv func(string) string) (string, error) {
	if h := getenv(EnvHome); h != "" {
		return filepath.Abs(h)
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory (set %s): %w", EnvHome, err)
	}
	return filepath.Join(dir, defaultHomeDir), nil
}

// DefaultName derives a display name from the user, the host and the
// project directory, e.g. "alice@laptop/claudemesh". The server tags it per
// identity (see TaggedName): "alice@laptop/claudemesh#3f2a".
func DefaultName(getenv func(string) string, projectDir string) string {
	who := getenv("USER")
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	name := clean(who) + "@" + clean(host)
	if base := clean(filepath.Base(projectDir)); base != "" && base != "." && base != "/" {
		name += "/" + base
	}
	if len(name) > wire.MaxNameLen {
		name = name[:wire.MaxNameLen]
	}
	return name
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func validName(name string) error {
	if name == "" || len(name) > wire.MaxNameLen {
		return fmt.Errorf("display name must be 1 to %d bytes", wire.MaxNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("display name %q contains control characters", name)
		}
	}
	return nil
}
