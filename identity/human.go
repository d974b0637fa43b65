package identity

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// LoadHuman returns the key of the person at this machine's terminals on
// mesh (claudemesh send, inbox, peers, status): a session key like any
// other, kept by Load, under a session UUID made once per mesh and home
// and kept in home/humans/<mesh>.id (0600). The same user therefore comes
// back as the same peer from every terminal and after every restart.
//
// The UUID is made at most once, even when several commands start at
// once: the file is read and created under an exclusive flock on
// <mesh>.lock beside it, and appears under its name only when complete
// (atomicfile.Create). A file that holds no UUID is moved aside, like a
// corrupt key file, and a new identity is made.
func (ks *Keystore) LoadHuman(mesh string) (*Key, error) {
	if ks.home == "" {
		return nil, errors.New("load terminal key: keystore home is not set")
	}
	if err := ValidateMesh(mesh); err != nil {
		return nil, fmt.Errorf("load terminal key: %w", err)
	}
	id, err := ks.humanID(mesh)
	if err != nil {
		return nil, fmt.Errorf("load terminal key of mesh %s: %w", mesh, err)
	}
	return ks.Load(mesh, id)
}

// HumanPath returns the file that holds the session UUID of the terminal
// identity on mesh.
func (ks *Keystore) HumanPath(mesh string) string {
	return filepath.Join(ks.home, "humans", mesh+".id")
}

func (ks *Keystore) humanID(mesh string) (string, error) {
	path := ks.HumanPath(mesh)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	unlock, err := lock(filepath.Join(dir, mesh+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	id, err := readHumanID(path)
	var corrupt *corruptError
	switch {
	case err == nil:
		return id, nil
	case errors.As(err, &corrupt):
		if err := ks.moveAside(path, mesh, "terminal", corrupt.err); err != nil {
			return "", err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	id = uuid.NewString()
	atomicfile.RemoveTemps(path)
	if err := atomicfile.Create(path, []byte(id+"\n"), 0o600); errors.Is(err, fs.ErrExist) {
		return readHumanID(path) // only a writer that ignores the lock gets here
	} else if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	ks.logger.Debug("terminal identity created", "mesh", mesh, "session", id)
	return id, nil
}

// readHumanID reads the UUID kept at path: an error matching
// fs.ErrNotExist when there is none, a *corruptError when the file holds
// no UUID.
func readHumanID(path string) (string, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", &corruptError{fmt.Errorf("%s is not a regular file (mode %s)", path, info.Mode())}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 128))
	if err != nil {
		return "", err
	}
	id, err := ParseSessionID(strings.TrimSpace(string(data)))
	if err != nil {
		return "", &corruptError{fmt.Errorf("%s: %w", path, err)}
	}
	return id, nil
}
