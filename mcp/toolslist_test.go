package mcp

import (
	"encoding/json"
	"slices"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// tools/list, as JSON on the wire: every tool has a description, an object
// input schema, an object output schema, a title, hints that say what it
// changes and whether it reaches other sessions, and is always loaded.
func TestToolsList(t *testing.T) {
	ss := startSession(t, nil, "alice", func(cfg *Config) { cfg.Endpoint = staticEndpoint(closedURL(t), "") })
	res, err := ss.c.ListTools(waitCtx(t), mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Tools []struct {
			Name         string         `json:"name"`
			Description  string         `json:"description"`
			InputSchema  map[string]any `json:"inputSchema"`
			OutputSchema map[string]any `json:"outputSchema"`
			Annotations  map[string]any `json:"annotations"`
			Meta         map[string]any `json:"_meta"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	readOnly := map[string]bool{"send_dm": false, "list_peers": true, "inbox": false, "clear_inbox": false, "whoami": false, "message_status": true, "history": true}
	destructive := map[string]bool{"clear_inbox": true}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema["type"] != "object" {
			t.Errorf("%s: description %q, input schema %v", tool.Name, tool.Description, tool.InputSchema)
		}
		if tool.OutputSchema["type"] != "object" || tool.OutputSchema["properties"] == nil {
			t.Errorf("%s: output schema %v, want an object schema", tool.Name, tool.OutputSchema)
		}
		if tool.Meta["anthropic/alwaysLoad"] != true {
			t.Errorf("%s: _meta %v, want anthropic/alwaysLoad true", tool.Name, tool.Meta)
		}
		a := tool.Annotations
		if title, _ := a["title"].(string); title == "" {
			t.Errorf("%s: annotations %v lack a title", tool.Name, a)
		}
		want := map[string]any{
			"readOnlyHint":    readOnly[tool.Name],
			"destructiveHint": destructive[tool.Name],
			"openWorldHint":   !readOnly[tool.Name],
		}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("%s: annotation %s = %v, want %v", tool.Name, k, a[k], v)
			}
		}
		if _, ok := a["idempotentHint"].(bool); !ok {
			t.Errorf("%s: annotations %v lack idempotentHint", tool.Name, a)
		}
	}
	slices.Sort(names)
	if want := []string{"ask", "asks", "clear_inbox", "history", "inbox", "join_group", "leave_group", "list_peers", "message_status", "reply", "send_dm", "set_status", "whoami"}; !slices.Equal(names, want) {
		t.Errorf("tools = %v, want %v", names, want)
	}
}
