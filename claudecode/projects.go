package claudecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/claudemesh/claudemesh/identity"
)

// ErrNoSession reports that a directory has no Claude Code session to
// continue.
var ErrNoSession = errors.New("no Claude Code session found")

// maxKey is the length beyond which Claude Code truncates a project key and
// appends a hash of the directory.
const maxKey = 200

// cwdScanLimit bounds how many lines of a transcript are read to find the
// working directory it was recorded in.
const cwdScanLimit = 200

// ProjectKey returns the name of the directory under <config>/projects in
// which Claude Code keeps the transcripts of sessions started in the
// absolute directory cwd: every character but an ASCII letter or digit
// becomes "-" (one per UTF-16 code unit, as Claude Code counts). A name
// longer than 200 characters is cut to 200 and gets "-" and a hash of cwd
// appended; that hash is how Claude Code 2.1.328 computes it, and
// LatestSession does not depend on it.
func ProjectKey(cwd string) string {
	key := sanitize(cwd)
	if len(key) <= maxKey {
		return key
	}
	return key[:maxKey] + "-" + strconv.FormatInt(pathHash(cwd), 36)
}

func sanitize(path string) string {
	var b strings.Builder
	for _, r := range path {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			b.WriteRune(r)
		case r > 0xFFFF:
			b.WriteString("--") // a surrogate pair: two code units
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// pathHash is the absolute value of the 32-bit rolling hash (h = 31h + c
// over the UTF-16 code units) that Claude Code appends to a long key.
func pathHash(s string) int64 {
	var h int32
	for _, c := range utf16.Encode([]rune(s)) {
		h = 31*h + int32(c)
	}
	n := int64(h)
	if n < 0 {
		n = -n
	}
	return n
}

// LatestSession returns the UUID of the session that Claude Code recorded
// last in the directory cwd: the most recently modified transcript
// <uuid>.jsonl in <configDir>/projects/<key>. Files whose name is not a
// session UUID are ignored. It looks under cwd both as given and with
// symlinks resolved, as Claude Code records the resolved path.
//
// When the key of cwd is longer than 200 characters, directories whose
// names share its first 200 characters count too, for their transcripts
// recorded in cwd (the "cwd" field of their lines): that way the lookup
// does not depend on the hash Claude Code appends.
//
// With no session it returns an error matching ErrNoSession.
func LatestSession(configDir, cwd string) (string, error) {
	projects := filepath.Join(configDir, "projects")
	cwds := []string{filepath.Clean(cwd)}
	if real, err := filepath.EvalSymlinks(cwd); err == nil && real != cwds[0] {
		cwds = append(cwds, real)
	}
	var best transcript
	for _, dir := range cwds {
		t, err := latestIn(projects, dir)
		if err != nil {
			return "", err
		}
		if t.id != "" && (best.id == "" || t.newer(best)) {
			best = t
		}
	}
	if best.id == "" {
		return "", fmt.Errorf("%w for %s in %s", ErrNoSession, cwd, filepath.Join(projects, ProjectKey(cwds[len(cwds)-1])))
	}
	return best.id, nil
}

// transcript is one session's transcript file.
type transcript struct {
	id, path string
	mod      time.Time
}

// newer orders transcripts by modification time, then by id so that the
// choice does not depend on the order of a directory listing.
func (t transcript) newer(u transcript) bool {
	if !t.mod.Equal(u.mod) {
		return t.mod.After(u.mod)
	}
	return t.id > u.id
}

// latestIn returns the newest transcript of cwd under projects, or a zero
// transcript when there is none.
func latestIn(projects, cwd string) (transcript, error) {
	key := ProjectKey(cwd)
	best, err := latestTranscript(filepath.Join(projects, key), nil)
	if err != nil {
		return transcript{}, err
	}
	full := sanitize(cwd)
	if len(full) <= maxKey {
		return best, nil
	}
	entries, err := os.ReadDir(projects)
	if errors.Is(err, fs.ErrNotExist) {
		return best, nil
	}
	if err != nil {
		return transcript{}, fmt.Errorf("find sessions of %s: %w", cwd, err)
	}
	prefix := full[:maxKey] + "-"
	for _, e := range entries {
		if !e.IsDir() || e.Name() == key || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		t, err := latestTranscript(filepath.Join(projects, e.Name()), func(path string) (bool, error) {
			got, err := transcriptCwd(path)
			return got == cwd, err
		})
		if err != nil {
			return transcript{}, err
		}
		if t.id != "" && (best.id == "" || t.newer(best)) {
			best = t
		}
	}
	return best, nil
}

// latestTranscript returns the newest transcript in dir that keep accepts
// (all when keep is nil), or a zero transcript when there is none.
func latestTranscript(dir string, keep func(path string) (bool, error)) (transcript, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return transcript{}, nil
	}
	if err != nil {
		return transcript{}, fmt.Errorf("list sessions: %w", err)
	}
	var best transcript
	for _, e := range entries {
		stem, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if id, err := identity.ParseSessionID(stem); err != nil || id != stem {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return transcript{}, fmt.Errorf("list sessions: %w", err)
		}
		t := transcript{id: stem, path: filepath.Join(dir, e.Name()), mod: info.ModTime()}
		if best.id != "" && !t.newer(best) {
			continue
		}
		if keep != nil {
			ok, err := keep(t.path)
			if err != nil {
				return transcript{}, err
			}
			if !ok {
				continue
			}
		}
		best = t
	}
	return best, nil
}

// transcriptCwd returns the working directory a transcript was recorded in:
// the "cwd" field of the first of its lines that has one, "" if none of its
// first lines has one.
func transcriptCwd(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read session transcript: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	for range cwdScanLimit {
		var line json.RawMessage
		if err := dec.Decode(&line); err != nil {
			var syntax *json.SyntaxError
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &syntax) {
				return "", nil // the end, or a line being written
			}
			return "", fmt.Errorf("read session transcript %s: %w", path, err)
		}
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var v struct {
			Cwd string `json:"cwd"`
		}
		if json.Unmarshal(line, &v) == nil && v.Cwd != "" {
			return v.Cwd, nil
		}
	}
	return "", nil
}

// TranscriptExists reports whether Claude Code has a transcript of the
// session id in the directory of hookTranscript, the transcript_path a
// hook was given: whether id was ever a real conversation of that project
// rather than a throwaway id. With either empty it cannot tell and reports
// true.
func TranscriptExists(hookTranscript, id string) bool {
	if hookTranscript == "" || id == "" {
		return true // cannot tell: assume it was real
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(hookTranscript), id+".jsonl"))
	return err == nil
}
