package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/internal/atomicfile"
	"github.com/claudemesh/claudemesh/wire"
)

// Claude Code's hooks keep the session's activity current without the
// model: the prompt hook (UserPromptSubmit) says working, the stop hook
// (Stop) says idle. Each writes the activity file of its claude process;
// the MCP server of that process watches it and tells the broker.

// activityState is the activity file's content.
type activityState struct {
	Activity string    `json:"activity"` // wire.Working or wire.Idle
	At       time.Time `json:"at"`
}

// ActivityFile is the activity file of the claude process running the
// caller, or "" when there is none.
func ActivityFile(home string) string { return runFile(home, activityKind) }

// PublishActivity records, for the MCP server of the claude process running
// the caller, that the session is now working or idle.
func PublishActivity(home, activity string) error {
	if activity != wire.Working && activity != wire.Idle {
		return fmt.Errorf("unknown activity %q", activity)
	}
	proc, err := claudecode.FindProcess()
	if err != nil {
		return fmt.Errorf("find the Claude Code process: %w", err)
	}
	dir := filepath.Join(home, runDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("activity: %w", err)
	}
	b, err := json.Marshal(activityState{Activity: activity, At: time.Now().UTC()})
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, proc.FileName(activityKind)), b, 0o600)
}

// statusWait bounds a status or group request the watcher makes.
const statusWait = 2 * time.Second

// checkActivity tells the broker the activity the hooks last reported, once
// per report; a report the broker did not take is tried again on the next
// check.
func (s *Server) checkActivity() {
	path := s.cfg.ActivityFile
	if path == "" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil || (s.activitySeen != nil && fi.ModTime().Equal(s.activitySeen.ModTime()) && fi.Size() == s.activitySeen.Size()) {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var st activityState
	if err := json.Unmarshal(b, &st); err != nil || (st.Activity != wire.Working && st.Activity != wire.Idle) {
		s.log.Warn("unreadable activity file", "path", path, "err", err)
		s.activitySeen = fi
		return
	}
	c := s.bound().client
	if !c.State().Connected {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusWait)
	defer cancel()
	if err := c.SetStatus(ctx, wire.SetStatus{Activity: st.Activity}); err != nil {
		s.log.Debug("report activity", "activity", st.Activity, "err", err)
		return
	}
	s.activitySeen = fi
	s.log.Debug("activity reported", "activity", st.Activity)
}

// settle brings a newly connected identity up to date, once per identity:
// it joins the groups of CLAUDEMESH_GROUPS and learns from the broker
// whether the session is in do-not-disturb (set by an earlier process).
func (s *Server) settle() {
	b := s.bound()
	s.settleMu.Lock()
	done := s.settled == b
	s.settleMu.Unlock()
	if done || !b.client.State().Connected {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusWait)
	defer cancel()
	for _, g := range s.cfg.Groups {
		if _, err := b.client.JoinGroup(ctx, g); err != nil {
			s.log.Warn("join group", "group", g, "err", err)
			return
		}
	}
	peers, err := b.client.Peers(ctx)
	if err != nil {
		return
	}
	i := slices.IndexFunc(peers, func(p wire.Peer) bool { return string(p.Key) == string(b.key.Public) })
	if i >= 0 {
		s.dnd.Store(peers[i].Availability == wire.DND)
	}
	s.settleMu.Lock()
	s.settled = b
	held := s.held
	s.held = nil
	s.settleMu.Unlock()
	if len(s.cfg.Groups) > 0 {
		s.log.Info("joined groups", "groups", s.cfg.Groups)
	}
	if s.dnd.Load() {
		return
	}
	for _, m := range held {
		if s.inbox.fresh(m.ID) {
			s.pusher.offer(m)
		}
	}
}

// heldMax bounds the DMs held for pushing until the identity is settled;
// beyond it they wait in the inbox.
const heldMax = 64

// offer pushes m, received by identity b, unless the session is in
// do-not-disturb; before b is settled it holds m until it is.
func (s *Server) offer(b *binding, m Message) {
	s.settleMu.Lock()
	if s.settled != b {
		if len(s.held) < heldMax {
			s.held = append(s.held, m)
		}
		s.settleMu.Unlock()
		return
	}
	s.settleMu.Unlock()
	if !s.dnd.Load() {
		s.pusher.offer(m)
	}
}
