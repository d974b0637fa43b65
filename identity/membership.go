package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// Membership is this user's member key for one mesh on one broker, kept in
// $CLAUDEMESH_HOME/meshes/<mesh>.json (file 0600, directory 0700). It is
// separate from session keys: the member key attests each session key the
// user runs in that mesh, and never leaves this machine.
type Membership struct {
	Mesh      string
	Broker    string // the broker's URL
	Name      string // member name in the mesh
	Role      string // "owner" or "member"
	Key       ed25519.PrivateKey
	CreatedAt time.Time
}

// ErrNoMembership reports that this user is not a member of the mesh here.
var ErrNoMembership = errors.New("not a member of this mesh on this machine")

type membershipFile struct {
	Version   int       `json:"version"`
	Mesh      string    `json:"mesh"`
	Broker    string    `json:"broker"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	PublicKey string    `json:"public_key"`
	SecretKey string    `json:"secret_key"`
	CreatedAt time.Time `json:"created_at"`
}

func membershipPath(home, mesh string) (string, error) {
	if err := ValidateMesh(mesh); err != nil {
		return "", err
	}
	return filepath.Join(home, "meshes", mesh+".json"), nil
}

// NewMemberKey makes a fresh member key.
func NewMemberKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// SaveMembership writes m; a membership for the same mesh that exists is
// an error unless replace is set.
func SaveMembership(home string, m Membership, replace bool) error {
	path, err := membershipPath(home, m.Mesh)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save membership: %w", err)
	}
	b, err := json.MarshalIndent(membershipFile{
		Version: 1, Mesh: m.Mesh, Broker: m.Broker, Name: m.Name, Role: m.Role,
		PublicKey: hex.EncodeToString(m.Key.Public().(ed25519.PublicKey)), SecretKey: hex.EncodeToString(m.Key),
		CreatedAt: m.CreatedAt.UTC(),
	}, "", "  ")
	if err != nil {
		return err
	}
	write := atomicfile.Create
	if replace {
		write = atomicfile.Write
	}
	err = write(path, append(b, '\n'), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("save membership: %s exists: this machine is already a member of mesh %s", path, m.Mesh)
	}
	if err != nil {
		return fmt.Errorf("save membership: %w", err)
	}
	return nil
}

// LoadMembership reads this user's membership of mesh, or ErrNoMembership.
func LoadMembership(home, mesh string) (Membership, error) {
	path, err := membershipPath(home, mesh)
	if err != nil {
		return Membership{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Membership{}, ErrNoMembership
	}
	if err != nil {
		return Membership{}, fmt.Errorf("load membership: %w", err)
	}
	var f membershipFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Membership{}, fmt.Errorf("membership file %s is corrupt: %w", path, err)
	}
	sk, err := decodeHex(f.SecretKey, ed25519.PrivateKeySize)
	if err != nil || f.Version != 1 || f.Mesh != mesh {
		return Membership{}, fmt.Errorf("membership file %s is corrupt", path)
	}
	key := ed25519.PrivateKey(sk)
	if hex.EncodeToString(key.Public().(ed25519.PublicKey)) != f.PublicKey || !ed25519.PrivateKey(ed25519.NewKeyFromSeed(key.Seed())).Equal(key) {
		return Membership{}, fmt.Errorf("membership file %s is corrupt: its keys do not match", path)
	}
	return Membership{Mesh: f.Mesh, Broker: f.Broker, Name: f.Name, Role: f.Role, Key: key, CreatedAt: f.CreatedAt}, nil
}

// Memberships lists the meshes this user is a member of here.
func Memberships(home string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(home, "meshes"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && ValidateMesh(name) == nil {
			out = append(out, name)
		}
	}
	return out, nil
}
