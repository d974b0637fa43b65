package claudecode

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigPaths(t *testing.T) {
	tests := []struct {
		name                string
		env                 map[string]string
		wantConfig, wantRun string
		wantErr             bool
	}{
		{name: "home", env: map[string]string{"HOME": "/home/u"}, wantConfig: "/home/u/.claude", wantRun: "/home/u/.claude.json"},
		{name: "config dir", env: map[string]string{"HOME": "/home/u", "CLAUDE_CONFIG_DIR": "/cfg"}, wantConfig: "/cfg", wantRun: "/cfg/.claude.json"},
		{name: "config dir without home", env: map[string]string{"CLAUDE_CONFIG_DIR": "/cfg"}, wantConfig: "/cfg", wantRun: "/cfg/.claude.json"},
		{name: "nothing", env: map[string]string{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			config, err := ConfigDir(getenv)
			if (err != nil) != tt.wantErr || config != tt.wantConfig {
				t.Errorf("ConfigDir = %q, %v; want %q (error %v)", config, err, tt.wantConfig, tt.wantErr)
			}
			state, err := StateFile(getenv)
			if (err != nil) != tt.wantErr || state != tt.wantRun {
				t.Errorf("StateFile = %q, %v; want %q (error %v)", state, err, tt.wantRun, tt.wantErr)
			}
		})
	}
}

func TestProjectKey(t *testing.T) {
	long := "/home/u/" + strings.Repeat("deep.dir_", 30)
	tests := []struct {
		cwd, want string
	}{
		{"/home/u/project", "-home-u-project"},
		{"/home/u/my project.v2/src_main", "-home-u-my-project-v2-src-main"},
		{"/tmp/a~b@c+d=e", "-tmp-a-b-c-d-e"},
		{"/home/u/café", "-home-u-caf-"},         // one UTF-16 code unit: one dash
		{"/home/u/x🚀y", "-home-u-x--y"},          // a surrogate pair: two dashes
		{"/Home/U/Mixed123", "-Home-U-Mixed123"}, // case is kept
		{long, sanitize(long)[:200] + "-" + "6osvy3"},
	}
	for _, tt := range tests {
		if got := ProjectKey(tt.cwd); got != tt.want {
			t.Errorf("ProjectKey(%q) = %q, want %q", tt.cwd, got, tt.want)
		}
	}
}

// The hash appended to long keys is the 32-bit rolling hash h = 31h + c,
// made positive.
func TestPathHash(t *testing.T) {
	tests := []struct {
		s    string
		want int64
	}{
		{"", 0},
		{"a", 97},
		{"hello", 99162322},
		{"polygenelubricants", 1 << 31}, // hashes to the smallest int32
		{"😀", 1772899},                  // over the two code units
	}
	for _, tt := range tests {
		if got := pathHash(tt.s); got != tt.want {
			t.Errorf("pathHash(%q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}

const (
	id1 = "0b6f6c1e-3f0a-4f43-9d58-0e2b5a0f7a01"
	id2 = "1c7e7d2f-4a1b-4e54-8e69-1f3c6b1a8b02"
	id3 = "2d8f8e3a-5b2c-4f65-9f7a-2a4d7c2b9c03"
	id4 = "3e9a9f4b-6c3d-4a76-8a8b-3b5e8d3cad04"
)

// writeTranscript writes a transcript whose lines record cwd, modified at
// mod.
func writeTranscript(t *testing.T, dir, name, cwd string, mod time.Time) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	lines := `{"type":"summary","summary":"no cwd here"}` + "\n" +
		`{"type":"user","cwd":"` + cwd + `","message":{"role":"user","content":"hi"}}` + "\n"
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestLatestSessionPicksNewest(t *testing.T) {
	config := t.TempDir()
	cwd := "/work/my project.v2"
	dir := filepath.Join(config, "projects", "-work-my-project-v2")
	base := time.Now().Add(-time.Hour)
	writeTranscript(t, dir, id1+".jsonl", cwd, base)
	writeTranscript(t, dir, id2+".jsonl", cwd, base.Add(2*time.Minute))
	writeTranscript(t, dir, id3+".jsonl", cwd, base.Add(time.Minute))
	// Newer, but not transcripts of a session.
	writeTranscript(t, dir, "notes.jsonl", cwd, base.Add(time.Hour))
	writeTranscript(t, dir, strings.ToUpper(id3)+".jsonl", cwd, base.Add(time.Hour))
	writeTranscript(t, dir, id3+".json", cwd, base.Add(time.Hour))
	writeTranscript(t, dir, "00000000-0000-0000-0000-000000000000.jsonl", cwd, base.Add(time.Hour))
	for _, name := range []string{id4 + ".jsonl", id3} { // directories, one named like a transcript, one like a session
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Another directory's newer session.
	writeTranscript(t, filepath.Join(config, "projects", "-work-my-project-v3"), id1+".jsonl", "/work/my project.v3", base.Add(time.Hour))

	got, err := LatestSession(config, cwd)
	if err != nil || got != id2 {
		t.Fatalf("LatestSession = %q, %v; want %s", got, err, id2)
	}
}

func TestLatestSessionNone(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, config string)
	}{
		{"no projects directory", func(t *testing.T, config string) {}},
		{"no directory for the project", func(t *testing.T, config string) {
			writeTranscript(t, filepath.Join(config, "projects", "-elsewhere"), id1+".jsonl", "/elsewhere", time.Now())
		}},
		{"no transcript in it", func(t *testing.T, config string) {
			writeTranscript(t, filepath.Join(config, "projects", "-work-p"), "history.jsonl", "/work/p", time.Now())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config := t.TempDir()
			tt.setup(t, config)
			got, err := LatestSession(config, "/work/p")
			if !errors.Is(err, ErrNoSession) || got != "" {
				t.Fatalf("LatestSession = %q, %v; want ErrNoSession", got, err)
			}
			if !strings.Contains(err.Error(), "/work/p") {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

// A key over 200 characters ends in a hash; whatever the hash, the
// directories that share the first 200 characters are searched for
// transcripts recorded in the same directory.
func TestLatestSessionLongPath(t *testing.T) {
	config := t.TempDir()
	cwd := "/work/" + strings.Repeat("a-long_directory.name/", 12) + "end"
	other := cwd[:len(cwd)-3] + "other" // same first 200 characters
	prefix := sanitize(cwd)[:200]
	if !strings.HasPrefix(sanitize(other), prefix) {
		t.Fatal("test paths do not share their first 200 characters")
	}
	projects := filepath.Join(config, "projects")
	base := time.Now().Add(-time.Hour)
	writeTranscript(t, filepath.Join(projects, prefix+"-somehash"), id1+".jsonl", cwd, base)
	writeTranscript(t, filepath.Join(projects, prefix+"-otherhash"), id2+".jsonl", other, base.Add(time.Minute))
	writeTranscript(t, filepath.Join(projects, prefix+"x-y"), id3+".jsonl", cwd, base.Add(2*time.Minute)) // not "prefix-"

	got, err := LatestSession(config, cwd)
	if err != nil || got != id1 {
		t.Fatalf("LatestSession = %q, %v; want %s from the directory with the unknown hash", got, err, id1)
	}

	// The exact key counts without looking into the transcripts.
	writeTranscript(t, filepath.Join(projects, ProjectKey(cwd)), id3+".jsonl", "", base.Add(3*time.Minute))
	got, err = LatestSession(config, cwd)
	if err != nil || got != id3 {
		t.Fatalf("LatestSession = %q, %v; want %s from the exact key", got, err, id3)
	}

	got, err = LatestSession(config, cwd+"/deeper")
	if !errors.Is(err, ErrNoSession) {
		t.Fatalf("LatestSession of a directory without sessions = %q, %v; want ErrNoSession", got, err)
	}
}

// Claude Code records the directory with symlinks resolved.
func TestLatestSessionThroughSymlink(t *testing.T) {
	config, root := t.TempDir(), t.TempDir()
	real := filepath.Join(root, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(real)
	if err != nil {
		t.Fatal(err)
	}
	writeTranscript(t, filepath.Join(config, "projects", ProjectKey(resolved)), id2+".jsonl", resolved, time.Now())
	got, err := LatestSession(config, link)
	if err != nil || got != id2 {
		t.Fatalf("LatestSession(%s) = %q, %v; want %s", link, got, err, id2)
	}
}

func TestTranscriptCwd(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"first line", `{"cwd":"/a"}` + "\n", "/a"},
		{"later line", `{"type":"summary"}` + "\n" + `[1,2]` + "\n" + `{"cwd":"/b"}` + "\n", "/b"},
		{"none", `{"type":"summary"}` + "\n", ""},
		{"empty", "", ""},
		{"cut short", `{"type":"summary"}` + "\n" + `{"cwd":"/c`, ""},
		{"garbage", "not json\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := transcriptCwd(path)
			if err != nil || got != tt.want {
				t.Fatalf("transcriptCwd = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// A session id is a real conversation when Claude Code keeps its
// transcript beside the one a hook names; when either is unknown it
// counts as real, so that nothing real is forgotten.
func TestTranscriptExists(t *testing.T) {
	dir := t.TempDir()
	hook := filepath.Join(dir, id2+".jsonl")
	if err := os.WriteFile(filepath.Join(dir, id1+".jsonl"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hook, id string
		want     bool
	}{
		{hook, id1, true},
		{hook, id3, false},
		{"", id3, true},
		{hook, "", true},
	} {
		if got := TranscriptExists(tc.hook, tc.id); got != tc.want {
			t.Errorf("TranscriptExists(%q, %q) = %v, want %v", tc.hook, tc.id, got, tc.want)
		}
	}
}
