package identity

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSaveMembership(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	key, err := NewMemberKey()
	if err != nil {
		t.Fatal(err)
	}
	m := Membership{Mesh: "team", Broker: "wss://broker.example:7733/v1/ws", Name: "olga", Role: "owner", Key: key,
		CreatedAt: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := SaveMembership(home, m, false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, "meshes", "team.json")
	if info, err := os.Stat(path); err != nil || info.Mode() != 0o600 {
		t.Fatalf("membership file: %v (%v), want mode 0600", info.Mode(), err)
	}
	got, err := LoadMembership(home, "team")
	if err != nil || !got.Key.Equal(key) || got.Name != "olga" || got.Broker != m.Broker || !got.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("LoadMembership = %+v, %v; want what was saved", got, err)
	}

	// Without replace an existing membership is kept: the member key in it
	// is the machine's only proof of membership.
	other, _ := NewMemberKey()
	again := m
	again.Key, again.Name = other, "mallory"
	if err := SaveMembership(home, again, false); err == nil || !strings.Contains(err.Error(), "already a member") {
		t.Fatalf("second SaveMembership without replace: %v, want it refused", err)
	}
	if got, _ := LoadMembership(home, "team"); !got.Key.Equal(key) {
		t.Error("a refused SaveMembership changed the member key")
	}
	if err := SaveMembership(home, again, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadMembership(home, "team"); !got.Key.Equal(other) || got.Name != "mallory" {
		t.Errorf("after replace: %+v, want the new membership", got)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"team.json"}) {
		t.Errorf("meshes directory holds %v, want only team.json", names)
	}
}
