package fakemodel

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func post(t *testing.T, s *Server, path string, body any) *http.Response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.URL()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
	return resp
}

type event struct {
	name string
	data map[string]any
}

// readStream parses a server-sent event stream.
func readStream(t *testing.T, r io.Reader) []event {
	t.Helper()
	var events []event
	var cur event
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatalf("data line %q: %v", line, err)
			}
		case line == "":
			if cur.name != "" {
				if cur.data["type"] != cur.name {
					t.Errorf("event %s carries data of type %v", cur.name, cur.data["type"])
				}
				events = append(events, cur)
			}
			cur = event{}
		}
	}
	return events
}

// answer is what a streamed message amounts to.
type answer struct {
	stop, text, toolID, toolName string
	input                        map[string]any
}

func collect(t *testing.T, events []event) answer {
	t.Helper()
	var names []string
	var a answer
	var partial strings.Builder
	for _, e := range events {
		names = append(names, e.name)
		switch e.name {
		case "content_block_start":
			cb := e.data["content_block"].(map[string]any)
			if cb["type"] == "tool_use" {
				a.toolID, a.toolName = cb["id"].(string), cb["name"].(string)
			}
		case "content_block_delta":
			d := e.data["delta"].(map[string]any)
			switch d["type"] {
			case "text_delta":
				a.text += d["text"].(string)
			case "input_json_delta":
				partial.WriteString(d["partial_json"].(string))
			}
		case "message_delta":
			a.stop = e.data["delta"].(map[string]any)["stop_reason"].(string)
		}
	}
	want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if !slices.Equal(names, want) {
		t.Fatalf("events %v, want %v", names, want)
	}
	if a.toolID != "" {
		if err := json.Unmarshal([]byte(partial.String()), &a.input); err != nil {
			t.Fatalf("tool input %q: %v", partial.String(), err)
		}
	}
	return a
}

func user(content any) map[string]any { return map[string]any{"role": "user", "content": content} }

func messages(msgs ...map[string]any) map[string]any {
	return map[string]any{"model": "m", "stream": true, "messages": msgs, "tools": []any{map[string]any{"name": "echo"}}}
}

func TestScriptedConversation(t *testing.T) {
	s := start(t)
	s.Script("a", CallTool("echo", map[string]any{"say": "hi"}), CallTool("echo", nil), Text("done"))
	prompt := user([]any{
		map[string]any{"type": "text", "text": "<system-reminder>context</system-reminder>"},
		map[string]any{"type": "text", "text": Marker("a") + " go"},
	})

	first := collect(t, readStream(t, post(t, s, "/v1/messages?beta=true", messages(prompt)).Body))
	if first.stop != "tool_use" || first.toolName != "echo" || first.input["say"] != "hi" {
		t.Fatalf("turn 0: %+v", first)
	}

	call := map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": first.toolID, "name": "echo", "input": first.input}}}
	result := user([]any{map[string]any{"type": "tool_result", "tool_use_id": first.toolID, "content": []any{map[string]any{"type": "text", "text": "said hi"}}}})
	second := collect(t, readStream(t, post(t, s, "/v1/messages", messages(prompt, call, result)).Body))
	if second.toolName != "echo" || second.toolID == first.toolID || len(second.input) != 0 {
		t.Fatalf("turn 1: %+v (turn 0 used id %s)", second, first.toolID)
	}

	// A side request quoting the prompt, while the conversation is under
	// way, gets the side answer and does not consume a turn.
	side := collect(t, readStream(t, post(t, s, "/v1/messages", messages(prompt, call, result, user("Write a title for this conversation."))).Body))
	if side.stop != "end_turn" || side.text != SideText {
		t.Fatalf("side request: %+v", side)
	}

	call2 := map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": second.toolID, "name": "echo", "input": map[string]any{}}}}
	result2 := user([]any{map[string]any{"type": "tool_result", "tool_use_id": second.toolID, "content": "boom", "is_error": true}})
	third := collect(t, readStream(t, post(t, s, "/v1/messages", messages(prompt, call, result, call2, result2)).Body))
	if third.stop != "end_turn" || third.text != "done" {
		t.Fatalf("turn 2: %+v", third)
	}

	got := s.ToolResults("a")
	want := []ToolResult{
		{Script: "a", ToolUseID: first.toolID, Name: "echo", Input: json.RawMessage(`{"say":"hi"}`), Text: "said hi"},
		{Script: "a", ToolUseID: second.toolID, Name: "echo", Input: json.RawMessage(`{}`), Text: "boom", IsError: true},
	}
	if len(got) != len(want) {
		t.Fatalf("tool results %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].ToolUseID != want[i].ToolUseID || got[i].Name != want[i].Name || string(got[i].Input) != string(want[i].Input) ||
			got[i].Text != want[i].Text || got[i].IsError != want[i].IsError {
			t.Errorf("tool result %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	reqs := s.ScriptRequests("a")
	if len(reqs) != 3 || reqs[0].Turn != 0 || reqs[1].Turn != 1 || reqs[2].Turn != 2 || !reqs[0].HasTool("echo") {
		t.Errorf("script requests: %+v", reqs)
	}
	if p := s.Problems(); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
}

func TestSideRequests(t *testing.T) {
	s := start(t)
	s.Script("a", Text("scripted"))

	plain := collect(t, readStream(t, post(t, s, "/v1/messages", messages(user("quota"))).Body))
	if plain.text != SideText {
		t.Errorf("request without a marker: %+v", plain)
	}

	body := messages(user(Marker("a")))
	body["stream"] = false
	var msg struct {
		Content    []struct{ Type, Text string }
		StopReason string `json:"stop_reason"`
	}
	if err := json.NewDecoder(post(t, s, "/v1/messages", body).Body).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "scripted" || msg.StopReason != "end_turn" {
		t.Errorf("non-streamed request: %+v", msg)
	}

	var count map[string]int
	if err := json.NewDecoder(post(t, s, "/v1/messages/count_tokens", messages(user("x"))).Body).Decode(&count); err != nil {
		t.Fatal(err)
	}
	if count["input_tokens"] <= 0 {
		t.Errorf("count_tokens: %v", count)
	}
	if len(s.Requests()) != 3 {
		t.Errorf("%d requests recorded, want 3", len(s.Requests()))
	}
	if p := s.Problems(); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
}

func TestProblems(t *testing.T) {
	s := start(t)
	s.Script("short", Text("only"))
	collect(t, readStream(t, post(t, s, "/v1/messages", messages(user(Marker("unknown")))).Body))
	done := map[string]any{"role": "assistant", "content": "only"}
	collect(t, readStream(t, post(t, s, "/v1/messages", messages(user(Marker("short")), done, user([]any{
		map[string]any{"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"},
	}))).Body))
	p := s.Problems()
	if len(p) != 2 || !strings.Contains(p[0], `"unknown"`) || !strings.Contains(p[1], `"short" has 1 turns`) {
		t.Errorf("problems: %q", p)
	}
}
