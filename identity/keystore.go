package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// Keystore keeps one ed25519 key per (mesh, session UUID) under a home
// directory, at home/sessions/<mesh>/<uuid>.json.
//
// Load creates each key at most once, even when several processes (a
// relaunched session racing its predecessor, or Claude Code starting the MCP
// server twice) ask for the same key at once: every reader and writer of a
// key file holds an exclusive flock on <uuid>.lock beside it, and a new file
// appears under its final name only when complete and synced
// (atomicfile.Create).
//
// A Keystore is safe for concurrent use.
type Keystore struct {
	home   string
	logger *slog.Logger
}

// OpenKeystore returns the keystore kept under home, normally
// $CLAUDEMESH_HOME. It touches no file until a key is loaded. A nil logger
// discards logs.
func OpenKeystore(home string, logger *slog.Logger) *Keystore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Keystore{home: home, logger: logger}
}

// Path returns the file that holds the key of session sessionID on mesh.
// Both names are checked (ValidateMesh, ParseSessionID) before the path is
// built, so the path always lies inside the keystore's home.
func (ks *Keystore) Path(mesh, sessionID string) (string, error) {
	_, path, err := ks.locate(mesh, sessionID)
	return path, err
}

func (ks *Keystore) locate(mesh, sessionID string) (id, path string, err error) {
	if ks.home == "" {
		return "", "", errors.New("keystore home is not set")
	}
	if err := ValidateMesh(mesh); err != nil {
		return "", "", err
	}
	if id, err = ParseSessionID(sessionID); err != nil {
		return "", "", err
	}
	return id, filepath.Join(ks.home, "sessions", mesh, id+".json"), nil
}

// Load returns the key of session sessionID on mesh, creating and storing it
// if the session has none yet. A key file that exists but cannot be used
// (corrupt, mismatched, not a regular file) is renamed to
// <uuid>.json.corrupt-<UTC time>, never deleted, and a new key takes its
// place; a warning is logged.
func (ks *Keystore) Load(mesh, sessionID string) (*Key, error) {
	id, path, err := ks.locate(mesh, sessionID)
	if err != nil {
		return nil, fmt.Errorf("load session key: %w", err)
	}
	k, err := ks.load(filepath.Dir(path), path, mesh, id)
	if err != nil {
		return nil, fmt.Errorf("load session key %s/%s: %w", mesh, id, err)
	}
	return k, nil
}

func (ks *Keystore) load(dir, path, mesh, id string) (*Key, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		// The umask may have narrowed the mode; make it exactly 0700.
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}

	unlock, err := lock(filepath.Join(dir, id+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	k, err := readKeyFile(path, mesh, id)
	var corrupt *corruptError
	switch {
	case err == nil:
		return k, nil
	case errors.As(err, &corrupt):
		if err := ks.moveAside(path, mesh, id, corrupt.err); err != nil {
			return nil, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if k, err = create(path, mesh, id); err != nil {
		return nil, err
	}
	ks.logger.Debug("session key created", "mesh", mesh, "session", id, "key_id", k.ID())
	return k, nil
}

// lock takes an exclusive flock on path, creating it if needed. Closing the
// file releases the lock, also when the process dies.
func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// corruptError marks a key file that exists but can never be used as it is.
type corruptError struct{ err error }

func (e *corruptError) Error() string { return e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// maxKeyFileSize bounds how much of a key file is read; a real one is about
// 350 bytes.
const maxKeyFileSize = 4096

// readKeyFile reads and checks the key file at path. It returns an error
// matching fs.ErrNotExist when there is none and a *corruptError when there is
// one that cannot be used. Other errors (I/O, too many open files) may be
// temporary and leave the file alone.
func readKeyFile(path, mesh, id string) (*Key, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, &corruptError{fmt.Errorf("%s is not a regular file (mode %s)", path, info.Mode())}
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrPermission) {
		return nil, &corruptError{err}
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, &corruptError{fmt.Errorf("%s is larger than %d bytes", path, maxKeyFileSize)}
	}
	k, err := parseKeyFile(data, mesh, id)
	if err != nil {
		return nil, &corruptError{fmt.Errorf("%s: %w", path, err)}
	}
	return k, nil
}

// moveAside renames an unusable key file so that a new key can take its
// place; the old file is kept for inspection.
func (ks *Keystore) moveAside(path, mesh, id string, cause error) error {
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	// Under the lock nobody else creates this name, but never overwrite one.
	if _, err := os.Lstat(aside); err == nil {
		return fmt.Errorf("move corrupt key file aside: %s already exists", aside)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("move corrupt key file aside: %w", err)
	}
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("move corrupt key file aside: %w", err)
	}
	ks.logger.Warn("session key file unusable; moved aside, creating a new key",
		"mesh", mesh, "session", id, "path", path, "moved_to", aside, "err", cause)
	return nil
}

// create makes a new key and stores it at path. The caller holds the lock.
func create(path, mesh, id string) (*Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k := &Key{Mesh: mesh, SessionID: id, Public: pub, Private: priv, CreatedAt: time.Now().UTC().Round(0)}
	data, err := marshalKeyFile(k)
	if err != nil {
		return nil, err
	}

	// Temporary files left here by a process that died while creating this
	// key hold a key nobody uses; nobody else can be writing one now.
	// Best effort: a leftover that cannot be removed harms nothing.
	atomicfile.RemoveTemps(path)
	// Create never replaces an existing file.
	if err := atomicfile.Create(path, data, 0o600); errors.Is(err, fs.ErrExist) {
		// Only a writer that ignores the lock gets here; keep its key.
		return readKeyFile(path, mesh, id)
	} else if err != nil {
		return nil, fmt.Errorf("write key file: %w", err)
	}
	return k, nil
}

// keyFile is the on-disk form of a session key, version 1.
type keyFile struct {
	Version   int    `json:"version"`
	Mesh      string `json:"mesh"`
	SessionID string `json:"session_id"`
	PublicKey string `json:"public_key"` // 64 hex digits
	SecretKey string `json:"secret_key"` // 128 hex digits: the 64-byte ed25519 private key
	CreatedAt string `json:"created_at"` // RFC 3339 with nanoseconds
}

func marshalKeyFile(k *Key) ([]byte, error) {
	data, err := json.MarshalIndent(keyFile{
		Version:   1,
		Mesh:      k.Mesh,
		SessionID: k.SessionID,
		PublicKey: hex.EncodeToString(k.Public),
		SecretKey: hex.EncodeToString(k.Private),
		CreatedAt: k.CreatedAt.UTC().Format(time.RFC3339Nano),
	}, "", "  ")
	return append(data, '\n'), err
}

// parseKeyFile decodes a key file and checks that it holds a usable key of
// session sessionID on mesh. Its errors never quote the secret key.
func parseKeyFile(data []byte, mesh, sessionID string) (*Key, error) {
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse key file: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("parse key file: unsupported version %d", f.Version)
	}
	if f.Mesh != mesh {
		return nil, fmt.Errorf("parse key file: mesh is %q, want %q", f.Mesh, mesh)
	}
	if f.SessionID != sessionID {
		return nil, fmt.Errorf("parse key file: session_id is %q, want %q", f.SessionID, sessionID)
	}
	pub, err := decodeHex(f.PublicKey, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("parse key file: public_key: %w", err)
	}
	secret, err := decodeHex(f.SecretKey, ed25519.PrivateKeySize)
	if err != nil {
		return nil, fmt.Errorf("parse key file: secret_key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(secret[:ed25519.SeedSize])
	if !bytes.Equal(priv, secret) {
		return nil, errors.New("parse key file: secret_key holds a public key its seed does not derive")
	}
	if !bytes.Equal(priv[ed25519.SeedSize:], pub) {
		return nil, errors.New("parse key file: public_key does not match secret_key")
	}
	if _, err := X25519PublicKey(pub); err != nil {
		return nil, fmt.Errorf("parse key file: %w", err)
	}
	created, err := time.Parse(time.RFC3339Nano, f.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("parse key file: created_at: %w", err)
	}
	if y := created.UTC().Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("parse key file: created_at year %d out of range", y)
	}
	return &Key{Mesh: mesh, SessionID: sessionID, Public: pub, Private: priv, CreatedAt: created.UTC()}, nil
}

func decodeHex(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("want %d hex digits, have %d characters", 2*n, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("not hexadecimal")
	}
	return b, nil
}
