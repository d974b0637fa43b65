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
	testID2   = "7d2c1b0a-9e8f-4a6b-b5c4-d3e2f1a0b9c8"
)

func TestRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	frames := []Frame{
		Challenge{Version: Version, Nonce: bytes.Repeat([]byte{1}, ChallengeSize)},
		Hello{Version: Version, Mesh: "default", SessionID: testID, Key: testKey, Name: "alice@host/proj", ProjectDir: "/home/alice/proj", Token: "t", Instance: testID, Standby: true, Sig: []byte{1, 2, 3}},
		Hello{Version: Version, Mesh: "default", SessionID: testID, Key: testKey, Name: "alice@host (terminal)", Kind: KindHuman, Sig: []byte{1, 2, 3}},
		Welcome{Version: Version, KeyID: "070707070707", ServerTime: now, Replaced: true, GraceMS: 90000},
		Send{ID: testID, To: testKey, Nonce: testNonce, Box: []byte("ciphertext")},
		Sent{ID: testID, Status: StatusQueued},
		Sent{ID: testID, Status: StatusDelivered, ExpiresAt: now},
		DM{ID: testID, From: testKey, FromName: "bob", FromSession: testID, Nonce: testNonce, Box: []byte{0, 1}, SentAt: now},
		DM{ID: testID, From: testKey, FromName: "bob", Nonce: testNonce, Box: []byte{0, 1}, SentAt: now, PushedAt: now},
		Ack{IDs: []string{testID}},
		Ack{IDs: []string{testID, testID2}, Cleared: true},
		Receipt{IDs: []string{testID}, State: ReceiptReceived, At: now},
		Receipt{IDs: []string{testID, testID2}, State: ReceiptPushed, At: now},
		StatusRequest{Req: 43, IDs: []string{testID, testID2}},
		StatusList{Req: 43, Statuses: []MessageStatus{
			{ID: testID, To: testKey, ToName: "bob", State: StateRead, CreatedAt: now, ExpiresAt: now, ReceivedAt: now, PushedAt: now, ReadAt: now},
			{ID: testID2, State: StateUnknown},
		}},
		StatusList{Req: 44, Statuses: []MessageStatus{}},
		PeersRequest{Req: 42},
		PeerList{Req: 42, Peers: []Peer{{Key: testKey, KeyID: "0707", Name: "bob", State: PeerOnline, ConnectedSince: now, LastSeen: now},
			{Key: testKey, KeyID: "0707", Name: "carol", State: PeerGrace, LastSeen: now, GraceUntil: now},
			{Key: testKey, KeyID: "0707", Name: "dan", State: PeerOffline, LastSeen: now, Kind: KindHuman}}},
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
		{"hello empty mesh", `{"type":"hello","v":1,"mesh":"","key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeBadMesh, "mesh is required"},
		{"hello no mesh", `{"type":"hello","v":1,"key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeBadMesh, "mesh is required"},
		{"member_hello no mesh", `{"type":"member_hello","v":1,"key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeBadMesh, "mesh is required"},
		{"hello no name", `{"type":"hello","v":1,"mesh":"m","key":"` + testKey.String() + `","sig":"AA=="}`, CodeBadFrame, "name is required"},
		{"hello control chars", `{"type":"hello","v":1,"mesh":"m","key":"` + testKey.String() + `","name":"a\u001b[31m","sig":"AA=="}`, CodeBadFrame, "control characters"},
		{"hello bad session", `{"type":"hello","v":1,"mesh":"m","session_id":"../x","key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeBadFrame, "not a UUID"},
		{"hello unknown kind", `{"type":"hello","v":1,"mesh":"m","key":"` + testKey.String() + `","name":"a","kind":"robot","sig":"AA=="}`, CodeBadFrame, `kind "robot"`},
		{"ack empty", `{"type":"ack","ids":[]}`, CodeBadFrame, "ids is required"},
		{"ack bad id", `{"type":"ack","ids":["x"]}`, CodeBadFrame, "not a UUID"},
		{"hello bad instance", `{"type":"hello","v":1,"mesh":"m","instance":"x","key":"` + testKey.String() + `","name":"a","sig":"AA=="}`, CodeBadFrame, "not a UUID"},
		{"peer_list unknown state", `{"type":"peer_list","req":1,"peers":[{"key":"` + testKey.String() + `","state":"ghost"}]}`, CodeBadFrame, "unknown state"},
		{"ack too many", `{"type":"ack","ids":[` + strings.Repeat(`"`+testID+`",`, MaxAckIDs) + `"` + testID + `"]}`, CodeTooLarge, "exceeds the limit"},
		{"error no code", `{"type":"error","message":"x"}`, CodeBadFrame, "code is required"},
		{"receipt no ids", `{"type":"receipt","ids":[],"state":"received","at":"2026-01-01T00:00:00Z"}`, CodeBadFrame, "ids is required"},
		{"receipt bad id", `{"type":"receipt","ids":["x"],"state":"received"}`, CodeBadFrame, "not a UUID"},
		{"receipt unknown state", `{"type":"receipt","ids":["` + testID + `"],"state":"read"}`, CodeBadFrame, `unknown state "read"`},
		{"receipt no state", `{"type":"receipt","ids":["` + testID + `"]}`, CodeBadFrame, `unknown state ""`},
		{"receipt bad time", `{"type":"receipt","ids":["` + testID + `"],"state":"pushed","at":"yesterday"}`, CodeBadFrame, "receipt frame"},
		{"receipt too many", `{"type":"receipt","state":"pushed","ids":[` + strings.Repeat(`"`+testID+`",`, MaxAckIDs) + `"` + testID + `"]}`, CodeTooLarge, "exceeds the limit"},
		{"ack cleared not bool", `{"type":"ack","ids":["` + testID + `"],"cleared":"yes"}`, CodeBadFrame, "ack frame"},
		{"status no ids", `{"type":"status","req":1}`, CodeBadFrame, "ids is required"},
		{"status bad id", `{"type":"status","req":1,"ids":["` + testID + `","nope"]}`, CodeBadFrame, "not a UUID"},
		{"status too many", `{"type":"status","req":1,"ids":[` + strings.Repeat(`"`+testID+`",`, MaxAckIDs) + `"` + testID + `"]}`, CodeTooLarge, "exceeds the limit"},
		{"status_list bad id", `{"type":"status_list","req":1,"statuses":[{"id":"x","state":"read"}]}`, CodeBadFrame, "not a UUID"},
		{"status_list no state", `{"type":"status_list","req":1,"statuses":[{"id":"` + testID + `"}]}`, CodeBadFrame, "state is required"},
		{"status_list short key", `{"type":"status_list","req":1,"statuses":[{"id":"` + testID + `","to":"0707","state":"read"}]}`, CodeBadFrame, "key must be 64 hex"},
		{"dm bad pushed_at", `{"type":"dm","id":"` + testID + `","from":"` + testKey.String() + `","nonce":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ","box":"AA==","pushed_at":5}`, CodeBadFrame, "dm frame"},
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
		"kind":        func(h *Hello) { h.Kind = KindHuman },
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

// A newer broker may report states this side does not know yet: the list
// still decodes, so a client can treat them as unknown.
func TestStatusListToleratesNewStates(t *testing.T) {
	in := `{"type":"status_list","req":3,"statuses":[{"id":"` + testID + `","state":"bounced","extra":1}]}`
	f, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := f.(StatusList); !ok || len(l.Statuses) != 1 || l.Statuses[0].State != "bounced" {
		t.Fatalf("Decode = %#v", f)
	}
}

// Frames of older peers, without the optional fields added since, decode
// with those fields zero.
func TestOptionalFieldsAbsent(t *testing.T) {
	for in, want := range map[string]Frame{
		`{"type":"ack","ids":["` + testID + `"]}`:                        Ack{IDs: []string{testID}},
		`{"type":"sent","id":"` + testID + `","status":"queued"}`:        Sent{ID: testID, Status: StatusQueued},
		`{"type":"receipt","ids":["` + testID + `"],"state":"received"}`: Receipt{IDs: []string{testID}, State: ReceiptReceived},
	} {
		got, err := Decode([]byte(in))
		if err != nil {
			t.Fatalf("Decode(%s): %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%s) = %#v, want %#v", in, got, want)
		}
	}
	// And zero optional fields are left out, so older peers see the frames
	// they know.
	for _, f := range []Frame{Sent{ID: testID, Status: StatusQueued}, DM{ID: testID}, Ack{IDs: []string{testID}}} {
		b, err := Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{"expires_at", "pushed_at", "cleared"} {
			if strings.Contains(string(b), field) {
				t.Errorf("Encode(%#v) = %s, carries a zero %s", f, b, field)
			}
		}
	}
}

func TestFuzzCorpusPresent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecode"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("seed corpus for FuzzDecode is missing or empty: %v", err)
	}
	// Every frame type has a seed, so the fuzzer starts from each shape.
	seeded := map[string]bool{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for typ := range frameTypes {
			if strings.Contains(string(b), `\"type\":\"`+typ+`\"`) {
				seeded[typ] = true
			}
		}
	}
	for typ := range frameTypes {
		if !seeded[typ] {
			t.Errorf("no seed in the FuzzDecode corpus for %s frames", typ)
		}
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
	case Sent:
		v.ExpiresAt = v.ExpiresAt.UTC()
		return v
	case DM:
		v.SentAt, v.PushedAt = v.SentAt.UTC(), v.PushedAt.UTC()
		return v
	case Receipt:
		v.At = v.At.UTC()
		return v
	case PeerList:
		if len(v.Peers) == 0 {
			v.Peers = nil
		}
		for i := range v.Peers {
			p := &v.Peers[i]
			p.LastSeen, p.ConnectedSince, p.GraceUntil = p.LastSeen.UTC(), p.ConnectedSince.UTC(), p.GraceUntil.UTC()
		}
		return v
	case StatusList:
		if len(v.Statuses) == 0 {
			v.Statuses = nil
		}
		for i := range v.Statuses {
			st := &v.Statuses[i]
			if len(st.To) == 0 {
				st.To = nil
			}
			for _, tm := range []*time.Time{&st.CreatedAt, &st.ExpiresAt, &st.ReceivedAt, &st.PushedAt, &st.ReadAt} {
				*tm = tm.UTC()
			}
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

// A frame's type is read the same whether or not it begins as Encode
// begins one: of several "type" members the last counts, escapes are
// unescaped, and what follows the type is parsed all the same.
func TestDecodeType(t *testing.T) {
	cases := []struct {
		frame string
		want  string // the type, or "" for an error
	}{
		{`{"type":"ack","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]}`, TypeAck},
		{`{"type":"peers"}`, TypePeers},
		{`{"ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"],"type":"ack"}`, TypeAck},
		{`{"type":"ack","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"],"type":"peers"}`, TypePeers},
		{`{"type":"peers","req":1,"type":"ack","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]}`, TypeAck},
		{`{"type":"\u0061ck","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]}`, TypeAck},
		{`{"type":"ack" ,"ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]}`, TypeAck},
		{`{"type":"ack","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]`, ""},
		{`{"type":"ack","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]} x`, ""},
		{`{"type":"ack","ids":[}`, ""},
		{`{"type":"","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]}`, ""},
		{`{"type":"nope","ids":["0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c"]}`, ""},
	}
	for _, c := range cases {
		f, err := Decode([]byte(c.frame))
		switch {
		case c.want == "" && err == nil:
			t.Errorf("Decode(%s) = %s frame, want an error", c.frame, f.Type())
		case c.want != "" && err != nil:
			t.Errorf("Decode(%s): %v", c.frame, err)
		case c.want != "" && f.Type() != c.want:
			t.Errorf("Decode(%s) = %s frame, want %s", c.frame, f.Type(), c.want)
		}
	}
}
