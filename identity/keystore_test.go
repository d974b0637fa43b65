package identity

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	session1 = "3f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6b"
	session2 = "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
)

func load(t *testing.T, ks *Keystore, mesh, session string) *Key {
	t.Helper()
	k, err := ks.Load(mesh, session)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", mesh, session, err)
	}
	return k
}

func assertSameKey(t *testing.T, got, want *Key) {
	t.Helper()
	if !got.Public.Equal(want.Public) || !got.Private.Equal(want.Private) ||
		got.Mesh != want.Mesh || got.SessionID != want.SessionID || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("key %v (created %v), want %v (created %v)", got, got.CreatedAt, want, want.CreatedAt)
	}
}

func TestLoadSameKey(t *testing.T) {
	home := t.TempDir()
	ks := OpenKeystore(home, nil)
	k := load(t, ks, "default", session1)
	if k.Ephemeral || k.Mesh != "default" || k.SessionID != session1 || len(k.Private) != ed25519.PrivateKeySize {
		t.Fatalf("new key %v has wrong fields", k)
	}
	if !bytes.Equal(k.Private.Public().(ed25519.PublicKey), k.Public) {
		t.Fatal("public key does not match private key")
	}
	assertSameKey(t, load(t, ks, "default", session1), k)
	assertSameKey(t, load(t, OpenKeystore(home, nil), "default", session1), k)
	// An upper-case spelling of the UUID names the same session.
	assertSameKey(t, load(t, ks, "default", strings.ToUpper(session1)), k)

	other := load(t, ks, "default", session2)
	otherMesh := load(t, ks, "other", session1)
	if other.Public.Equal(k.Public) || otherMesh.Public.Equal(k.Public) || other.Public.Equal(otherMesh.Public) {
		t.Fatal("different sessions or meshes share a key")
	}
	if n := len(jsonFiles(t, filepath.Join(home, "sessions", "default"))); n != 2 {
		t.Fatalf("%d key files for mesh default, want 2", n)
	}
}

func TestLoadConcurrentGoroutines(t *testing.T) {
	home := t.TempDir()
	stores := []*Keystore{OpenKeystore(home, nil), OpenKeystore(home, nil)}
	keys := make([]*Key, 16)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = stores[i%2].Load("default", session1) })
	}
	wg.Wait()
	for i, k := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		assertSameKey(t, k, keys[0])
	}
}

func TestKeyFile(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	k := load(t, OpenKeystore(home, nil), "default", session1)

	modes := map[string]fs.FileMode{
		home:                            fs.ModeDir | 0o700,
		filepath.Join(home, "sessions"): fs.ModeDir | 0o700,
		filepath.Join(home, "sessions", "default"):                   fs.ModeDir | 0o700,
		filepath.Join(home, "sessions", "default", session1+".json"): 0o600,
		filepath.Join(home, "sessions", "default", session1+".lock"): 0o600,
	}
	for path, want := range modes {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode(), want)
		}
	}

	path, err := OpenKeystore(home, nil).Path("default", session1)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, "sessions", "default", session1+".json"); path != want {
		t.Fatalf("Path = %s, want %s", path, want)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version":    1.0,
		"mesh":       "default",
		"session_id": session1,
		"public_key": hex.EncodeToString(k.Public),
		"secret_key": hex.EncodeToString(k.Private),
		"created_at": k.CreatedAt.Format(time.RFC3339Nano),
	}
	if len(fields) != len(want) {
		t.Errorf("key file has fields %v, want %v", fields, want)
	}
	for name, v := range want {
		if fields[name] != v {
			t.Errorf("key file field %s = %v, want %v", name, fields[name], v)
		}
	}
	created, err := time.Parse(time.RFC3339Nano, fields["created_at"].(string))
	if err != nil || time.Since(created) > time.Hour || created.Location() != time.UTC {
		t.Errorf("created_at %v, %v: want a recent UTC time", fields["created_at"], err)
	}
}

func TestLoadLeavesExistingParents(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(home, "sessions"), 0o755); err != nil {
		t.Fatal(err)
	}
	load(t, OpenKeystore(home, nil), "default", session1)
	for path, want := range map[string]fs.FileMode{
		home:                            0o755,
		filepath.Join(home, "sessions"): 0o755,
		filepath.Join(home, "sessions", "default"): 0o700,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
		}
	}
}

// jsonFiles lists the key files in dir.
func jsonFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	return names
}

const (
	processHomeEnv    = "IDENTITY_TEST_PROCESS_HOME"
	processMeshEnv    = "IDENTITY_TEST_PROCESS_MESH"
	processSessionEnv = "IDENTITY_TEST_PROCESS_SESSION"
)

// TestHelperProcess is not a test: TestLoadAcrossProcesses runs the test
// binary with this test selected to get a process that loads one key.
func TestHelperProcess(t *testing.T) {
	home := os.Getenv(processHomeEnv)
	if home == "" {
		t.Skip("only run as a child process of TestLoadAcrossProcesses")
	}
	// Wait until the parent closes stdin, so that all children race at once.
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	k, err := OpenKeystore(home, nil).Load(os.Getenv(processMeshEnv), os.Getenv(processSessionEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("public=%x\n", k.Public)
	os.Exit(0)
}

func TestLoadAcrossProcesses(t *testing.T) {
	const n = 12
	home := t.TempDir()
	type child struct {
		cmd         *exec.Cmd
		stdin       io.Closer
		out, stderr bytes.Buffer
	}
	children := make([]*child, n)
	for i := range children {
		c := &child{cmd: exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$")}
		c.cmd.Env = append(os.Environ(), processHomeEnv+"="+home, processMeshEnv+"=default", processSessionEnv+"="+session1)
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.stderr
		stdin, err := c.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.stdin = stdin
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children[i] = c
	}
	for _, c := range children {
		c.stdin.Close()
	}
	var publics []string
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, c.stderr.String())
		}
		var pub string
		for sc := bufio.NewScanner(&c.out); sc.Scan(); {
			if v, ok := strings.CutPrefix(sc.Text(), "public="); ok {
				pub = v
			}
		}
		if pub == "" {
			t.Fatalf("process %d printed no key: %q", i, c.out.String())
		}
		publics = append(publics, pub)
	}

	want := hex.EncodeToString(load(t, OpenKeystore(home, nil), "default", session1).Public)
	for i, pub := range publics {
		if pub != want {
			t.Errorf("process %d got key %s, want %s", i, pub, want)
		}
	}
	dir := filepath.Join(home, "sessions", "default")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{session1 + ".json", session1 + ".lock"}; !slices.Equal(names, want) {
		t.Fatalf("mesh directory holds %v, want %v", names, want)
	}
}

var asideName = regexp.MustCompile(`^` + session1 + `\.json\.corrupt-\d{8}T\d{6}\.\d{9}Z$`)

func TestLoadCorrupt(t *testing.T) {
	valid := func(mesh, session, label string) []byte {
		k := testKey(t, label)
		k.Mesh, k.SessionID = mesh, session
		data, err := marshalKeyFile(k)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	good := valid("default", session1, "corrupt")
	var mismatched map[string]any
	if err := json.Unmarshal(good, &mismatched); err != nil {
		t.Fatal(err)
	}
	mismatched["public_key"] = hex.EncodeToString(testKey(t, "another").Public)
	mismatchedData, err := json.Marshal(mismatched)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("\x00\xff not a key file")},
		{"empty", nil},
		{"truncated json", good[:len(good)/2]},
		{"mismatched public and secret key", mismatchedData},
		{"wrong mesh inside", valid("other", session1, "corrupt")},
		{"wrong session inside", valid("default", session2, "corrupt")},
		{"unsupported version", bytes.Replace(good, []byte(`"version": 1`), []byte(`"version": 2`), 1)},
		{"too large", append(bytes.Repeat([]byte(" "), maxKeyFileSize), good...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, logs := keystoreWithLog(t)
			path, err := ks.Path("default", session1)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			aside := loadReplacesCorrupt(t, ks, logs, path)
			got, err := os.ReadFile(aside)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Fatalf("moved-aside file holds %q, want the original %q", got, tt.data)
			}
		})
	}

	t.Run("directory", func(t *testing.T) {
		// Tests run as root, so a chmod 000 file would still be readable; a
		// directory in place of the key file is unreadable for everyone.
		ks, logs := keystoreWithLog(t)
		path, err := ks.Path("default", session1)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, "inside"), []byte("kept"), 0o600); err != nil {
			t.Fatal(err)
		}
		aside := loadReplacesCorrupt(t, ks, logs, path)
		if got, err := os.ReadFile(filepath.Join(aside, "inside")); err != nil || string(got) != "kept" {
			t.Fatalf("moved-aside directory lost its content: %q, %v", got, err)
		}
	})

	t.Run("symlink", func(t *testing.T) {
		// A key file must not be read through a link to somewhere else.
		ks, logs := keystoreWithLog(t)
		path, err := ks.Path("default", session1)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(t.TempDir(), "elsewhere.json")
		if err := os.WriteFile(target, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		aside := loadReplacesCorrupt(t, ks, logs, path)
		if got, err := os.Readlink(aside); err != nil || got != target {
			t.Fatalf("moved-aside link points to %q, %v; want %q", got, err, target)
		}
		if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, good) {
			t.Fatalf("link target changed: %v", err)
		}
	})
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes the JSON log records written so far.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var recs []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func keystoreWithLog(t *testing.T) (*Keystore, *logBuffer) {
	t.Helper()
	logs := new(logBuffer)
	return OpenKeystore(t.TempDir(), slog.New(slog.NewJSONHandler(logs, nil))), logs
}

// loadReplacesCorrupt loads the key whose file at path is unusable and checks
// that the file was moved aside with a warning and replaced by a stable new
// key. It returns the moved-aside path.
func loadReplacesCorrupt(t *testing.T, ks *Keystore, logs *logBuffer, path string) string {
	t.Helper()
	k := load(t, ks, "default", session1)
	if k.Public.Equal(testKey(t, "corrupt").Public) {
		t.Fatal("Load returned the key of an unusable file")
	}
	assertSameKey(t, load(t, ks, "default", session1), k)

	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var asides []string
	for _, e := range entries {
		if asideName.MatchString(e.Name()) {
			asides = append(asides, filepath.Join(dir, e.Name()))
		}
	}
	if len(asides) != 1 {
		t.Fatalf("moved-aside files %v in %v, want exactly one", asides, entries)
	}

	recs := logs.records(t)
	if len(recs) != 1 {
		t.Fatalf("logged %v, want one warning", recs)
	}
	r := recs[0]
	want := map[string]any{"level": "WARN", "mesh": "default", "session": session1, "path": path, "moved_to": asides[0]}
	for name, v := range want {
		if r[name] != v {
			t.Errorf("warning field %s = %v, want %v", name, r[name], v)
		}
	}
	if e, _ := r["err"].(string); e == "" {
		t.Errorf("warning %v has no err", r)
	}
	return asides[0]
}

func TestLoadRefusesUnsafeNames(t *testing.T) {
	tests := []struct{ mesh, session string }{
		{"../x", session1},
		{"..", session1},
		{".", session1},
		{"a/b", session1},
		{"/etc", session1},
		{"/tmp/x", session1},
		{"a\x00b", session1},
		{"Default", session1},
		{"DEFAULT", session1},
		{strings.Repeat("a", 65), session1},
		{strings.Repeat("a", 4096), session1},
		{"d\u0435fault", session1},   // Cyrillic "е"
		{"default\u2215x", session1}, // division slash
		{"", session1},
		{"default", "../" + session1},
		{"default", "../../../../../../../../etc/passwd00"},
		{"default", "3f2b8c1e-7a4d-4e6f-9b0a/1c2d3e4f5a6b"},
		{"default", "3f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6/"},
		{"default", "/3f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6b"},
		{"default", "3f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6\x00"},
		{"default", "３f2b8c1e-7a4d-4e6f-9b0a-1c2d3e4f5a6b"}, // fullwidth digit
		{"default", "urn:uuid:" + session1},
		{"default", "{" + session1 + "}"},
		{"default", strings.ReplaceAll(session1, "-", "")},
		{"default", ""},
		{"default", ".."},
	}
	root := t.TempDir()
	home := filepath.Join(root, "home")
	ks := OpenKeystore(home, nil)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%q", tt.mesh, tt.session), func(t *testing.T) {
			if k, err := ks.Load(tt.mesh, tt.session); err == nil {
				t.Errorf("Load accepted it and returned %v", k)
			}
			if p, err := ks.Path(tt.mesh, tt.session); err == nil {
				t.Errorf("Path accepted it and returned %s", p)
			}
		})
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("refused loads created %v", entries)
	}
	if _, err := OpenKeystore("", nil).Load("default", session1); err == nil {
		t.Fatal("a keystore without a home loaded a key")
	}
}

const (
	fuzzMesh    = "fuzz"
	fuzzSession = "5b0e3f52-8d3c-4d2a-9f61-2c7a4e9b1d07"
)

func FuzzParseKeyFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseKeyFile(data, fuzzMesh, fuzzSession)
		if err != nil {
			return
		}
		if k.Mesh != fuzzMesh || k.SessionID != fuzzSession || k.Ephemeral {
			t.Fatalf("parsed key %v has wrong names", k)
		}
		if !bytes.Equal(ed25519.NewKeyFromSeed(k.Private.Seed()), k.Private) || !k.Private.Public().(ed25519.PublicKey).Equal(k.Public) {
			t.Fatalf("parsed key %v is inconsistent", k)
		}
		if _, err := X25519PublicKey(k.Public); err != nil {
			t.Fatalf("parsed key %v has an unusable public key: %v", k, err)
		}
		again, err := marshalKeyFile(k)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := parseKeyFile(again, fuzzMesh, fuzzSession)
		if err != nil {
			t.Fatalf("re-encoded key file does not parse: %v\n%s", err, again)
		}
		assertSameKey(t, k2, k)
	})
}

func TestParseKeyFileCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseKeyFile")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 4 {
		t.Fatalf("%s holds %d seeds, want at least 4", dir, len(entries))
	}
	var parsed, refused int
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
		body, ok2 := strings.CutSuffix(body, ")\n")
		if !ok || !ok2 {
			t.Fatalf("%s is not a one-value corpus file", e.Name())
		}
		data, err := strconv.Unquote(body)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if _, err := parseKeyFile([]byte(data), fuzzMesh, fuzzSession); err == nil {
			parsed++
		} else {
			refused++
		}
	}
	if parsed == 0 || refused == 0 {
		t.Fatalf("corpus has %d valid and %d invalid key files, want both kinds", parsed, refused)
	}
}

func TestParseKeyFileErrorsHideSecret(t *testing.T) {
	k := testKey(t, "parse errors")
	k.Mesh, k.SessionID = fuzzMesh, fuzzSession
	good, err := marshalKeyFile(k)
	if err != nil {
		t.Fatal(err)
	}
	secret := hex.EncodeToString(k.Private)
	cases := map[string][]byte{
		"bad hex":          bytes.Replace(good, []byte(secret), []byte("zz"+secret[2:]), 1),
		"short secret":     bytes.Replace(good, []byte(secret), []byte(secret[:100]), 1),
		"wrong public key": bytes.Replace(good, []byte(`"public_key": "`), []byte(`"public_key": "00`), 1),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseKeyFile(data, fuzzMesh, fuzzSession)
			if err == nil {
				t.Fatal("parsed")
			}
			assertNoSecret(t, "error", err.Error(), k)
		})
	}
	if _, err := parseKeyFile(good, fuzzMesh, fuzzSession); err != nil {
		t.Fatalf("valid key file refused: %v", err)
	}
	if _, err := parseKeyFile(good[:len(good)-3], fuzzMesh, fuzzSession); err == nil {
		t.Fatal("parsed a truncated key file")
	}
}
