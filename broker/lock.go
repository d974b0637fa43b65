package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/claudemesh/claudemesh/wire"
)

// A local broker holds two locks for its whole life: one on its data
// directory, so that no second broker runs on the same SQLite files, and one
// on wire.LocalFile in CLAUDEMESH_HOME, so that no second broker (with another
// data directory) publishes over it. Each is an exclusive flock on a lock
// file that is never removed; the kernel releases it when the process ends,
// however it ends, so a broker that was killed blocks nothing. Each lock file
// records who holds it, for the refusal of the next broker.
const (
	// DataLockFile is the lock file in a broker's data directory.
	DataLockFile = "broker.lock"
	// HomeLockFile is the lock file in CLAUDEMESH_HOME that guards
	// wire.LocalFile.
	HomeLockFile = wire.LocalFile + ".lock"
)

// Holder is what a running broker records in the lock files it holds.
type Holder struct {
	PID       int       `json:"pid"`
	URL       string    `json:"url"`
	Data      string    `json:"data"` // the data directory, absolute
	StartedAt time.Time `json:"started_at"`
}

// RunningError refuses to start a broker because another one holds a lock
// it needs.
type RunningError struct {
	// Home is set when the lock is that of wire.LocalFile in Dir (a broker with
	// another data directory publishes there); otherwise Dir is the data
	// directory.
	Home   bool
	Dir    string
	Holder Holder // zero while the other broker is still starting
}

func (e *RunningError) Error() string {
	who := "pid and URL not recorded yet: it is starting"
	if h := e.Holder; h.PID != 0 {
		who = fmt.Sprintf("pid %d, %s", h.PID, h.URL)
		if e.Home && h.Data != "" {
			who += ", data directory " + h.Data
		}
	}
	if e.Home {
		return fmt.Sprintf("another broker (%s) publishes %s: stop it first, or run this one with another CLAUDEMESH_HOME",
			who, filepath.Join(e.Dir, wire.LocalFile))
	}
	return fmt.Sprintf("another broker (%s) is running on data directory %s: stop it first, or use another data directory", who, e.Dir)
}

// Lock is a local broker's hold on its data directory and on the
// wire.LocalFile of its home. Only its holder publishes wire.LocalFile.
type Lock struct {
	home       string
	data, file *os.File // the lock files, open while held
}

// LockLocal takes, without waiting, the lock of wire.LocalFile in home and then
// that of dataDir, creating both directories (0700) and lock files as
// needed, and records holder (with dataDir) in them. Take it before opening
// the store or writing anything else in either directory. When another
// broker holds either lock it returns a *RunningError naming that broker
// and holds nothing.
func LockLocal(home, dataDir string, holder Holder) (*Lock, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	holder.Data = abs
	l := &Lock{home: home}
	if l.file, err = lockIn(home, HomeLockFile, holder); err != nil {
		// A broker on the same data directory is named as such: that says
		// more than the same home.
		if re, ok := errors.AsType[*RunningError](err); ok {
			if re.Holder.Data == abs {
				re.Dir = abs
			} else {
				re.Home = true
			}
		}
		return nil, err
	}
	if l.data, err = lockIn(abs, DataLockFile, holder); err != nil {
		l.file.Close()
		return nil, err
	}
	return l, nil
}

// lockIn takes the lock file name in dir and records holder in it, or
// returns a *RunningError with what its holder recorded.
func lockIn(dir, name string, holder Holder) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &RunningError{Dir: dir, Holder: readHolder(f)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// One write, so a reader sees the record whole or not at all.
	b, _ := json.Marshal(holder)
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: record the holder: %w", path, err)
	}
	return f, nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// readHolder reads what the holder of a lock file recorded; zero when it
// has not recorded it yet.
func readHolder(f *os.File) Holder {
	var h Holder
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil || json.Unmarshal(b, &h) != nil {
		return Holder{}
	}
	return h
}

// RunningOn returns a *RunningError when a broker holds the lock of dataDir
// now, and nil otherwise. It creates nothing: it explains why a broker could
// not start (its address is taken) before it took any lock. To find out it
// takes a shared lock for a moment, so a broker starting on dataDir at that
// very moment is refused too.
func RunningOn(dataDir string) error {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil
	}
	f, err := os.Open(filepath.Join(abs, DataLockFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_SH|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		return &RunningError{Dir: abs, Holder: readHolder(f)}
	}
	return nil // not held; closing the file drops the probe's own lock
}

// Publish writes info to wire.LocalFile in the home, replacing what an earlier
// broker published.
func (l *Lock) Publish(info wire.LocalInfo) error { return writeLocalInfo(l.home, info) }

// Close releases the locks. It leaves wire.LocalFile as it is, so that sessions
// keep the credential for when a broker starts again on the same data
// directory. It is idempotent.
func (l *Lock) Close() error {
	for _, f := range []**os.File{&l.data, &l.file} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
	return nil
}
