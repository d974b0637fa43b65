package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Membership. A mesh created on a broker (MeshCreate) admits only sessions
// that a current member vouches for: each member has an ed25519 member key,
// separate from session keys, and signs an Attestation for every session
// key it runs. A member connection (MemberHello) manages the mesh: invites,
// the member list, removals. Joining (Join) enrolls a member key with an
// invite code; no secret key ever leaves the machine that made it.

// Frame types of membership.
const (
	TypeMemberHello  = "member_hello"
	TypeJoin         = "join"
	TypeJoined       = "joined"
	TypeMeshCreate   = "mesh_create"
	TypeInviteCreate = "invite_create"
	TypeInvite       = "invite"
	TypeInviteRevoke = "invite_revoke"
	TypeMemberList   = "member_list"
	TypeMembers      = "members"
	TypeMemberRemove = "member_remove"
	TypeOK           = "ok"
)

// Member roles.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// MaxAttestation is the longest an attestation may be valid for.
const MaxAttestation = 30 * 24 * time.Hour

// Domain strings: a member key's signature for one purpose is never valid
// for another.
const (
	attestDomain      = "claudemesh/attest/v1"
	memberHelloDomain = "claudemesh/member-hello/v1"
	joinDomain        = "claudemesh/join/v1"
)

// Attestation is a member's signature binding a session key to a mesh
// until Expires.
type Attestation struct {
	Member  Key       `json:"member"`
	Expires time.Time `json:"expires"`
	Sig     []byte    `json:"sig"`
}

// AttestationTranscript returns the bytes a member key signs to vouch for
// session in mesh until expires.
func AttestationTranscript(mesh string, session Key, expires time.Time) []byte {
	return transcript(attestDomain, []byte(mesh), session, binary.BigEndian.AppendUint64(nil, uint64(expires.UnixNano())))
}

// Attest returns member's attestation of session in mesh until expires.
func Attest(member ed25519.PrivateKey, mesh string, session Key, expires time.Time) *Attestation {
	return &Attestation{
		Member:  Key(member.Public().(ed25519.PublicKey)),
		Expires: expires,
		Sig:     ed25519.Sign(member, AttestationTranscript(mesh, session, expires)),
	}
}

// Errors of Attestation.Verify.
var (
	ErrAttestationSig     = errors.New("attestation signature does not verify")
	ErrAttestationExpired = errors.New("attestation expired")
	ErrAttestationTooLong = errors.New("attestation valid for too long")
)

// Verify checks that a vouches for session in mesh at now.
func (a *Attestation) Verify(mesh string, session Key, now time.Time) error {
	if err := a.validate(); err != nil {
		return err
	}
	if !ed25519.Verify(ed25519.PublicKey(a.Member), AttestationTranscript(mesh, session, a.Expires), a.Sig) {
		return ErrAttestationSig
	}
	if !now.Before(a.Expires) {
		return fmt.Errorf("%w at %s", ErrAttestationExpired, a.Expires.UTC().Format(time.RFC3339))
	}
	if a.Expires.Sub(now) > MaxAttestation {
		return fmt.Errorf("%w: until %s, the limit is %v", ErrAttestationTooLong, a.Expires.UTC().Format(time.RFC3339), MaxAttestation)
	}
	return nil
}

func (a *Attestation) validate() error {
	if len(a.Member) != KeySize {
		return errors.New("member key is required")
	}
	if len(a.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("sig must be %d bytes", ed25519.SignatureSize)
	}
	if a.Expires.IsZero() {
		return errors.New("expires is required")
	}
	return nil
}

// MemberHello opens a member connection: the member key (Key) signs
// MemberHelloTranscript over the broker's challenge. Token is the broker's
// operator credential, needed only to create a mesh.
type MemberHello struct {
	Version int    `json:"v"`
	Mesh    string `json:"mesh"`
	Key     Key    `json:"key"`
	Name    string `json:"name"`
	Token   string `json:"token,omitempty"`
	Sig     []byte `json:"sig"`
}

// MemberHelloTranscript returns the bytes a member key signs to answer
// challenge.
func MemberHelloTranscript(challenge []byte, h MemberHello) []byte {
	return transcript(memberHelloDomain, challenge, []byte{byte(h.Version)}, []byte(h.Mesh), h.Key, []byte(h.Name))
}

// Join enrolls the member key Key under Name with an invite code; Key signs
// JoinTranscript over the broker's challenge.
type Join struct {
	Version int    `json:"v"`
	Code    string `json:"code"`
	Key     Key    `json:"key"`
	Name    string `json:"name"`
	Sig     []byte `json:"sig"`
}

// JoinTranscript returns the bytes a member key signs to join with j.
func JoinTranscript(challenge []byte, j Join) []byte {
	return transcript(joinDomain, challenge, []byte{byte(j.Version)}, []byte(j.Code), j.Key, []byte(j.Name))
}

// Joined accepts a Join: the key is now a member of Mesh.
type Joined struct {
	Mesh  string `json:"mesh"`
	KeyID string `json:"key_id"`
}

// MeshCreate creates the mesh named in the member hello, with the hello's
// member key as owner. It needs the operator token.
type MeshCreate struct {
	Req uint64 `json:"req"`
}

// InviteCreate asks for an invite code good for Uses joins until
// ExpiresAt. Owner only.
type InviteCreate struct {
	Req       uint64    `json:"req"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Invite answers InviteCreate. The broker keeps only a hash of Code.
type Invite struct {
	Req       uint64    `json:"req"`
	Code      string    `json:"code"`
	Mesh      string    `json:"mesh"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expires_at"`
}

// InviteRevoke makes an invite code worthless. Owner only.
type InviteRevoke struct {
	Req  uint64 `json:"req"`
	Code string `json:"code"`
}

// MemberList asks for the mesh's members.
type MemberList struct {
	Req uint64 `json:"req"`
}

// MemberInfo is one member of a mesh.
type MemberInfo struct {
	Key      Key       `json:"key"`
	KeyID    string    `json:"key_id"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
	Sessions int       `json:"sessions"` // sessions of the member online now
}

// Members answers MemberList.
type Members struct {
	Req     uint64       `json:"req"`
	Members []MemberInfo `json:"members"`
}

// MemberRemove removes the member named Name (a member name or key id):
// its live sessions are closed at once and its hellos refused. Owner only.
type MemberRemove struct {
	Req  uint64 `json:"req"`
	Name string `json:"name"`
}

// OK answers a request that returns nothing else.
type OK struct {
	Req uint64 `json:"req"`
}

func (MemberHello) Type() string  { return TypeMemberHello }
func (Join) Type() string         { return TypeJoin }
func (Joined) Type() string       { return TypeJoined }
func (MeshCreate) Type() string   { return TypeMeshCreate }
func (InviteCreate) Type() string { return TypeInviteCreate }
func (Invite) Type() string       { return TypeInvite }
func (InviteRevoke) Type() string { return TypeInviteRevoke }
func (MemberList) Type() string   { return TypeMemberList }
func (Members) Type() string      { return TypeMembers }
func (MemberRemove) Type() string { return TypeMemberRemove }
func (OK) Type() string           { return TypeOK }

func (h MemberHello) validate() error {
	if err := checkVersion(h.Version); err != nil {
		return err
	}
	if h.Mesh == "" {
		return &ParseError{CodeBadMesh, errors.New("member_hello frame: mesh is required")}
	}
	if len(h.Key) != KeySize {
		return errors.New("key is required")
	}
	if err := validMemberName(h.Name); err != nil {
		return err
	}
	if len(h.Sig) == 0 {
		return &ParseError{CodeBadSignature, errors.New("member_hello frame: sig is required")}
	}
	return nil
}

func (j Join) validate() error {
	if err := checkVersion(j.Version); err != nil {
		return err
	}
	if _, err := ParseInviteCode(j.Code); err != nil {
		return &ParseError{CodeBadInvite, err}
	}
	if len(j.Key) != KeySize {
		return errors.New("key is required")
	}
	if err := validMemberName(j.Name); err != nil {
		return err
	}
	if len(j.Sig) == 0 {
		return &ParseError{CodeBadSignature, errors.New("join frame: sig is required")}
	}
	return nil
}

func (Joined) validate() error     { return nil }
func (MeshCreate) validate() error { return nil }

func (c InviteCreate) validate() error {
	if c.Uses < 1 || c.Uses > 1000 {
		return errors.New("uses must be 1 to 1000")
	}
	if c.ExpiresAt.IsZero() {
		return errors.New("expires_at is required")
	}
	return nil
}

func (Invite) validate() error { return nil }

func (r InviteRevoke) validate() error {
	if _, err := ParseInviteCode(r.Code); err != nil {
		return &ParseError{CodeBadInvite, err}
	}
	return nil
}

func (MemberList) validate() error { return nil }

func (l Members) validate() error {
	for i, m := range l.Members {
		if len(m.Key) != KeySize {
			return fmt.Errorf("members[%d]: key is required", i)
		}
	}
	return nil
}

func (r MemberRemove) validate() error {
	if r.Name == "" || len(r.Name) > MaxNameLen {
		return errors.New("name is required")
	}
	return nil
}

func (OK) validate() error { return nil }

// validMemberName accepts display names of members: 1 to 64 of letters,
// digits, '.', '_', '-' and '@'.
func validMemberName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("member name must be 1 to 64 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return fmt.Errorf("member name %q: only letters, digits and . _ - @", truncate(name, 70))
		}
	}
	return nil
}

// ValidMemberName reports whether name is acceptable as a member name.
func ValidMemberName(name string) error { return validMemberName(name) }

// Invite codes: "cm1-" then 16 random bytes in lowercase base32 without
// padding (26 characters), in groups split by '-' for reading aloud.
const (
	invitePrefix   = "cm1-"
	InviteCodeSize = 16
)

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// FormatInviteCode renders raw invite bytes as a code.
func FormatInviteCode(raw []byte) string {
	s := strings.ToLower(inviteEncoding.EncodeToString(raw))
	var parts []string
	for len(s) > 0 {
		n := min(len(s), 5)
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return invitePrefix + strings.Join(parts, "-")
}

// ParseInviteCode returns the raw bytes of an invite code. Case and the
// dashes between groups do not matter.
func ParseInviteCode(code string) ([]byte, error) {
	if len(code) > 64 {
		return nil, errors.New("invite code too long")
	}
	rest, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(code)), invitePrefix)
	if !ok {
		return nil, fmt.Errorf("invite code must start with %q", invitePrefix)
	}
	raw, err := inviteEncoding.DecodeString(strings.ToUpper(strings.ReplaceAll(rest, "-", "")))
	if err != nil || len(raw) != InviteCodeSize {
		return nil, errors.New("invite code is malformed")
	}
	return raw, nil
}

// transcript writes a domain string and fields, each length-prefixed, so
// that no two different inputs share a transcript.
func transcript(domain string, fields ...[]byte) []byte {
	var b bytes.Buffer
	put := func(p []byte) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		b.Write(p)
	}
	put([]byte(domain))
	for _, f := range fields {
		put(f)
	}
	return b.Bytes()
}
