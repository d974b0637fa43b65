// Package fakemodel is a scripted stand-in for the Anthropic Messages API,
// served on loopback, that the end-to-end tests point the real Claude Code
// binary at (ANTHROPIC_BASE_URL). It decides what "the model" does, so a
// test can make Claude Code call claudemesh's MCP tools in a known order and
// then read back exactly what Claude Code sent to the model: the tools it
// offered, the tool results and the user messages.
//
// A script is a list of turns (CallTool, Text) named by a marker that the
// test puts into the prompt (Marker). A request belongs to the script whose
// marker is in its latest prompt, and the script's turn it gets is the
// number of assistant messages that follow that prompt: the first request of
// a prompt gets turn 0, the request carrying the first tool result gets
// turn 1, and so on. Requests without a marker, or not continuing a
// scripted prompt (title generation and other side requests Claude Code
// makes), get a short plain text and never consume a turn.
package fakemodel

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Turn is one response of the scripted model.
type Turn struct {
	tool  string
	input json.RawMessage
	text  string
	wait  <-chan struct{} // the answer waits until it is closed
	// from makes the tool input out of the request, as a model that reads
	// its conversation would.
	from func(Request) map[string]any
}

// After returns t answered only once ch is closed (or the request is
// given up): the model is still at work on the turn until then.
func (t Turn) After(ch <-chan struct{}) Turn {
	t.wait = ch
	return t
}

// CallTool is a turn in which the model calls the tool name with input.
func CallTool(name string, input map[string]any) Turn {
	if input == nil {
		input = map[string]any{}
	}
	b, err := json.Marshal(input)
	if err != nil {
		panic(fmt.Sprintf("fakemodel: tool input for %s: %v", name, err))
	}
	return Turn{tool: name, input: b}
}

// CallToolWith is a turn in which the model calls the tool name with the
// input that from makes of the request (for instance an id read from a
// message it was sent).
func CallToolWith(name string, from func(Request) map[string]any) Turn {
	return Turn{tool: name, input: json.RawMessage(`{}`), from: from}
}

// Text is a turn in which the model answers text and ends its turn.
func Text(s string) Turn { return Turn{text: s} }

// String describes the turn for failure messages.
func (t Turn) String() string {
	if t.tool != "" {
		return fmt.Sprintf("call %s %s", t.tool, t.input)
	}
	return fmt.Sprintf("text %q", t.text)
}

const markerPrefix = "[script:"

// Marker is the text to put into a prompt so that requests answering it
// follow the script registered under name.
func Marker(name string) string { return markerPrefix + name + "]" }

// SideText is the answer to requests that follow no script.
const SideText = "OK."

// Block is one content block of a message, as Claude Code sent it.
type Block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
}

// ResultText is the text of a tool_result block: its string content, or its
// text blocks joined by newlines.
func (b Block) ResultText() string {
	if len(b.Content) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(b.Content, &s) == nil {
		return s
	}
	var blocks []Block
	if err := json.Unmarshal(b.Content, &blocks); err != nil {
		return string(b.Content)
	}
	var parts []string
	for _, c := range blocks {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// Message is one message of a request's conversation. A string content is
// turned into one text block.
type Message struct {
	Role    string  `json:"role"`
	Content []Block `json:"content"`
}

// UnmarshalJSON accepts content as a string or as blocks.
func (m *Message) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Role, m.Content = raw.Role, nil
	var s string
	if json.Unmarshal(raw.Content, &s) == nil {
		m.Content = []Block{{Type: "text", Text: s}}
		return nil
	}
	if len(raw.Content) == 0 || string(raw.Content) == "null" {
		return nil
	}
	return json.Unmarshal(raw.Content, &m.Content)
}

// Text is the message's text blocks joined by newlines.
func (m Message) Text() string {
	var parts []string
	for _, b := range m.Content {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// Request is one request Claude Code made, as the server recorded it.
type Request struct {
	Method    string
	Path      string
	SessionID string // X-Claude-Code-Session-Id header
	Model     string
	Stream    bool
	Tools     []string // names of the offered tools, in order
	Messages  []Message
	Body      json.RawMessage // the request body as sent
	// Script names the script the request followed, "" for a side request
	// (or a path other than /v1/messages).
	Script string
	// Turn is the index of the script turn it was answered with, -1 when
	// none.
	Turn int
	// ToolUseID is the id of the tool_use block the answer carried, if any.
	ToolUseID string
}

// HasTool reports whether the request offered the tool name.
func (r Request) HasTool(name string) bool { return slices.Contains(r.Tools, name) }

// ToolResult is a tool call the script made and the result Claude Code sent
// back for it.
type ToolResult struct {
	Script    string
	ToolUseID string
	Name      string
	Input     json.RawMessage
	Text      string
	IsError   bool
}

type toolUse struct {
	script, name string
	input        json.RawMessage
}

// Server is the fake Messages API. Its zero value is not usable; call Start.
type Server struct {
	url  string
	http *http.Server
	done chan struct{}

	mu        sync.Mutex
	scripts   map[string][]Turn
	requests  []Request
	uses      map[string]toolUse // tool_use id -> call
	useOrder  []string
	results   map[string]ToolResult // tool_use id -> result seen
	problems  []string
	nextID    int
	closeOnce sync.Once
	closeErr  error
}

// Start serves a fake Messages API on a free loopback port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakemodel: listen: %w", err)
	}
	s := &Server{
		url:     "http://" + ln.Addr().String(),
		done:    make(chan struct{}),
		scripts: make(map[string][]Turn),
		uses:    make(map[string]toolUse),
		results: make(map[string]ToolResult),
	}
	s.http = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		s.http.Serve(ln)
	}()
	return s, nil
}

// URL is the server's base URL, for ANTHROPIC_BASE_URL.
func (s *Server) URL() string { return s.url }

// Close stops the server and waits until it has stopped.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.http.Close()
		<-s.done
	})
	return s.closeErr
}

// Script registers turns under name, after any turns already registered
// under it.
func (s *Server) Script(name string, turns ...Turn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[name] = append(s.scripts[name], turns...)
}

// Requests returns every request recorded so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ScriptRequests returns the requests that followed the script name.
func (s *Server) ScriptRequests(name string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Script == name {
			out = append(out, r)
		}
	}
	return out
}

// ToolResults returns, in call order, the tool calls the script name made
// whose result Claude Code has sent back.
func (s *Server) ToolResults(name string) []ToolResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ToolResult
	for _, id := range s.useOrder {
		if r, ok := s.results[id]; ok && r.Script == name {
			out = append(out, r)
		}
	}
	return out
}

// Problems lists what went wrong on the server's side: unreadable requests,
// unknown scripts, scripts run past their end.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

func (s *Server) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// messagesBody is the part of a Messages API request the server reads.
type messagesBody struct {
	Model    string    `json:"model"`
	Stream   bool      `json:"stream"`
	Messages []Message `json:"messages"`
	Tools    []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{
		Method:    r.Method,
		Path:      r.URL.Path,
		SessionID: r.Header.Get("X-Claude-Code-Session-Id"),
		Body:      body,
		Turn:      -1,
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodHead:
		case strings.HasSuffix(r.URL.Path, "/count_tokens"):
			io.WriteString(w, `{"input_tokens":100}`)
		default:
			io.WriteString(w, `{}`)
		}
		return
	}
	var mb messagesBody
	if err := json.Unmarshal(body, &mb); err != nil {
		s.mu.Lock()
		s.problem("unreadable /v1/messages body: %v", err)
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		apiError(w, http.StatusBadRequest, "fakemodel: "+err.Error())
		return
	}
	req.Model, req.Stream, req.Messages = mb.Model, mb.Stream, mb.Messages
	for _, t := range mb.Tools {
		req.Tools = append(req.Tools, t.Name)
	}

	s.mu.Lock()
	s.noteResults(req.Messages)
	turn := s.choose(&req)
	s.requests = append(s.requests, req)
	msgID := fmt.Sprintf("msg_fake%06d", len(s.requests))
	s.mu.Unlock()
	if turn.wait != nil {
		select {
		case <-turn.wait:
		case <-r.Context().Done():
			return
		}
	}

	if req.Stream {
		stream(w, msgID, req.Model, turn, req.ToolUseID)
	} else {
		whole(w, msgID, req.Model, turn, req.ToolUseID)
	}
}

// noteResults records the tool_result blocks answering the script's calls.
// Called with s.mu held.
func (s *Server) noteResults(msgs []Message) {
	for _, m := range msgs {
		for _, b := range m.Content {
			if b.Type != "tool_result" {
				continue
			}
			use, ok := s.uses[b.ToolUseID]
			if !ok {
				continue
			}
			if _, seen := s.results[b.ToolUseID]; seen {
				continue
			}
			s.results[b.ToolUseID] = ToolResult{
				Script:    use.script,
				ToolUseID: b.ToolUseID,
				Name:      use.name,
				Input:     use.input,
				Text:      b.ResultText(),
				IsError:   b.IsError,
			}
		}
	}
}

// choose picks the answer to req and records the choice in it. Called with
// s.mu held.
func (s *Server) choose(req *Request) Turn {
	name, after, ok := scriptOf(req.Messages)
	if !ok {
		return Text(SideText)
	}
	turns, known := s.scripts[name]
	if !known {
		s.problem("no script named %q", name)
		return Text(SideText)
	}
	i := 0
	for _, m := range req.Messages[after:] {
		if m.Role == "assistant" {
			i++
		}
	}
	req.Script, req.Turn = name, i
	if i >= len(turns) {
		s.problem("script %q has %d turns; request %d asked for turn %d", name, len(turns), len(s.requests), i)
		req.Turn = -1
		return Text("The script has ended.")
	}
	t := turns[i]
	if t.from != nil {
		b, err := json.Marshal(t.from(*req))
		if err != nil {
			s.problem("script %q turn %d: tool input: %v", name, i, err)
			b = []byte(`{}`)
		}
		t.input = b
	}
	if t.tool != "" {
		s.nextID++
		req.ToolUseID = fmt.Sprintf("toolu_fake%06d", s.nextID)
		s.uses[req.ToolUseID] = toolUse{script: name, name: t.tool, input: t.input}
		s.useOrder = append(s.useOrder, req.ToolUseID)
	}
	return t
}

// scriptOf finds the latest user message carrying a marker. It returns the
// script's name and the index of the message after it, and ok only when the
// request continues that prompt: the prompt is the last message, or every
// user message after it carries tool results. Other requests quoting the
// prompt (side requests) are not part of the script.
func scriptOf(msgs []Message) (name string, after int, ok bool) {
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.Role != "user" {
			continue
		}
		text := m.Text()
		start := strings.LastIndex(text, markerPrefix)
		if start < 0 {
			if !hasToolResult(m) {
				return "", 0, false
			}
			continue
		}
		rest := text[start+len(markerPrefix):]
		end := strings.IndexByte(rest, ']')
		if end <= 0 {
			return "", 0, false
		}
		return rest[:end], i + 1, true
	}
	return "", 0, false
}

func hasToolResult(m Message) bool {
	for _, b := range m.Content {
		if b.Type == "tool_result" {
			return true
		}
	}
	return false
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"type":  "error",
		"error": map[string]string{"type": "invalid_request_error", "message": msg},
	})
}

func usage(out int) map[string]int {
	return map[string]int{"input_tokens": 100, "output_tokens": out, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
}

// stream writes t as the server-sent events of a streamed message.
func stream(w http.ResponseWriter, msgID, model string, t Turn, toolUseID string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	event := func(v map[string]any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", v["type"], b)
	}
	event(map[string]any{"type": "message_start", "message": map[string]any{
		"id": msgID, "type": "message", "role": "assistant", "model": model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage(1),
	}})
	stop := "end_turn"
	if t.tool != "" {
		stop = "tool_use"
		event(map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{
			"type": "tool_use", "id": toolUseID, "name": t.tool, "input": map[string]any{},
		}})
		event(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{
			"type": "input_json_delta", "partial_json": string(t.input),
		}})
	} else {
		event(map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		event(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": t.text}})
	}
	event(map[string]any{"type": "content_block_stop", "index": 0})
	event(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]int{"output_tokens": 10}})
	event(map[string]any{"type": "message_stop"})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// whole writes t as one non-streamed message.
func whole(w http.ResponseWriter, msgID, model string, t Turn, toolUseID string) {
	content := []any{map[string]any{"type": "text", "text": t.text}}
	stop := "end_turn"
	if t.tool != "" {
		stop = "tool_use"
		content = []any{map[string]any{"type": "tool_use", "id": toolUseID, "name": t.tool, "input": t.input}}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": msgID, "type": "message", "role": "assistant", "model": model, "content": content,
		"stop_reason": stop, "stop_sequence": nil, "usage": usage(10),
	})
}
