package wire

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// TestTranscriptLayout spells each signed transcript out byte by byte as
// PROTOCOL.md describes it, so that the page and the code cannot drift
// apart: every field a 4-byte big-endian length and its bytes; keys as
// their 32 raw bytes, not their hex; the version and the standby flag as
// one byte; an attestation in the hello as three fields (member key,
// expiry, signature) or one empty field.
func TestTranscriptLayout(t *testing.T) {
	field := func(b []byte) []byte {
		n := len(b)
		return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, b...)
	}
	fields := func(fs ...[]byte) []byte {
		var out []byte
		for _, f := range fs {
			out = append(out, field(f)...)
		}
		return out
	}
	raw := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const (
		sessionHex = "0101010101010101010101010101010101010101010101010101010101010101"
		memberHex  = "0202020202020202020202020202020202020202020202020202020202020202"
	)
	challenge := bytes.Repeat([]byte{7}, ChallengeSize)
	session, member := Key(raw(sessionHex)), Key(raw(memberHex))
	sig := bytes.Repeat([]byte{9}, 64)
	// 2031-05-06T07:08:09.000000010Z is 1935817689000000010 ns after the
	// epoch, 0x1add67ee86c33a0a: its 8 big-endian bytes.
	expires := time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC)
	expiry := []byte{0x1a, 0xdd, 0x67, 0xee, 0x86, 0xc3, 0x3a, 0x0a}

	hello := Hello{Version: 1, Mesh: "team", SessionID: "0b9f4c1e-3c2d-4a5b-8c7d-6e5f4a3b2c1d", Key: session,
		Name: "alice@laptop/proj", ProjectDir: "/home/alice/proj", Instance: "5f0e1d2c-3b4a-4958-8776-655443322110", Standby: true}
	helloFields := [][]byte{[]byte("claudemesh/hello/v1"), challenge, {1}, []byte("team"),
		[]byte(hello.SessionID), raw(sessionHex), []byte(hello.Name), []byte(hello.ProjectDir), []byte(hello.Instance), {1}}

	tests := []struct {
		name      string
		got, want []byte
	}{
		{
			name: "hello without attestation: field 11 is empty",
			got:  HelloTranscript(challenge, hello),
			want: fields(append(helloFields, nil)...),
		},
		{
			name: "hello with attestation: fields 11 to 13",
			got: func() []byte {
				h := hello
				h.Attestation = &Attestation{Member: member, Expires: expires, Sig: sig}
				return HelloTranscript(challenge, h)
			}(),
			want: fields(append(helloFields, raw(memberHex), expiry, sig)...),
		},
		{
			name: "hello of a human: the kind is field 12 after an empty field 11",
			got: func() []byte {
				h := hello
				h.Kind = KindHuman
				return HelloTranscript(challenge, h)
			}(),
			want: fields(append(helloFields, nil, []byte("human"))...),
		},
		{
			name: "hello of a human with attestation: the kind is field 14",
			got: func() []byte {
				h := hello
				h.Kind = KindHuman
				h.Attestation = &Attestation{Member: member, Expires: expires, Sig: sig}
				return HelloTranscript(challenge, h)
			}(),
			want: fields(append(helloFields, raw(memberHex), expiry, sig, []byte("human"))...),
		},
		{
			name: "attestation",
			got:  AttestationTranscript("team", session, expires),
			want: fields([]byte("claudemesh/attest/v1"), []byte("team"), raw(sessionHex), expiry),
		},
		{
			name: "member hello: key as 32 raw bytes",
			got:  MemberHelloTranscript(challenge, MemberHello{Version: 1, Mesh: "team", Key: member, Name: "olga", Token: "not signed"}),
			want: fields([]byte("claudemesh/member-hello/v1"), challenge, []byte{1}, []byte("team"), raw(memberHex), []byte("olga")),
		},
		{
			name: "join: key as 32 raw bytes",
			got:  JoinTranscript(challenge, Join{Version: 1, Code: "cm1-abcde-fghij", Key: member, Name: "alice"}),
			want: fields([]byte("claudemesh/join/v1"), challenge, []byte{1}, []byte("cm1-abcde-fghij"), raw(memberHex), []byte("alice")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Errorf("transcript\n got %x\nwant %x", tt.got, tt.want)
			}
		})
	}
}
