package wire

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	testKey   = Key(bytes.Repeat([]byte{7}, KeySize))
	testNonce = bytes.Repeat([]byte{9}, NonceSize)
	testID    = "0b8f6a2e-3c1d-4e5f-8a9b-0c1d2e3f4a5b"
)

func TestRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	frames := []Frame{
		Challenge{Version: Version, Nonce: bytes.Repeat([]byte{1}, ChallengeSize)},
		Hello{Version: Version, Mesh: "default", SessionID: testID, Key: testKey, Name: "alice@host/proj", ProjectDir: "/home/alice/proj", Token: "t", Instance: testID, Standby: true, Sig: []byte{1, 2, 3}},
		Welcome{Version: Version, KeyID: "070707070707", ServerTime: now, Replaced: true, GraceMS: 90000},
		Send{ID: testID, To: testKey, Nonce: testNonce, Box: []byte("ciphertext")},
		Sent{ID: testID, Status: StatusQueued},
		DM{ID: testID, From: testKey, FromName: "bob", FromSession: testID, Nonce: testNonce, Box: []byte{0, 1}, SentAt: now},
		Ack{IDs: []string{testID}},
		PeersRequest{Req: 42},
		PeerList{Req: 42, Peers: []Peer{{Key: testKey, KeyID: "0707", Name: "bob", State: PeerOnline, ConnectedSince: now, LastSeen: now},
			{Key: testKey, KeyID: "0707", Name: "carol", State: PeerGrace, LastSeen: now, GraceUntil: now}}},
		Bye{Forget: true},
		Bye{},
		&Error{Code: CodeUnknownPeer, Message: "no such peer", Ref: testID},
	}
	for _, f := range frames {
		t.Run(f.Type(), func(t *testing.T) {
			b, err := Encode(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte(`{"type":"`+f.Type()+`"`)) {
				t.Fatalf("encoded frame does not start with its type: %s", b)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("round trip changed the frame:\n got %#v\nwant %#v", got, f)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	big := `{"type":"send","id":"` + testID + `","to":"` + testKey.String() + `","nonce":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ","box":"` + strings.Repeat("A", 4*(MaxBoxSize/3+2)) + `"}`
	tests := []struct {
		name, in, code, msg string
	}{
		{"empty", ``, CodeBadFrame, "not a JSON object"},
		{"not json", `hello`, CodeBadFrame, "not a JSON object"},
		{"array", `[1,2]`, CodeBadFrame, "not a JSON object"},
		{"no type", `{}`, CodeBadFrame, `missing "type"`},
		{"unknown type", `{"type":"nuke"}`, CodeBadFrame, `unknown frame type "nuke"`},
		{"type not string", `{"type":5}`, CodeBadFrame, "not a JSON object"},
		{"send bad id", `{"type":"send","id":"../../etc","to":"` + testKey.String() + `","nonce":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ","box":"AA=="}`, CodeBadFrame, "not a UUID"},
		{"send short key", `{"type":"send","id":"` + testID + `","to":"abcd","nonce":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ","box":"AA=="}`, CodeBadFrame, "key must be 64 hex"},
		{"send bad hex key", `{"type":"send","id":"` + testID + `","to":"` + strings.Repeat("zz", 32) + `","nonce":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ","box":"AA=="}`, CodeBadFrame, "invalid byte"},
		{"send short nonce", `{"type":"send","id":"` + testID + `","to":"` + testKey.String() + `","nonce":"AA==","box":"AA=="}`, CodeBadFrame, "nonce must be 24 bytes"},
		{"send no box", `{"type":"send","id":"` + testID + `","to":"` + testKey.String() + `","nonce":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ"}`, CodeBadFrame, "box is required"},
		{"send box too big", big, CodeTooLarge, "exceeds"},
		{"frame too big", `{"type":"peers","pad":"` + strings.Repeat("x", MaxFrameSize) + `"}`, CodeTooLarge, "frame limit"},
		{"hello old version", `{"type":"hello","v":0,"mesh":"m","key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeUnsupportedVersion, "version 0"},
		{"hello no sig", `{"type":"hello","v":1,"mesh":"m","key":"` + testKey.String() + `","name":"a"}`, CodeBadSignature, "sig is required"},
		{"hello no name", `{"type":"hello","v":1,"mesh":"m","key":"` + testKey.String() + `","sig":"AA=="}`, CodeBadFrame, "name is required"},
		{"hello control chars", `{"type":"hello","v":1,"mesh":"m","key":"` + testKey.String() + `","name":"a\u001b[31m","sig":"AA=="}`, CodeBadFrame, "control characters"},
		{"hello bad session", `{"type":"hello","v":1,"mesh":"m","session_id":"../x","key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeBadFrame, "not a UUID"},
		{"ack empty", `{"type":"ack","ids":[]}`, CodeBadFrame, "ids is required"},
		{"ack bad id", `{"type":"ack","ids":["x"]}`, CodeBadFrame, "not a UUID"},
		{"hello bad instance", `{"type":"hello","v":1,"mesh":"m","instance":"x","key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeBadFrame, "not a UUID"},
		{"peer_list unknown state", `{"type":"peer_list","req":1,"peers":[{"key":"` + testKey.String() + `","state":"ghost"}]}`, CodeBadFrame, "unknown state"},
		{"ack too many", `{"type":"ack","ids":[` + strings.Repeat(`"`+testID+`",`, MaxAckIDs) + `"` + testID + `"]}`, CodeTooLarge, "exceeds the limit"},
		{"error no code", `{"type":"error","message":"x"}`, CodeBadFrame, "code is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode accepted %.80q as %#v", tt.in, f)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.Code != tt.code {
				t.Errorf("code = %q, want %q (%v)", pe.Code, tt.code, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

func TestEncodeRefusesOversizedFrame(t *testing.T) {
	_, err := Encode(DM{ID: testID, From: testKey, Nonce: testNonce, Box: make([]byte, MaxFrameSize)})
	if err == nil || !strings.Contains(err.Error(), "frame limit") {
		t.Fatalf("Encode of an oversized frame: err = %v", err)
	}
}

func TestHelloTranscriptBindsEveryField(t *testing.T) {
	base := Hello{Version: Version, Mesh: "m", SessionID: testID, Key: testKey, Name: "a", ProjectDir: "/p"}
	challenge := []byte("challenge")
	ref := HelloTranscript(challenge, base)
	variants := map[string]func(h *Hello){
		"mesh":        func(h *Hello) { h.Mesh = "n" },
		"session":     func(h *Hello) { h.SessionID = "" },
		"key":         func(h *Hello) { h.Key = bytes.Repeat([]byte{8}, KeySize) },
		"name":        func(h *Hello) { h.Name = "b" },
		"project":     func(h *Hello) { h.ProjectDir = "/q" },
		"version":     func(h *Hello) { h.Version = 2 },
		"name shifts": func(h *Hello) { h.Name, h.ProjectDir = "a/", "p" },
		"instance":    func(h *Hello) { h.Instance = testID },
		"standby":     func(h *Hello) { h.Standby = true },
	}
	for name, mutate := range variants {
		h := base
		mutate(&h)
		if bytes.Equal(HelloTranscript(challenge, h), ref) {
			t.Errorf("changing %s does not change the transcript", name)
		}
	}
	if bytes.Equal(HelloTranscript([]byte("other"), base), ref) {
		t.Error("the challenge does not change the transcript")
	}
	// The token and signature are not signed: the token is a bearer
	// credential checked on its own, the signature cannot sign itself.
	h := base
	h.Token, h.Sig = "tok", []byte{1}
	if !bytes.Equal(HelloTranscript(challenge, h), ref) {
		t.Error("token or sig changed the transcript")
	}
}

func TestFuzzCorpusPresent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecode"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("seed corpus for FuzzDecode is missing or empty: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"peers","req":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := Decode(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Code == "" {
				t.Fatalf("Decode error %v is not a coded *ParseError", err)
			}
			return
		}
		// Whatever decodes must encode and decode to the same frame.
		b, err := Encode(fr)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", fr, err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", b, err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(fr)) {
			t.Fatalf("round trip changed the frame:\n got %#v\nwant %#v", again, fr)
		}
	})
}

// normalize maps values JSON cannot tell apart (nil vs empty slices, time
// zones) to one form.
func normalize(f Frame) Frame {
	switch v := f.(type) {
	case Welcome:
		v.ServerTime = v.ServerTime.UTC()
		return v
	case DM:
		v.SentAt = v.SentAt.UTC()
		return v
	case PeerList:
		if len(v.Peers) == 0 {
			v.Peers = nil
		}
		for i := range v.Peers {
			v.Peers[i].LastSeen = v.Peers[i].LastSeen.UTC()
			v.Peers[i].ConnectedSince = v.Peers[i].ConnectedSince.UTC()
		}
		return v
	case Hello:
		if len(v.Sig) == 0 {
			v.Sig = nil
		}
		return v
	}
	return f
}
