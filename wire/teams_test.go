package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestValidGroup(t *testing.T) {
	for _, name := range []string{"backend", "a", "team-1.ops_x", strings.Repeat("a", MaxGroupLen)} {
		if err := ValidGroup(name); err != nil {
			t.Errorf("ValidGroup(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "all", "Backend", "../etc", "a/b", "a..b", ".hidden", "-x", "ops\x00", "ops\x1b[2J", "é", strings.Repeat("a", MaxGroupLen+1)} {
		if err := ValidGroup(name); err == nil {
			t.Errorf("ValidGroup(%q) = nil, want an error", name)
		}
	}
}

// Each recipient's DM of a group send has an id of its own, the same on
// both sides, that differs from the send's and every other recipient's.
func TestGroupDMID(t *testing.T) {
	send := uuid.NewString()
	a, b := Key(bytes.Repeat([]byte{1}, KeySize)), Key(bytes.Repeat([]byte{2}, KeySize))
	ida, idb := GroupDMID(send, a), GroupDMID(send, b)
	if ida != GroupDMID(send, a) || ida == idb || ida == send || GroupDMID(uuid.NewString(), a) == ida {
		t.Errorf("ids %s %s for send %s", ida, idb, send)
	}
	if err := validUUID(ida); err != nil {
		t.Error(err)
	}
}

func TestGroupSendFrame(t *testing.T) {
	box := func(k byte) Box {
		return Box{To: Key(bytes.Repeat([]byte{k}, KeySize)), Nonce: make([]byte, NonceSize), Box: []byte("sealed")}
	}
	good := Send{ID: uuid.NewString(), Group: "backend", Boxes: []Box{box(1), box(2)}}
	b, err := Encode(good)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.(Send); got.Group != "backend" || len(got.Boxes) != 2 || len(got.To) != 0 {
		t.Errorf("decoded %+v", got)
	}
	for name, tc := range map[string]struct {
		f    Send
		code string
	}{
		"duplicate recipient": {Send{ID: good.ID, Group: "backend", Boxes: []Box{box(1), box(1)}}, CodeBadFrame},
		"no boxes":            {Send{ID: good.ID, Group: "backend"}, CodeBadFrame},
		"boxes and to":        {Send{ID: good.ID, Group: "backend", To: box(1).To, Boxes: []Box{box(2)}}, CodeBadFrame},
		"boxes without group": {Send{ID: good.ID, Boxes: []Box{box(1)}}, CodeBadGroup},
		"path as group":       {Send{ID: good.ID, Group: "../x", Boxes: []Box{box(1)}}, CodeBadGroup},
		"all":                 {Send{ID: good.ID, Group: GroupAll, Boxes: []Box{box(1)}}, ""},
	} {
		b, err := Encode(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(b)
		var pe *ParseError
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", name, err)
		case tc.code != "" && (!errors.As(err, &pe) || pe.Code != tc.code):
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}
