package mcp

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// ConfigFromEnv builds a Config from the environment (getenv is os.Getenv
// outside tests): claudemesh's variables (package config) and those Claude
// Code sets (package claudecode). It validates what it reads; Logger is
// left nil.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	home, err := config.Home(getenv)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		Home:       home,
		BrokerURL:  getenv(config.EnvBroker),
		Mesh:       getenv(config.EnvMesh),
		Name:       strings.TrimSpace(getenv(config.EnvName)),
		ProjectDir: getenv(claudecode.EnvProjectDir),
	}
	if cfg.Mesh == "" {
		cfg.Mesh = config.DefaultMesh
	}
	if err := identity.ValidateMesh(cfg.Mesh); err != nil {
		return Config{}, fmt.Errorf("%s: %w", config.EnvMesh, err)
	}
	if cfg.ProjectDir == "" {
		cfg.ProjectDir, _ = os.Getwd()
	}
	for _, name := range []string{config.EnvSessionID, claudecode.EnvSessionID} {
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
	if cfg.SessionSource != config.EnvSessionID {
		cfg.SessionStartFile = SessionStartFile(home)
	}
	cfg.Delivery = cmp.Or(getenv(config.EnvDelivery), DeliveryPush)
	if err := validDelivery(cfg.Delivery); err != nil {
		return Config{}, fmt.Errorf("%s: %w", config.EnvDelivery, err)
	}
	cfg.MessagingSocket, cfg.MessagingToken = getenv(claudecode.EnvMessagingSocket), getenv(claudecode.EnvMessagingToken)
	if cfg.Channel, err = config.Bool(getenv, config.EnvChannel); err != nil {
		return Config{}, err
	}
	if cfg.RootCAs, cfg.AllowPlaintext, err = config.Transport(getenv); err != nil {
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
	if cfg.HistoryRetention, err = ParseHistoryRetention(getenv(config.EnvHistory)); err != nil {
		return Config{}, fmt.Errorf("%s: %w", config.EnvHistory, err)
	}
	cfg.UnreadFile = UnreadFile(home)
	cfg.ActivityFile = ActivityFile(home)
	for g := range strings.SplitSeq(getenv(config.EnvGroups), ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if err := wire.ValidGroup(g); err != nil {
			return Config{}, fmt.Errorf("%s: %w", config.EnvGroups, err)
		}
		cfg.Groups = append(cfg.Groups, g)
	}
	if cfg.Name == "" {
		cfg.Name, cfg.TagName = DefaultName(getenv, cfg.ProjectDir), true
	}
	if err := validName(cfg.Name); err != nil {
		return Config{}, fmt.Errorf("%s: %w", config.EnvName, err)
	}
	return cfg, nil
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

// ParseHistoryRetention parses a history retention (CLAUDEMESH_HISTORY,
// claudemesh mcp --history) into Config.HistoryRetention: "" for the
// default, "off" (or 0) to keep no DM, else a duration such as 90d or 36h
// (d is 24 hours).
func ParseHistoryRetention(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	switch v {
	case "":
		return 0, nil
	case "off", "0":
		return -1, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 36500 {
			return 0, fmt.Errorf("%q: want a duration such as 90d or 36h, or off", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a duration such as 90d or 36h, or off", v)
	}
	return d, nil
}
