package identity

import (
	"os"
	"sync"
	"testing"
)

// The terminal's key is one per mesh and home: the same from every call,
// from calls racing each other, and after a restart (a new Keystore);
// another mesh has another. Its files are the user's alone.
func TestLoadHumanIsStablePerMesh(t *testing.T) {
	home := t.TempDir()
	ks := OpenKeystore(home, nil)
	const n = 8
	keys := make([]*Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = OpenKeystore(home, nil).LoadHuman("team") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !keys[i].Public.Equal(keys[0].Public) || keys[i].SessionID != keys[0].SessionID {
			t.Fatalf("racing loads made two identities: %s and %s", keys[0].ID(), keys[i].ID())
		}
	}
	again, err := ks.LoadHuman("team")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Public.Equal(keys[0].Public) || again.Ephemeral || again.SessionID == "" {
		t.Errorf("reload: %v, want %v", again, keys[0])
	}
	other, err := ks.LoadHuman("default")
	if err != nil {
		t.Fatal(err)
	}
	if other.Public.Equal(again.Public) {
		t.Error("two meshes share the terminal key")
	}
	for _, p := range []string{ks.HumanPath("team"), mustPath(t, ks, "team", again.SessionID)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if _, err := ks.LoadHuman("Bad/Mesh"); err == nil {
		t.Error("an invalid mesh name was accepted")
	}
}

// A UUID file that holds garbage is moved aside, not deleted, and a new
// identity takes its place.
func TestLoadHumanCorruptIDFile(t *testing.T) {
	home := t.TempDir()
	ks := OpenKeystore(home, nil)
	first, err := ks.LoadHuman("team")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ks.HumanPath("team"), []byte("../../etc/passwd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := ks.LoadHuman("team")
	if err != nil {
		t.Fatal(err)
	}
	if second.SessionID == first.SessionID {
		t.Error("the corrupt file's identity was kept")
	}
	ents, _ := os.ReadDir(home + "/humans")
	aside := 0
	for _, e := range ents {
		if len(e.Name()) > len("team.id.corrupt-") && e.Name()[:len("team.id.corrupt-")] == "team.id.corrupt-" {
			aside++
		}
	}
	if aside != 1 {
		t.Errorf("%d files moved aside, want 1: %v", aside, ents)
	}
}

func mustPath(t *testing.T, ks *Keystore, mesh, id string) string {
	t.Helper()
	p, err := ks.Path(mesh, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
