package config

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh/internal/testca"
)

// env returns a getenv that knows only the variables in kv (name, value,
// name, value, ...).
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestHome(t *testing.T) {
	dir := t.TempDir()
	if got, err := Home(env(EnvHome, dir)); err != nil || got != dir {
		t.Errorf("Home with %s=%s = %q, %v", EnvHome, dir, got, err)
	}
	// A relative home is made absolute, so that the keystore does not
	// move with the working directory.
	got, err := Home(env(EnvHome, "rel/home"))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(got) || !strings.HasSuffix(got, filepath.Join("rel", "home")) {
		t.Errorf("Home = %q, want an absolute path ending in rel/home", got)
	}
	// Unset: ~/.claudemesh. os.UserHomeDir reads $HOME.
	t.Setenv("HOME", dir)
	if got, err := Home(env()); err != nil || got != filepath.Join(dir, ".claudemesh") {
		t.Errorf("Home unset = %q, %v; want %s", got, err, filepath.Join(dir, ".claudemesh"))
	}
	t.Setenv("HOME", "")
	if got, err := Home(env()); err == nil || !strings.Contains(err.Error(), EnvHome) {
		t.Errorf("Home with neither %s nor a home directory = %q, %v; want an error naming %s", EnvHome, got, err, EnvHome)
	}
}

func TestBool(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
		ok    bool
	}{
		{"", false, true}, {"0", false, true}, {"false", false, true},
		{"1", true, true}, {"true", true, true},
		{"yes", false, false}, {"TRUE", false, false}, {" 1", false, false},
	} {
		got, err := Bool(env(EnvChannel, tc.value), EnvChannel)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("Bool(%q) = %v, %v; want %v, ok %v", tc.value, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), EnvChannel) {
			t.Errorf("Bool(%q): error %q does not name %s", tc.value, err, EnvChannel)
		}
	}
}

func TestTransport(t *testing.T) {
	ca := testca.New(t)
	roots, plain, err := Transport(env())
	if err != nil || roots != nil || plain {
		t.Errorf("defaults: %v, %v, %v; want the system's roots and no plaintext beyond loopback", roots, plain, err)
	}
	roots, _, err = Transport(env(EnvCA, ca.File(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Errorf("the CA from %s is not among the roots: %v", EnvCA, err)
	}
	if _, plain, err := Transport(env(EnvAllowPlaintext, "1")); err != nil || !plain {
		t.Errorf("%s=1: %v, %v; want plaintext allowed", EnvAllowPlaintext, plain, err)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		want   string
	}{
		{"missing CA file", env(EnvCA, filepath.Join(t.TempDir(), "none.pem")), EnvCA},
		{"CA file without certificates", env(EnvCA, notPEM), EnvCA},
		{"allow plaintext yes", env(EnvAllowPlaintext, "yes"), EnvAllowPlaintext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if roots, plain, err := Transport(tc.getenv); err == nil || !strings.Contains(err.Error(), tc.want) || roots != nil || plain {
				t.Errorf("Transport = %v, %v, %v; want only an error naming %s", roots, plain, err, tc.want)
			}
		})
	}
}
