// Package atomicfile writes a file so that readers, and the disk after a
// crash or power loss, see either the old contents or the new, never a
// part. Every file claudemesh keeps a secret or a key in (session keys,
// member keys, the broker credential, broker.json) and the files it shares
// with Claude Code and its hooks are written through it.
//
// The data goes to a temporary file in the target's directory, named
// .<name>.tmp-<random>, which is written, given its mode and synced; it then
// takes the target's name, by rename (Write: replace) or hard link (Create:
// never replace), and the directory is synced so that the name lasts too.
// A failed call removes its temporary file; one left by a process that died
// half-way is removed by RemoveTemps.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path with data, with mode perm whatever the umask.
func Write(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Create writes data to path, with mode perm whatever the umask, only if
// path does not exist yet: otherwise it returns an error matching
// fs.ErrExist and leaves the file as it was. Of several processes creating
// the same file at once exactly one succeeds, and the file never appears
// incomplete.
func Create(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	err = os.Link(tmp, path) // unlike rename, link never replaces a file
	os.Remove(tmp)
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// RemoveTemps removes the temporary files that Write or Create of path left
// behind when their process died before finishing. Call it only while no
// Write or Create of path can run (under the caller's lock): it would
// remove their temporary file too.
func RemoveTemps(path string) error {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// writeTemp writes data to a new temporary file beside path, with mode
// perm, synced, and returns its name. On failure nothing is left behind.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(path)+"*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes the latest changes of names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
