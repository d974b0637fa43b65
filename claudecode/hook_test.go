package claudecode

import (
	"strings"
	"testing"
)

// sessionStartSeeds are the seed corpus of FuzzParseSessionStart.
var sessionStartSeeds = []string{
	`{"session_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","source":"startup","cwd":"/p","transcript_path":"/c/projects/-p/7c9e6679-7425-40de-944b-e07fc1f90ae7.jsonl","hook_event_name":"SessionStart"}`,
	`{"session_id":"7C9E6679-7425-40DE-944B-E07FC1F90AE7"}`,
	`{"session_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","source":"Clear"}`,
	`{"session_id":"../../etc/passwd"}`,
	`{"session_id":""}`,
	`{}`,
	`[]`,
	`not json`,
	``,
}

func TestSessionStartSeeds(t *testing.T) {
	if len(sessionStartSeeds) == 0 {
		t.Fatal("no seeds for FuzzParseSessionStart")
	}
}

func TestParseSessionStart(t *testing.T) {
	const id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	ev, err := ParseSessionStart([]byte(sessionStartSeeds[0]))
	if err != nil {
		t.Fatal(err)
	}
	want := SessionStart{SessionID: id, Source: "startup", CWD: "/p", TranscriptPath: "/c/projects/-p/" + id + ".jsonl"}
	if ev != want {
		t.Errorf("ParseSessionStart = %+v, want %+v", ev, want)
	}
	if ev, err := ParseSessionStart([]byte(sessionStartSeeds[1])); err != nil || ev.SessionID != id {
		t.Errorf("upper-case id: %+v, %v; want the canonical form %s", ev, err, id)
	}

	for _, tc := range []struct {
		name, input, want string
	}{
		{"source not a word", `{"session_id":"` + id + `","source":"Clear"}`, "source"},
		{"long source", `{"session_id":"` + id + `","source":"` + strings.Repeat("a", 33) + `"}`, "source"},
		{"path as id", `{"session_id":"../../etc/passwd"}`, "session_id"},
		{"no id", `{}`, "session_id"},
		{"not an object", `[]`, "not the JSON"},
		{"not JSON", `not json`, "not the JSON"},
		{"too large", `{"session_id":"` + id + `","cwd":"` + strings.Repeat("x", MaxHookInput) + `"}`, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ev, err := ParseSessionStart([]byte(tc.input)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseSessionStart = %+v, %v; want an error about %s", ev, err, tc.want)
			}
		})
	}
}

// What ParseSessionStart accepts has a canonical session id and a source
// of one lowercase word, whatever the input.
func FuzzParseSessionStart(f *testing.F) {
	for _, s := range sessionStartSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseSessionStart(data)
		if err != nil {
			return
		}
		if len(ev.SessionID) != 36 || strings.ToLower(ev.SessionID) != ev.SessionID || strings.ContainsAny(ev.SessionID, "/.") {
			t.Errorf("accepted session id %q", ev.SessionID)
		}
		if ev.Source != "" && !validWord(ev.Source) {
			t.Errorf("accepted source %q", ev.Source)
		}
	})
}
