package mcp

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/internal/testca"
)

func TestConfigFromEnvTransport(t *testing.T) {
	ca := testca.New(t)
	caFile := ca.File(t)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		m := map[string]string{config.EnvHome: t.TempDir(), config.EnvName: "alice", claudecode.EnvProjectDir: "/p"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}

	cfg, err := ConfigFromEnv(env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs != nil || cfg.AllowPlaintext {
		t.Errorf("defaults: RootCAs %v, AllowPlaintext %v; want the system's roots and no plaintext beyond loopback", cfg.RootCAs, cfg.AllowPlaintext)
	}

	cfg, err = ConfigFromEnv(env(config.EnvCA, caFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil {
		t.Fatalf("%s set: no roots", config.EnvCA)
	}
	if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: cfg.RootCAs}); err != nil {
		t.Errorf("the CA from %s is not among the roots: %v", config.EnvCA, err)
	}

	for _, v := range []string{"1", "true"} {
		if cfg, err := ConfigFromEnv(env(config.EnvAllowPlaintext, v)); err != nil || !cfg.AllowPlaintext {
			t.Errorf("%s=%s: AllowPlaintext %v, %v; want true", config.EnvAllowPlaintext, v, cfg.AllowPlaintext, err)
		}
	}
	for _, v := range []string{"0", "false"} {
		if cfg, err := ConfigFromEnv(env(config.EnvAllowPlaintext, v)); err != nil || cfg.AllowPlaintext {
			t.Errorf("%s=%s: AllowPlaintext %v, %v; want false", config.EnvAllowPlaintext, v, cfg.AllowPlaintext, err)
		}
	}

	for _, tc := range []struct {
		name   string
		getenv func(string) string
		want   string
	}{
		{"missing CA file", env(config.EnvCA, filepath.Join(t.TempDir(), "none.pem")), config.EnvCA},
		{"CA file without certificates", env(config.EnvCA, notPEM), config.EnvCA},
		{"allow plaintext yes", env(config.EnvAllowPlaintext, "yes"), config.EnvAllowPlaintext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if cfg, err := ConfigFromEnv(tc.getenv); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ConfigFromEnv = %+v, %v; want an error naming %s", cfg, err, tc.want)
			}
		})
	}
}
