package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/history"
	"github.com/claudemesh/claudemesh/identity"
)

// forget deletes a session's key and history, and nothing else; names
// that are not a session id or a mesh never reach the file system.
func TestForget(t *testing.T) {
	home := t.TempDir()
	t.Setenv("CLAUDEMESH_HOME", home)
	t.Setenv("CLAUDEMESH_MESH", "")
	ks := identity.OpenKeystore(home, nil)
	id, other := uuid.NewString(), uuid.NewString()
	var files []string
	for _, s := range []string{id, other} {
		k, err := ks.Load("default", s)
		if err != nil {
			t.Fatal(err)
		}
		keyFile, _ := ks.Path("default", s)
		d, err := history.Open(t.Context(), history.FileFor(keyFile), k.ID(), history.Config{})
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		files = append(files, keyFile, history.FileFor(keyFile))
	}
	outside := filepath.Join(home, "precious")
	os.WriteFile(outside, []byte("x"), 0o600)

	var out bytes.Buffer
	if err := run(t.Context(), []string{"forget", strings.ToUpper(id)}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Forgot session "+id) {
		t.Errorf("output %q", out.String())
	}
	for i, f := range files {
		_, err := os.Stat(f)
		if gone := errors.Is(err, os.ErrNotExist); gone != (i < 2) {
			t.Errorf("%s: gone %v, want %v", f, gone, i < 2)
		}
	}
	for _, args := range [][]string{{"forget", "../precious"}, {"forget", id, "--mesh", "../.."}, {"forget"}} {
		var ue *usageError
		if err := run(t.Context(), args, nil, &out, &out); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("a file outside the keystore is gone: %v", err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"forget", id}, nil, &out, &out); err != nil || !strings.Contains(out.String(), "Nothing kept") {
		t.Errorf("forget twice: %v %q", err, out.String())
	}
}
