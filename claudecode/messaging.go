package claudecode

import (
	"context"
	"encoding/json"
	"errors"
	"net"
)

// WriteMessagingSocket writes content as one user message into the Claude
// Code session whose messaging socket is path (EnvMessagingSocket), with
// its token (EnvMessagingToken; "" for none). The protocol is NDJSON: an
// auth line {"type":"auth","token":...} when there is a token, then
// {"type":"user","message":{"role":"user","content":...}}. Claude Code
// answers nothing, so a nil error means the lines were written, not that
// the session took them. ctx bounds the whole exchange.
func WriteMessagingSocket(ctx context.Context, path, token, content string) error {
	if content == "" {
		return errors.New("empty message")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	enc := json.NewEncoder(c)
	if token != "" {
		if err := enc.Encode(struct {
			Type  string `json:"type"`
			Token string `json:"token"`
		}{"auth", token}); err != nil {
			return err
		}
	}
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	return enc.Encode(struct {
		Type    string  `json:"type"`
		Message message `json:"message"`
	}{"user", message{"user", content}})
}
