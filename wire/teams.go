package wire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Groups and presence: a session joins named groups of its mesh (JoinGroup,
// LeaveGroup), a group send (Send with Group and Boxes) carries one sealed
// box per recipient, and a session says what it is doing (SetStatus).

// Frame types of groups and presence.
const (
	TypeJoinGroup  = "join_group"
	TypeLeaveGroup = "leave_group"
	TypeGroups     = "groups"
	TypeSetStatus  = "set_status"
)

// GroupAll is the group of a send to every other session of the mesh. No
// session can join a group of that name.
const GroupAll = "all"

// Limits of groups and presence.
const (
	// MaxGroupLen bounds a group name.
	MaxGroupLen = 64
	// MaxBoxes bounds the boxes of one group send; a broker may allow
	// fewer recipients (group_too_large).
	MaxBoxes = MaxPeers
	// MaxSummaryLen bounds a session's status summary.
	MaxSummaryLen = 256
)

// Availability a session declares (SetStatus, Peer.Availability).
const (
	Available = "available"
	Busy      = "busy"
	DND       = "dnd" // do not disturb: DMs wait in the inbox, nothing is pushed
)

// Activity of a session, kept by Claude Code's hooks (SetStatus,
// Peer.Activity).
const (
	Working = "working" // a prompt was submitted; the model is at work
	Idle    = "idle"    // the turn ended
)

// Box is one recipient's sealed copy of a group send.
type Box struct {
	To    Key    `json:"to"`
	Nonce []byte `json:"nonce"`
	Box   []byte `json:"box"`
}

// Recipient is where a group send's DM to one recipient went.
type Recipient struct {
	To     Key    `json:"to"`
	Status string `json:"status"` // StatusDelivered or StatusQueued
}

// GroupDMID is the id of the DM that a group send with id sendID stores for
// recipient to: both sides derive it, and the sender seals it in to's box,
// so every recipient's copy has an id of its own that no one else can
// choose.
func GroupDMID(sendID string, to Key) string {
	return uuid.NewSHA1(uuid.MustParse(sendID), to).String()
}

// ValidGroup reports whether name can name a group: 1 to 64 characters
// from a-z, 0-9, '.', '_' and '-', starting with a letter or digit, without
// "..", and not GroupAll.
func ValidGroup(name string) error {
	fail := func(rule string) error {
		return fmt.Errorf("invalid group name %q: %s", truncate(name, MaxGroupLen), rule)
	}
	switch {
	case name == "":
		return fail("must not be empty")
	case len(name) > MaxGroupLen:
		return fail(fmt.Sprintf("must be at most %d characters", MaxGroupLen))
	case name == GroupAll:
		return fail(`"all" means every session of the mesh`)
	case strings.Contains(name, ".."):
		return fail(`must not contain ".."`)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		lowerAlnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !lowerAlnum {
			return fail("must start with a lowercase letter or digit")
		}
		if !lowerAlnum && c != '.' && c != '_' && c != '-' {
			return fail("may contain only lowercase letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// validateGroup checks a group send: a valid group (or GroupAll), boxes
// instead of to/nonce/box, each recipient once.
func (s Send) validateGroup() error {
	if s.Group != GroupAll {
		if err := ValidGroup(s.Group); err != nil {
			return &ParseError{CodeBadGroup, fmt.Errorf("send frame: %w", err)}
		}
	}
	if len(s.To) > 0 || len(s.Nonce) > 0 || len(s.Box) > 0 {
		return errors.New("a group send carries boxes, not to, nonce and box")
	}
	if len(s.Boxes) == 0 {
		return errors.New("boxes is required")
	}
	if len(s.Boxes) > MaxBoxes {
		return &ParseError{CodeTooLarge, fmt.Errorf("send frame: %d boxes exceeds the limit of %d", len(s.Boxes), MaxBoxes)}
	}
	seen := make(map[string]struct{}, len(s.Boxes))
	for i, b := range s.Boxes {
		if len(b.To) != KeySize {
			return fmt.Errorf("boxes[%d]: to is required", i)
		}
		if _, dup := seen[string(b.To)]; dup {
			return fmt.Errorf("boxes[%d]: a second box for recipient %s", i, b.To.String()[:12])
		}
		seen[string(b.To)] = struct{}{}
		if len(b.Nonce) != NonceSize {
			return fmt.Errorf("boxes[%d]: nonce must be %d bytes", i, NonceSize)
		}
		if len(b.Box) == 0 {
			return fmt.Errorf("boxes[%d]: box is required", i)
		}
		if len(b.Box) > MaxBoxSize {
			return &ParseError{CodeTooLarge, fmt.Errorf("send frame: boxes[%d] of %d bytes exceeds the %d-byte limit", i, len(b.Box), MaxBoxSize)}
		}
	}
	return nil
}

// JoinGroup makes the session a member of Group in its mesh, until it
// leaves (LeaveGroup) or the broker forgets the session. Answered by
// Groups.
type JoinGroup struct {
	Req   uint64 `json:"req"`
	Group string `json:"group"`
}

// LeaveGroup ends the session's membership of Group. Answered by Groups.
type LeaveGroup struct {
	Req   uint64 `json:"req"`
	Group string `json:"group"`
}

// Groups answers JoinGroup and LeaveGroup: the groups the session belongs
// to now, by name.
type Groups struct {
	Req    uint64   `json:"req"`
	Groups []string `json:"groups"`
}

// SetStatus changes what the session says about itself; a field left out
// (nil Summary, empty Availability or Activity) stays as it was. Answered
// by OK.
type SetStatus struct {
	Req          uint64  `json:"req"`
	Summary      *string `json:"summary,omitempty"`
	Availability string  `json:"availability,omitempty"`
	Activity     string  `json:"activity,omitempty"`
}

func (JoinGroup) Type() string  { return TypeJoinGroup }
func (LeaveGroup) Type() string { return TypeLeaveGroup }
func (Groups) Type() string     { return TypeGroups }
func (SetStatus) Type() string  { return TypeSetStatus }

func (j JoinGroup) validate() error {
	if err := ValidGroup(j.Group); err != nil {
		return &ParseError{CodeBadGroup, fmt.Errorf("join_group frame: %w", err)}
	}
	return nil
}

func (l LeaveGroup) validate() error {
	if err := ValidGroup(l.Group); err != nil {
		return &ParseError{CodeBadGroup, fmt.Errorf("leave_group frame: %w", err)}
	}
	return nil
}

func (Groups) validate() error { return nil }

func (s SetStatus) validate() error {
	if s.Summary != nil {
		if err := validText("summary", *s.Summary, MaxSummaryLen); err != nil {
			return err
		}
	}
	switch s.Availability {
	case "", Available, Busy, DND:
	default:
		return fmt.Errorf("unknown availability %q", truncate(s.Availability, 16))
	}
	switch s.Activity {
	case "", Working, Idle:
	default:
		return fmt.Errorf("unknown activity %q", truncate(s.Activity, 16))
	}
	return nil
}
