package atomicfile_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// names lists dir, so a test can see that nothing but the target is left.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func wantFile(t *testing.T, path string, data string, perm fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != data {
		t.Errorf("%s holds %q, want %q", path, got, data)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != perm {
		t.Errorf("%s has mode %v, want %v", path, info.Mode(), perm)
	}
}

// wideUmask makes the process umask one that would narrow or widen a mode
// if the package relied on it. Tests that use it are not parallel.
func wideUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestWrite(t *testing.T) {
	wideUmask(t, 0o077)
	dir := t.TempDir()
	path := filepath.Join(dir, "settings.json")

	if err := atomicfile.Write(path, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "first", 0o644) // not narrowed by the umask
	if err := atomicfile.Write(path, []byte("second, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "second, longer", 0o600)
	if got := names(t, dir); !slices.Equal(got, []string{"settings.json"}) {
		t.Errorf("directory holds %v after two writes, want only the file", got)
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A directory in the way: the rename fails after the temporary file
	// was written.
	target := filepath.Join(dir, "in-the-way")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(target, []byte("secret"), 0o600); err == nil {
		t.Fatal("Write over a directory succeeded")
	}
	if got := names(t, dir); !slices.Equal(got, []string{"in-the-way"}) {
		t.Errorf("directory holds %v after a failed write, want only what was there", got)
	}
	// A directory that does not exist: nothing is made.
	missing := filepath.Join(dir, "missing", "file")
	if err := atomicfile.Write(missing, []byte("x"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write into a missing directory: %v, want it not to exist", err)
	}
}

func TestCreate(t *testing.T) {
	wideUmask(t, 0o022)
	dir := t.TempDir()
	path := filepath.Join(dir, "credential")

	if err := atomicfile.Create(path, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "mine", 0o600)
	err := atomicfile.Create(path, []byte("theirs"), 0o644)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: %v, want an error matching fs.ErrExist", err)
	}
	wantFile(t, path, "mine", 0o600) // untouched
	if got := names(t, dir); !slices.Equal(got, []string{"credential"}) {
		t.Errorf("directory holds %v, want only the file", got)
	}
}

func TestCreateConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	const n = 16
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			errs[i] = atomicfile.Create(path, fmt.Appendf(nil, "writer %d", i), 0o600)
		})
	}
	start.Done()
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both created the file", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("writer %d: %v, want success or fs.ErrExist", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the file")
	}
	wantFile(t, path, fmt.Sprintf("writer %d", winner), 0o600)
	if got := names(t, dir); !slices.Equal(got, []string{"key.json"}) {
		t.Errorf("directory holds %v, want only the file", got)
	}
}

func TestRemoveTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	// What a process that died half-way leaves, and what must stay.
	for _, name := range []string{".a.json.tmp-123", ".a.json.tmp-", ".b.json.tmp-1", "a.json.tmp-1", "a.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := atomicfile.RemoveTemps(path); err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, dir), []string{".b.json.tmp-1", "a.json", "a.json.tmp-1"}; !slices.Equal(got, want) {
		t.Errorf("after RemoveTemps the directory holds %v, want %v", got, want)
	}
}
