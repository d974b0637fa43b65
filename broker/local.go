package broker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
	"github.com/claudemesh/claudemesh/wire"
)

// credentialFile holds a broker's credential in its data directory, so
// the credential outlives restarts and connected clients keep working.
const credentialFile = "credential"

// writeLocalInfo publishes info under home, replacing any earlier file
// atomically. Only the holder of the home's lock calls it (Lock.Publish).
func writeLocalInfo(home string, info wire.LocalInfo) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", wire.LocalFile, err)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(home, wire.LocalFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", wire.LocalFile, err)
	}
	return nil
}

// ReadToken returns the broker credential kept in dataDir, "" when there
// is none.
func ReadToken(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, credentialFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("broker credential: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// LoadOrCreateToken returns the broker credential kept in dataDir,
// creating a random one on first use.
func LoadOrCreateToken(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("broker credential: %w", err)
	}
	path := filepath.Join(dataDir, credentialFile)
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			tok := strings.TrimSpace(string(b))
			if len(tok) < 32 {
				return "", fmt.Errorf("broker credential %s is too short; delete it to make a new one", path)
			}
			return tok, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("broker credential: %w", err)
		}
		raw := make([]byte, 32)
		rand.Read(raw)
		tok := hex.EncodeToString(raw)
		// Created complete or not at all (and never replaced), so a
		// broker starting at the same time never reads a half-written one.
		err = atomicfile.Create(path, []byte(tok+"\n"), 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another broker created it first: read theirs
		}
		if err != nil {
			return "", fmt.Errorf("broker credential: %w", err)
		}
		return tok, nil
	}
	return "", fmt.Errorf("broker credential %s: created and removed concurrently", path)
}

// CopyCredential copies the broker credential of dataDir, if it has one,
// into the data directory to, where no credential may exist yet. A broker
// started on to lets in the sessions that hold the credential.
func CopyCredential(dataDir, to string) error {
	tok, err := ReadToken(dataDir)
	if err != nil || tok == "" {
		return err
	}
	if err := atomicfile.Create(filepath.Join(to, credentialFile), []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("copy broker credential: %w", err)
	}
	return nil
}
