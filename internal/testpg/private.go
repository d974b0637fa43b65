package testpg

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Server is a PostgreSQL server of one test's own, which the test may stop
// and start: for what a shared server must not be put through.
type Server struct {
	URL  string
	dir  string
	bin  string
	port int
	as   []string // the command prefix that runs a program as the server's user
}

// Private starts a throwaway server (initdb into a temporary directory,
// listening on a free loopback port, trust authentication) from the
// machine's PostgreSQL programs, stopped when t ends. It skips t when they
// are not installed, unless CI=true.
func Private(t testing.TB) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("no PostgreSQL programs (initdb) on this machine: CI needs them")
		}
		t.Skip("no PostgreSQL programs (initdb) on this machine")
	}
	s := &Server{bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "claudemesh-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The server refuses to run as root: run it as postgres.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and no postgres user to run a server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.as = []string{"runuser", "-u", "postgres", "--"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.run(t, "initdb", "-D", s.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	s.Start(t)
	t.Cleanup(func() { s.Stop(t) })
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", s.port)
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) run(t testing.TB, prog string, args ...string) {
	t.Helper()
	argv := append(append(append([]string{}, s.as...), filepath.Join(s.bin, prog)), args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", prog, err, out)
	}
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.run(t, "pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "start",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", s.port, s.dir))
}

// Stop stops the server at once (fast shutdown: connections are cut).
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err != nil {
		return
	}
	s.run(t, "pg_ctl", "-D", s.data(), "-m", "fast", "-w", "-t", "60", "stop")
}

// Restart stops the server, waits down, and starts it again.
func (s *Server) Restart(t testing.TB, down time.Duration) {
	t.Helper()
	s.Stop(t)
	time.Sleep(down) // the outage itself
	s.Start(t)
}
